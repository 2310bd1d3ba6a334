//! A number with a fraction compared with a floating-point value compares as a float.
//!
//! tarn's SQL reads `0.5` as a DECIMAL literal, so that it reaches a DECIMAL column exactly.
//! DataFusion 55.2 prefers decimals when it compares one with a float, so `x > 0.5` over a
//! DOUBLE column cast every value of `x` to `Decimal128(30, 15)`, and failed on any value of
//! 10^15 or more, on NaN and on infinity. PostgreSQL and DuckDB compare in the float type. This
//! analyzer rule runs before DataFusion's type coercion and turns such a literal into a float
//! of the other side's type, so that the comparison is one of floats:
//!
//! ```text
//! x = 0.1                  (x DOUBLE)  ⇒  x = 0.1::DOUBLE
//! r IN (0.5, 1.5)          (r REAL)    ⇒  r IN (0.5::REAL, 1.5::REAL)
//! x BETWEEN 0.5 AND 2.5                ⇒  x BETWEEN 0.5::DOUBLE AND 2.5::DOUBLE
//! ```

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; see the module documentation. It belongs before `type_coercion`.
#[derive(Debug, Default)]
pub struct FloatComparisons;

impl AnalyzerRule for FloatComparisons {
    fn name(&self) -> &str {
        "tarn_float_comparisons"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = merge_schema(&plan.inputs());
            // A rewritten expression keeps its name, so the columns the plans above refer to
            // stay where they are.
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| Ok(as_float_comparison(e, &schema)))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }
}

/// `e` with the decimal literals it compares with a float made floats of that type.
fn as_float_comparison(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    match e {
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

fn is_comparison(op: Operator) -> bool {
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

/// The type of `e` when it is a floating-point type (and known before type coercion).
fn float_type(e: &Expr, schema: &DFSchema) -> Option<datafusion::arrow::datatypes::DataType> {
    e.get_type(schema).ok().filter(|t| t.is_floating())
}

/// `e` as a literal of the float type `float`, when it is a decimal literal (or its
/// negation).
fn as_float(e: &Expr, float: &datafusion::arrow::datatypes::DataType) -> Option<Expr> {
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
