//! Time travel, resolved per statement with no state shared between statements and no
//! blocking while planning:
//!
//! - `t VERSION AS OF 3`, `t TIMESTAMP AS OF '...'`, `t FOR SYSTEM_TIME AS OF '...'`, in
//!   tarn's SQL (and in any session whose dialect parses them): DataFusion resolves `t` as
//!   usual; [`TimeTravelPlanner`] turns the reference into a read of the older version,
//!   whose schema the snapshot log of `t` gives without reading storage.
//! - `t@v3` and `"t@2026-11-25 10:00:00"` as table names, in any DataFusion session: the
//!   catalog resolves them like any name.
//! - `tarn_version('t', 3)` and `tarn_as_of('t', '...')`, in tarn's SQL: the parser turns
//!   them into the first form.
//!
//! A versioned reference is a relation of its own: its scan is named `t@v3` (under the name
//! the query uses), so no optimizer rule can take it for the current `t`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DFSchema, ScalarValue, TableReference};
use datafusion::datasource::{DefaultTableSource, provider_as_source};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlanBuilder, cast};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::sql::sqlparser::ast::{
    DataType as SqlType, Expr as SqlExpr, TableFactor, TableVersion, Value as SqlValue,
};

use crate::provider::TarnTable;

/// Which state of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsOf {
    Version(u64),
    /// Milliseconds since the epoch (UTC).
    Timestamp(i64),
}

impl AsOf {
    pub(crate) fn from_sql(version: &TableVersion) -> Result<AsOf> {
        match version {
            TableVersion::VersionAsOf(expr) => match expr {
                SqlExpr::Value(v) => match &v.value {
                    SqlValue::Number(n, _) => n.parse::<u64>().map(AsOf::Version).map_err(|_| {
                        DataFusionError::Plan(format!(
                            "VERSION AS OF takes a non-negative integer version, not {n}"
                        ))
                    }),
                    other => Err(DataFusionError::Plan(format!(
                        "VERSION AS OF takes a version number, not {other}"
                    ))),
                },
                other => Err(DataFusionError::Plan(format!(
                    "VERSION AS OF takes a version number, not {other}"
                ))),
            },
            TableVersion::TimestampAsOf(expr) | TableVersion::ForSystemTimeAsOf(expr) => {
                timestamp_of_sql(expr).map(AsOf::Timestamp)
            }
            other => Err(DataFusionError::NotImplemented(format!(
                "'{other}' is not supported; use VERSION AS OF n, TIMESTAMP AS OF '...' or FOR SYSTEM_TIME AS OF '...'"
            ))),
        }
    }

    /// The suffix of a versioned table name: `v3`, or a timestamp.
    fn parse_suffix(suffix: &str) -> Result<AsOf> {
        if let Some(digits) = suffix.strip_prefix(['v', 'V'])
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            return digits
                .parse()
                .map(AsOf::Version)
                .map_err(|_| DataFusionError::Plan(format!("version '{digits}' is out of range")));
        }
        parse_timestamp(suffix).map(AsOf::Timestamp)
    }
}

pub(crate) fn timestamp_of_sql(expr: &SqlExpr) -> Result<i64> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => parse_timestamp(s),
            other => Err(DataFusionError::Plan(format!(
                "a time-travel timestamp must be a string such as '2026-11-25 10:00:00', not {other}"
            ))),
        },
        SqlExpr::TypedString(t)
            if matches!(
                t.data_type,
                SqlType::Timestamp(..) | SqlType::Date | SqlType::Datetime(_)
            ) =>
        {
            match &t.value.value {
                SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                    parse_timestamp(s)
                }
                other => Err(DataFusionError::Plan(format!(
                    "cannot read {other} as a timestamp"
                ))),
            }
        }
        SqlExpr::Nested(inner) => timestamp_of_sql(inner),
        other => Err(DataFusionError::Plan(format!(
            "a time-travel timestamp must be a literal such as '2026-11-25 10:00:00', not {other}"
        ))),
    }
}

/// A time-travel timestamp written as a constant expression (`now() - INTERVAL '1 day'`),
/// evaluated once, as the statement is planned; a time without a zone is UTC.
fn constant_timestamp(context: &mut dyn RelationPlannerContext, expr: &SqlExpr) -> Result<i64> {
    let planned = context.sql_to_expr(expr.clone(), &DFSchema::empty());
    let options = context.context_provider().options();
    timestamp_value(expr, planned, options, "a time-travel timestamp")
}

/// The same, planned in `state`: for tarn's SQL, which names the version before planning,
/// and for the time arguments of its procedures. `role` says what the time is for, in
/// errors ("a time-travel timestamp").
pub(crate) fn evaluate_timestamp(state: &SessionState, expr: &SqlExpr, role: &str) -> Result<i64> {
    let planned = state.create_logical_expr(&expr.to_string(), &DFSchema::empty());
    timestamp_value(expr, planned, state.config_options(), role)
}

/// The instant `planned` (the expression `expr` was planned into) stands for.
fn timestamp_value(
    expr: &SqlExpr,
    planned: Result<Expr>,
    options: &ConfigOptions,
    role: &str,
) -> Result<i64> {
    let refuse = |why: String| {
        DataFusionError::Plan(format!(
            "{expr} cannot be {role}: {why}; write a constant such as \
             '2026-11-25 10:00:00' or now() - INTERVAL '1 day'"
        ))
    };
    let planned = planned.map_err(|e| refuse(e.to_string()))?;
    match planned.get_type(&DFSchema::empty()) {
        Ok(
            DataType::Timestamp(..)
            | DataType::Date32
            | DataType::Date64
            | DataType::Utf8
            | DataType::Utf8View
            | DataType::LargeUtf8
            | DataType::Null,
        ) => {}
        Ok(other) => return Err(refuse(format!("it is of type {other}, not a time"))),
        Err(e) => return Err(refuse(e.to_string())),
    }
    let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_config_options(Arc::new(options.clone()))
            .with_current_time()
            .build(),
    );
    match simplifier.simplify(cast(planned, utc)) {
        Ok(Expr::Literal(ScalarValue::TimestampMillisecond(Some(ms), _), _)) => Ok(ms),
        Ok(Expr::Literal(_, _)) => Err(refuse("it is NULL".into())),
        Ok(_) => Err(refuse("it is not a constant".into())),
        Err(e) => Err(refuse(e.to_string())),
    }
}

/// Parses a timestamp literal; one without a zone is UTC.
pub fn parse_timestamp(s: &str) -> Result<i64> {
    datafusion::arrow::compute::kernels::cast_utils::string_to_datetime(&chrono::Utc, s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| DataFusionError::Plan(format!("'{s}' is not a timestamp; write it like '2026-11-25 10:00:00' or '2026-11-25T10:00:00Z'")))
}

/// Milliseconds since the epoch, for messages.
pub(crate) fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Splits a table name `t@v3` or `t@2026-11-25 10:00:00` into the table and the state it
/// names; `None` for a name without `@`.
pub(crate) fn versioned_name(name: &str) -> Option<(&str, Result<AsOf>)> {
    let (table, suffix) = name.rsplit_once('@')?;
    Some((table, AsOf::parse_suffix(suffix)))
}

/// The name a versioned read's scan carries: the table's own name with `@v<version>` (or
/// `@changes` for a change feed), so that it is a relation of its own.
fn suffixed_reference(reference: &TableReference, suffix: &str) -> TableReference {
    let table = format!("{}@{suffix}", reference.table());
    match reference {
        TableReference::Bare { .. } => TableReference::bare(table),
        TableReference::Partial { schema, .. } => TableReference::partial(schema.as_ref(), table),
        TableReference::Full {
            catalog, schema, ..
        } => TableReference::full(catalog.as_ref(), schema.as_ref(), table),
    }
}

/// Plans `VERSION AS OF` & co. on tarn tables; refuses them on anything else (DataFusion
/// would otherwise ignore the clause and read the current data).
#[derive(Debug, Default)]
pub struct TimeTravelPlanner;

impl RelationPlanner for TimeTravelPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            version: Some(version),
            args: None,
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let reference = context.object_name_to_table_reference(name.clone())?;
        let source = context
            .context_provider()
            .get_table_source(reference.clone())?;
        let Some(current) = source
            .downcast_ref::<DefaultTableSource>()
            .and_then(|s| s.table_provider.downcast_ref::<TarnTable>())
        else {
            return Err(DataFusionError::Plan(format!(
                "time travel and change feeds need a tarn table, and '{reference}' is not one"
            )));
        };
        let (scanned, provider): (_, Arc<dyn datafusion::catalog::TableProvider>) = match version {
            TableVersion::Function(function) => {
                let evaluate = |at: &SqlExpr| constant_timestamp(context, at);
                let Some(feed) = crate::changes::feed_of(function, current, evaluate)? else {
                    return Err(DataFusionError::NotImplemented(format!(
                        "'{version}' is not supported; use VERSION AS OF n, TIMESTAMP AS OF '...' or FOR SYSTEM_TIME AS OF '...'"
                    )));
                };
                (suffixed_reference(&reference, "changes"), Arc::new(feed))
            }
            _ => {
                let as_of = match version {
                    TableVersion::TimestampAsOf(at) | TableVersion::ForSystemTimeAsOf(at)
                        if crate::parse::timestamp_text(at).is_none() =>
                    {
                        AsOf::Timestamp(constant_timestamp(context, at)?)
                    }
                    _ => AsOf::from_sql(version)?,
                };
                let pinned = current.at(as_of)?;
                let suffix = format!("v{}", pinned.version());
                (suffixed_reference(&reference, &suffix), Arc::new(pinned))
            }
        };
        let plan = LogicalPlanBuilder::scan(scanned, provider_as_source(provider), None)?
            .alias(reference)?
            .build()?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

/// `tarn_version('t', 3)` and `tarn_as_of('t', '...')` belong to tarn's SQL, whose parser
/// turns them into `t VERSION AS OF 3`. Reached only from a DataFusion session of the
/// application's own, they say what to write there instead.
#[derive(Debug)]
pub struct TimeTravelFunction {
    name: &'static str,
}

impl TimeTravelFunction {
    pub fn version() -> Self {
        TimeTravelFunction {
            name: "tarn_version",
        }
    }

    pub fn as_of() -> Self {
        TimeTravelFunction { name: "tarn_as_of" }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl TableFunctionImpl for TimeTravelFunction {
    fn call_with_args(&self, _args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        Err(DataFusionError::Plan(format!(
            "{}() is part of tarn's SQL (TarnContext::sql); in a DataFusion session of your \
             own, name the version in the table name instead: t@v3 for version 3, or \
             \"t@2026-11-25 10:00:00\" for the version at a time",
            self.name
        )))
    }
}
