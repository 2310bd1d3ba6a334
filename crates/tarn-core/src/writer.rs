//! The data-file writer: a stream of Arrow batches in, partitioned Parquet files of a target
//! size out, each described by a [`DataFile`] with the statistics its Parquet writer recorded.
//!
//! ```text
//! batch ──conform──▶ batch with field ids (string and binary views kept as views)
//!   unpartitioned ───────────────────────────────────────────▶ the open file (rolls at target size)
//!   partitioned ──▶ chunk of batches ──(full)──▶ route (routing.rs): one run per partition
//!                                                ──▶ the open file of each partition
//!   clustered (sorted on the partition key) ──▶ route each batch ──▶ the open file of its
//!                                               partitions; the files of those passed finish
//! open file: runs shorter than a row group's floor wait as Arrow ──(enough)──▶ row group
//! ```
//!
//! Routing a chunk of many batches at once hands each encoder one large run per partition,
//! even when every input batch spreads over hundreds of partitions. What a writer holds
//! (the chunk, rows waiting for a row group, row groups being encoded with their codecs,
//! upload buffers) is bounded by [`WriterOptions::buffer_bytes`] and by an optional
//! [`MemoryGate`]: past either, the files holding the most close their row groups early (the
//! files stay open); when the gate still refuses, shorter row groups close, then whole files
//! (the partition's next rows start a new one).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use object_store::buffered::BufWriter;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::{ArrowSchemaConverter, AsyncArrowWriter};
use parquet::basic::{Compression, Encoding, Type as PhysicalType, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{DEFAULT_PAGE_SIZE, WriterProperties};
use parquet::schema::types::{ColumnPath, SchemaDescriptor};
use tarn_spec::{
    Field, FieldId, PartitionSpec, PrimitiveType, Schema, SpecId, TableMetadata, Value,
};

use crate::arrow_convert::{arrow_field, arrow_schema, conform_array, leaf_array, parquet_column};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::location::TableLocation;
use crate::manifest::DataFile;
use crate::routing::{Group, Router};
use crate::stats::{self, ColumnStats, StatsCollector};

/// Table property: the size at which the writer starts a new data file.
pub const TARGET_FILE_SIZE_PROPERTY: &str = "write.target-file-size-bytes";
/// Table property: the most rows in one Parquet row group.
pub const ROW_GROUP_ROWS_PROPERTY: &str = "write.parquet.row-group-rows";

/// Table property: the codec data files are compressed with (Iceberg's name): `zstd` (the
/// default: the smallest files), `snappy` (Delta's and DuckLake's default: about 15% faster to
/// write, 40% larger), `lz4` or `uncompressed`. Small files are written uncompressed
/// whatever the codec (see [`SMALL_FILE_BYTES`]).
pub const COMPRESSION_CODEC_PROPERTY: &str = "write.parquet.compression-codec";
/// Table property: the zstd level, 1 (the default) to 22.
pub const COMPRESSION_LEVEL_PROPERTY: &str = "write.parquet.compression-level";

/// Table property: the most bytes the writers of one statement hold together before they
/// close row groups early (smaller row groups, same files).
pub const WRITE_BUFFER_PROPERTY: &str = "write.buffer-bytes";

/// The largest chunk of a partitioned write, in bytes of Arrow data.
const MAX_CHUNK_BYTES: usize = 128 * 1024 * 1024;
/// What one open file buffers before uploading it as a part of a multipart upload: the
/// smallest part S3 accepts.
const UPLOAD_BUFFER_BYTES: usize = 5 * 1024 * 1024;

/// Asked before a writer holds more memory, with the total bytes it would hold; `false`
/// refuses (DataFusion's memory pool answers through a reservation).
pub type MemoryGate = Box<dyn FnMut(usize) -> bool + Send>;

/// How the writer sizes its output.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// A file is closed once its encoded size reaches this many bytes.
    pub target_file_size: u64,
    /// The most rows in one row group.
    pub row_group_rows: usize,
    /// The most bytes one writer holds; see [`WRITE_BUFFER_PROPERTY`] (a statement's
    /// writers share the property's value).
    pub buffer_bytes: usize,
    /// How pages are compressed; see [`COMPRESSION_CODEC_PROPERTY`].
    pub compression: Compression,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            target_file_size: 128 * 1024 * 1024,
            row_group_rows: 1024 * 1024,
            buffer_bytes: 512 * 1024 * 1024,
            compression: zstd(None).expect("the default level is valid"),
        }
    }
}

impl WriterOptions {
    /// Defaults overridden by the table's properties.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self> {
        let mut options = WriterOptions::default();
        let parse = |key: &str| -> Result<Option<u64>> {
            properties
                .get(key)
                .map(|v| {
                    v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Error::invalid(
                            "table property",
                            format!("{key} must be a positive integer, not '{v}'"),
                        )
                    })
                })
                .transpose()
        };
        if let Some(n) = parse(TARGET_FILE_SIZE_PROPERTY)? {
            options.target_file_size = n;
        }
        if let Some(n) = parse(ROW_GROUP_ROWS_PROPERTY)? {
            options.row_group_rows = n as usize;
        }
        if let Some(n) = parse(WRITE_BUFFER_PROPERTY)? {
            options.buffer_bytes = n as usize;
        }
        options.compression = compression(properties)?;
        Ok(options)
    }
}

/// The zstd level data files are written with unless [`COMPRESSION_LEVEL_PROPERTY`] says
/// otherwise: the fastest, still smaller than snappy.
const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// The codec [`COMPRESSION_CODEC_PROPERTY`] and [`COMPRESSION_LEVEL_PROPERTY`] ask for.
fn compression(properties: &BTreeMap<String, String>) -> Result<Compression> {
    let invalid = |message: String| Error::invalid("table property", message);
    let level = properties.get(COMPRESSION_LEVEL_PROPERTY);
    let Some(named) = properties.get(COMPRESSION_CODEC_PROPERTY) else {
        return zstd(level);
    };
    let codec = match named.trim().to_ascii_lowercase().as_str() {
        "zstd" => return zstd(level),
        "snappy" => Compression::SNAPPY,
        "lz4" => Compression::LZ4_RAW,
        "uncompressed" => Compression::UNCOMPRESSED,
        _ => {
            return Err(invalid(format!(
                "{COMPRESSION_CODEC_PROPERTY} is '{named}'; it must be 'zstd', 'snappy', 'lz4' \
                 or 'uncompressed'"
            )));
        }
    };
    match level {
        None => Ok(codec),
        Some(_) => Err(invalid(format!(
            "{COMPRESSION_LEVEL_PROPERTY} is set, but {} has no levels; unset it, or set \
             {COMPRESSION_CODEC_PROPERTY} to 'zstd'",
            named.trim()
        ))),
    }
}

/// zstd at `level` (a [`COMPRESSION_LEVEL_PROPERTY`] value), or at the default level.
fn zstd(level: Option<&String>) -> Result<Compression> {
    let Some(text) = level else {
        let level = ZstdLevel::try_new(DEFAULT_ZSTD_LEVEL).expect("a valid level");
        return Ok(Compression::ZSTD(level));
    };
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|l| (1..=22).contains(l))
        .and_then(|l| ZstdLevel::try_new(l).ok())
        .map(Compression::ZSTD)
        .ok_or_else(|| {
            Error::invalid(
                "table property",
                format!(
                    "{COMPRESSION_LEVEL_PROPERTY} is '{text}'; it must be a zstd level from 1 \
                     (fastest) to 22 (smallest)"
                ),
            )
        })
}

/// Heap the codec of one leaf column holds while a row group is open, which the Parquet
/// writer's `memory_size` leaves out. parquet 59 gives every column writer a codec of its own,
/// and a zstd codec holds a compression context, sized by the pages it compresses, and a
/// decompression context it never uses while writing: about 260 KB a column at level 1. A load
/// into many partitions holds a row group open in every partition's file: loading lineitem by
/// month under a 512 MB pool held 2,688 of them, 690 MB the pool never saw.
fn codec_state_bytes(compression: Compression) -> usize {
    match compression {
        Compression::ZSTD(level) => zstd_state_bytes(level.compression_level()),
        // snap's encoder: a table of 2^14 two-byte entries beside one of 2^10.
        Compression::SNAPPY => ((1 << 14) + (1 << 10)) * 2,
        _ => 0,
    }
}

/// [`codec_state_bytes`] of zstd at `level`, measured once per level: a compression context
/// after compressing a page as large as the Parquet writer's, and a decompression context.
fn zstd_state_bytes(level: i32) -> usize {
    static MEASURED: Mutex<BTreeMap<i32, usize>> = Mutex::new(BTreeMap::new());
    let mut measured = MEASURED.lock().unwrap_or_else(PoisonError::into_inner);
    *measured.entry(level).or_insert_with(|| {
        let page = vec![0u8; DEFAULT_PAGE_SIZE];
        let mut compressed = Vec::with_capacity(zstd_safe::compress_bound(page.len()));
        let mut context = zstd_safe::CCtx::create();
        // Both calls fail only on an invalid level, which the table property refuses; the
        // context is then measured as it is.
        let _ = context
            .set_parameter(zstd_safe::CParameter::CompressionLevel(level))
            .and_then(|_| context.compress2(&mut compressed, &page));
        context.sizeof() + zstd_safe::DCtx::create().sizeof()
    })
}

/// A file holding less than this much Arrow data when it closes is written uncompressed.
/// Parquet sets up a codec per column chunk, and zstd's (a compression and a decompression
/// context) cost about 30 µs per column: most of the time a small append spent encoding a
/// file of ten columns, to save a few kilobytes. Compaction rewrites small files with the
/// table's codec.
const SMALL_FILE_BYTES: usize = 64 * 1024;

/// The fewest rows a row group opens with, unless the file closes first: rows arriving in
/// smaller runs wait as Arrow data. An open row group holds a column writer per leaf, with
/// its codec (see [`codec_state_bytes`]): hundreds of partitions each with a row group open
/// would hold more in codecs than in rows. Also the shortest row group closed early to stay
/// within the writer's `buffer_bytes` (only a refusing memory pool closes shorter ones).
const MIN_ROW_GROUP_ROWS: usize = 16_384;
/// The most Arrow data a file keeps waiting before it opens a row group, for wide rows.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// The most bytes of Arrow data in files a writer finishes in memory and holds for the
/// commit to store (see [`DataFileWriter::finish_unstored`]); files past it are stored as
/// they close.
const UNSTORED_BYTES: usize = 4 * 1024 * 1024;

/// A data file encoded in memory and not stored yet: a commit stores it with the metadata
/// objects that name it, one round trip for all (see [`crate::CommitOptions::unstored`]).
#[derive(Debug, Clone)]
pub struct UnstoredFile {
    /// The table-relative path it is to be stored at, as its [`DataFile`] names it.
    pub path: String,
    pub bytes: bytes::Bytes,
}

/// Told the table-relative path of each data file a writer stores, as it starts storing it
/// (see [`DataFileWriter::on_stored`]).
pub type StoredHook = Arc<dyn Fn(&str) + Send + Sync>;

struct OpenFile {
    path: String,
    /// Rows waiting for a row group to open (see [`MIN_ROW_GROUP_ROWS`]), in buffers of their
    /// own.
    pending: Vec<RecordBatch>,
    pending_bytes: usize,
    pending_rows: usize,
    writer: Option<AsyncArrowWriter<BufWriter>>,
    /// The writer's properties, with the table's codec; the dictionaries are chosen as the
    /// writer starts (see [`OpenFile::with_chosen_dictionaries`]).
    properties: WriterProperties,
    /// The columns without a dictionary, chosen once for all the files of a
    /// [`DataFileWriter`].
    plain_columns: Arc<OnceLock<Vec<String>>>,
    row_group_rows: usize,
    store: Arc<dyn object_store::ObjectStore>,
    location: object_store::path::Path,
    arrow_schema: SchemaRef,
    partition: Vec<Option<Value>>,
    /// Statistics of the float leaves, gathered from the batches (see [`FloatLeaf`]).
    float_leaves: Arc<[FloatLeaf]>,
    float_stats: Vec<StatsCollector>,
    /// Rows encoded into the file so far.
    rows: u64,
    /// What its column writers' codecs hold while a row group is open (see
    /// [`codec_state_bytes`]).
    codec_state: usize,
    /// Whether its upload is being (or has been) completed.
    finishing: bool,
}

impl Drop for OpenFile {
    /// A file dropped before it was finished (its statement failed or was cancelled) aborts
    /// its upload. A large file goes up as a multipart upload, and on S3 the parts of one
    /// neither completed nor aborted stay in the bucket, billed and unlisted, until a
    /// lifecycle rule removes them. A drop cannot wait, so the abort runs as a task of its
    /// own. An upload whose completion has started cannot be aborted: its parts are then
    /// left to the bucket's lifecycle rule.
    fn drop(&mut self) {
        if self.finishing {
            return;
        }
        let (Some(writer), Ok(runtime)) =
            (self.writer.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            // Best effort: an upload left behind costs storage, not correctness.
            let _ = writer.into_inner().abort().await;
        });
    }
}

impl OpenFile {
    /// Bytes this file holds in memory: its waiting rows, the row group being encoded (with
    /// its codecs) and (at most) a full upload buffer.
    fn held(&self) -> usize {
        let encoding = self.writer.as_ref().map_or(0, |writer| {
            let codecs = if writer.in_progress_rows() > 0 {
                self.codec_state
            } else {
                0
            };
            writer.memory_size() + codecs + writer.bytes_written() % UPLOAD_BUFFER_BYTES
        });
        self.pending_bytes + encoding
    }

    fn parquet_error(&self) -> impl Fn(ParquetError) -> Error + use<> {
        let path = self.path.clone();
        move |source| Error::Parquet {
            path: path.clone(),
            source,
        }
    }

    async fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        for (collector, leaf) in self.float_stats.iter_mut().zip(self.float_leaves.iter()) {
            collector.update(leaf_array(batch, &leaf.path)?.as_ref());
        }
        self.rows += batch.num_rows() as u64;
        let row_group_open = self
            .writer
            .as_ref()
            .is_some_and(|writer| writer.in_progress_rows() > 0);
        if row_group_open || (self.pending.is_empty() && batch.num_rows() >= MIN_ROW_GROUP_ROWS) {
            let error = self.parquet_error();
            let properties = self.properties.clone();
            let writer = self.writer(properties, std::slice::from_ref(batch))?;
            return writer.write(batch).await.map_err(error);
        }
        let batch = compacted(batch)?;
        self.pending_bytes += batch.get_array_memory_size();
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= MIN_ROW_GROUP_ROWS || self.pending_bytes >= MAX_PENDING_BYTES {
            self.encode_pending(self.properties.clone()).await?;
        }
        Ok(())
    }

    /// The Parquet writer, started with `properties` if it has not started, its
    /// dictionaries chosen from `first_rows`, the file's first rows.
    fn writer(
        &mut self,
        properties: WriterProperties,
        first_rows: &[RecordBatch],
    ) -> Result<&mut AsyncArrowWriter<BufWriter>> {
        if self.writer.is_none() {
            let sink = BufWriter::with_capacity(
                self.store.clone(),
                self.location.clone(),
                UPLOAD_BUFFER_BYTES,
            );
            let properties = self.with_chosen_dictionaries(properties, first_rows);
            let writer =
                AsyncArrowWriter::try_new(sink, self.arrow_schema.clone(), Some(properties))
                    .map_err(self.parquet_error())?;
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("started above"))
    }

    /// `properties` without a dictionary for the columns whose dictionary would not pay
    /// (see [`high_cardinality_columns`]). The first file of a writer to start with enough
    /// rows to judge, `first_rows`, chooses them for all its files: a writer's batches can
    /// be a few rows each (a compaction reads small files), too few to judge from one.
    /// Until then, files keep every dictionary.
    fn with_chosen_dictionaries(
        &self,
        properties: WriterProperties,
        first_rows: &[RecordBatch],
    ) -> WriterProperties {
        let chosen = match self.plain_columns.get() {
            Some(chosen) => chosen,
            None => match sample(first_rows)
                .and_then(|rows| high_cardinality_columns(&rows, self.row_group_rows))
            {
                Some(judged) => self.plain_columns.get_or_init(|| judged),
                None => return properties,
            },
        };
        if chosen.is_empty() {
            return properties;
        }
        let mut builder = properties.into_builder();
        for column in chosen {
            builder =
                builder.set_column_dictionary_enabled(ColumnPath::from(column.as_str()), false);
        }
        builder.build()
    }

    /// Encodes the waiting rows into the row group being encoded (opening one), starting the
    /// writer with `properties` if it has not started.
    async fn encode_pending(
        &mut self,
        properties: WriterProperties,
    ) -> Result<&mut AsyncArrowWriter<BufWriter>> {
        let error = self.parquet_error();
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.pending_rows = 0;
        let writer = self.writer(properties, &pending)?;
        for batch in pending {
            writer.write(&batch).await.map_err(&error)?;
        }
        Ok(writer)
    }

    /// Rows in the row group being encoded and waiting for one.
    fn in_progress_rows(&self) -> usize {
        let encoding = self.writer.as_ref().map_or(0, |w| w.in_progress_rows());
        encoding + self.pending_rows
    }

    /// Closes the row group being encoded, with the waiting rows, releasing what it held.
    async fn spill(&mut self) -> Result<()> {
        let error = self.parquet_error();
        let writer = self.encode_pending(self.properties.clone()).await?;
        writer.flush().await.map_err(error)
    }

    fn size(&self) -> u64 {
        let encoded = self
            .writer
            .as_ref()
            .map_or(0, |w| w.bytes_written() + w.in_progress_size());
        (encoded + self.pending_bytes) as u64
    }

    /// The properties the file is finished with: a file still small is written
    /// uncompressed.
    fn finishing_properties(&self) -> WriterProperties {
        if self.writer.is_none() && self.pending_bytes < SMALL_FILE_BYTES {
            self.properties
                .clone()
                .into_builder()
                .set_compression(Compression::UNCOMPRESSED)
                .build()
        } else {
            self.properties.clone()
        }
    }

    /// Finishes the file, storing it.
    async fn finish(&mut self) -> Result<ParquetMetaData> {
        let error = self.parquet_error();
        self.encode_pending(self.finishing_properties()).await?;
        self.finishing = true;
        let writer = self.writer.as_mut().expect("started by encode_pending");
        writer.finish().await.map_err(error)
    }

    /// Whether the whole file is still rows waiting for a row group, so that it can be
    /// encoded in one go, into memory.
    fn only_pending(&self) -> bool {
        self.writer.is_none()
    }

    /// Finishes a file of waiting rows only (see [`Self::only_pending`]) in memory: its
    /// metadata and bytes.
    fn finish_in_memory(&mut self) -> Result<(ParquetMetaData, bytes::Bytes)> {
        let error = self.parquet_error();
        let mut bytes = Vec::new();
        let properties = self.with_chosen_dictionaries(self.finishing_properties(), &self.pending);
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            &mut bytes,
            self.arrow_schema.clone(),
            Some(properties),
        )
        .map_err(&error)?;
        for batch in std::mem::take(&mut self.pending) {
            writer.write(&batch).map_err(&error)?;
        }
        self.pending_bytes = 0;
        self.pending_rows = 0;
        let metadata = writer.finish().map_err(&error)?;
        drop(writer);
        Ok((metadata, bytes.into()))
    }

    fn bytes_written(&self) -> usize {
        self.writer.as_ref().map_or(0, |w| w.bytes_written())
    }
}

/// `batch` in buffers of its own when they hold more than a small file and twice what it
/// shows. A pending batch is a few rows, often sliced from a routed chunk or a column many
/// times larger: it would keep those buffers alive, and count them as its size.
fn compacted(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
    use arrow::datatypes::DataType;
    let error = |e| Error::arrow("copying the rows of a small file", e);
    let held = batch.get_array_memory_size();
    let rows = match u32::try_from(batch.num_rows()) {
        Ok(rows) if held > SMALL_FILE_BYTES && shown_bytes(batch) * 2 < held => rows,
        _ => return Ok(batch.clone()),
    };
    let copied = arrow::compute::take_record_batch(batch, &UInt32Array::from_iter_values(0..rows))
        .map_err(error)?;
    // `take` copies views, not the strings they point at.
    let columns = copied
        .columns()
        .iter()
        .map(|column| -> ArrayRef {
            match column.data_type() {
                DataType::Utf8View => Arc::new(column.as_string_view().gc()),
                DataType::BinaryView => Arc::new(column.as_binary_view().gc()),
                _ => column.clone(),
            }
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).map_err(error)
}

/// The bytes of Arrow data `batch` shows: a slice counts its rows, not the buffers it
/// shares with the batch it was cut from (as `get_array_memory_size` does).
fn shown_bytes(batch: &RecordBatch) -> usize {
    use arrow::array::{Array, AsArray, GenericByteViewArray};
    use arrow::datatypes::{ByteViewType, DataType};
    fn views<T: ByteViewType>(array: &GenericByteViewArray<T>) -> usize {
        std::mem::size_of::<u128>() * array.len() + array.total_buffer_bytes_used()
    }
    batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8View => views(column.as_string_view()),
            DataType::BinaryView => views(column.as_binary_view()),
            _ => column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size()),
        })
        .sum()
}

/// A float leaf of the schema (see [`tarn_spec::Leaf`]). Its statistics are gathered from
/// the batches as they are written: Parquet's own leave NaN out of the bounds, where tarn's
/// must cover every value. Every other leaf's come from the Parquet writer's statistics.
struct FloatLeaf {
    id: FieldId,
    path: Vec<usize>,
}

fn is_float(field: &Field) -> bool {
    matches!(
        field.primitive(),
        Some(PrimitiveType::Float | PrimitiveType::Double)
    )
}

fn float_leaves(schema: &Schema) -> Arc<[FloatLeaf]> {
    schema
        .leaves()
        .iter()
        .filter(|leaf| is_float(leaf.field))
        .map(|leaf| FloatLeaf {
            id: leaf.field.id,
            path: leaf.path.to_vec(),
        })
        .collect()
}

/// The Parquet columns of 32- and 64-bit integers (integers, dates, times, timestamps and
/// decimals of up to 18 digits), which are written `DELTA_BINARY_PACKED` where they are not
/// dictionary-encoded: as a column without a dictionary, and as the fallback of one whose
/// dictionary outgrows its page.
///
/// Delta encoding stores each run of 128 values as their differences from the previous value
/// (less the run's smallest difference) in as few bits as the largest needs. Sorted and
/// clustered columns (ids, event times, counters) and random values in a narrow range then
/// take a fraction of their plain bytes, which zstd then has less to do with on both sides
/// (benches/README, write, scan and streaming). Values spread over the whole 64-bit range
/// (hashes) take as many bytes and about as long to read as plain. Every Parquet
/// reader of note reads the encoding (Spark's and DuckDB's Parquet v2 writers use it for
/// these columns).
fn delta_columns(parquet_schema: &SchemaDescriptor) -> Arc<[ColumnPath]> {
    parquet_schema
        .columns()
        .iter()
        .filter(|column| {
            matches!(
                column.physical_type(),
                PhysicalType::INT32 | PhysicalType::INT64
            )
        })
        .map(|column| column.path().clone())
        .collect()
}

/// Writes data files for one table version's schema and default partition spec.
pub struct DataFileWriter {
    location: TableLocation,
    schema: Schema,
    spec: PartitionSpec,
    arrow_schema: SchemaRef,
    float_leaves: Arc<[FloatLeaf]>,
    /// The Parquet columns encoded with `DELTA_BINARY_PACKED` (see [`delta_columns`]).
    delta_columns: Arc<[ColumnPath]>,
    /// What the codecs of a file's open row group hold (see [`codec_state_bytes`]).
    codec_state: usize,
    options: WriterOptions,
    env: Env,
    router: Router,
    /// Open files by partition key (see [`Router`]).
    open: HashMap<Vec<u8>, OpenFile>,
    /// Batches of a partitioned write not yet routed, and their size.
    chunk: Vec<RecordBatch>,
    chunk_bytes: usize,
    /// What the open files held when last measured (after the last routed batch).
    files_held: usize,
    done: Vec<DataFile>,
    /// Files of `done` finished in memory and not stored yet, and their Arrow size.
    unstored: Vec<UnstoredFile>,
    unstored_bytes: usize,
    memory: Option<MemoryGate>,
    /// Columns written without dictionary encoding, chosen from the first file's first rows
    /// (see [`OpenFile::with_chosen_dictionaries`]).
    plain_columns: Arc<OnceLock<Vec<String>>>,
    /// The schema of conformed batches that keep view columns (see [`conform`]), reused
    /// while the input's types stay the same.
    view_schema: Option<SchemaRef>,
    /// Whether rows arrive clustered by partition (see [`Self::with_clustered_input`]).
    clustered: bool,
    on_stored: Option<StoredHook>,
}

fn gate_allows(memory: &mut Option<MemoryGate>, held: usize) -> bool {
    memory.as_mut().is_none_or(|gate| gate(held))
}

/// How many of a file's first rows are sampled to choose each column's encoding.
const SAMPLE_ROWS: usize = 4096;
/// The fewest rows the encodings are judged from.
const MIN_SAMPLE_ROWS: usize = 256;

/// The dictionary page size past which Parquet writers fall back to plain encoding.
const DICTIONARY_PAGE_LIMIT: usize = parquet::file::properties::DEFAULT_DICTIONARY_PAGE_SIZE_LIMIT;

/// The columns of `batch` whose dictionary would not pay, judged from its first rows (none
/// when it has too few to judge):
/// - those mostly distinct there;
/// - those whose distinct values keep coming as fast in the second half of the sample as in
///   the first (keys in runs, as a table sorted or clustered by them holds), at a rate that
///   would outgrow the dictionary page within a row group of `row_group_rows`.
///
/// Parquet writers fall back to plain encoding once the dictionary outgrows its page, but
/// only after hashing every value until then: on these columns dictionary encoding costs
/// time and, once it has fallen back, bytes.
fn high_cardinality_columns(batch: &RecordBatch, row_group_rows: usize) -> Option<Vec<String>> {
    let sample = batch.slice(0, batch.num_rows().min(SAMPLE_ROWS));
    let n = sample.num_rows();
    if n < MIN_SAMPLE_ROWS {
        return None;
    }
    let columns = sample
        .schema()
        .fields()
        .iter()
        .zip(sample.columns())
        .filter(|(_, column)| {
            let Ok(converter) = RowConverter::new(vec![SortField::new(column.data_type().clone())])
            else {
                return false;
            };
            let Ok(rows) = converter.convert_columns(std::slice::from_ref(column)) else {
                return false;
            };
            let mut distinct = std::collections::HashSet::new();
            let mut in_first_half = 0;
            let mut row_bytes = 0;
            for (i, row) in rows.iter().enumerate() {
                if i == n / 2 {
                    in_first_half = distinct.len();
                }
                row_bytes += row.data().len();
                distinct.insert(row.data());
            }
            if distinct.len() * 2 > n {
                return true;
            }
            let still_growing = (distinct.len() - in_first_half) * 10 >= in_first_half * 8;
            let width = column
                .data_type()
                .primitive_width()
                .unwrap_or(row_bytes / n);
            // Saturating: `row_group_rows` is a table property, as large as a user sets it.
            let projected = (distinct.len() * width).saturating_mul(row_group_rows / n);
            still_growing && projected > DICTIONARY_PAGE_LIMIT
        })
        .map(|(field, _)| field.name().clone())
        .collect();
    Some(columns)
}

/// The first [`SAMPLE_ROWS`] rows of `batches`, in one batch; `None` with fewer than
/// [`MIN_SAMPLE_ROWS`] (a small append's file, not worth a copy).
fn sample(batches: &[RecordBatch]) -> Option<RecordBatch> {
    let first = batches.first()?;
    if first.num_rows() >= SAMPLE_ROWS {
        return Some(first.slice(0, SAMPLE_ROWS));
    }
    if batches.iter().map(RecordBatch::num_rows).sum::<usize>() < MIN_SAMPLE_ROWS {
        return None;
    }
    let mut rows = 0;
    let slices: Vec<RecordBatch> = batches
        .iter()
        // Batches whose types differ from the first's (a source whose strings became views)
        // are left out of the sample.
        .filter(|batch| batch.schema() == first.schema())
        .map_while(|batch| {
            let take = batch.num_rows().min(SAMPLE_ROWS - rows);
            rows += take;
            (take > 0).then(|| batch.slice(0, take))
        })
        .collect();
    arrow::compute::concat_batches(&first.schema(), &slices).ok()
}

impl DataFileWriter {
    pub fn new(
        location: TableLocation,
        metadata: &TableMetadata,
        options: WriterOptions,
        env: Env,
    ) -> Result<Self> {
        let schema = metadata.current_schema().clone();
        let arrow_schema = arrow_schema(&schema);
        let parquet_schema = ArrowSchemaConverter::new()
            .convert(&arrow_schema)
            .map_err(|e| Error::invalid("table schema", format!("not writable as Parquet: {e}")))?;
        let codec_state = parquet_schema.num_columns() * codec_state_bytes(options.compression);
        Ok(DataFileWriter {
            router: Router::new(&schema, metadata.default_spec())?,
            float_leaves: float_leaves(&schema),
            delta_columns: delta_columns(&parquet_schema),
            arrow_schema,
            codec_state,
            spec: metadata.default_spec().clone(),
            schema,
            location,
            options,
            env,
            open: HashMap::new(),
            chunk: Vec::new(),
            chunk_bytes: 0,
            files_held: 0,
            done: Vec::new(),
            unstored: Vec::new(),
            unstored_bytes: 0,
            memory: None,
            plain_columns: Arc::default(),
            view_schema: None,
            clustered: false,
            on_stored: None,
        })
    }

    /// Asks `gate` before holding more memory (on top of the `buffer_bytes` bound).
    pub fn with_memory_gate(mut self, gate: MemoryGate) -> Self {
        self.memory = Some(gate);
        self
    }

    /// Bounds the memory this writer holds, overriding the table's `write.buffer-bytes`.
    pub fn with_buffer_bytes(mut self, bytes: usize) -> Self {
        self.options.buffer_bytes = bytes;
        self
    }

    /// Tells the writer that its rows arrive clustered by partition (sorted on the partition
    /// key): each batch is then routed as it comes, and a partition's file is finished as
    /// soon as a batch does not touch it, so one file is open at a time (two across a batch
    /// that spans partitions), whatever the number of partitions. Rows that are not
    /// clustered are still all written, into more files.
    pub fn with_clustered_input(mut self) -> Self {
        self.clustered = true;
        self
    }

    /// Tells `hook` each file this writer stores, as it starts storing it, so that a caller
    /// whose write fails or is cancelled before it gets the files from [`Self::finish`] can
    /// still delete them (once the writer is dropped: a store cut short may still land until
    /// then). Files left in memory by [`Self::finish_unstored`] are not told.
    pub fn on_stored(mut self, hook: StoredHook) -> Self {
        self.on_stored = Some(hook);
        self
    }

    fn storing(&self, path: &str) {
        if let Some(hook) = &self.on_stored {
            hook(path);
        }
    }

    /// The Arrow schema data is written with (with field ids).
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow_schema
    }

    /// Writes one batch. Columns are matched to the table by name (ignoring ASCII case);
    /// types must be the column's type or widen to it.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(
            batch,
            &self.schema,
            &self.arrow_schema,
            &mut self.view_schema,
        )?;
        if self.spec.is_unpartitioned() {
            return self.write_routed(&[batch]).await;
        }
        if self.clustered {
            return self.write_clustered(batch).await;
        }
        if self
            .chunk
            .first()
            .is_some_and(|c| c.schema() != batch.schema())
        {
            // A chunk is routed as one: its batches must share their column types.
            self.write_chunk().await?;
        }
        self.chunk_bytes += batch.get_array_memory_size();
        self.chunk.push(batch);
        let limit = (self.options.buffer_bytes / 4).min(MAX_CHUNK_BYTES);
        let allowed = self
            .memory
            .as_mut()
            .is_none_or(|gate| gate(self.chunk_bytes + self.files_held));
        if self.chunk_bytes >= limit || !allowed {
            self.write_chunk().await?;
        }
        Ok(())
    }

    /// Writes the gathered chunk, one run per partition.
    async fn write_chunk(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        self.chunk_bytes = 0;
        self.write_routed(&chunk).await
    }

    async fn write_routed(&mut self, batches: &[RecordBatch]) -> Result<()> {
        let groups = self.router.route(batches)?;
        for group in groups {
            self.write_partition(group).await?;
        }
        self.stay_within_bounds().await
    }

    /// Writes a batch of clustered rows (see [`Self::with_clustered_input`]), first finishing
    /// the files of the partitions it does not touch.
    async fn write_clustered(&mut self, batch: RecordBatch) -> Result<()> {
        let groups = self.router.route(std::slice::from_ref(&batch))?;
        let touched: HashSet<&[u8]> = groups.iter().map(|g| g.key.as_slice()).collect();
        let finished: Vec<OpenFile> = self
            .open
            .extract_if(|key, _| !touched.contains(key.as_slice()))
            .map(|(_, file)| file)
            .collect();
        for file in finished {
            self.close(file).await?;
        }
        for group in groups {
            self.write_partition(group).await?;
        }
        self.stay_within_bounds().await
    }

    async fn write_partition(&mut self, group: Group) -> Result<()> {
        let Group { key, batch } = group;
        if !self.open.contains_key(&key) {
            let file = self.open_file(self.router.tuple(&batch, 0)?)?;
            self.open.insert(key.clone(), file);
        }
        let file = self.open.get_mut(&key).ok_or_else(|| {
            Error::invalid("partition routing", "a partition without an open file")
        })?;
        file.encode(&batch).await?;
        if file.size() >= self.options.target_file_size {
            let file = self.open.remove(&key).expect("present");
            self.close(file).await?;
        }
        Ok(())
    }

    /// Closes the row groups of the files holding the most until the writer holds no more
    /// than `buffer_bytes` and the memory gate agrees; row groups shorter than
    /// [`MIN_ROW_GROUP_ROWS`] stay open unless the memory gate still refuses. When it refuses
    /// even then, closes whole files, the largest first (more files, but the write goes on).
    async fn stay_within_bounds(&mut self) -> Result<()> {
        self.files_held = self.release().await?;
        Ok(())
    }

    /// [`Self::stay_within_bounds`]: what the open files hold afterwards.
    async fn release(&mut self) -> Result<usize> {
        let mut sizes: Vec<(usize, Vec<u8>)> = self
            .open
            .iter()
            .map(|(k, f)| (f.held(), k.clone()))
            .collect();
        let mut held: usize = sizes.iter().map(|(h, _)| h).sum();
        if held <= self.options.buffer_bytes && gate_allows(&mut self.memory, held) {
            return Ok(held);
        }
        sizes.sort_unstable_by_key(|(held, _)| std::cmp::Reverse(*held));
        // Row groups long enough to close early, until within `buffer_bytes` and the pool;
        // then, only while the pool refuses, shorter ones: a short row group costs readers
        // less than a file closed early, and closing it frees its codecs.
        for (shortest, within_buffer) in [(MIN_ROW_GROUP_ROWS, true), (1, false)] {
            if !within_buffer && gate_allows(&mut self.memory, held) {
                // Over `buffer_bytes` only by row groups too short to close: keep them.
                return Ok(held);
            }
            for (_, key) in &sizes {
                let file = self.open.get_mut(key).expect("listed above");
                if file.in_progress_rows() < shortest {
                    continue;
                }
                let before = file.held();
                file.spill().await?;
                held = held - before + file.held();
                let fits = !within_buffer || held <= self.options.buffer_bytes;
                if fits && gate_allows(&mut self.memory, held) {
                    return Ok(held);
                }
            }
        }
        for (_, key) in &sizes {
            let file = self.open.remove(key).expect("listed above");
            held -= file.held().min(held);
            self.close(file).await?;
            if gate_allows(&mut self.memory, held) {
                return Ok(held);
            }
        }
        Err(Error::invalid(
            "memory limit",
            format!(
                "writing needs {held} bytes more than the memory pool grants, with no file open; \
                 raise the memory limit or lower the table's {WRITE_BUFFER_PROPERTY}"
            ),
        ))
    }

    fn open_file(&self, partition: Vec<Option<Value>>) -> Result<OpenFile> {
        let dir = self.spec.partition_path(&partition);
        let name = format!("{}.parquet", self.env.next_id());
        let path = if dir.is_empty() {
            format!("data/{name}")
        } else {
            format!("data/{dir}/{name}")
        };
        let mut props = WriterProperties::builder()
            .set_compression(self.options.compression)
            .set_max_row_group_row_count(Some(self.options.row_group_rows));
        for column in self.delta_columns.iter() {
            props = props.set_column_encoding(column.clone(), Encoding::DELTA_BINARY_PACKED);
        }
        Ok(OpenFile {
            location: self.location.path(&path),
            path,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_rows: 0,
            writer: None,
            properties: props.build(),
            plain_columns: self.plain_columns.clone(),
            row_group_rows: self.options.row_group_rows,
            store: self.location.store().clone(),
            arrow_schema: self.arrow_schema.clone(),
            partition,
            float_stats: vec![StatsCollector::default(); self.float_leaves.len()],
            float_leaves: self.float_leaves.clone(),
            rows: 0,
            codec_state: self.codec_state,
            finishing: false,
        })
    }

    /// Finishes `file` and adds it to the files written: in memory while the files held so
    /// stay under [`UNSTORED_BYTES`] and it is only rows waiting for a row group (a small
    /// file), else stored.
    async fn close(&mut self, mut file: OpenFile) -> Result<()> {
        let arrow_bytes = file.pending_bytes;
        if file.only_pending() && self.unstored_bytes + arrow_bytes <= UNSTORED_BYTES {
            let (metadata, bytes) = file.finish_in_memory()?;
            let data_file =
                describe_file(&self.schema, self.spec.id(), &file, &metadata, bytes.len())?;
            self.unstored_bytes += arrow_bytes;
            self.unstored.push(UnstoredFile {
                path: data_file.path.clone(),
                bytes,
            });
            self.done.push(data_file);
            return Ok(());
        }
        self.storing(&file.path);
        let metadata = file.finish().await?;
        let size = file.bytes_written();
        let data_file = describe_file(&self.schema, self.spec.id(), &file, &metadata, size)?;
        self.done.push(data_file);
        Ok(())
    }

    /// Closes every open file and returns all files written, in the order they were closed,
    /// every one stored.
    pub async fn finish(self) -> Result<Vec<DataFile>> {
        let location = self.location.clone();
        let on_stored = self.on_stored.clone();
        let (files, unstored) = self.finish_unstored().await?;
        if let Some(hook) = &on_stored {
            unstored.iter().for_each(|file| hook(&file.path));
        }
        location
            .put_all(unstored.into_iter().map(|file| (file.path, file.bytes)))
            .await?;
        Ok(files)
    }

    /// Closes every open file and returns all files written, in the order they were closed,
    /// and the bytes of the small ones, which are not stored yet: the commit that adds them
    /// stores them with its metadata ([`crate::CommitOptions::unstored`]). Until then no one
    /// can read them, and if it never comes they leave nothing behind.
    pub async fn finish_unstored(mut self) -> Result<(Vec<DataFile>, Vec<UnstoredFile>)> {
        self.write_chunk().await?;
        let mut open: Vec<_> = self.open.drain().collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, file) in open {
            self.close(file).await?;
        }
        Ok((self.done, self.unstored))
    }
}

/// The description of a file just finished with `metadata`, `size` bytes long.
fn describe_file(
    schema: &Schema,
    spec_id: SpecId,
    file: &OpenFile,
    metadata: &ParquetMetaData,
    size: usize,
) -> Result<DataFile> {
    let column_stats = file_statistics(schema, metadata, file).map_err(file.parquet_error())?;
    Ok(DataFile {
        file_size: size as u64,
        path: file.path.clone(),
        record_count: file.rows,
        spec_id,
        partition: file.partition.clone(),
        column_stats,
        row_group_rows: metadata
            .row_groups()
            .iter()
            .map(|g| g.num_rows() as u64)
            .collect(),
        deletion_vector: None,
    })
}

/// The statistics of every leaf of `schema` in `file`, just finished with `metadata`: the
/// float leaves' gathered from the batches, every other leaf's from the Parquet writer's
/// row-group statistics, so the data is not read twice.
fn file_statistics(
    schema: &Schema,
    metadata: &ParquetMetaData,
    file: &OpenFile,
) -> parquet::errors::Result<BTreeMap<FieldId, ColumnStats>> {
    let columns = metadata.file_metadata().schema_descr();
    let groups = metadata.row_groups();
    let rows: Vec<u64> = groups.iter().map(|g| g.num_rows() as u64).collect();
    let mut all = BTreeMap::new();
    for leaf in schema.leaves().iter().filter(|leaf| !is_float(leaf.field)) {
        let id = leaf.field.id;
        let column = parquet_column(columns, id).ok_or_else(|| {
            ParquetError::General(format!("no column of the file has field id {id}"))
        })?;
        let field = arrow_field(leaf.field);
        let converter = StatisticsConverter::from_column_index(column, &field, columns)?
            .with_missing_null_counts_as_zero(false);
        let stats = stats::from_row_groups(
            converter.row_group_mins(groups)?.as_ref(),
            converter.row_group_maxes(groups)?.as_ref(),
            &converter.row_group_null_counts(groups)?,
            &rows,
        );
        all.insert(id, stats);
    }
    for (leaf, collector) in file.float_leaves.iter().zip(&file.float_stats) {
        all.insert(leaf.id, collector.finish());
    }
    Ok(all)
}

/// `batch` with the table's columns, matched by name, in the table's order: cast to the
/// column types, NOT NULL checked, with field ids.
///
/// A string or binary column the data holds as a view array (as DataFusion reads Parquet)
/// stays one: the Parquet writer encodes views as it encodes strings, and keeping them saves
/// copying every value here and again when routing gathers rows by partition. Such batches
/// have the table's schema with those columns' types changed to the views; `view_schema`
/// keeps that schema while the input's types stay the same.
fn conform(
    batch: &RecordBatch,
    schema: &Schema,
    target: &SchemaRef,
    view_schema: &mut Option<SchemaRef>,
) -> Result<RecordBatch> {
    let input = batch.schema();
    for field in input.fields() {
        if schema.field_by_name(field.name()).is_none() {
            let known: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
            return Err(Error::SchemaMismatch {
                reason: format!(
                    "column '{}' is not in the table (its columns are {})",
                    field.name(),
                    known.join(", ")
                ),
            });
        }
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let index = input
            .fields()
            .iter()
            .position(|f| f.name() == &field.name)
            .or_else(|| {
                input
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(&field.name))
            });
        let Some(index) = index else {
            return Err(Error::SchemaMismatch {
                reason: format!("column '{}' is missing from the data", field.name),
            });
        };
        let column = batch.column(index);
        let column = if is_view_of(column.data_type(), &field.field_type) {
            column.clone()
        } else {
            conform_array(column, field, &field.name)?
        };
        if field.required && column.null_count() > 0 {
            let nulls = column.null_count();
            return Err(Error::SchemaMismatch {
                reason: format!(
                    "column '{}' is NOT NULL, but {nulls} {} NULL in it",
                    field.name,
                    if nulls == 1 { "row has" } else { "rows have" }
                ),
            });
        }
        columns.push(column);
    }
    let types_match = |schema: &SchemaRef| {
        schema
            .fields()
            .iter()
            .zip(&columns)
            .all(|(f, c)| f.data_type() == c.data_type())
    };
    let schema = if types_match(target) {
        target.clone()
    } else {
        match view_schema {
            Some(schema) if types_match(schema) => schema.clone(),
            _ => {
                let fields: Vec<arrow::datatypes::Field> = target
                    .fields()
                    .iter()
                    .zip(&columns)
                    .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
                    .collect();
                view_schema
                    .insert(Arc::new(arrow::datatypes::Schema::new_with_metadata(
                        fields,
                        target.metadata().clone(),
                    )))
                    .clone()
            }
        }
    };
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::arrow("conforming a batch to the table schema", e))
}

/// Whether `data_type` is the view layout of a string or binary column of type `ty`.
fn is_view_of(data_type: &arrow::datatypes::DataType, ty: &tarn_spec::Type) -> bool {
    use arrow::datatypes::DataType;
    use tarn_spec::Type;
    matches!(
        (data_type, ty),
        (DataType::Utf8View, Type::Primitive(PrimitiveType::String))
            | (DataType::BinaryView, Type::Primitive(PrimitiveType::Binary))
    )
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date32Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn dictionaries_are_kept_where_they_pay() {
        let rows = 8192;
        // Rows spread over 2,000 days at random (splitmix64): the sample holds most of them,
        // so the dictionary stops growing, though it is about 1,700 values long.
        let day = |i: i64| {
            let mut x = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((x ^ (x >> 31)) % 2000) as i32
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("key_in_runs", DataType::Int64, false),
            Field::new("id", DataType::Int64, false),
            Field::new("day", DataType::Date32, false),
            Field::new("flag", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i / 4))),
                Arc::new(Int64Array::from_iter_values(0..rows)),
                Arc::new(Date32Array::from_iter_values((0..rows).map(day))),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| ["A", "N", "R"][i as usize % 3]),
                )),
            ],
        )
        .unwrap();
        // A million rows of keys in runs of four would outgrow the dictionary page...
        assert_eq!(
            high_cardinality_columns(&batch, 1 << 20).unwrap(),
            ["key_in_runs", "id"]
        );
        // ...8,192 of them would not; mostly distinct values never pay.
        assert_eq!(high_cardinality_columns(&batch, 8192).unwrap(), ["id"]);
        // A row group as large as a property can ask for is judged, not overflowed.
        assert_eq!(
            high_cardinality_columns(&batch, usize::MAX).unwrap(),
            ["key_in_runs", "id"]
        );
        // Too few rows to judge.
        assert_eq!(
            high_cardinality_columns(&batch.slice(0, 100), 1 << 20),
            None
        );
        // Rows that come a hundred at a time are judged together.
        let hundreds: Vec<RecordBatch> = (0..rows as usize / 100)
            .map(|i| batch.slice(i * 100, 100))
            .collect();
        assert!(
            sample(&hundreds[..2]).is_none(),
            "200 rows are too few to judge"
        );
        let rows = sample(&hundreds).unwrap();
        assert_eq!(rows.num_rows(), SAMPLE_ROWS);
        assert_eq!(rows, batch.slice(0, SAMPLE_ROWS));
        assert_eq!(
            high_cardinality_columns(&rows, 1 << 20).unwrap(),
            ["key_in_runs", "id"]
        );
    }
}
