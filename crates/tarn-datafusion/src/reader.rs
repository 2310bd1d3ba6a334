//! How a scan opens data files: small files with one request.
//!
//! A stream of small commits leaves a table of many files of a few kilobytes until it is
//! compacted. DataFusion reads a file's footer with one request for its last
//! `metadata_size_hint` bytes (512 KiB by default), which for such a file is all of it, and
//! then a second request for the data pages it just had. [`TarnReaderFactory`] reads a file
//! no larger than the hint once, the first time it is opened in a session, and serves the
//! footer and the pages from that one read: a cold scan of N small files costs N requests
//! instead of 2N. Once the footer is in the session's metadata cache, a file is read as
//! DataFusion reads it, for the byte ranges the query needs.
//!
//! Parquet leaves NaN out of a float column's bounds, in the footer and in the page index,
//! and DataFusion 55.2 prunes row groups and pages by them as if they covered every value
//! (apache/datafusion#15812): a filter `x > 5`, or the filter a join on `x` pushes into the
//! scan while it runs, would skip a row group whose NaN rows pass it. For a file whose
//! manifest entry says a float column may hold NaN ([`NanFields`]), the reader hands
//! DataFusion the footer without that column's bounds, so that pruning reads the row
//! groups it cannot judge.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetSource;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileMetrics, ParquetFileReaderFactory,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::basic::Type as PhysicalType;
use datafusion::parquet::errors::{ParquetError, Result as ParquetResult};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::page_index::column_index::ColumnIndexMetaData;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

/// `source` reading its files through [`TarnReaderFactory`], with the footer read of its
/// options' `metadata_size_hint` (which `ParquetSource` does not take from them, and which
/// DataFusion's plan serialization drops).
pub(crate) fn read_through_tarn(
    source: ParquetSource,
    store: Arc<dyn ObjectStore>,
    cache: Arc<FileMetadataCache>,
) -> ParquetSource {
    let hint = source.table_parquet_options().global.metadata_size_hint;
    let source =
        source.with_parquet_file_reader_factory(Arc::new(TarnReaderFactory::new(store, cache)));
    match hint {
        Some(hint) => source.with_metadata_size_hint(hint),
        None => source,
    }
}

/// DataFusion's reader with the session's footer cache, except that a file no larger than
/// the metadata size hint whose footer is not cached yet is read whole with one request.
#[derive(Debug)]
struct TarnReaderFactory {
    store: Arc<dyn ObjectStore>,
    cache: Arc<FileMetadataCache>,
    /// The files read whole that a reader still holds, for another reader of the same file:
    /// DataFusion reads a file's bloom filters with one reader and decodes its pages with a
    /// second, created once the footer is cached.
    held: Held,
}

type Held = Arc<Mutex<HashMap<Path, Weak<Bytes>>>>;

impl TarnReaderFactory {
    fn new(store: Arc<dyn ObjectStore>, cache: Arc<FileMetadataCache>) -> Self {
        TarnReaderFactory {
            store,
            cache,
            held: Held::default(),
        }
    }

    fn held(&self, file: &PartitionedFile) -> Option<Arc<Bytes>> {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(&file.object_meta.location)?.upgrade()
    }

    fn footer_cached(&self, file: &PartitionedFile) -> bool {
        self.cache
            .get(&file.object_meta.location)
            .is_some_and(|entry| entry.is_valid_for(&file.object_meta))
    }
}

impl ParquetFileReaderFactory for TarnReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let nan_fields = file.extension::<NanFields>().cloned();
        let reader = self.reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(match nan_fields {
            Some(fields) => Box::new(NanBlindReader {
                inner: reader,
                fields,
            }),
            None => reader,
        })
    }
}

impl TarnReaderFactory {
    fn reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let small = metadata_size_hint.is_some_and(|hint| file.object_meta.size <= hint as u64);
        let bytes = small.then(|| self.held(&file)).flatten();
        if bytes.is_some() || (small && !self.footer_cached(&file)) {
            let location = file.object_meta.location.as_ref();
            return Ok(Box::new(WholeFileReader {
                store: self.store.clone(),
                cache: self.cache.clone(),
                held: self.held.clone(),
                metrics: ParquetFileMetrics::new(partition_index, location, metrics),
                meta: file.object_meta,
                metadata_size_hint,
                bytes,
            }));
        }
        CachedParquetFileReaderFactory::new(self.store.clone(), self.cache.clone()).create_reader(
            partition_index,
            file,
            metadata_size_hint,
            metrics,
        )
    }
}

/// Reads its file whole on first use; every read after is served from those bytes.
struct WholeFileReader {
    store: Arc<dyn ObjectStore>,
    cache: Arc<FileMetadataCache>,
    meta: ObjectMeta,
    metadata_size_hint: Option<usize>,
    /// The reader's figures as DataFusion's reader keeps them; the bytes scanned are the
    /// whole file, once.
    metrics: ParquetFileMetrics,
    held: Held,
    /// The file, once read (or taken from another reader of it).
    bytes: Option<Arc<Bytes>>,
}

impl WholeFileReader {
    async fn bytes(&mut self) -> ParquetResult<Bytes> {
        if let Some(bytes) = &self.bytes {
            return Ok(Bytes::clone(bytes));
        }
        let bytes = self
            .store
            .get_range(&self.meta.location, 0..self.meta.size)
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        self.metrics.bytes_scanned.add(bytes.len());
        // A store returns a short read for a file shorter than asked for; the footer's reader
        // expects every byte it was told of.
        if bytes.len() as u64 != self.meta.size {
            return Err(ParquetError::General(format!(
                "data file {} is {} bytes long, but the table's metadata says {}: it was \
                 changed outside tarn",
                self.meta.location,
                bytes.len(),
                self.meta.size
            )));
        }
        let bytes = Arc::new(bytes);
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.meta.location.clone(), Arc::downgrade(&bytes));
        let out = Bytes::clone(&bytes);
        self.bytes = Some(bytes);
        Ok(out)
    }

    async fn range(&mut self, range: Range<u64>) -> ParquetResult<Bytes> {
        let bytes = self.bytes().await?;
        if range.start > range.end || range.end > bytes.len() as u64 {
            return Err(ParquetError::EOF(format!(
                "bytes {range:?} are beyond the end of {} ({} bytes)",
                self.meta.location,
                bytes.len()
            )));
        }
        Ok(bytes.slice(range.start as usize..range.end as usize))
    }
}

impl AsyncFileReader for WholeFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, ParquetResult<Bytes>> {
        self.range(range).boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, ParquetResult<Vec<Bytes>>> {
        async move {
            let mut out = Vec::with_capacity(ranges.len());
            for range in ranges {
                out.push(self.range(range).await?);
            }
            Ok(out)
        }
        .boxed()
    }

    /// The footer as DataFusion's reader gets it (and caches it), from the bytes in memory.
    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<Arc<ParquetMetaData>>> {
        async move {
            let bytes = self.bytes().await?;
            let failed = |e: DataFusionError| {
                ParquetError::General(format!(
                    "Failed to fetch metadata for file {}: {e}",
                    self.meta.location
                ))
            };
            let memory = InMemory::new();
            memory
                .put(&self.meta.location, bytes.into())
                .await
                .map_err(|e| failed(e.into()))?;
            DFParquetMetadata::new(&memory, &self.meta)
                .with_file_metadata_cache(Some(self.cache.clone()))
                .with_metadata_size_hint(self.metadata_size_hint)
                .with_page_index_policy(options.map(|o| o.column_index_policy()))
                .fetch_metadata()
                .await
                .map_err(failed)
        }
        .boxed()
    }
}

impl Drop for WholeFileReader {
    fn drop(&mut self) {
        let metrics = &self.metrics;
        metrics
            .scan_efficiency_ratio
            .add_part(metrics.bytes_scanned.value());
        metrics
            .scan_efficiency_ratio
            .set_total(self.meta.size as usize);
        // The last reader of the file forgets it.
        if let Some(bytes) = self.bytes.take() {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            drop(bytes);
            if held
                .get(&self.meta.location)
                .is_some_and(|h| h.strong_count() == 0)
            {
                held.remove(&self.meta.location);
            }
        }
    }
}

/// The float columns of a data file that may hold NaN: their Parquet bounds are not bounds
/// of every value.
#[derive(Debug, Clone)]
pub(crate) enum NanFields {
    /// These field ids, and the float columns without one.
    Ids(Arc<HashSet<i32>>),
    /// Every float column (a file tarn knows nothing of).
    AllFloats,
}

/// A reader whose footer has no bounds (statistics, page index) for the columns of
/// [`NanFields`].
struct NanBlindReader {
    inner: Box<dyn AsyncFileReader + Send>,
    fields: NanFields,
}

impl NanBlindReader {
    /// The leaf columns of `metadata` whose bounds are hidden.
    fn blind_columns(&self, metadata: &ParquetMetaData) -> Vec<usize> {
        let schema = metadata.file_metadata().schema_descr();
        (0..schema.num_columns())
            .filter(|&i| {
                let column = schema.column(i);
                let info = column.self_type().get_basic_info();
                match &self.fields {
                    NanFields::Ids(ids) if info.has_id() => ids.contains(&info.id()),
                    _ => matches!(
                        column.physical_type(),
                        PhysicalType::FLOAT | PhysicalType::DOUBLE
                    ),
                }
            })
            .collect()
    }
}

impl AsyncFileReader for NanBlindReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, ParquetResult<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, ParquetResult<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<Arc<ParquetMetaData>>> {
        async move {
            let metadata = self.inner.get_metadata(options).await?;
            let blind = self.blind_columns(&metadata);
            if blind.is_empty() {
                return Ok(metadata);
            }
            // The page index is loaded here (and kept in the session's footer cache with
            // the footer), so that DataFusion, finding it, does not load it again with the
            // bounds in it.
            let metadata = match metadata.column_index().zip(metadata.offset_index()) {
                Some(_) => metadata,
                None => {
                    let with_index = (options.cloned().unwrap_or_default())
                        .with_page_index_policy(PageIndexPolicy::Optional);
                    self.inner.get_metadata(Some(&with_index)).await?
                }
            };
            Ok(Arc::new(without_bounds(
                Arc::unwrap_or_clone(metadata),
                &blind,
            )?))
        }
        .boxed()
    }
}

/// `metadata` without the statistics and column index of the leaf columns `blind`.
fn without_bounds(metadata: ParquetMetaData, blind: &[usize]) -> ParquetResult<ParquetMetaData> {
    let mut builder = metadata.into_builder();
    let row_groups = (builder.take_row_groups().into_iter())
        .map(|row_group| {
            let columns = (row_group.columns().iter().enumerate())
                .map(|(i, column)| match blind.contains(&i) {
                    true => column.clone().into_builder().clear_statistics().build(),
                    false => Ok(column.clone()),
                })
                .collect::<ParquetResult<Vec<_>>>()?;
            row_group
                .into_builder()
                .set_column_metadata(columns)
                .build()
        })
        .collect::<ParquetResult<Vec<_>>>()?;
    let column_index = builder.take_column_index().map(|row_groups| {
        (row_groups.into_iter())
            .map(|columns| {
                (columns.into_iter().enumerate())
                    .map(|(i, index)| match blind.contains(&i) {
                        true => ColumnIndexMetaData::NONE,
                        false => index,
                    })
                    .collect()
            })
            .collect()
    });
    Ok(builder
        .set_row_groups(row_groups)
        .set_column_index(column_index)
        .build())
}
