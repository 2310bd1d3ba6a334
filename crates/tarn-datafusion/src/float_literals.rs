//! A number with a fraction next to a floating-point value is a float.
//!
//! tarn's SQL reads `0.5` as a DECIMAL literal, so that it reaches a DECIMAL column exactly.
//! DataFusion 55.2 prefers decimals when it makes a float and a decimal one type, so `x > 0.5`
//! over a DOUBLE column cast every value of `x` to `Decimal128(30, 15)`, and failed on any
//! value of 10^15 or more, on NaN and on infinity; `coalesce(x, 0.0)` did the same, and
//! returned a DECIMAL. PostgreSQL and DuckDB make such a literal a float. This analyzer rule
//! runs before DataFusion's type coercion and does the same wherever a decimal literal meets a
//! float: in comparisons, IN lists and BETWEEN, in the arguments of a function, and in the
//! results of CASE.
//!
//! ```text
//! x = 0.1                  (x DOUBLE)  ⇒  x = 0.1::DOUBLE
//! r IN (0.5, 1.5)          (r REAL)    ⇒  r IN (0.5::REAL, 1.5::REAL)
//! coalesce(x, 0.0)                     ⇒  coalesce(x, 0.0::DOUBLE)
//! CASE WHEN c THEN x ELSE 0.5 END      ⇒  CASE WHEN c THEN x ELSE 0.5::DOUBLE END
//! ```
//!
//! The rows of a VALUES list and the inputs of a UNION are left as DataFusion types them.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{Case, InList, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; see the module documentation. It belongs before `type_coercion`.
#[derive(Debug, Default)]
pub struct FloatLiterals;

impl AnalyzerRule for FloatLiterals {
    fn name(&self) -> &str {
        "tarn_float_literals"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = merge_schema(&plan.inputs());
            // A rewritten expression keeps its name, so the columns the plans above refer to
            // stay where they are.
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| Ok(with_float_literals(e, &schema)))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }
}

/// `e` with the decimal literals it puts next to a float made floats of that type.
fn with_float_literals(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    match e {
        Expr::ScalarFunction(ScalarFunction { func, args }) => {
            match widest_float(args.iter().filter_map(|a| float_type(a, schema))) {
                Some(float) if args.iter().any(|a| as_float(a, &float).is_some()) => {
                    let args = args
                        .into_iter()
                        .map(|a| as_float(&a, &float).unwrap_or(a))
                        .collect();
                    Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args }))
                }
                _ => Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args })),
            }
        }
        Expr::Case(Case {
            expr,
            when_then_expr,
            else_expr,
        }) => {
            let results = when_then_expr.iter().map(|(_, then)| then.as_ref());
            let results = widest_float(
                results
                    .chain(else_expr.as_deref())
                    .filter_map(|e| float_type(e, schema)),
            );
            let operand = expr.as_deref().and_then(|e| float_type(e, schema));
            let floated = |e: Box<Expr>, float: &Option<DataType>| match float {
                Some(float) => match as_float(&e, float) {
                    Some(f) => (Box::new(f), true),
                    None => (e, false),
                },
                None => (e, false),
            };
            let mut changed = false;
            let when_then_expr = when_then_expr
                .into_iter()
                .map(|(when, then)| {
                    let (when, a) = floated(when, &operand);
                    let (then, b) = floated(then, &results);
                    changed |= a || b;
                    (when, then)
                })
                .collect();
            let else_expr = else_expr.map(|e| {
                let (e, a) = floated(e, &results);
                changed |= a;
                e
            });
            let case = Expr::Case(Case {
                expr,
                when_then_expr,
                else_expr,
            });
            if changed {
                Transformed::yes(case)
            } else {
                Transformed::no(case)
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(op) => {
            let (left, right) = match (float_type(&left, schema), float_type(&right, schema)) {
                (Some(float), _) => match as_float(&right, &float) {
                    Some(right) => (left, Box::new(right)),
                    None => {
                        return Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }));
                    }
                },
                (_, Some(float)) => match as_float(&left, &float) {
                    Some(left) => (Box::new(left), right),
                    None => {
                        return Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }));
                    }
                },
                _ => return Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
            };
            Transformed::yes(Expr::BinaryExpr(BinaryExpr { left, op, right }))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => match float_type(&expr, schema) {
            Some(float) if list.iter().any(|item| as_float(item, &float).is_some()) => {
                let list = list
                    .into_iter()
                    .map(|item| as_float(&item, &float).unwrap_or(item))
                    .collect();
                Transformed::yes(Expr::InList(InList {
                    expr,
                    list,
                    negated,
                }))
            }
            _ => Transformed::no(Expr::InList(InList {
                expr,
                list,
                negated,
            })),
        },
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => match float_type(&expr, schema) {
            Some(float)
                if as_float(&low, &float).is_some() || as_float(&high, &float).is_some() =>
            {
                let low = Box::new(as_float(&low, &float).unwrap_or(*low));
                let high = Box::new(as_float(&high, &float).unwrap_or(*high));
                Transformed::yes(Expr::Between(Between {
                    expr,
                    negated,
                    low,
                    high,
                }))
            }
            _ => Transformed::no(Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            })),
        },
        other => Transformed::no(other),
    }
}

/// Whether `op` compares its sides (NULL only where a side is, but for the distinctness
/// tests, never NULL).
pub(crate) fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

/// The widest of some float types.
fn widest_float(types: impl Iterator<Item = DataType>) -> Option<DataType> {
    types.max_by_key(|t| match t {
        DataType::Float16 => 0,
        DataType::Float32 => 1,
        _ => 2,
    })
}

/// The type of `e` when it is a floating-point type (and known before type coercion).
fn float_type(e: &Expr, schema: &DFSchema) -> Option<DataType> {
    e.get_type(schema).ok().filter(|t| t.is_floating())
}

/// `e` as a literal of the float type `float`, when it is a decimal literal (or its
/// negation).
fn as_float(e: &Expr, float: &DataType) -> Option<Expr> {
    match e {
        Expr::Literal(
            value @ (ScalarValue::Decimal128(Some(_), _, _)
            | ScalarValue::Decimal256(Some(_), _, _)),
            _,
        ) => value.cast_to(float).ok().map(|v| Expr::Literal(v, None)),
        Expr::Negative(inner) => as_float(inner, float).map(|v| Expr::Negative(Box::new(v))),
        _ => None,
    }
}
