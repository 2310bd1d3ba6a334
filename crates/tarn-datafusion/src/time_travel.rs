//! Time travel: `t VERSION AS OF 3`, `t TIMESTAMP AS OF '...'`, `t FOR SYSTEM_TIME AS OF '...'`
//! in tarn's SQL, and the table functions `tarn_version('t', 3)` and
//! `tarn_as_of('t', '2026-11-25 10:00:00')` in any DataFusion session.
//!
//! DataFusion plans relations synchronously, but loading a table version reads storage. So
//! tarn's entry point resolves every versioned reference of a statement before planning
//! (`TimeTravel::prepare`) and the planner only looks them up. Outside that entry point
//! (a plain session calling the table functions) the load blocks the current thread, which
//! needs a multi-threaded tokio runtime.

use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::{DefaultTableSource, provider_as_source};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{
    DataType as SqlType, Expr as SqlExpr, FunctionArg, FunctionArgExpr, Statement, TableFactor,
    TableVersion, Value as SqlValue, Visit, Visitor,
};
use tarn_spec::Version;

use crate::catalog::TarnCatalog;
use crate::error::to_df;
use crate::names::{QualifiedName, parts};
use crate::provider::TarnTable;

/// Which state of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsOf {
    Version(u64),
    /// Milliseconds since the epoch (UTC).
    Timestamp(i64),
}

impl AsOf {
    fn from_sql(version: &TableVersion) -> Result<AsOf> {
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
}

fn timestamp_of_sql(expr: &SqlExpr) -> Result<i64> {
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

/// Parses a timestamp literal; one without a zone is UTC.
pub fn parse_timestamp(s: &str) -> Result<i64> {
    datafusion::arrow::compute::kernels::cast_utils::string_to_datetime(&chrono::Utc, s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| DataFusionError::Plan(format!("'{s}' is not a timestamp; write it like '2026-11-25 10:00:00' or '2026-11-25T10:00:00Z'")))
}

fn scalar_as_of(value: &ScalarValue, function: &str) -> Result<AsOf> {
    match value {
        ScalarValue::Int64(Some(v)) if *v >= 0 && function == "tarn_version" => {
            Ok(AsOf::Version(*v as u64))
        }
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
            if function == "tarn_as_of" =>
        {
            parse_timestamp(s).map(AsOf::Timestamp)
        }
        ScalarValue::TimestampNanosecond(Some(ns), _) if function == "tarn_as_of" => {
            Ok(AsOf::Timestamp(ns.div_euclid(1_000_000)))
        }
        other => Err(DataFusionError::Plan(format!(
            "{function}: the second argument must be {}, not {other}",
            if function == "tarn_version" {
                "a version number"
            } else {
                "a timestamp string"
            }
        ))),
    }
}

/// Versioned table references of a statement, loaded ahead of planning.
#[derive(Debug)]
pub struct TimeTravel {
    catalog: Arc<TarnCatalog>,
    catalog_name: String,
    resolved: Mutex<HashMap<(QualifiedName, AsOf), Arc<TarnTable>>>,
}

impl TimeTravel {
    pub fn new(catalog: Arc<TarnCatalog>, catalog_name: impl Into<String>) -> Arc<Self> {
        Arc::new(TimeTravel {
            catalog,
            catalog_name: catalog_name.into(),
            resolved: Mutex::default(),
        })
    }

    /// Loads every versioned reference in `statement` (both syntaxes).
    pub async fn prepare(&self, statement: &Statement, default_namespace: &str) -> Result<()> {
        let mut refs = Vec::new();
        let _ = statement.visit(&mut Collect {
            refs: &mut refs,
            catalog: &self.catalog_name,
            namespace: default_namespace,
        });
        for r in refs {
            let (name, as_of) = r?;
            // Names that are not tarn tables are left to the planner, which says what they are.
            if name.catalog == self.catalog_name {
                self.load(&name, as_of).await?;
            }
        }
        Ok(())
    }

    /// Forgets what `prepare` loaded (after the statement was planned).
    pub fn clear(&self) {
        self.resolved.lock().expect("lock").clear();
    }

    /// Loads a version of a tarn table; `None` if there is no tarn table of that name.
    async fn load(&self, name: &QualifiedName, as_of: AsOf) -> Result<Option<Arc<TarnTable>>> {
        if let Some(t) = self
            .resolved
            .lock()
            .expect("lock")
            .get(&(name.clone(), as_of))
        {
            return Ok(Some(t.clone()));
        }
        if name.catalog != self.catalog_name {
            return Ok(None);
        }
        let Some(latest) = self.catalog.load(&name.namespace, &name.table).await? else {
            return Ok(None);
        };
        let table = match as_of {
            AsOf::Version(v) => latest.table().at_version(Version(v)).await,
            AsOf::Timestamp(ms) => latest.table().at_timestamp(ms).await,
        }
        .map_err(to_df)?;
        let pinned = Arc::new(latest.pinned(table));
        self.resolved
            .lock()
            .expect("lock")
            .insert((name.clone(), as_of), pinned.clone());
        Ok(Some(pinned))
    }

    /// The pinned table, loaded by `prepare` or, failing that, now (blocking).
    fn get(&self, name: &QualifiedName, as_of: AsOf) -> Result<Arc<TarnTable>> {
        if let Some(t) = self
            .resolved
            .lock()
            .expect("lock")
            .get(&(name.clone(), as_of))
        {
            return Ok(t.clone());
        }
        block_on(self.load(name, as_of))??.ok_or_else(|| {
            if name.catalog == self.catalog_name {
                DataFusionError::Plan(format!("table '{}' does not exist", name.short()))
            } else {
                not_tarn(&format!(
                    "{}.{}.{}",
                    name.catalog, name.namespace, name.table
                ))
            }
        })
    }
}

fn not_tarn(name: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "time travel needs a tarn table, and '{name}' is not one"
    ))
}

/// Runs `f` to completion from synchronous planning code.
fn block_on<F: Future>(f: F) -> Result<F::Output> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = Handle::try_current().map_err(|_| {
        DataFusionError::Plan(
            "time travel outside tarn's SQL entry point needs a tokio runtime".into(),
        )
    })?;
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        return Err(DataFusionError::Plan(
            "time-travel table functions outside tarn's SQL entry point need a multi-threaded tokio runtime".into(),
        ));
    }
    Ok(tokio::task::block_in_place(|| handle.block_on(f)))
}

struct Collect<'a> {
    refs: &'a mut Vec<Result<(QualifiedName, AsOf)>>,
    catalog: &'a str,
    namespace: &'a str,
}

impl Visitor for Collect<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            version,
            args,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let resolved =
            |parts: &[String]| QualifiedName::resolve(parts, self.catalog, self.namespace);
        if let Some(version) = version {
            self.refs
                .push(parts(name).and_then(|p| Ok((resolved(&p)?, AsOf::from_sql(version)?))));
        } else if let Some(args) = args {
            let function = name.to_string().to_ascii_lowercase();
            if function != "tarn_version" && function != "tarn_as_of" {
                return ControlFlow::Continue(());
            }
            let literal = |i: usize| match args.args.get(i) {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v)))) => {
                    Some(v.value.clone())
                }
                _ => None,
            };
            // Only literal arguments can be resolved ahead; others are resolved when planned.
            if let (Some(SqlValue::SingleQuotedString(table)), Some(at)) = (literal(0), literal(1))
            {
                let as_of = match at {
                    SqlValue::Number(n, _) if function == "tarn_version" => {
                        n.parse().map(AsOf::Version).ok()
                    }
                    SqlValue::SingleQuotedString(s) if function == "tarn_as_of" => {
                        parse_timestamp(&s).ok().map(AsOf::Timestamp)
                    }
                    _ => None,
                };
                if let Some(as_of) = as_of {
                    self.refs.push(
                        QualifiedName::parse(&table, self.catalog, self.namespace)
                            .map(|n| (n, as_of)),
                    );
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Plans `VERSION AS OF` & co. on tarn tables; refuses them on anything else.
#[derive(Debug)]
pub struct TimeTravelPlanner {
    travel: Arc<TimeTravel>,
}

impl TimeTravelPlanner {
    pub fn new(travel: Arc<TimeTravel>) -> Self {
        TimeTravelPlanner { travel }
    }
}

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
        let as_of = AsOf::from_sql(version)?;
        let reference = context.object_name_to_table_reference(name.clone())?;
        let options = context.context_provider().options();
        let qualified = QualifiedName::resolve(
            &reference.to_vec(),
            &options.catalog.default_catalog,
            &options.catalog.default_schema,
        )?;
        // Whatever the name resolves to must be a tarn table.
        let source = context
            .context_provider()
            .get_table_source(reference.clone())?;
        let is_tarn = source
            .downcast_ref::<DefaultTableSource>()
            .is_some_and(|s| s.table_provider.is::<TarnTable>());
        if !is_tarn {
            return Err(not_tarn(&reference.to_string()));
        }
        let pinned = self.travel.get(&qualified, as_of)?;
        let plan =
            LogicalPlanBuilder::scan(reference, provider_as_source(pinned), None)?.build()?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

/// `tarn_version('ns.t', 3)` or `tarn_as_of('ns.t', '2026-11-25 10:00:00')`.
#[derive(Debug)]
pub struct TimeTravelFunction {
    name: &'static str,
    travel: Arc<TimeTravel>,
}

impl TimeTravelFunction {
    pub fn version(travel: Arc<TimeTravel>) -> Self {
        TimeTravelFunction {
            name: "tarn_version",
            travel,
        }
    }

    pub fn as_of(travel: Arc<TimeTravel>) -> Self {
        TimeTravelFunction {
            name: "tarn_as_of",
            travel,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl TableFunctionImpl for TimeTravelFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let usage = || {
            DataFusionError::Plan(format!(
                "usage: {}('namespace.table', {})",
                self.name,
                if self.name == "tarn_version" {
                    "version"
                } else {
                    "'timestamp'"
                }
            ))
        };
        let [table, at] = args.exprs() else {
            return Err(usage());
        };
        let (Expr::Literal(ScalarValue::Utf8(Some(table)), _), Expr::Literal(at, _)) = (table, at)
        else {
            return Err(usage());
        };
        let options = args.session().config().options();
        let name = QualifiedName::parse(
            table,
            &options.catalog.default_catalog,
            &options.catalog.default_schema,
        )?;
        let as_of = scalar_as_of(at, self.name)?;
        Ok(self.travel.get(&name, as_of)? as Arc<dyn TableProvider>)
    }
}
