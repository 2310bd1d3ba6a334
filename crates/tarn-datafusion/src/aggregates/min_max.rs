//! MIN and MAX whose grouped form orders floats as their ungrouped form does.
//!
//! DataFusion 55.2's grouped accumulators for MIN and MAX of a float column start each group
//! at the largest (for MIN) or smallest (for MAX) *finite* value and compare with
//! `partial_cmp` (apache/datafusion#24432, fixed after 55):
//! - a group whose values are all `+inf` has MIN 1.7976931348623157e308, a value it does not
//!   hold, and a group of `-inf` has MAX -1.7976931348623157e308;
//! - a NaN replaces whatever came before it and is replaced by whatever comes after, so MIN
//!   and MAX of a group with a NaN depend on the order rows arrive in, as do `-0.0` and
//!   `0.0`.
//!
//! The same functions without GROUP BY are right: they order floats totally (`total_cmp`:
//! `-inf` < ... < `-0.0` < `0.0` < ... < `inf` < NaN), as `ScalarValue` does. So tarn's MIN
//! and MAX are DataFusion's own functions in every respect but one: for FLOAT and DOUBLE
//! their grouped accumulator compares with `total_cmp` and starts each group at the far end
//! of that order, so that any value replaces it. (Float16, which tarn does not store, takes
//! DataFusion's row-at-a-time path, which is right.)

use std::cmp::Ordering;

use datafusion::arrow::datatypes::{ArrowPrimitiveType, DataType, Float32Type, Float64Type};
use datafusion::common::Result;
use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{AggregateUDFImpl, GroupsAccumulator};
use datafusion_functions_aggregate_common::aggregate::groups_accumulator::prim_op::PrimitiveGroupsAccumulator;

use super::{Amended, Amendment};

pub(super) fn min() -> Amended {
    Amended::new(&min_udaf(), TotalOrderExtreme::Min)
}

pub(super) fn max() -> Amended {
    Amended::new(&max_udaf(), TotalOrderExtreme::Max)
}

/// MIN or MAX, whose grouped accumulator for floats orders them totally.
#[derive(Debug, Clone, Copy)]
enum TotalOrderExtreme {
    Min,
    Max,
}

impl TotalOrderExtreme {
    /// A grouped accumulator of `T` that keeps the least (MIN) or greatest (MAX) value in
    /// the total order, starting each group from the other end of the order, which every
    /// value replaces.
    fn groups_accumulator<T>(self, data_type: &DataType) -> Box<dyn GroupsAccumulator>
    where
        T: ArrowPrimitiveType + Send,
        T::Native: TotalOrder,
    {
        match self {
            TotalOrderExtreme::Min => Box::new(
                PrimitiveGroupsAccumulator::<T, _>::new(data_type, |current, new| {
                    if new.total_order(current).is_lt() {
                        *current = new;
                    }
                })
                .with_starting_value(T::Native::GREATEST),
            ),
            TotalOrderExtreme::Max => Box::new(
                PrimitiveGroupsAccumulator::<T, _>::new(data_type, |current, new| {
                    if new.total_order(current).is_gt() {
                        *current = new;
                    }
                })
                .with_starting_value(T::Native::LEAST),
            ),
        }
    }
}

impl Amendment for TotalOrderExtreme {
    fn groups_accumulator_supported(
        &self,
        inner: &dyn AggregateUDFImpl,
        args: AccumulatorArgs,
    ) -> bool {
        match args.return_field.data_type() {
            DataType::Float16 => false,
            DataType::Float32 | DataType::Float64 => true,
            _ => inner.groups_accumulator_supported(args),
        }
    }

    fn create_groups_accumulator(
        &self,
        inner: &dyn AggregateUDFImpl,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match args.return_field.data_type() {
            t @ DataType::Float32 => Ok(self.groups_accumulator::<Float32Type>(t)),
            t @ DataType::Float64 => Ok(self.groups_accumulator::<Float64Type>(t)),
            _ => inner.create_groups_accumulator(args),
        }
    }
}

/// A float type's total order (`total_cmp`) and its two ends: NaNs with every payload bit
/// set, negative and positive.
trait TotalOrder: Copy {
    const LEAST: Self;
    const GREATEST: Self;
    fn total_order(&self, other: &Self) -> Ordering;
}

impl TotalOrder for f32 {
    const LEAST: f32 = f32::from_bits(u32::MAX);
    const GREATEST: f32 = f32::from_bits(u32::MAX >> 1);
    fn total_order(&self, other: &f32) -> Ordering {
        self.total_cmp(other)
    }
}

impl TotalOrder for f64 {
    const LEAST: f64 = f64::from_bits(u64::MAX);
    const GREATEST: f64 = f64::from_bits(u64::MAX >> 1);
    fn total_order(&self, other: &f64) -> Ordering {
        self.total_cmp(other)
    }
}
