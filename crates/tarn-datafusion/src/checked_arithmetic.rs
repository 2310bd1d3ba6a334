//! `+`, `-` and `*` of integers and decimals fail on overflow instead of wrapping around.
//!
//! DataFusion 55.2 adds, subtracts and multiplies integers with wrapping arithmetic
//! (`9223372036854775807 + 1` is `-9223372036854775808`), and does not check a decimal result
//! against its precision (a `DECIMAL(38, 0)` sum can come out with 39 digits). Its
//! `BinaryExpr` can check (`with_fail_on_overflow`), but nothing sets that for a plan, and
//! plan nodes do not let their expressions be replaced. So this analyzer rule, which runs
//! after type coercion, replaces each such operator with a function that computes the same
//! with checked arithmetic and fails as PostgreSQL and DuckDB do:
//!
//! ```text
//! a + b        (a, b BIGINT)      ⇒  checked_add(a, b)
//! price * qty  (DECIMAL(15, 2))   ⇒  checked_mul(price, qty)    -- result precision checked
//! ```
//!
//! The function keeps the operator's column name (`a + b`), result type and nullability, and
//! its sort order (`a + 1` is ordered as `a`). Constant
//! folding still folds it; a constant that overflows fails when the statement runs. Floats,
//! dates, timestamps and intervals keep DataFusion's operators, as do `/` and `%`, which
//! already fail on overflow and on division by zero.

use std::any::Any;
use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, PrimitiveArray};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{
    DataType, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, DecimalType, Field,
    FieldRef,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::config::ConfigOptions;
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::logical_expr_common::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr_common::type_coercion::binary::BinaryTypeCoercer;
use datafusion::optimizer::AnalyzerRule;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr_common::datum::apply;

/// The analyzer rule; see the module documentation. It belongs after `type_coercion`.
#[derive(Debug, Default)]
pub struct CheckedArithmeticRule;

impl AnalyzerRule for CheckedArithmeticRule {
    fn name(&self) -> &str {
        "tarn_checked_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = merge_schema(&plan.inputs());
            // The function is named as the operator is, so no column changes its name.
            plan.map_expressions(|expr| expr.transform_up(|e| Ok(checked(e, &schema))))
        })
        .map(|t| t.data)
    }
}

/// `expr`, planned outside a plan (a column's DEFAULT), coerced as DataFusion's planner
/// would coerce it and with its arithmetic checked, as the rule checks a plan's.
pub(crate) fn coerced_and_checked(
    state: &SessionState,
    expr: Expr,
    schema: &DFSchema,
) -> Result<Expr> {
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .with_config_options(Arc::clone(state.config_options()))
        .build();
    let coerced = ExprSimplifier::new(context).coerce(expr, schema)?;
    Ok(coerced.transform_up(|e| Ok(checked(e, schema)))?.data)
}

/// Chains of one operator up to this many operands stay one function per operator, so that
/// DataFusion still computes a prefix they share once (`p * (1 - d)` in `p * (1 - d)` and
/// `p * (1 - d) * (1 + t)`); longer ones become one function of all their operands.
const NESTED_CHAIN_OPERANDS: usize = 8;

/// `e` as a checked function, if it is `+`, `-` or `*` of integers or decimals. A long chain
/// of one operator (`a + b + ... + z`, which the parser makes `((a + b) + ...) + z`) becomes
/// one function of all its operands, `checked_add(a, b, ..., z)`: DataFusion makes a
/// function's name from its arguments' names, so nested functions would cost time quadratic
/// in the length of a chain for each name, and a generated statement (a weighted sum of 500
/// features) can be long.
fn checked(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
        return Transformed::no(e);
    };
    if !is_checked(*op) {
        return Transformed::no(e);
    }
    let Ok(r) = right.get_type(schema) else {
        return Transformed::no(e);
    };
    let chained = is_chain(left, *op);
    // Type coercion gives both operands one kind of type: when the left operand is a checked
    // chain as it is (not cast), the right one's type says what both are.
    let checked = if chained {
        r.is_integer() || r.is_decimal()
    } else {
        match left.get_type(schema) {
            Ok(l) => (l.is_integer() && r.is_integer()) || (l.is_decimal() && r.is_decimal()),
            Err(_) => false,
        }
    };
    if !checked {
        return Transformed::no(e);
    }
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        unreachable!("matched above");
    };
    let mut args = if chained && chain_len(&left, op) >= NESTED_CHAIN_OPERANDS {
        into_operands(*left, op)
    } else {
        vec![*left]
    };
    args.push(*right);
    Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(CheckedArithmetic::new(op))),
        args,
    )))
}

/// The operands of the chain of `op` that `e` is, counted up to [`NESTED_CHAIN_OPERANDS`].
fn chain_len(mut e: &Expr, op: Operator) -> usize {
    let mut len = 1;
    while let Expr::ScalarFunction(f) = e
        && is_chain_function(f, op)
        && len < NESTED_CHAIN_OPERANDS
    {
        len += f.args.len() - 1;
        e = &f.args[0];
    }
    len
}

/// The operands of the chain of `op` that `e` is, in order. A chain's nested part is
/// shorter than [`NESTED_CHAIN_OPERANDS`], which bounds the recursion; a flat chain gives
/// its own arguments, so that growing it one operand at a time costs no copies.
fn into_operands(e: Expr, op: Operator) -> Vec<Expr> {
    match e {
        Expr::ScalarFunction(f) if is_chain_function(&f, op) => {
            let mut args = f.args;
            if args.first().is_some_and(|first| is_chain(first, op)) {
                let mut operands = into_operands(args.remove(0), op);
                operands.append(&mut args);
                operands
            } else {
                args
            }
        }
        other => vec![other],
    }
}

/// Whether `e` is a checked chain of `op`.
fn is_chain(e: &Expr, op: Operator) -> bool {
    matches!(e, Expr::ScalarFunction(f) if is_chain_function(f, op))
}

fn is_chain_function(f: &ScalarFunction, op: Operator) -> bool {
    (f.func.inner().as_ref() as &dyn Any)
        .downcast_ref::<CheckedArithmetic>()
        .is_some_and(|chain| chain.op == op)
}

fn is_checked(op: Operator) -> bool {
    matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
}

const MARKER: &str = "tarn-checked:";

/// What a plan sent to a Ballista executor carries in place of `node` when it is one of
/// these functions (else nothing): the executor's session does not have them by name.
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub(crate) fn encode(node: &ScalarUDF) -> Option<Vec<u8>> {
    let ours = node.inner().as_ref() as &dyn Any;
    let chain = ours.downcast_ref::<CheckedArithmetic>()?;
    Some(format!("{MARKER}{}", chain.name()).into_bytes())
}

/// The function [`encode`] wrote `buf` for.
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub(crate) fn decode(buf: &[u8]) -> Option<Arc<ScalarUDF>> {
    let name = std::str::from_utf8(buf).ok()?.strip_prefix(MARKER)?;
    [Operator::Plus, Operator::Minus, Operator::Multiply]
        .into_iter()
        .map(CheckedArithmetic::new)
        .find(|f| f.name() == name)
        .map(|f| Arc::new(ScalarUDF::new_from_impl(f)))
}

/// `args[0] op args[1] op args[2] ...`, evaluated from the left with checked arithmetic;
/// see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedArithmetic {
    op: Operator,
    signature: Signature,
}

impl CheckedArithmetic {
    fn new(op: Operator) -> Self {
        CheckedArithmetic {
            op,
            // The arguments are the operators' operands, already of the types they take.
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// The first argument and the rest, of which there must be one or more.
    fn operands<'a, T>(&self, args: &'a [T]) -> Result<(&'a T, &'a [T])> {
        match args.split_first() {
            Some((first, rest)) if !rest.is_empty() => Ok((first, rest)),
            _ => Err(DataFusionError::Internal(format!(
                "{} takes two arguments or more, not {}",
                self.name(),
                args.len()
            ))),
        }
    }
}

/// The error for a result of `op` out of the range of `data_type` (`detail` is Arrow's).
fn overflow(op: Operator, data_type: &DataType, detail: &str) -> DataFusionError {
    // Arrow names the operands, but a decimal's by its unscaled integer.
    let values = detail
        .split_once("Overflow happened on: ")
        .filter(|_| data_type.is_integer())
        .map(|(_, values)| format!(" ({values})"))
        .unwrap_or_default();
    let way_out = match data_type {
        DataType::Int64 | DataType::UInt64 => "cast an operand to DECIMAL(38, 0)",
        _ if data_type.is_integer() => "cast an operand to BIGINT",
        _ => "cast an operand to a decimal with more digits before the point, or to DOUBLE",
    };
    DataFusionError::Execution(format!(
        "{} overflow: the result of `{op}`{values} does not fit in {}; {way_out}",
        if data_type.is_decimal() {
            "decimal"
        } else {
            "integer"
        },
        sql_type_name(data_type),
    ))
}

/// `left op right`, failing on overflow.
fn apply_checked(
    op: Operator,
    left: &ColumnarValue,
    right: &ColumnarValue,
) -> Result<ColumnarValue> {
    let kernel = match op {
        Operator::Plus => numeric::add,
        Operator::Minus => numeric::sub,
        _ => numeric::mul,
    };
    let result = apply(left, right, kernel).map_err(|e| match e {
        DataFusionError::ArrowError(error, _)
            if matches!(error.as_ref(), ArrowError::ArithmeticOverflow(_)) =>
        {
            overflow(op, &left.data_type(), &error.to_string())
        }
        other => other,
    })?;
    if may_outgrow_precision(op, &left.data_type(), &right.data_type()) {
        let fits = match &result {
            ColumnarValue::Array(array) => fits_precision(array),
            ColumnarValue::Scalar(scalar) => fits_precision(&scalar.to_array()?),
        };
        if !fits {
            return Err(overflow(op, &result.data_type(), ""));
        }
    }
    Ok(result)
}

impl ScalarUDFImpl for CheckedArithmetic {
    fn name(&self) -> &str {
        match self.op {
            Operator::Plus => "checked_add",
            Operator::Minus => "checked_sub",
            _ => "checked_mul",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The chain's name as DataFusion names the operators: `a + b + c`.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let (first, rest) = self.operands(args)?;
        let mut name = first.schema_name().to_string();
        for arg in rest {
            write!(name, " {} {}", self.op, arg.schema_name())
                .map_err(|e| DataFusionError::Internal(e.to_string()))?;
        }
        Ok(name)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let (first, rest) = self.operands(arg_types)?;
        rest.iter().try_fold(first.clone(), |left, right| {
            BinaryTypeCoercer::new(&left, &self.op, right).get_result_type()
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(
            self.name(),
            self.return_type(&types)?,
            nullable,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (first, rest) = self.operands(&args.args)?;
        let mut result = first.clone();
        for right in rest {
            result = apply_checked(self.op, &result, right)?;
        }
        Ok(result)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        let (first, rest) = self.operands(inputs)?;
        // Checked arithmetic never wraps, so a sum or difference keeps its operands' order.
        let order = rest
            .iter()
            .fold(first.sort_properties, |order, right| match self.op {
                Operator::Plus => order.add(&right.sort_properties),
                Operator::Minus => order.sub(&right.sort_properties),
                _ => SortProperties::Unordered,
            });
        Ok(order)
    }
}

/// Whether every value of a decimal `array` has at most the digits its precision allows
/// (its integer holds more).
pub(crate) fn fits_precision(array: &dyn Array) -> bool {
    match array.data_type() {
        DataType::Decimal32(..) => fits::<Decimal32Type>(array.as_primitive()),
        DataType::Decimal64(..) => fits::<Decimal64Type>(array.as_primitive()),
        DataType::Decimal128(..) => fits::<Decimal128Type>(array.as_primitive()),
        DataType::Decimal256(..) => fits::<Decimal256Type>(array.as_primitive()),
        _ => true,
    }
}

/// [`fits_precision`] of one decimal type: Arrow's `validate_decimal_precision` without its
/// `is_valid` test and `Result` for every value; with nulls, it reads only the valid slots.
fn fits<T: DecimalType>(array: &PrimitiveArray<T>) -> bool {
    let precision = array.precision();
    let values = array.values();
    let fits = |v: &T::Native| T::is_valid_decimal_precision(*v, precision);
    match array.nulls() {
        None => values.iter().all(fits),
        Some(nulls) => nulls.valid_indices().all(|i| fits(&values[i])),
    }
}

/// Whether `left op right` of decimals can need more digits than its type has: only when
/// the digits an exact result needs were more than the widest precision of its type, which
/// then caps them (DECIMAL(38, 2) + DECIMAL(38, 2) is a DECIMAL(38, 2), where an exact sum
/// needs 39 digits). Operands are taken to fit their own types, as checked results and
/// DataFusion's casts do.
fn may_outgrow_precision(op: Operator, left: &DataType, right: &DataType) -> bool {
    let (Some((p1, s1, widest)), Some((p2, s2, _))) = (decimal(left), decimal(right)) else {
        return false;
    };
    let needed = match op {
        Operator::Multiply => p1 + p2 + 1,
        _ => (p1 - s1).max(p2 - s2) + s1.max(s2) + 1,
    };
    needed > widest
}

/// A decimal type's precision and scale, and the widest precision of its kind.
fn decimal(data_type: &DataType) -> Option<(i16, i16, i16)> {
    let (p, s, widest) = match data_type {
        DataType::Decimal32(p, s) => (p, s, Decimal32Type::MAX_PRECISION),
        DataType::Decimal64(p, s) => (p, s, Decimal64Type::MAX_PRECISION),
        DataType::Decimal128(p, s) => (p, s, Decimal128Type::MAX_PRECISION),
        DataType::Decimal256(p, s) => (p, s, Decimal256Type::MAX_PRECISION),
        _ => return None,
    };
    Some((i16::from(*p), i16::from(*s), i16::from(widest)))
}

/// An integer or decimal type, or a difference of timestamps, as SQL writes it in messages.
pub(crate) fn sql_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "TINYINT UNSIGNED".into(),
        DataType::UInt16 => "SMALLINT UNSIGNED".into(),
        DataType::UInt32 => "INT UNSIGNED".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Duration(_) => "INTERVAL".into(),
        other => other.to_string(),
    }
}
