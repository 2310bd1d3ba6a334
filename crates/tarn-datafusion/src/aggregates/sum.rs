//! SUM that fails on overflow instead of wrapping around.
//!
//! DataFusion 55.2 adds with wrapping arithmetic: the SUM of a BIGINT column holding
//! 9223372036854775807 twice and 1 is -1, and a DECIMAL(38, 2) sum past 38 digits comes out
//! as a number no DECIMAL(38, 2) holds, or negative. tarn's `sum` is DataFusion's in every
//! respect but that: for integers, decimals and intervals of time it adds with checked
//! arithmetic, grouped or not, DISTINCT or not, and a sum that leaves its type's range fails
//! the statement with a message that names the aggregate and the way out, as in Trino.
//!
//! As in Trino, it is the running sum that must stay in range: a sum whose values bring it
//! back within range after leaving it fails too. Over a window frame that slides, rows leave
//! the sum as well as enter it, and there only the frame's sum must fit ([`SlidingSum`]).
//!
//! What stays DataFusion's: float sums (they reach infinity, not a wrong number), sums of
//! year-month and day-time intervals, and SUM(DISTINCT) over a sliding frame.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::sum_checked;
use datafusion::arrow::datatypes::{
    ArrowNativeTypeOp, ArrowNumericType, DataType, Decimal32Type, Decimal64Type, Decimal128Type,
    Decimal256Type, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
    DurationSecondType, Int64Type, TimeUnit, UInt64Type,
};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator};
use datafusion_functions_aggregate_common::aggregate::groups_accumulator::prim_op::PrimitiveGroupsAccumulator;

use super::{Amended, Amendment};
use crate::checked_arithmetic::{fits_precision, sql_type_name};

pub(super) fn sum() -> Amended {
    Amended::new(&sum_udaf(), CheckedSum)
}

#[derive(Debug)]
struct CheckedSum;

/// `$make::<T>`, with `T` the Arrow type of a sum of type `$data_type`, when tarn checks
/// such sums for overflow; else `None`.
macro_rules! checked {
    ($data_type:expr, $make:ident) => {
        match $data_type {
            DataType::Int64 => Some($make::<Int64Type> as fn(_) -> _),
            DataType::UInt64 => Some($make::<UInt64Type> as fn(_) -> _),
            DataType::Decimal32(..) => Some($make::<Decimal32Type> as fn(_) -> _),
            DataType::Decimal64(..) => Some($make::<Decimal64Type> as fn(_) -> _),
            DataType::Decimal128(..) => Some($make::<Decimal128Type> as fn(_) -> _),
            DataType::Decimal256(..) => Some($make::<Decimal256Type> as fn(_) -> _),
            DataType::Duration(TimeUnit::Second) => Some($make::<DurationSecondType> as fn(_) -> _),
            DataType::Duration(TimeUnit::Millisecond) => {
                Some($make::<DurationMillisecondType> as fn(_) -> _)
            }
            DataType::Duration(TimeUnit::Microsecond) => {
                Some($make::<DurationMicrosecondType> as fn(_) -> _)
            }
            DataType::Duration(TimeUnit::Nanosecond) => {
                Some($make::<DurationNanosecondType> as fn(_) -> _)
            }
            _ => None,
        }
    };
}

impl Amendment for CheckedSum {
    fn accumulator(
        &self,
        inner: &dyn AggregateUDFImpl,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn Accumulator>> {
        let data_type = args.return_field.data_type();
        let overflow = Overflow::of(&args);
        if args.is_distinct {
            let make = checked!(data_type, distinct_sum);
            let distinct = inner.accumulator(args)?;
            Ok(match make {
                Some(make) => make((distinct, overflow)),
                None => distinct,
            })
        } else {
            match checked!(data_type, running_sum) {
                Some(make) => Ok(make(overflow)),
                None => inner.accumulator(args),
            }
        }
    }

    fn create_groups_accumulator(
        &self,
        inner: &dyn AggregateUDFImpl,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match checked!(args.return_field.data_type(), grouped_sums) {
            Some(make) => Ok(make(Overflow::of(&args))),
            None => inner.create_groups_accumulator(args),
        }
    }

    fn create_sliding_accumulator(
        &self,
        inner: &dyn AggregateUDFImpl,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn Accumulator>> {
        let make = checked!(args.return_field.data_type(), sliding_sum);
        match make {
            Some(make) if !args.is_distinct => Ok(make(Overflow::of(&args))),
            _ => inner.create_sliding_accumulator(args),
        }
    }
}

/// What to say when a sum overflows, and the check of a decimal sum against its precision.
#[derive(Debug, Clone)]
struct Overflow {
    /// The aggregate as the plan shows it: `sum(t.v)`.
    aggregate: String,
    data_type: DataType,
}

impl Overflow {
    fn of(args: &AccumulatorArgs) -> Self {
        Overflow {
            aggregate: args.name.to_string(),
            data_type: args.return_field.data_type().clone(),
        }
    }

    fn error(&self) -> DataFusionError {
        let way_out = match &self.data_type {
            data_type if data_type.is_decimal() => {
                "cast its argument to a decimal with more digits before the point, such as \
                 DECIMAL(38, 0), or to DOUBLE for an approximate sum"
            }
            DataType::Duration(_) => "sum the interval in a coarser unit",
            _ => "cast its argument to DECIMAL(38, 0) to sum it exactly",
        };
        DataFusionError::Execution(format!(
            "{} is out of range: the sum no longer fits in {}; {way_out}",
            self.aggregate,
            sql_type_name(&self.data_type),
        ))
    }

    /// An error unless every sum in `sums` fits its type: a decimal of precision `p` holds
    /// at most `p` digits, fewer than its integer can.
    fn check(&self, sums: &dyn Array) -> Result<()> {
        if fits_precision(sums) {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// [`Overflow::check`] of one sum: a window evaluates one per row, so only a decimal
    /// becomes an array to check.
    fn check_scalar(&self, sum: ScalarValue) -> Result<ScalarValue> {
        if self.data_type.is_decimal() {
            self.check(&sum.to_array()?)?;
        }
        Ok(sum)
    }
}

/// The sums of many groups: DataFusion's accumulator with a checked addition, which raises
/// a flag the accumulator turns into an error once the batch is added.
fn grouped_sums<T: ArrowNumericType + Send>(overflow: Overflow) -> Box<dyn GroupsAccumulator> {
    let overflowed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&overflowed);
    let sums = PrimitiveGroupsAccumulator::<T, _>::new(&overflow.data_type, move |sum, value| {
        match sum.add_checked(value) {
            Ok(total) => *sum = total,
            Err(_) => flag.store(true, Ordering::Relaxed),
        }
    });
    Box::new(CheckedGroups {
        sums: Box::new(sums),
        overflowed,
        overflow,
    })
}

struct CheckedGroups {
    sums: Box<dyn GroupsAccumulator>,
    overflowed: Arc<AtomicBool>,
    overflow: Overflow,
}

impl CheckedGroups {
    fn checked(&self) -> Result<()> {
        if self.overflowed.load(Ordering::Relaxed) {
            Err(self.overflow.error())
        } else {
            Ok(())
        }
    }
}

impl GroupsAccumulator for CheckedGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums
            .update_batch(values, group_indices, opt_filter, total_num_groups)?;
        self.checked()
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums
            .merge_batch(values, group_indices, total_num_groups)?;
        self.checked()
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = self.sums.evaluate(emit_to)?;
        self.overflow.check(&sums)?;
        Ok(sums)
    }

    /// Partial sums go on as they are: a decimal's may exceed its precision on the way to a
    /// final sum that fits.
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.sums.state(emit_to)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.sums.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.sums.size()
    }
}

/// The sum of one group, or of a whole input, added up batch by batch.
fn running_sum<T: ArrowNumericType>(overflow: Overflow) -> Box<dyn Accumulator> {
    Box::new(RunningSum::<T> {
        sum: None,
        overflow,
    })
}

struct RunningSum<T: ArrowNumericType> {
    sum: Option<T::Native>,
    overflow: Overflow,
}

impl<T: ArrowNumericType> Debug for RunningSum<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunningSum({})", self.overflow.data_type)
    }
}

impl<T: ArrowNumericType> RunningSum<T> {
    fn value(&self) -> Result<ScalarValue> {
        ScalarValue::new_primitive::<T>(self.sum, &self.overflow.data_type)
    }
}

impl<T: ArrowNumericType> Accumulator for RunningSum<T> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let batch =
            sum_checked(values[0].as_primitive::<T>()).map_err(|_| self.overflow.error())?;
        if let Some(batch) = batch {
            let sum = self.sum.unwrap_or(T::Native::ZERO);
            self.sum = Some(sum.add_checked(batch).map_err(|_| self.overflow.error())?);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.overflow.check_scalar(self.value()?)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.overflow.aggregate.capacity()
    }
}

/// The sum of a window frame that slides.
fn sliding_sum<T: ArrowNumericType>(overflow: Overflow) -> Box<dyn Accumulator> {
    Box::new(SlidingSum::<T> {
        sum: T::Native::ZERO,
        wraps: 0,
        count: 0,
        overflow,
    })
}

/// Rows enter the frame and leave it, so its running sum may pass out of range and back
/// while every frame's sum fits. This adds and subtracts with wrapping arithmetic, as
/// DataFusion's does, and counts the times the sum wrapped (up past the largest value: +1,
/// down past the smallest: -1): the frame's exact sum is `sum + wraps * 2^bits`, so it fits
/// exactly when `wraps` is 0, whatever order rows came and went in.
struct SlidingSum<T: ArrowNumericType> {
    sum: T::Native,
    wraps: i64,
    /// The non-null values in the frame: its sum is NULL when there are none.
    count: u64,
    overflow: Overflow,
}

impl<T: ArrowNumericType> Debug for SlidingSum<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlidingSum({})", self.overflow.data_type)
    }
}

impl<T: ArrowNumericType> SlidingSum<T> {
    /// Adds `values` to the sum (`sign` 1) or takes them out of it (`sign` -1).
    fn step(&mut self, values: &ArrayRef, sign: i64) {
        for value in values.as_primitive::<T>().iter().flatten() {
            let exact = if sign > 0 {
                self.sum.add_checked(value)
            } else {
                self.sum.sub_checked(value)
            };
            match exact {
                Ok(sum) => self.sum = sum,
                Err(_) => {
                    self.sum = if sign > 0 {
                        self.sum.add_wrapping(value)
                    } else {
                        self.sum.sub_wrapping(value)
                    };
                    // Adding a positive value wraps past the largest; taking it out, past
                    // the smallest.
                    let up = if value.is_lt(T::Native::ZERO) { -1 } else { 1 };
                    self.wraps += sign * up;
                }
            }
        }
    }
}

impl<T: ArrowNumericType> Accumulator for SlidingSum<T> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count += non_null(&values[0]);
        self.step(&values[0], 1);
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count -= non_null(&values[0]);
        self.step(&values[0], -1);
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    /// A window's accumulator is never merged; the state is DataFusion's sliding sum's, the
    /// sum and the count, for a plan that would.
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?, self.count.into()])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.step(&states[0], 1);
        self.count += sum_checked(states[1].as_primitive::<UInt64Type>())?.unwrap_or(0);
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.wraps != 0 {
            return Err(self.overflow.error());
        }
        let sum = (self.count > 0).then_some(self.sum);
        self.overflow.check_scalar(ScalarValue::new_primitive::<T>(
            sum,
            &self.overflow.data_type,
        )?)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.overflow.aggregate.capacity()
    }
}

fn non_null(values: &ArrayRef) -> u64 {
    (values.len() - values.null_count()) as u64
}

/// SUM(DISTINCT): DataFusion's accumulator collects the distinct values, and tarn adds them.
fn distinct_sum<T: ArrowNumericType>(
    (distinct, overflow): (Box<dyn Accumulator>, Overflow),
) -> Box<dyn Accumulator> {
    Box::new(DistinctSum::<T> {
        distinct,
        overflow,
        sum: std::marker::PhantomData,
    })
}

struct DistinctSum<T> {
    /// DataFusion's, whose state is the list of distinct values.
    distinct: Box<dyn Accumulator>,
    overflow: Overflow,
    sum: std::marker::PhantomData<fn() -> T>,
}

impl<T> Debug for DistinctSum<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DistinctSum({:?})", self.distinct)
    }
}

impl<T: ArrowNumericType> Accumulator for DistinctSum<T> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.distinct.update_batch(values)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.distinct.merge_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.distinct.state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut sum = RunningSum::<T> {
            sum: None,
            overflow: self.overflow.clone(),
        };
        for state in self.distinct.state()? {
            let ScalarValue::List(values) = state else {
                return Err(DataFusionError::Internal(format!(
                    "SUM(DISTINCT)'s state is a list of values, not {state:?}"
                )));
            };
            sum.update_batch(&[Arc::clone(values.values())])?;
        }
        sum.evaluate()
    }

    fn size(&self) -> usize {
        self.distinct.size() + size_of_val(&self.overflow)
    }
}
