//! Creating, writing, reading and time-travelling tables.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use object_store::ObjectStoreExt;
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tarn_core::{
    Change, DataFileWriter, Env, OverwriteScope, Predicate, TARGET_FILE_SIZE_PROPERTY, Table,
    Warehouse,
};
use tarn_spec::{Field, MetadataUpdate, Operation, PrimitiveType, Value, Version};

use crate::common::*;

#[tokio::test]
async fn append_and_read_back_on_local_disk() {
    let (_dir, w) = local_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    assert_eq!(t.version(), Version(0));
    let t = t.append_batches([events(0..100, 3)]).await.unwrap();
    let t = t.append_batches([events(100..150, 3)]).await.unwrap();
    assert_eq!(t.version(), Version(2));
    assert_eq!(read_ids(&t).await, (0..150).collect::<Vec<_>>());

    let loaded = w.load_table("ns", "events").await.unwrap();
    assert_eq!(loaded.version(), Version(2));
    let log: Vec<_> = loaded
        .metadata()
        .snapshots()
        .iter()
        .map(|s| (s.version.get(), s.operation))
        .collect();
    assert_eq!(
        log,
        vec![
            (0, Operation::Create),
            (1, Operation::Append),
            (2, Operation::Append)
        ]
    );
    let summary = &loaded.snapshot().summary;
    assert_eq!(
        (summary.added_rows, summary.total_rows, summary.total_files),
        (50, 150, 2)
    );
}

#[tokio::test]
async fn data_files_carry_field_ids_and_plain_parquet_reads_them() {
    let w = memory_warehouse("field-ids").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    let file = &t.plan_files(&Predicate::True).await.unwrap().data_files()[0];
    let bytes = data_file_bytes(&t, file).await;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let ids: Vec<(String, String)> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| {
            (
                f.name().clone(),
                f.metadata()
                    .get(PARQUET_FIELD_ID_META_KEY)
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            ("id".into(), "1".into()),
            ("ts".into(), "2".into()),
            ("region".into(), "3".into())
        ]
    );
    let stats = &file.column_stats[&tarn_spec::FieldId(1)];
    assert_eq!(
        (stats.min.clone(), stats.max.clone(), stats.null_count),
        (Some(Value::Long(0)), Some(Value::Long(9)), Some(0))
    );
    assert_eq!(
        file.file_size,
        t.location()
            .store()
            .head(&t.location().path(&file.path))
            .await
            .unwrap()
            .size
    );
}

#[tokio::test]
async fn partitioned_writes_split_files_by_partition() {
    let w = memory_warehouse("partitioned").await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let t = t.append_batches([events(0..60, 3)]).await.unwrap();
    let files = t.plan_files(&Predicate::True).await.unwrap().data_files();
    // 3 days x 2 regions.
    assert_eq!(files.len(), 6);
    for file in &files {
        let Some(Value::String(region)) = &file.partition[1] else {
            panic!("region partition")
        };
        let Some(Value::Int(day)) = file.partition[0] else {
            panic!("day partition")
        };
        let date = tarn_spec::Transform::Day.render(PrimitiveType::Date, Some(&Value::Int(day)));
        assert!(
            file.path
                .starts_with(&format!("data/ts_day={date}/region={region}/")),
            "{}",
            file.path
        );
        assert_eq!(file.record_count, 10);
    }
    assert_eq!(read_ids(&t).await, (0..60).collect::<Vec<_>>());
}

/// Batches that each spread over every partition, through a writer allowed a small buffer:
/// every row lands once, in its partition's file, in input order; row groups close early
/// rather than exceed the buffer; the memory gate sees no more than it granted.
#[tokio::test]
async fn partitioned_writes_stay_within_their_buffer() {
    let w = memory_warehouse("buffer").await;
    let mut def = events_definition(true);
    def.properties = BTreeMap::from([(
        tarn_core::WRITE_BUFFER_PROPERTY.to_string(),
        "400000".to_string(),
    )]);
    let t = w.create_table("ns", "events", def).await.unwrap();
    let (mut writer, asked) = recording_writer(&t);
    for i in 0..100 {
        writer
            .write(&events(i * 3000..(i + 1) * 3000, 7))
            .await
            .unwrap();
    }
    let files = writer.finish().await.unwrap();
    assert!(asked.load(Ordering::Relaxed) > 0);
    // 7 days x 2 regions, one file each: the buffer closes row groups, not files.
    assert_eq!(files.len(), 14);
    assert!(
        files.iter().any(|f| f.row_group_rows.len() > 1),
        "no row group was closed early"
    );
    let mut all = Vec::new();
    for file in &files {
        let ids = read_file_ids(&t, file).await;
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "rows out of order in {}",
            file.path
        );
        let Some(Value::Int(day)) = file.partition[0] else {
            panic!("day partition")
        };
        let Some(Value::String(region)) = &file.partition[1] else {
            panic!("region partition")
        };
        for id in &ids {
            assert_eq!(id % 7, i64::from(day), "id {id} in {}", file.path);
            assert_eq!(region, if id % 2 == 0 { "eu" } else { "us" });
        }
        all.extend(ids);
    }
    all.sort_unstable();
    assert_eq!(all, (0..300_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_writer_the_memory_pool_refuses_closes_files_or_fails_clearly() {
    let w = memory_warehouse("refused").await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    // A pool that grants nothing at all.
    let mut writer = t.writer().unwrap().with_memory_gate(Box::new(|_| false));
    let message = writer
        .write(&events(0..1000, 3))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("memory pool"), "{message}");

    // A pool that grants one small file at a time: row groups, then files, are closed
    // early, nothing is lost.
    let mut writer = t
        .writer()
        .unwrap()
        .with_memory_gate(Box::new(|bytes| bytes <= 64 * 1024));
    for i in 0..5 {
        writer
            .write(&events(i * 1000..(i + 1) * 1000, 3))
            .await
            .unwrap();
    }
    let files = writer.finish().await.unwrap();
    let row_groups: usize = files.iter().map(|f| f.row_group_rows.len()).sum();
    assert!(
        files.len() > 3 && row_groups > files.len(),
        "{} files, {row_groups} row groups: nothing was closed early",
        files.len()
    );
    let mut ids = Vec::new();
    for file in &files {
        ids.extend(read_file_ids(&t, file).await);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..5000).collect::<Vec<_>>());
}

/// A writer of `t` whose memory gate grants everything and records the most it was asked.
fn recording_writer(t: &Table) -> (DataFileWriter, Arc<AtomicUsize>) {
    let most = Arc::new(AtomicUsize::new(0));
    let seen = most.clone();
    let writer = t.writer().unwrap().with_memory_gate(Box::new(move |bytes| {
        seen.fetch_max(bytes, Ordering::Relaxed);
        true
    }));
    (writer, most)
}

/// The memory pool is asked for what an open row group's codecs hold, not only its pages:
/// zstd gives each column a compression and a decompression context, about 260 KB together,
/// and a write into hundreds of partitions holds a row group open in each.
#[tokio::test]
async fn the_memory_pool_sees_what_codecs_hold() {
    let w = memory_warehouse("codecs").await;
    let mut asked = Vec::new();
    for codec in ["uncompressed", "zstd"] {
        let mut definition = events_definition(false);
        definition.properties.insert(
            tarn_core::COMPRESSION_CODEC_PROPERTY.to_string(),
            codec.to_string(),
        );
        let t = w.create_table("ns", codec, definition).await.unwrap();
        let (mut writer, most) = recording_writer(&t);
        // One run long enough to open a row group, which stays open.
        writer.write(&events(0..20_000, 3)).await.unwrap();
        asked.push(most.load(Ordering::Relaxed));
        writer.finish().await.unwrap();
    }
    let (uncompressed, zstd) = (asked[0], asked[1]);
    assert!(
        zstd > uncompressed + 3 * 150_000,
        "the pool was asked for {zstd} bytes with zstd, {uncompressed} uncompressed"
    );
}

/// Partitions given a few thousand rows each keep them as Arrow data until their files
/// close, rather than each opening a row group whose codecs outweigh its rows.
#[tokio::test]
async fn short_runs_wait_for_a_row_group() {
    let w = memory_warehouse("short-runs").await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let (mut writer, most) = recording_writer(&t);
    // 10 days, each in one region (both follow the id): 10 partitions of 10,000 rows.
    writer.write(&events(0..100_000, 10)).await.unwrap();
    let files = writer.finish().await.unwrap();
    assert_eq!(files.len(), 10);
    assert!(files.iter().all(|f| f.row_group_rows == [10_000]));
    // Open row groups would add 10 files x 3 columns of zstd contexts, 250 KB each, to the
    // 2 to 3 MB the rows take as Arrow data.
    let most = most.load(Ordering::Relaxed);
    assert!(
        most < 10 * 3 * 200_000,
        "the pool was asked for {most} bytes for 100,000 rows of three columns"
    );
}

/// Rows sorted on the partition key, cut into batches as a sort hands them over.
fn clustered_events(
    ids: std::ops::Range<i64>,
    days: i64,
    batch_rows: usize,
) -> Vec<arrow::array::RecordBatch> {
    let batch = events(ids, days);
    let ts = batch.column_by_name("ts").unwrap().clone();
    let order = arrow::compute::sort_to_indices(&ts, None, None).unwrap();
    let sorted = arrow::compute::take_record_batch(&batch, &order).unwrap();
    (0..sorted.num_rows())
        .step_by(batch_rows)
        .map(|at| sorted.slice(at, batch_rows.min(sorted.num_rows() - at)))
        .collect()
}

/// A writer told its rows come sorted on the partition key finishes each partition's file
/// when the rows move on, so it holds one partition's rows at a time, not every partition's.
#[tokio::test]
async fn clustered_input_keeps_one_partition_open() {
    let w = memory_warehouse("clustered").await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    // 50 days, each in one region: 50 partitions of 4,000 rows, in batches that straddle them.
    let batches = clustered_events(0..200_000, 50, 8192);
    let mut asked = Vec::new();
    for clustered in [false, true] {
        let (writer, most) = recording_writer(&t);
        let mut writer = if clustered {
            writer.with_clustered_input()
        } else {
            writer
        };
        for batch in &batches {
            writer.write(batch).await.unwrap();
        }
        let files = writer.finish().await.unwrap();
        assert_eq!(files.len(), 50, "clustered: {clustered}");
        let mut ids = Vec::new();
        for file in &files {
            assert_eq!(file.row_group_rows, [4000], "{}", file.path);
            ids.extend(read_file_ids(&t, file).await);
        }
        ids.sort_unstable();
        assert_eq!(ids, (0..200_000).collect::<Vec<_>>());
        asked.push(most.load(Ordering::Relaxed));
    }
    let (fanout, clustered) = (asked[0], asked[1]);
    // A partition's 4,000 rows are about 100 KB as Arrow data; all 200,000 about 5 MB.
    assert!(
        clustered < 500_000 && fanout > 2_000_000,
        "the pool was asked for {clustered} bytes clustered, {fanout} with a file per partition"
    );

    // Rows that are not clustered after all are all written, into more files: two
    // partitions, each given twice in turn.
    let batches = clustered_events(0..4000, 2, 1000);
    let mut writer = t.writer().unwrap().with_clustered_input();
    for i in [0, 2, 1, 3] {
        writer.write(&batches[i]).await.unwrap();
    }
    let files = writer.finish().await.unwrap();
    assert_eq!(files.len(), 4);
    let mut ids = Vec::new();
    for file in &files {
        ids.extend(read_file_ids(&t, file).await);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..4000).collect::<Vec<_>>());
}

/// Mostly distinct columns skip the dictionary; repetitive ones keep it. Integers without
/// one are delta-encoded.
#[tokio::test]
async fn encodings_follow_the_columns() {
    use parquet::basic::Encoding;

    let w = memory_warehouse("dictionaries").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..10_000, 3)]).await.unwrap();
    let file = &t.plan_files(&Predicate::True).await.unwrap().data_files()[0];
    let bytes = data_file_bytes(&t, file).await;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let columns = reader.metadata().row_group(0).columns();
    let encoded = |i: usize, encoding: Encoding| columns[i].encodings().any(|e| e == encoding);
    assert!(
        !encoded(0, Encoding::RLE_DICTIONARY),
        "the id column is unique"
    );
    assert!(encoded(0, Encoding::DELTA_BINARY_PACKED), "ids count up");
    assert!(!encoded(0, Encoding::PLAIN), "ids count up");
    assert!(
        encoded(2, Encoding::RLE_DICTIONARY),
        "region has two values"
    );
    assert!(
        !encoded(2, Encoding::DELTA_BINARY_PACKED),
        "region is a string"
    );

    // The same rows a hundred at a time, as a compaction reads them from small files, are
    // judged together: one batch is too few rows to judge from.
    let t = w
        .create_table("ns", "hundreds", events_definition(false))
        .await
        .unwrap();
    let t = t
        .append_batches((0..100).map(|i| events(i * 100..(i + 1) * 100, 3)))
        .await
        .unwrap();
    let files = t.plan_files(&Predicate::True).await.unwrap().data_files();
    assert_eq!(files.len(), 1);
    let bytes = data_file_bytes(&t, &files[0]).await;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let columns = reader.metadata().row_group(0).columns();
    assert!(
        !columns[0]
            .encodings()
            .any(|e| e == Encoding::RLE_DICTIONARY),
        "the id column is unique"
    );
    assert!(
        columns[2]
            .encodings()
            .any(|e| e == Encoding::RLE_DICTIONARY),
        "region has two values"
    );
}

/// Delta encoding stores differences: between the extremes of BIGINT they wrap around, and
/// they must come back as the values written, beside NULLs.
#[tokio::test]
async fn extreme_integers_read_back_as_written() {
    use arrow::array::{Array, AsArray, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{
        DataType, Field as ArrowField, Int64Type, Schema as ArrowSchema, TimeUnit,
        TimestampMicrosecondType,
    };

    let w = memory_warehouse("extremes").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let pattern = [
        i64::MIN,
        i64::MAX,
        0,
        -1,
        i64::MAX,
        i64::MIN,
        1,
        i64::MIN + 1,
    ];
    let ids: Vec<i64> = (0..10_000)
        .map(|i| pattern[i % pattern.len()] ^ (i as i64 & 0xff))
        .collect();
    let ts: Vec<Option<i64>> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (i % 7 != 0).then_some(id))
        .collect();
    let schema = Arc::new(ArrowSchema::new(vec![
        ArrowField::new("id", DataType::Int64, false),
        ArrowField::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ArrowField::new("region", DataType::Utf8, true),
    ]));
    let batch = arrow::array::RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(TimestampMicrosecondArray::from(ts.clone())),
            Arc::new(StringArray::from(vec![None::<&str>; ids.len()])),
        ],
    )
    .unwrap();
    let t = t.append_batches([batch]).await.unwrap();
    let file = &t.plan_files(&Predicate::True).await.unwrap().data_files()[0];
    let read = ParquetRecordBatchReaderBuilder::try_new(data_file_bytes(&t, file).await)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let read = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
    let read_ids = read.column(0).as_primitive::<Int64Type>();
    assert_eq!(read_ids.values().to_vec(), ids);
    let read_ts = read.column(1).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(read_ts.iter().collect::<Vec<_>>(), ts);
    assert_eq!(read.column(2).null_count(), ids.len());
}

#[tokio::test]
async fn the_writer_rolls_files_at_the_target_size() {
    let w = memory_warehouse("rolling").await;
    let mut def = events_definition(false);
    def.properties = BTreeMap::from([(TARGET_FILE_SIZE_PROPERTY.to_string(), "1".to_string())]);
    let t = w.create_table("ns", "events", def).await.unwrap();
    let t = t
        .append_batches((0..5).map(|i| events(i * 10..i * 10 + 10, 1)))
        .await
        .unwrap();
    assert_eq!(t.snapshot().summary.added_files, 5);
    assert_eq!(read_ids(&t).await, (0..50).collect::<Vec<_>>());
}

#[tokio::test]
async fn time_travel_by_version_and_timestamp() {
    let clock = Arc::new(ManualClock::default());
    let env = Env {
        clock: clock.clone(),
        ..Env::default()
    };
    let w = memory_warehouse("time-travel").await.with_env(env);
    clock.set(1_000);
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    clock.set(2_000);
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    clock.set(3_000);
    let t = t.append_batches([events(10..20, 1)]).await.unwrap();

    assert_eq!(
        read_ids(&t.at_version(Version(1)).await.unwrap()).await,
        (0..10).collect::<Vec<_>>()
    );
    assert!(
        read_ids(&t.at_version(Version(0)).await.unwrap())
            .await
            .is_empty()
    );
    assert_eq!(t.at_timestamp(2_999).await.unwrap().version(), Version(1));
    assert_eq!(t.at_timestamp(3_000).await.unwrap().version(), Version(2));
    assert_eq!(t.at_timestamp(1_000).await.unwrap().version(), Version(0));
}

#[tokio::test]
async fn overwrite_replaces_the_table_or_its_touched_partitions() {
    let w = memory_warehouse("overwrite").await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let t = t.append_batches([events(0..20, 2)]).await.unwrap();

    // Base rows: even ids on day 0 in eu, odd ids on day 1 in us. Dynamic partition
    // overwrite with id 100 replaces (day 0, eu) only.
    let mut writer = t.writer().unwrap();
    writer.write(&events(100..101, 2)).await.unwrap();
    let files = writer.finish().await.unwrap();
    let t = t
        .commit(Change::Overwrite {
            files,
            scope: OverwriteScope::Partitions,
        })
        .await
        .unwrap();
    let mut expected: Vec<i64> = (0..20).filter(|i| i % 2 == 1).collect();
    expected.push(100);
    assert_eq!(read_ids(&t).await, expected);
    assert_eq!(t.snapshot().summary.removed_rows, 10);
    assert_eq!(t.snapshot().operation, Operation::Overwrite);

    let mut writer = t.writer().unwrap();
    writer.write(&events(500..503, 2)).await.unwrap();
    let files = writer.finish().await.unwrap();
    let t = t
        .commit(Change::Overwrite {
            files,
            scope: OverwriteScope::Table,
        })
        .await
        .unwrap();
    assert_eq!(read_ids(&t).await, vec![500, 501, 502]);
    assert_eq!(t.snapshot().summary.removed_rows, expected.len() as u64);
}

#[tokio::test]
async fn rewrite_replaces_exactly_the_removed_files() {
    let w = memory_warehouse("rewrite").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    let t = t.append_batches([events(10..20, 1)]).await.unwrap();
    let first = t
        .plan_files(&Predicate::True)
        .await
        .unwrap()
        .data_files()
        .into_iter()
        .find(|f| f.column_stats[&tarn_spec::FieldId(1)].min == Some(Value::Long(0)));
    let first = first.expect("the first file");
    // "DELETE WHERE id < 5": rewrite the first file without those rows.
    let mut writer = t.writer().unwrap();
    writer.write(&events(5..10, 1)).await.unwrap();
    let added = writer.finish().await.unwrap();
    let t = t
        .commit(Change::Rewrite {
            removed: vec![first],
            added,
            operation: Operation::Delete,
        })
        .await
        .unwrap();
    assert_eq!(read_ids(&t).await, (5..20).collect::<Vec<_>>());
    let s = &t.snapshot().summary;
    assert_eq!(
        (
            s.removed_files,
            s.added_files,
            s.removed_rows,
            s.added_rows,
            s.total_rows
        ),
        (1, 1, 10, 5, 15)
    );
    assert!(t.snapshot().changes.removed_files.is_some());
}

#[tokio::test]
async fn schema_and_property_changes_commit_versions() {
    let w = memory_warehouse("schema").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    let score = Field::optional(4, "score", PrimitiveType::Double);
    let t = t.commit(adding(&t, score)).await.unwrap();
    assert_eq!(t.snapshot().operation, Operation::SchemaChange);
    assert_eq!(t.schema().fields().len(), 4);
    assert_eq!(
        t.snapshot().summary.total_rows,
        10,
        "a schema change keeps the data"
    );
    assert_eq!(read_ids(&t).await, (0..10).collect::<Vec<_>>());
    let props = BTreeMap::from([("owner".to_string(), "feeds".to_string())]);
    let t = t
        .commit(Change::Metadata {
            updates: vec![MetadataUpdate::SetProperties(props)],
            data_dependent: false,
        })
        .await
        .unwrap();
    assert_eq!(t.snapshot().operation, Operation::SetProperties);
    assert_eq!(t.metadata().properties()["owner"], "feeds");
    // Time travel sees the old schema.
    assert_eq!(
        t.at_version(Version(1))
            .await
            .unwrap()
            .schema()
            .fields()
            .len(),
        3
    );
}

/// `id`, `region` and a new `score` column, partitioned by region.
fn replaced_definition() -> tarn_core::TableDefinition {
    tarn_core::TableDefinition {
        fields: vec![
            Field::required(1, "id", PrimitiveType::Long),
            Field::optional(2, "region", PrimitiveType::String),
            Field::optional(3, "score", PrimitiveType::Double),
        ],
        partition_fields: vec![tarn_spec::PartitionField {
            source_id: tarn_spec::FieldId(2),
            field_id: tarn_spec::FieldId(1000),
            name: "region".into(),
            transform: tarn_spec::Transform::Identity,
        }],
        properties: BTreeMap::from([("owner".to_string(), "new".to_string())]),
    }
}

fn scored(ids: std::ops::Range<i64>) -> arrow::array::RecordBatch {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    let ids: Vec<i64> = ids.collect();
    arrow::array::RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.clone())) as _),
        (
            "region",
            Arc::new(StringArray::from_iter_values(ids.iter().map(|_| "eu"))) as _,
        ),
        (
            "score",
            Arc::new(Float64Array::from_iter_values(
                ids.iter().map(|&i| i as f64),
            )) as _,
        ),
    ])
    .unwrap()
}

#[tokio::test]
async fn a_replacement_commits_a_new_definition_and_its_data_as_one_version() {
    let w = memory_warehouse("replace").await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let t = t.append_batches([events(0..20, 2)]).await.unwrap();
    let t = t
        .commit(Change::Metadata {
            updates: vec![MetadataUpdate::SetProperties(BTreeMap::from([
                ("owner".to_string(), "old".to_string()),
                ("tarn.app-seq.job".to_string(), "3".to_string()),
            ]))],
            data_dependent: false,
        })
        .await
        .unwrap();

    let replacement = t.replacement(replaced_definition()).unwrap();
    assert!(replacement.is_replacement());
    let mut writer = replacement.writer().unwrap();
    writer.write(&scored(100..105)).await.unwrap();
    let files = writer.finish().await.unwrap();
    let replaced = replacement.commit(Change::Append { files }).await.unwrap();

    assert_eq!(replaced.version(), Version(3));
    assert!(!replaced.is_replacement());
    assert_eq!(replaced.snapshot().operation, Operation::Overwrite);
    let s = &replaced.snapshot().summary;
    assert_eq!((s.removed_rows, s.added_rows, s.total_rows), (20, 5, 5));
    assert_eq!(read_ids(&replaced).await, (100..105).collect::<Vec<_>>());
    // `id` and `region` keep their ids (1 and 3); `score` is new, above `ts` (2).
    let ids: Vec<(&str, i32)> = (replaced.schema().fields().iter())
        .map(|f| (f.name.as_str(), f.id.get()))
        .collect();
    assert_eq!(ids, [("id", 1), ("region", 3), ("score", 4)]);
    assert_eq!(replaced.metadata().default_spec().fields().len(), 1);
    let properties = replaced.metadata().properties();
    assert_eq!(properties["owner"], "new");
    assert_eq!(
        properties["tarn.app-seq.job"], "3",
        "tarn's own properties stay"
    );
    // The history stays: the version before reads its own columns and rows.
    let before = replaced.at_version(Version(2)).await.unwrap();
    assert_eq!(before.schema().fields().len(), 3);
    assert_eq!(before.schema().fields()[1].name, "ts");
    assert_eq!(read_ids(&before).await, (0..20).collect::<Vec<_>>());
    // Reloaded from storage, the table is the replacement.
    let loaded = w.load_table("ns", "events").await.unwrap();
    assert_eq!(loaded.version(), Version(3));
    assert_eq!(read_ids(&loaded).await, (100..105).collect::<Vec<_>>());

    // A replacement by no data leaves the table empty.
    let emptied = (loaded.replacement(replaced_definition()).unwrap())
        .commit(Change::Append { files: vec![] })
        .await
        .unwrap();
    assert_eq!(emptied.version(), Version(4));
    assert_eq!(
        emptied.schema().id(),
        loaded.schema().id(),
        "the same schema is not added again"
    );
    assert_eq!(read_ids(&emptied).await, Vec::<i64>::new());
}

#[tokio::test]
async fn a_replacement_conflicts_with_any_commit_made_meanwhile_and_they_with_it() {
    let w = memory_warehouse("replace-race").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();

    // An append lands while the replacement writes its data: the replacement conflicts.
    let replacement = t.replacement(replaced_definition()).unwrap();
    let appended = t.append_batches([events(10..20, 1)]).await.unwrap();
    let mut writer = replacement.writer().unwrap();
    writer.write(&scored(100..105)).await.unwrap();
    let files = writer.finish().await.unwrap();
    let err = replacement
        .commit(Change::Append { files })
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), tarn_core::ErrorKind::Conflict { .. }),
        "{err}"
    );
    let now = w.load_table("ns", "events").await.unwrap();
    assert_eq!(now.version(), appended.version());
    assert_eq!(read_ids(&now).await, (0..20).collect::<Vec<_>>());

    // A replacement lands while a schema change and an append are under way on the
    // version before: both conflict instead of undoing the new definition.
    let replaced = (now.replacement(replaced_definition()).unwrap())
        .commit(Change::Append { files: vec![] })
        .await
        .unwrap();
    let extra = Field::optional(9, "extra", PrimitiveType::Int);
    let err = now.commit(adding(&now, extra)).await.unwrap_err();
    assert!(
        matches!(err.kind(), tarn_core::ErrorKind::Conflict { .. }),
        "{err}"
    );
    let err = now.append_batches([events(20..30, 1)]).await.unwrap_err();
    assert!(
        matches!(err.kind(), tarn_core::ErrorKind::Conflict { .. }),
        "{err}"
    );
    let last = w.load_table("ns", "events").await.unwrap();
    assert_eq!(last.version(), replaced.version());
    assert_eq!(last.schema().fields().len(), 3);
}

#[tokio::test]
async fn a_restore_brings_back_an_earlier_version_by_reference() {
    let w = memory_warehouse("restore").await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let t = t.append_batches([events(0..10, 2)]).await.unwrap();
    // Version 2 deletes ids 0 and 1 by deletion vector.
    let files = t.plan_files(&Predicate::True).await.unwrap().data_files();
    let deletes = files
        .iter()
        .map(|f| (f.clone(), roaring::RoaringTreemap::from_iter([0u64])))
        .collect();
    let t = t
        .commit(Change::RowDelta {
            deletes,
            added: vec![],
            operation: Operation::Delete,
        })
        .await
        .unwrap();
    let at_2 = read_ids(&t).await;
    assert_eq!(at_2.len(), 8);
    let paths_at_2: Vec<String> = (t.plan_files(&Predicate::True).await.unwrap().data_files())
        .into_iter()
        .map(|f| f.path)
        .collect();
    // Version 3 adds a column, 4 appends, 5 repartitions and sets a property.
    let score = Field::optional(4, "score", PrimitiveType::Double);
    let t = t.commit(adding(&t, score)).await.unwrap();
    let mut writer = t.writer().unwrap();
    writer.write(&scored_events(100..103)).await.unwrap();
    let t = t.append(writer.finish().await.unwrap()).await.unwrap();
    let t = t
        .commit(Change::Metadata {
            updates: vec![
                MetadataUpdate::SetPartitionSpec(vec![]),
                MetadataUpdate::SetProperties(BTreeMap::from([
                    ("owner".to_string(), "x".to_string()),
                    ("tarn.app-seq.job".to_string(), "9".to_string()),
                ])),
            ],
            data_dependent: false,
        })
        .await
        .unwrap();

    let extra = BTreeMap::from([("statement".to_string(), "restore".to_string())]);
    let restored = t.restore(Version(2), extra.clone()).await.unwrap();
    assert_eq!(restored.version(), Version(6));
    assert_eq!(read_ids(&restored).await, at_2);
    let at_2_table = restored.at_version(Version(2)).await.unwrap();
    assert_eq!(restored.schema().id(), at_2_table.schema().id());
    assert_eq!(
        restored.metadata().default_spec().id(),
        at_2_table.metadata().default_spec().id()
    );
    let paths: Vec<String> = (restored
        .plan_files(&Predicate::True)
        .await
        .unwrap()
        .data_files())
    .into_iter()
    .map(|f| f.path)
    .collect();
    assert_eq!(paths, paths_at_2, "the same files, nothing rewritten");
    let properties = restored.metadata().properties();
    assert!(!properties.contains_key("owner"));
    assert_eq!(
        properties["tarn.app-seq.job"], "9",
        "tarn's own properties stay"
    );
    assert_eq!(restored.snapshot().summary.extra, extra);
    // The versions between stay readable.
    let at_5 = restored.at_version(Version(5)).await.unwrap();
    assert_eq!(read_ids(&at_5).await.len(), 11);

    // The current version: nothing to commit. Version 0: the empty table.
    let same = restored.restore(Version(6), BTreeMap::new()).await.unwrap();
    assert_eq!(same.version(), Version(6));
    let empty = restored.restore(Version(0), BTreeMap::new()).await.unwrap();
    assert_eq!(empty.version(), Version(7));
    assert_eq!(read_ids(&empty).await, Vec::<i64>::new());
    let err = empty
        .restore(Version(42), BTreeMap::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("42"), "{err}");
}

/// [`events`] with a `score` column.
fn scored_events(ids: std::ops::Range<i64>) -> arrow::array::RecordBatch {
    let batch = events(ids, 2);
    let scores = arrow::array::Float64Array::from(vec![0.5; batch.num_rows()]);
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(scores));
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(arrow::datatypes::Field::new(
        "score",
        arrow::datatypes::DataType::Float64,
        true,
    )));
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    arrow::array::RecordBatch::try_new(schema, columns).unwrap()
}

/// The schema change that adds `field` after `t`'s columns.
fn adding(t: &Table, field: Field) -> Change {
    let mut fields = t.schema().fields().to_vec();
    fields.push(field);
    Change::Metadata {
        updates: vec![MetadataUpdate::SetSchema(fields)],
        data_dependent: false,
    }
}

#[tokio::test]
async fn warehouse_lists_and_drops() {
    let w = memory_warehouse("catalog").await;
    w.create_namespace("other").await.unwrap();
    w.create_table("ns", "b", events_definition(false))
        .await
        .unwrap();
    w.create_table("ns", "a", events_definition(false))
        .await
        .unwrap();
    assert_eq!(w.list_namespaces().await.unwrap(), vec!["ns", "other"]);
    assert_eq!(w.list_tables("ns").await.unwrap(), vec!["a", "b"]);
    w.drop_table("ns", "a").await.unwrap();
    assert_eq!(w.list_tables("ns").await.unwrap(), vec!["b"]);
    assert!(matches!(
        w.load_table("ns", "a").await,
        Err(tarn_core::Error::TableNotFound { .. })
    ));
    w.drop_namespace("other").await.unwrap();
    assert_eq!(w.list_namespaces().await.unwrap(), vec!["ns"]);
    assert!(
        w.drop_namespace("ns").await.is_err(),
        "a namespace with tables cannot be dropped"
    );
}

#[tokio::test]
async fn memory_urls_name_one_shared_store() {
    let a = Warehouse::open("memory://shared-by-name/wh").unwrap();
    a.create_namespace("ns").await.unwrap();
    a.create_table("ns", "t", events_definition(false))
        .await
        .unwrap();
    let b = Warehouse::open("memory://shared-by-name/wh").unwrap();
    assert_eq!(b.list_tables("ns").await.unwrap(), vec!["t"]);
    let c = Warehouse::open("memory://another-name/wh").unwrap();
    assert!(c.list_namespaces().await.unwrap().is_empty());
}

#[tokio::test]
async fn strings_are_stored_with_truncated_bounds() {
    let w = memory_warehouse("bounds").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let batch = events(0..3, 1);
    let long = "x".repeat(100);
    let region = arrow::array::StringArray::from(vec![long.as_str(), "a", "b"]);
    let batch = arrow::array::RecordBatch::try_new(
        batch.schema(),
        vec![
            batch.column(0).clone(),
            batch.column(1).clone(),
            Arc::new(region),
        ],
    )
    .unwrap();
    let t = t.append_batches([batch]).await.unwrap();
    let file = &t.plan_files(&Predicate::True).await.unwrap().data_files()[0];
    let stats = &file.column_stats[&tarn_spec::FieldId(3)];
    assert_eq!(stats.min, Some(Value::String("a".into())));
    let Some(Value::String(max)) = &stats.max else {
        panic!("max")
    };
    assert!(max.as_str() > long.as_str() && max.len() == tarn_core::TRUNCATE_LENGTH);
}

/// String columns arriving as views (as DataFusion reads Parquet) are written as strings:
/// routed to their partitions by value, with the same bounds and the same bytes read back,
/// whether an append mixes them with plain string batches or not.
#[tokio::test]
async fn string_views_are_written_as_strings() {
    use arrow::array::{Array, AsArray, StringViewArray};
    let w = memory_warehouse("views").await;
    let regions = [
        Some("a b/%5 \u{e9}"),
        Some(""),
        None,
        Some("a region name longer than twelve bytes"),
    ];
    let as_views = |batch: arrow::array::RecordBatch, first: i64| {
        let region: StringViewArray = (0..batch.num_rows())
            .map(|i| regions[(first as usize + i) % regions.len()])
            .collect();
        let schema = arrow::datatypes::Schema::new(vec![
            batch.schema().field(0).clone(),
            batch.schema().field(1).clone(),
            arrow::datatypes::Field::new("region", arrow::datatypes::DataType::Utf8View, true),
        ]);
        arrow::array::RecordBatch::try_new(
            Arc::new(schema),
            vec![
                batch.column(0).clone(),
                batch.column(1).clone(),
                Arc::new(region),
            ],
        )
        .unwrap()
    };
    let region_of = |id: i64| {
        if (40..50).contains(&id) {
            Some(if id % 2 == 0 { "eu" } else { "us" })
        } else {
            regions[id as usize % regions.len()]
        }
    };
    for partitioned in [false, true] {
        let t = w
            .create_table(
                "ns",
                &format!("events_{partitioned}"),
                events_definition(partitioned),
            )
            .await
            .unwrap();
        // Views, plain strings, views again, over 3 days.
        let t = t
            .append_batches([
                as_views(events(0..40, 3), 0),
                events(40..50, 3),
                as_views(events(50..90, 3), 50),
            ])
            .await
            .unwrap();
        assert_eq!(read_ids(&t).await, (0..90).collect::<Vec<_>>());
        let files = t.plan_files(&Predicate::True).await.unwrap().data_files();
        let mut regions_seen = std::collections::BTreeSet::new();
        for file in &files {
            let bytes = data_file_bytes(&t, file).await;
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap();
            let mut values = Vec::new();
            for batch in reader {
                let batch = batch.unwrap();
                let column = batch.column_by_name("region").unwrap();
                assert_eq!(column.data_type(), &arrow::datatypes::DataType::Utf8);
                let ids = batch.column_by_name("id").unwrap();
                let ids = ids.as_primitive::<arrow::datatypes::Int64Type>();
                for (row, value) in column.as_string::<i32>().iter().enumerate() {
                    let id = ids.value(row);
                    assert_eq!(value, region_of(id), "region of id {id}");
                    values.push(value.map(String::from));
                }
            }
            let stats = &file.column_stats[&tarn_spec::FieldId(3)];
            // Bounds keep a prefix of long strings (see `strings_are_stored_with_truncated_bounds`).
            let min = values
                .iter()
                .flatten()
                .min()
                .map(|v| Value::String(v.chars().take(tarn_core::TRUNCATE_LENGTH).collect()));
            assert_eq!(stats.min, min, "{}", file.path);
            let nulls = values.iter().filter(|v| v.is_none()).count() as u64;
            assert_eq!(stats.null_count, Some(nulls), "{}", file.path);
            if partitioned {
                let region = match &file.partition[1] {
                    Some(Value::String(r)) => Some(r.clone()),
                    None => None,
                    other => panic!("region partition {other:?}"),
                };
                assert!(values.iter().all(|v| *v == region), "{}", file.path);
            }
            regions_seen.extend(values);
        }
        assert_eq!(regions_seen.len(), 6, "{regions_seen:?}");
        // 4 view regions on each of 3 days, eu and us on each of 3 days.
        assert_eq!(files.len(), if partitioned { 18 } else { 1 });
    }

    // Three rows sliced from a large view column make a small file (written uncompressed):
    // the buffers the slice shares with the whole column are not counted as its size.
    let t = w
        .create_table("ns", "small", events_definition(false))
        .await
        .unwrap();
    let long: StringViewArray = (0..100_000)
        .map(|i| {
            Some(format!(
                "a string much longer than the twelve bytes of a view {i}"
            ))
        })
        .collect();
    let whole = events(0..100_000, 3);
    let whole = arrow::array::RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(vec![
            whole.schema().field(0).clone(),
            whole.schema().field(1).clone(),
            arrow::datatypes::Field::new("region", arrow::datatypes::DataType::Utf8View, true),
        ])),
        vec![
            whole.column(0).clone(),
            whole.column(1).clone(),
            Arc::new(long),
        ],
    )
    .unwrap();
    assert!(whole.slice(7, 3).get_array_memory_size() > 1 << 20);
    let t = t.append_batches([whole.slice(7, 3)]).await.unwrap();
    let file = &t.plan_files(&Predicate::True).await.unwrap().data_files()[0];
    let reader =
        parquet::file::reader::SerializedFileReader::new(data_file_bytes(&t, file).await).unwrap();
    let metadata = parquet::file::reader::FileReader::metadata(&reader);
    for column in metadata.row_group(0).columns() {
        assert_eq!(
            column.compression(),
            parquet::basic::Compression::UNCOMPRESSED
        );
    }
    assert_eq!(read_ids(&t).await, [7, 8, 9]);
}

/// A table tarn wrote with deletion vectors, checked in (`testdata/warehouse/default/t`:
/// 10 rows, then DELETE of ids 2, 3, 7, then UPDATE of id 8): every later tarn must read
/// each of its versions as written. Versions before the first vector stay format 1.
#[tokio::test]
async fn a_checked_in_table_with_deletion_vectors_reads_as_written() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/warehouse");
    let w = Warehouse::open(root).unwrap();
    let t = w.load_table("default", "t").await.unwrap();
    assert_eq!(t.version(), Version(3));
    let expected: [(u64, u32, Vec<i64>, Vec<u64>); 3] = [
        (1, 1, (0..10).collect(), vec![]),
        (2, 2, vec![0, 1, 4, 5, 6, 8, 9], vec![2, 3, 7]),
        (3, 2, vec![0, 1, 4, 5, 6, 8, 9], vec![2, 3, 7, 8]),
    ];
    for (version, format, ids, deleted) in expected {
        let at = t.at_version(Version(version)).await.unwrap();
        assert_eq!(at.metadata().format_version(), format, "version {version}");
        assert_eq!(read_ids(&at).await, ids, "version {version}");
        let plan = at.plan_files(&Predicate::True).await.unwrap();
        let first = plan
            .data_files()
            .into_iter()
            .find(|f| f.record_count == 10)
            .expect("the first file");
        assert_eq!(first.row_group_rows, vec![4, 4, 2], "version {version}");
        let positions: Vec<u64> = match &first.deletion_vector {
            Some(dv) => at.deletion_vector(dv).await.unwrap().iter().collect(),
            None => Vec::new(),
        };
        assert_eq!(positions, deleted, "version {version}");
        assert_eq!(plan.record_count(), ids.len() as u64, "version {version}");
    }
}

/// A file's statistics come from its Parquet footer, and must say what the data holds for
/// every type: across row groups, over awkward values (multi-byte and empty strings, a
/// binary bound that cannot be shortened, huge decimals, NULLs), with NaN making float
/// bounds unknown, an all-NULL column, and a struct field under NULL structs whose child
/// slots hold values nobody wrote.
#[tokio::test]
async fn statistics_say_what_the_data_holds_for_every_type() {
    use arrow::array::{
        ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
        Float64Array, Int32Array, StructArray,
    };
    use arrow::buffer::NullBuffer;
    use tarn_spec::{FieldId, Type};

    let w = memory_warehouse("footer-statistics").await;
    let decimal = |precision| PrimitiveType::Decimal {
        precision,
        scale: 2,
    };
    let definition = tarn_core::TableDefinition {
        fields: vec![
            Field::required(1, "id", PrimitiveType::Long),
            Field::optional(2, "i", PrimitiveType::Int),
            Field::optional(3, "s", PrimitiveType::String),
            Field::optional(4, "b", PrimitiveType::Binary),
            Field::optional(5, "big", decimal(38)),
            Field::optional(6, "small", decimal(10)),
            Field::optional(7, "day", PrimitiveType::Date),
            Field::optional(8, "ts", PrimitiveType::Timestamp),
            Field::optional(9, "flag", PrimitiveType::Boolean),
            Field::optional(10, "x", PrimitiveType::Double),
            Field::optional(11, "y", PrimitiveType::Float),
            Field::optional(12, "nothing", PrimitiveType::String),
            Field::optional(
                13,
                "st",
                Type::Struct(vec![Field::optional(14, "a", PrimitiveType::Long)]),
            ),
        ],
        partition_fields: vec![],
        properties: BTreeMap::from([(tarn_core::ROW_GROUP_ROWS_PROPERTY.to_string(), "3".into())]),
    };
    let t = w.create_table("ns", "t", definition).await.unwrap();
    let schema = tarn_core::arrow_convert::arrow_schema(t.metadata().current_schema());
    let long = "龍".repeat(100);
    let huge = -99_999_999_999_999_999_999_999_999_999_999_999_999i128;
    let arrow::datatypes::DataType::Struct(st_fields) = schema.field(12).data_type().clone() else {
        panic!("a struct")
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(arrow::array::Int64Array::from((0..8).collect::<Vec<i64>>())),
        Arc::new(Int32Array::from(vec![
            Some(5),
            None,
            Some(-7),
            Some(i32::MAX),
            None,
            Some(0),
            Some(1),
            Some(2),
        ])),
        Arc::new(arrow::array::StringArray::from(vec![
            Some("日本語のテキスト"),
            Some(""),
            None,
            Some(long.as_str()),
            Some("a/b %"),
            None,
            Some("zz"),
            Some("z"),
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&[0xffu8; 40][..]),
            Some(&b""[..]),
            None,
            Some(&b"\x00"[..]),
            None,
            None,
            Some(&b"m"[..]),
            Some(&b"mm"[..]),
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(huge),
                Some(12_345),
                None,
                Some(0),
                Some(-huge),
                None,
                Some(1),
                Some(2),
            ])
            .with_precision_and_scale(38, 2)
            .unwrap(),
        ),
        Arc::new(
            Decimal128Array::from(vec![
                Some(-500),
                Some(700),
                None,
                None,
                None,
                None,
                Some(1),
                Some(2),
            ])
            .with_precision_and_scale(10, 2)
            .unwrap(),
        ),
        Arc::new(Date32Array::from(vec![
            Some(-719_468),
            Some(19_000),
            None,
            Some(0),
            None,
            None,
            Some(1),
            Some(2),
        ])),
        Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![
            Some(-1),
            Some(1_700_000_000_123_456),
            None,
            None,
            Some(0),
            None,
            Some(1),
            Some(2),
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(false),
            None,
            Some(false),
            Some(false),
            None,
            None,
            Some(false),
            Some(true),
        ])),
        Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(f64::NAN),
            Some(-2.0),
            None,
            None,
            None,
            Some(1.0),
            Some(2.0),
        ])),
        Arc::new(Float32Array::from(vec![
            Some(0.5),
            Some(-1.0),
            None,
            None,
            None,
            None,
            Some(0.0),
            Some(0.25),
        ])),
        Arc::new(arrow::array::StringArray::from(vec![None::<&str>; 8])),
        Arc::new(StructArray::new(
            st_fields,
            vec![Arc::new(arrow::array::Int64Array::from(vec![
                Some(1),
                Some(1_000_000),
                None,
                Some(-3),
                Some(-1_000_000),
                Some(0),
                Some(1),
                Some(1),
            ]))],
            Some(NullBuffer::from(vec![
                true, false, true, true, false, true, true, true,
            ])),
        )),
    ];
    let batch = arrow::array::RecordBatch::try_new(schema, columns).unwrap();
    let t = t
        .append_batches([batch.slice(0, 5), batch.slice(5, 3)])
        .await
        .unwrap();
    let files = t.plan_files(&Predicate::True).await.unwrap().data_files();
    assert_eq!(files.len(), 1);
    let file = &files[0];
    assert!(file.row_group_rows.len() >= 3, "{:?}", file.row_group_rows);

    let got = |id: i32| {
        let stats = &file.column_stats[&FieldId(id)];
        (stats.min.clone(), stats.max.clone(), stats.null_count)
    };
    let bounds = |min: Value, max: Value, nulls: u64| (Some(min), Some(max), Some(nulls));
    assert_eq!(got(1), bounds(Value::Long(0), Value::Long(7), 0));
    assert_eq!(got(2), bounds(Value::Int(-7), Value::Int(i32::MAX), 2));
    // The longest string is the largest: its bound is cut, its last character raised.
    let next = char::from_u32('龍' as u32 + 1).unwrap();
    let upper = format!("{}{next}", "龍".repeat(tarn_core::TRUNCATE_LENGTH - 1));
    assert_eq!(
        got(3),
        bounds(Value::String(String::new()), Value::String(upper), 2)
    );
    // Sixteen 0xff bytes cannot be raised into a shorter upper bound.
    assert_eq!(got(4), (Some(Value::Binary(vec![])), None, Some(3)));
    assert_eq!(
        got(5),
        bounds(Value::Decimal(huge), Value::Decimal(-huge), 2)
    );
    assert_eq!(got(6), bounds(Value::Decimal(-500), Value::Decimal(700), 4));
    assert_eq!(got(7), bounds(Value::Int(-719_468), Value::Int(19_000), 3));
    assert_eq!(
        got(8),
        bounds(Value::Long(-1), Value::Long(1_700_000_000_123_456), 3)
    );
    assert_eq!(
        got(9),
        bounds(Value::Boolean(false), Value::Boolean(true), 3)
    );
    assert_eq!(
        got(10),
        (None, None, Some(3)),
        "a NaN makes float bounds unknown"
    );
    assert_eq!(got(11), bounds(Value::Float(-1.0), Value::Float(0.5), 4));
    assert_eq!(got(12), (None, None, Some(8)));
    // The struct's NULL rows count as NULL for its field, whatever their child slots hold.
    assert_eq!(got(14), bounds(Value::Long(-3), Value::Long(1), 3));
}

/// Data files are compressed as the table's `write.parquet.compression-codec` says, zstd
/// unless it says otherwise, and read back the same either way.
#[tokio::test]
async fn data_files_are_compressed_with_the_tables_codec() {
    use parquet::basic::Compression;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let w = memory_warehouse("codec").await;
    for (codec, expected) in [
        (None, "ZSTD"),
        (Some("snappy"), "SNAPPY"),
        (Some("lz4"), "LZ4_RAW"),
        (Some("uncompressed"), "UNCOMPRESSED"),
    ] {
        let mut definition = events_definition(false);
        if let Some(codec) = codec {
            definition.properties.insert(
                tarn_core::COMPRESSION_CODEC_PROPERTY.to_string(),
                codec.to_string(),
            );
        }
        let name = codec.unwrap_or("default");
        let t = w.create_table("ns", name, definition).await.unwrap();
        let t = t.append_batches([events(0..10_000, 3)]).await.unwrap();
        let files = t.plan_files(&Predicate::True).await.unwrap().data_files();
        assert_eq!(files.len(), 1);
        assert_eq!(codecs(&t, &files[0]).await, [expected; 3], "{name}");
        assert_eq!(
            read_ids(&t).await,
            (0..10_000).collect::<Vec<_>>(),
            "{name}"
        );
        // A small file is written uncompressed, whatever the codec: setting one up per
        // column costs more than it saves.
        let t = t.append_batches([events(10_000..10_003, 3)]).await.unwrap();
        let files = t.plan_files(&Predicate::True).await.unwrap().data_files();
        let small = files.iter().find(|f| f.record_count == 3).unwrap();
        assert_eq!(codecs(&t, small).await, ["UNCOMPRESSED"; 3], "{name}");
        assert_eq!(
            read_ids(&t).await,
            (0..10_003).collect::<Vec<_>>(),
            "{name}"
        );
    }

    async fn codecs(t: &tarn_core::Table, file: &tarn_core::DataFile) -> Vec<String> {
        let reader = SerializedFileReader::new(data_file_bytes(t, file).await).unwrap();
        let columns = reader.metadata().row_group(0).columns();
        columns
            .iter()
            .map(|column| match column.compression() {
                Compression::ZSTD(_) => "ZSTD".to_string(),
                other => other.to_string(),
            })
            .collect()
    }
}
