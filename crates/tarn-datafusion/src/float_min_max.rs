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
//! `-inf` < ... < `-0.0` < `0.0` < ... < `inf` < NaN), as `ScalarValue` does. So tarn registers
//! MIN and MAX as DataFusion's own functions in every respect but one: for FLOAT and DOUBLE
//! their grouped accumulator compares with `total_cmp` and starts each group at the far end
//! of that order, so that any value replaces it. (Float16, which tarn does not store, takes
//! DataFusion's row-at-a-time path, which is right.)

use std::any::Any;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, FieldRef, Float32Type, Float64Type,
};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion::logical_expr::expr::{
    AggregateFunction, AggregateFunctionParams, WindowFunctionParams,
};
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, Expr, GroupsAccumulator, Operator,
    ReversedUDAF, SetMonotonicity, Signature, StatisticsArgs,
};
use datafusion_functions_aggregate_common::aggregate::groups_accumulator::prim_op::PrimitiveGroupsAccumulator;

/// `min` and `max`, to register in place of DataFusion's.
pub(crate) fn min_and_max() -> [AggregateUDF; 2] {
    [
        AggregateUDF::new_from_impl(TotalOrderMinMax::new(Extreme::Min)),
        AggregateUDF::new_from_impl(TotalOrderMinMax::new(Extreme::Max)),
    ]
}

/// What a plan sent to a Ballista executor carries in place of `node` when it is one of
/// these (else nothing), so that the executor runs them rather than DataFusion's by the name.
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub(crate) fn encode(node: &AggregateUDF) -> Option<Vec<u8>> {
    let ours = node.inner().as_ref() as &dyn Any;
    ours.downcast_ref::<TotalOrderMinMax>()
        .map(|f| format!("{MARKER}{}", f.inner.name()).into_bytes())
}

/// The function [`encode`] wrote `buf` for.
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub(crate) fn decode(buf: &[u8]) -> Option<Arc<AggregateUDF>> {
    let name = std::str::from_utf8(buf).ok()?.strip_prefix(MARKER)?;
    min_and_max()
        .into_iter()
        .find(|f| f.name() == name)
        .map(Arc::new)
}

const MARKER: &str = "tarn-total-order:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Extreme {
    Min,
    Max,
}

/// DataFusion's MIN or MAX, with a grouped accumulator for floats that orders them totally.
#[derive(Debug)]
struct TotalOrderMinMax {
    extreme: Extreme,
    /// DataFusion's own function, which does everything else.
    inner: Arc<dyn AggregateUDFImpl>,
}

impl TotalOrderMinMax {
    fn new(extreme: Extreme) -> Self {
        let inner = match extreme {
            Extreme::Min => min_udaf(),
            Extreme::Max => max_udaf(),
        };
        TotalOrderMinMax {
            extreme,
            inner: Arc::clone(inner.inner()),
        }
    }

    /// A grouped accumulator of `T` that keeps the least (MIN) or greatest (MAX) value in
    /// the total order, starting each group from the other end of the order, which every
    /// value replaces.
    fn groups_accumulator<T>(&self, data_type: &DataType) -> Box<dyn GroupsAccumulator>
    where
        T: ArrowPrimitiveType + Send,
        T::Native: TotalOrder,
    {
        match self.extreme {
            Extreme::Min => Box::new(
                PrimitiveGroupsAccumulator::<T, _>::new(data_type, |current, new| {
                    if new.total_order(current).is_lt() {
                        *current = new;
                    }
                })
                .with_starting_value(T::Native::GREATEST),
            ),
            Extreme::Max => Box::new(
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

impl PartialEq for TotalOrderMinMax {
    fn eq(&self, other: &Self) -> bool {
        self.extreme == other.extreme
    }
}

impl Eq for TotalOrderMinMax {}

impl Hash for TotalOrderMinMax {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.extreme.hash(state);
    }
}

impl AggregateUDFImpl for TotalOrderMinMax {
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match args.return_field.data_type() {
            DataType::Float16 => false,
            DataType::Float32 | DataType::Float64 => true,
            _ => self.inner.groups_accumulator_supported(args),
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match args.return_field.data_type() {
            t @ DataType::Float32 => Ok(self.groups_accumulator::<Float32Type>(t)),
            t @ DataType::Float64 => Ok(self.groups_accumulator::<Float64Type>(t)),
            _ => self.inner.create_groups_accumulator(args),
        }
    }

    // Everything below is DataFusion's function's own.

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.schema_name(params)
    }

    fn human_display(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.human_display(params)
    }

    fn window_function_schema_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.inner.window_function_schema_name(params)
    }

    fn display_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.display_name(params)
    }

    fn window_function_display_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.inner.window_function_display_name(params)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.return_field(arg_fields)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(acc_args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.inner.simplify()
    }

    fn simplify_expr_op_literal(
        &self,
        agg_function: &AggregateFunction,
        arg: &Expr,
        op: Operator,
        lit: &Expr,
        arg_is_left: bool,
    ) -> Result<Option<Expr>> {
        self.inner
            .simplify_expr_op_literal(agg_function, arg, op, lit, arg_is_left)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.is_descending()
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
}
