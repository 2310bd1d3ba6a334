//! `TarnTable`: a tarn table version as a DataFusion `TableProvider`.
//!
//! ```text
//! scan(filters) ── PruningPredicate + bucket equalities ──▶ tarn_core::Table::plan_files
//!               ── kept files, with per-file Statistics ──▶ DataSourceExec(ParquetSource + predicate)
//! insert_into   ── DataSinkExec(TarnSink) : write files, commit once, in execute()
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, DFSchema, SchemaExt, Statistics};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::object_store::ObjectMeta;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricBuilder;
use tarn_core::{FilePredicate, Manifest, Predicate, ScanPlan, Table};
use tarn_spec::{PrimitiveType, Schema};

use crate::convert::{df_scalar, df_schema, to_scalar};
use crate::error::to_df;
use crate::field_ids::FieldIdAdapterFactory;
use crate::pruning::{AllOf, DataFusionPredicate, bucket_equalities};
use crate::sink::TarnSink;

/// One version of a tarn table, readable (and, unless pinned by time travel, writable)
/// from DataFusion.
#[derive(Debug, Clone)]
pub struct TarnTable {
    table: Table,
    name: String,
    store_url: ObjectStoreUrl,
    schema: SchemaRef,
    pinned: bool,
    /// What an INSERT writes into a column it does not name, by column name.
    write_defaults: Arc<HashMap<String, Expr>>,
    /// Row identity columns (`_file`, `_pos`) after the table's columns, and the files a
    /// scan is limited to; for row-level DML.
    identity: Option<Identity>,
}

#[derive(Debug, Clone)]
struct Identity {
    only: Option<Arc<std::collections::HashSet<String>>>,
}

fn write_defaults(schema: &Schema) -> Arc<HashMap<String, Expr>> {
    Arc::new(
        schema
            .fields()
            .iter()
            .filter_map(|f| {
                let value = f.write_default.as_ref()?;
                Some((
                    f.name.clone(),
                    Expr::Literal(to_scalar(f.field_type, Some(value)), None),
                ))
            })
            .collect(),
    )
}

/// The column holding a row's data file path (table-relative) in an identity scan.
pub const FILE_COLUMN: &str = "_file";
/// The column holding a row's position in its data file in an identity scan.
pub const POS_COLUMN: &str = "_pos";

impl TarnTable {
    /// `table` under the display name `name`, its store registered in the session under
    /// `store_url`.
    pub fn new(table: Table, name: impl Into<String>, store_url: ObjectStoreUrl) -> Self {
        let schema = df_schema(table.schema());
        TarnTable {
            write_defaults: write_defaults(table.schema()),
            table,
            name: name.into(),
            store_url,
            schema,
            pinned: false,
            identity: None,
        }
    }

    /// This table version with row identity columns `_file` and `_pos`, optionally limited
    /// to some data files (table-relative paths).
    pub fn with_identity(&self, only: Option<std::collections::HashSet<String>>) -> Self {
        let mut fields: Vec<_> = self.schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(FILE_COLUMN, DataType::Utf8, false)));
        fields.push(Arc::new(Field::new(POS_COLUMN, DataType::Int64, false)));
        TarnTable {
            schema: Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            identity: Some(Identity {
                only: only.map(Arc::new),
            }),
            ..self.clone()
        }
    }

    /// The same table pinned at another version (time travel): read-only.
    pub fn pinned(&self, table: Table) -> Self {
        TarnTable {
            schema: df_schema(table.schema()),
            write_defaults: write_defaults(table.schema()),
            table,
            pinned: true,
            ..self.clone()
        }
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }

    pub fn is_pinned(&self) -> bool {
        self.pinned
    }

    /// The files a scan under `filters` reads.
    pub async fn plan(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Result<(
        ScanPlan,
        Option<Arc<dyn datafusion::physical_plan::PhysicalExpr>>,
    )> {
        let df_schema = DFSchema::try_from(self.schema.clone())?;
        let physical = conjunction(filters.iter().cloned())
            .map(|e| state.create_physical_expr(e, &df_schema))
            .transpose()?;
        let mut predicates: Vec<Box<dyn FilePredicate>> = Vec::new();
        if let Some(p) = &physical
            && let Ok(pruning) = PruningPredicateBuilder::new()
                .with_file_schema(self.schema.clone())
                .try_build(p.clone())
            && !pruning.always_true()
        {
            predicates.push(Box::new(DataFusionPredicate::new(Arc::new(pruning))));
        }
        for spec in self.table.metadata().specs() {
            for p in bucket_equalities(filters, self.table.schema(), spec) {
                predicates.push(Box::new(p));
            }
        }
        let plan = if predicates.is_empty() {
            self.table.plan_files(&Predicate::True).await
        } else {
            self.table.plan_files(&AllOf(predicates)).await
        }
        .map_err(to_df)?;
        Ok((plan, physical))
    }

    fn partitioned_files(&self, plan: &ScanPlan) -> Vec<PartitionedFile> {
        let schema = self.table.schema();
        plan.manifests
            .iter()
            .flat_map(|m| (0..m.len()).map(move |i| (m, i)))
            .map(|(m, i)| self.partitioned_file(schema, m, i))
            .collect()
    }

    fn partitioned_file(
        &self,
        schema: &Schema,
        manifest: &Manifest,
        row: usize,
    ) -> PartitionedFile {
        let file = manifest.data_file(row);
        let column_statistics = schema
            .fields()
            .iter()
            .map(|field| {
                let Some(stats) = file.column_stats.get(&field.id) else {
                    return ColumnStatistics::new_unknown();
                };
                // String and binary bounds may be truncated: usable for pruning, not as values.
                let exact = !matches!(
                    field.field_type,
                    PrimitiveType::String | PrimitiveType::Binary
                );
                let bound = |v: &Option<tarn_spec::Value>| match v {
                    Some(v) if exact => Precision::Exact(df_scalar(field.field_type, v)),
                    Some(v) => Precision::Inexact(df_scalar(field.field_type, v)),
                    None => Precision::Absent,
                };
                let mut c = ColumnStatistics::new_unknown();
                c.min_value = bound(&stats.min);
                c.max_value = bound(&stats.max);
                c.null_count = stats
                    .null_count
                    .map(|n| Precision::Exact(n as usize))
                    .unwrap_or(Precision::Absent);
                c
            })
            .collect();
        let statistics = Statistics {
            num_rows: Precision::Exact(file.record_count as usize),
            total_byte_size: Precision::Inexact(file.file_size as usize),
            column_statistics,
        };
        // The store path as it is: a string would be escaped once more on the way back.
        let partitioned = PartitionedFile::new_from_meta(ObjectMeta {
            location: self.table.location().path(&file.path),
            last_modified: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            size: file.file_size,
            e_tag: None,
            version: None,
        });
        if self.identity.is_some() {
            return partitioned.with_partition_values(vec![datafusion::common::ScalarValue::Utf8(
                Some(file.path),
            )]);
        }
        partitioned.with_statistics(Arc::new(statistics))
    }
}

/// Splits files into `n` groups of similar total size (largest first, each to the
/// currently smallest group).
fn balance(mut files: Vec<PartitionedFile>, n: usize) -> Vec<FileGroup> {
    let n = n.max(1).min(files.len().max(1));
    files.sort_by(|a, b| {
        b.object_meta
            .size
            .cmp(&a.object_meta.size)
            .then_with(|| a.object_meta.location.cmp(&b.object_meta.location))
    });
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for file in files {
        let smallest = groups
            .iter_mut()
            .min_by_key(|g| g.0)
            .expect("at least one group");
        smallest.0 += file.object_meta.size;
        smallest.1.push(file);
    }
    groups
        .into_iter()
        .filter(|g| !g.1.is_empty())
        .map(|g| FileGroup::new(g.1))
        .collect()
}

#[async_trait]
impl TableProvider for TarnTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.write_defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Exact(self.table.snapshot().summary.total_rows as usize);
        Some(stats)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (mut plan, _) = self.plan(state, filters).await?;
        if let Some(Identity { only: Some(only) }) = &self.identity {
            for m in &mut plan.manifests {
                let keep: datafusion::arrow::array::BooleanArray = m
                    .paths()
                    .iter()
                    .map(|p| Some(p.is_some_and(|p| only.contains(p))))
                    .collect();
                *m = m.filter(&keep).map_err(to_df)?;
            }
        }
        let files = self.partitioned_files(&plan);
        let file_stats: Vec<&Statistics> = files
            .iter()
            .filter_map(|f| f.statistics.as_deref())
            .collect();
        let table_stats = if files.is_empty() || self.identity.is_some() {
            // Row identity scans carry no per-file column statistics, but their size still
            // decides join order (a small MERGE source must be the build side).
            let mut s = Statistics::new_unknown(&self.schema);
            s.num_rows = Precision::Exact(plan.record_count() as usize);
            s.total_byte_size =
                Precision::Inexact(files.iter().map(|f| f.object_meta.size as usize).sum());
            s
        } else {
            Statistics::try_merge_iter(file_stats, &self.schema)?
        };
        // The predicate reaches the Parquet reader (row groups, pages) through DataFusion's
        // physical filter pushdown from the FilterExec kept above this scan, as with
        // ListingTable; setting it here as well would evaluate it twice.
        let table_schema = match &self.identity {
            None => TableSchema::from(self.schema.clone()),
            Some(_) => {
                let data = df_schema(self.table.schema());
                TableSchema::builder(data)
                    .with_table_partition_cols(vec![Arc::new(Field::new(
                        FILE_COLUMN,
                        DataType::Utf8,
                        false,
                    ))])
                    .with_virtual_columns(vec![Arc::new(
                        Field::new(POS_COLUMN, DataType::Int64, false)
                            .with_extension_type(datafusion::parquet::arrow::RowNumber),
                    )])
                    .build()
            }
        };
        // Data files never change once written, so their footers can be kept in the
        // session's file metadata cache across queries, as ListingTable keeps them.
        let runtime = state.runtime_env();
        let reader = CachedParquetFileReaderFactory::new(
            runtime.object_store(&self.store_url)?,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let source = ParquetSource::new(table_schema)
            .with_table_parquet_options(state.default_table_options().parquet.clone())
            .with_parquet_file_reader_factory(Arc::new(reader));
        // Planning figures, reported by EXPLAIN ANALYZE on the scan.
        let m = plan.metrics;
        for (name, value) in [
            ("tarn_manifests_total", m.manifests_total),
            ("tarn_manifests_kept", m.manifests_kept),
            ("tarn_files_total", m.files_total as usize),
            ("tarn_files_kept", m.files_kept as usize),
        ] {
            MetricBuilder::new(source.metrics())
                .global_counter(name)
                .add(value);
        }
        // A scan pruned to no file is still a scan: one empty partition, so that every
        // operator above it (aggregates, sorts, joins, sinks) gets the input it requires.
        let mut groups = balance(files, state.config().target_partitions());
        if groups.is_empty() {
            groups.push(FileGroup::new(Vec::new()));
        }
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .with_statistics(table_stats)
            .with_expr_adapter(Some(Arc::new(FieldIdAdapterFactory::new(
                self.table.schema(),
            ))))
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.identity.is_some() {
            return Err(DataFusionError::Plan(
                "cannot write through a row-identity scan".into(),
            ));
        }
        if self.pinned {
            return Err(DataFusionError::Plan(format!(
                "cannot write to {} at version {}: a time-travel read is read-only",
                self.name,
                self.table.version()
            )));
        }
        self.schema
            .logically_equivalent_names_and_types(&input.schema())?;
        let sink = TarnSink::new(
            self.table.clone(),
            self.name.clone(),
            self.schema.clone(),
            insert_op,
        )?;
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
