//! `x [NOT] IN (subquery)` with SQL's three-valued logic.
//!
//! DataFusion 55.2 decorrelates `IN (subquery)` into joins that are not always null-aware:
//! under `OR` or `NOT`, with a correlated subquery, or with a nullable expression on the
//! left, `NULL` comes out as `FALSE`, so `NOT IN` keeps rows it must drop (and a DELETE
//! deletes rows it must keep). apache/datafusion#25340, #25347, #25473, #25474, #25336 and
//! #25480 list the shapes. This analyzer rule rewrites every `IN (subquery)` in a filter
//! into `EXISTS` subqueries, which have no NULL to lose, before the optimizer sees it:
//!
//! ```text
//! x IN (SELECT y FROM s WHERE c)   ≡  CASE WHEN EXISTS (SELECT FROM s WHERE c AND y = x)   THEN TRUE
//!                                         WHEN EXISTS (SELECT FROM s WHERE c AND y IS NULL)
//!                                           OR x IS NULL AND EXISTS (SELECT FROM s WHERE c) THEN NULL
//!                                         ELSE FALSE END
//!
//! a conjunct of a filter:
//!   x NOT IN (...)                 ⇒  NOT EXISTS (... y = x) AND NOT EXISTS (... y IS NULL)
//!                                     AND (x IS NOT NULL OR NOT EXISTS (...))
//!   x IN (...)                     ⇒  kept: a semi join, where NULL and FALSE both drop the row
//! ```
//!
//! Each `EXISTS` becomes a semi, anti or mark join keyed on the correlation and on `y = x`,
//! so the rewrite stays a hash join wherever the original was one. DataFusion 55 cannot run
//! `IN` or `EXISTS` subqueries in a SELECT list at all; those get an error that says what to
//! write instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result, ScalarValue, Spans, plan_err};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Expr, Filter, LogicalPlan, LogicalPlanBuilder, Subquery, lit, not, when,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct NullAwareInSubquery;

impl AnalyzerRule for NullAwareInSubquery {
    fn name(&self) -> &str {
        "tarn_null_aware_in_subquery"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            if let LogicalPlan::Projection(projection) = &plan
                && let Some(found) = projection.expr.iter().find(|e| {
                    e.exists(|e| Ok(matches!(e, Expr::InSubquery(_) | Expr::Exists(_))))
                        .unwrap_or(false)
                })
            {
                return plan_err!(
                    "'{}' has an IN or EXISTS subquery outside a WHERE clause, which DataFusion \
                     cannot run yet; filter with it in WHERE, or LEFT JOIN the subquery and \
                     test the joined column",
                    found.schema_name()
                );
            }
            let LogicalPlan::Filter(filter) = plan else {
                return Ok(Transformed::no(plan));
            };
            if !filter
                .predicate
                .exists(|e| Ok(matches!(e, Expr::InSubquery(_))))?
            {
                return Ok(Transformed::no(LogicalPlan::Filter(filter)));
            }
            let outer = Arc::clone(filter.input.schema());
            let conjuncts = split_conjunction_owned(filter.predicate)
                .into_iter()
                .map(|conjunct| match conjunct {
                    // A semi join drops a row whose IN is NULL as it drops one whose IN is
                    // FALSE, which is all a filter asks.
                    Expr::InSubquery(InSubquery { negated: false, .. }) => Ok(conjunct),
                    Expr::InSubquery(InSubquery {
                        expr,
                        subquery,
                        negated: true,
                    }) => not_in_holds(&expr, &subquery, &outer),
                    other => other
                        .transform_up(|e| match e {
                            Expr::InSubquery(InSubquery {
                                expr,
                                subquery,
                                negated,
                            }) => {
                                let value = in_value(&expr, &subquery, &outer)?;
                                Ok(Transformed::yes(if negated { not(value) } else { value }))
                            }
                            e => Ok(Transformed::no(e)),
                        })
                        .map(|t| t.data),
                })
                .collect::<Result<Vec<_>>>()?;
            let predicate = conjunction(conjuncts).expect("a filter has a predicate");
            Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
                predicate,
                filter.input,
            )?)))
        })
        .map(|t| t.data)
    }
}

/// The subqueries an `IN` becomes, over the rows of `subquery` (its filter `c` included).
struct Probes {
    /// Some row has `y = x`.
    matching: Expr,
    /// Some row has `y IS NULL`.
    null: Expr,
    /// Some row at all.
    any: Expr,
}

fn probes(x: &Expr, subquery: &Subquery, outer: &DFSchema) -> Result<Probes> {
    // The subquery's values under a name of their own: `y = x` must never read as a column
    // compared with itself when the subquery and the outer query name the same table.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("__tarn_in_{}", NEXT.fetch_add(1, AtomicOrdering::Relaxed));
    let inner = subquery.subquery.as_ref();
    let (qualifier, field) = inner.schema().qualified_field(0);
    let rows = LogicalPlanBuilder::from(inner.clone())
        .project(vec![
            Expr::Column(Column::from((qualifier, field))).alias(&name),
        ])?
        .build()?;
    let y = Expr::Column(Column::new_unqualified(name));
    let x_inside = as_outer_reference(x.clone(), outer)?;
    // Outer columns `x` adds to those the subquery already refers to.
    let mut outer_refs = subquery.outer_ref_columns.clone();
    x_inside.apply(|e| {
        if matches!(e, Expr::OuterReferenceColumn(..)) && !outer_refs.contains(e) {
            outer_refs.push(e.clone());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    let correlated = !outer_refs.is_empty();
    let exists = |plan: LogicalPlan, refs: Vec<Expr>| {
        Expr::Exists(Exists {
            subquery: Subquery {
                subquery: Arc::new(plan),
                outer_ref_columns: refs,
                spans: Spans::new(),
            },
            negated: false,
        })
    };
    // An uncorrelated probe needs one row at most.
    let bounded = |builder: LogicalPlanBuilder| -> Result<LogicalPlan> {
        if correlated {
            builder.build()
        } else {
            builder.limit(0, Some(1))?.build()
        }
    };
    let matching = LogicalPlanBuilder::from(rows.clone())
        .filter(y.clone().eq(x_inside))?
        .build()?;
    let null = bounded(LogicalPlanBuilder::from(rows.clone()).filter(y.is_null())?)?;
    let any = bounded(LogicalPlanBuilder::from(rows))?;
    Ok(Probes {
        matching: exists(matching, outer_refs),
        null: exists(null, subquery.outer_ref_columns.clone()),
        any: exists(any, subquery.outer_ref_columns.clone()),
    })
}

/// `x IN (subquery)` as a three-valued boolean.
fn in_value(x: &Expr, subquery: &Subquery, outer: &DFSchema) -> Result<Expr> {
    let p = probes(x, subquery, outer)?;
    when(p.matching, lit(true))
        .when(
            p.null.or(x.clone().is_null().and(p.any)),
            lit(ScalarValue::Boolean(None)),
        )
        .otherwise(lit(false))
}

/// Whether `x NOT IN (subquery)` is TRUE: what a filter conjunct asks.
fn not_in_holds(x: &Expr, subquery: &Subquery, outer: &DFSchema) -> Result<Expr> {
    let p = probes(x, subquery, outer)?;
    Ok(not(p.matching)
        .and(not(p.null))
        .and(x.clone().is_not_null().or(not(p.any))))
}

/// `expr` as seen from inside a subquery of a plan whose input has schema `outer`: its
/// columns become outer references.
fn as_outer_reference(expr: Expr, outer: &DFSchema) -> Result<Expr> {
    expr.transform_up(|e| match e {
        Expr::Column(column) => {
            let (_, field) = outer.qualified_field_from_column(&column)?;
            Ok(Transformed::yes(Expr::OuterReferenceColumn(
                Arc::clone(field),
                column,
            )))
        }
        e => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}
