//! tarn's amendments to DataFusion's aggregate functions.
//!
//! A few of DataFusion 55.2's aggregates give wrong answers in some states, and tarn
//! registers them in place of DataFusion's, by the same names:
//! - `min` and `max` ([`min_max`]): their grouped form orders floats as their ungrouped form
//!   does;
//! - `sum` ([`sum`]): it fails on overflow instead of wrapping around.
//!
//! Each is DataFusion's own function in every other respect: an [`Amended`] forwards every
//! method to it but the accumulators its [`Amendment`] makes.

mod min_max;
mod sum;

use std::any::Any;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
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

/// The aggregate functions to register in place of DataFusion's.
pub(crate) fn amended() -> Vec<AggregateUDF> {
    [min_max::min(), min_max::max(), sum::sum()]
        .into_iter()
        .map(AggregateUDF::new_from_impl)
        .collect()
}

/// What a plan sent to a Ballista executor carries in place of `node` when it is one of
/// these (else nothing), so that the executor runs them rather than DataFusion's by the name.
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub(crate) fn encode(node: &AggregateUDF) -> Option<Vec<u8>> {
    let ours = node.inner().as_ref() as &dyn Any;
    ours.downcast_ref::<Amended>()
        .map(|f| format!("{MARKER}{}", f.name()).into_bytes())
}

/// The function [`encode`] wrote `buf` for.
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub(crate) fn decode(buf: &[u8]) -> Option<Arc<AggregateUDF>> {
    let name = std::str::from_utf8(buf).ok()?.strip_prefix(MARKER)?;
    amended()
        .into_iter()
        .find(|f| f.name() == name)
        .map(Arc::new)
}

const MARKER: &str = "tarn-amended:";

/// The accumulators tarn makes in place of one DataFusion function's; each defaults to the
/// function's own (`inner`).
trait Amendment: Debug + Send + Sync + 'static {
    fn accumulator(
        &self,
        inner: &dyn AggregateUDFImpl,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn Accumulator>> {
        inner.accumulator(args)
    }

    fn groups_accumulator_supported(
        &self,
        inner: &dyn AggregateUDFImpl,
        args: AccumulatorArgs,
    ) -> bool {
        inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        inner: &dyn AggregateUDFImpl,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(
        &self,
        inner: &dyn AggregateUDFImpl,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn Accumulator>> {
        inner.create_sliding_accumulator(args)
    }
}

/// A DataFusion aggregate function with tarn's accumulators.
#[derive(Debug)]
struct Amended {
    /// DataFusion's own function, which does everything else.
    inner: Arc<dyn AggregateUDFImpl>,
    amendment: Box<dyn Amendment>,
}

impl Amended {
    fn new(inner: &AggregateUDF, amendment: impl Amendment) -> Self {
        Amended {
            inner: Arc::clone(inner.inner()),
            amendment: Box::new(amendment),
        }
    }
}

/// One amended function per name: the name says which it is.
impl PartialEq for Amended {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Amended {}

impl Hash for Amended {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl AggregateUDFImpl for Amended {
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.amendment.accumulator(self.inner.as_ref(), args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.amendment
            .groups_accumulator_supported(self.inner.as_ref(), args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.amendment
            .create_groups_accumulator(self.inner.as_ref(), args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.amendment
            .create_sliding_accumulator(self.inner.as_ref(), args)
    }

    // Everything below is DataFusion's function's own. Every method of `AggregateUDFImpl`
    // in DataFusion 55.2 is here but `with_beneficial_ordering`, whose default is right for
    // the order-insensitive functions amended; an upgrade that adds one needs a look.

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

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
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
