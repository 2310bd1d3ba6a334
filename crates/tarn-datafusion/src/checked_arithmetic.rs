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
//! The function keeps the operator's column name (`a + b`), result type and nullability, its
//! sort order (`a + 1` is ordered as `a`) and its bounds (for interval analysis). Constant
//! folding still folds it; a constant that overflows fails when the statement runs. Floats,
//! dates, timestamps and intervals keep DataFusion's operators, as do `/` and `%`, which
//! already fail on overflow and on division by zero.

use std::any::Any;
use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{
    DataType, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, Field, FieldRef,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::logical_expr_common::interval_arithmetic::{Interval, apply_operator};
use datafusion::logical_expr_common::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr_common::type_coercion::binary::BinaryTypeCoercer;
use datafusion::optimizer::AnalyzerRule;
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

/// `e` as a checked function, if it is `+`, `-` or `*` of integers or decimals. A chain of
/// one operator (`a + b + c`, which the parser makes `(a + b) + c`) becomes one function of
/// all its operands, `checked_add(a, b, c)`, rather than one per operator: DataFusion makes
/// a function's name from its arguments' names, so nested functions would cost time
/// quadratic in the length of a chain for each name, and a generated statement (a weighted
/// sum of 500 features) can be long.
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
    let chained = CheckedArithmetic::of(left).is_some_and(|chain| chain.op == *op);
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
    let mut args = match *left {
        Expr::ScalarFunction(chain) if chained => chain.args,
        left => vec![left],
    };
    args.push(*right);
    Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(CheckedArithmetic::new(op))),
        args,
    )))
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

    /// The chain `e` is, if it is one.
    fn of(e: &Expr) -> Option<&Self> {
        let Expr::ScalarFunction(f) = e else {
            return None;
        };
        (f.func.inner().as_ref() as &dyn Any).downcast_ref()
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
            CheckedArithmetic::overflow(op, &left.data_type(), &error.to_string())
        }
        other => other,
    })?;
    let data_type = result.data_type();
    if data_type.is_decimal() {
        let fits = match &result {
            ColumnarValue::Array(array) => fits_precision(array),
            ColumnarValue::Scalar(scalar) => fits_precision(&scalar.to_array()?),
        };
        if !fits {
            return Err(CheckedArithmetic::overflow(op, &data_type, ""));
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

    fn evaluate_bounds(&self, inputs: &[&Interval]) -> Result<Interval> {
        let (first, rest) = self.operands(inputs)?;
        rest.iter().try_fold((*first).clone(), |left, right| {
            apply_operator(&self.op, &left, right)
        })
    }
}

/// Whether every value of a decimal `array` has at most the digits its precision allows
/// (its integer holds more).
fn fits_precision(array: &ArrayRef) -> bool {
    match array.data_type() {
        DataType::Decimal32(p, _) => array
            .as_primitive::<Decimal32Type>()
            .validate_decimal_precision(*p)
            .is_ok(),
        DataType::Decimal64(p, _) => array
            .as_primitive::<Decimal64Type>()
            .validate_decimal_precision(*p)
            .is_ok(),
        DataType::Decimal128(p, _) => array
            .as_primitive::<Decimal128Type>()
            .validate_decimal_precision(*p)
            .is_ok(),
        DataType::Decimal256(p, _) => array
            .as_primitive::<Decimal256Type>()
            .validate_decimal_precision(*p)
            .is_ok(),
        _ => true,
    }
}

/// An integer or decimal type as SQL writes it.
fn sql_type_name(data_type: &DataType) -> String {
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
        other => other.to_string(),
    }
}
