//! File planning: pruning by statistics and partitions, manifest skipping, and the cost of
//! an append to a large table.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema};
use tarn_core::{CompareOp, Predicate, TableDefinition};
use tarn_spec::{Field, FieldId, PartitionField, PrimitiveType, Transform, Value};

use crate::common::*;

#[tokio::test]
async fn statistics_prune_files_and_manifests() {
    let w = memory_warehouse("prune-stats").await;
    let mut t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    for i in 0..10 {
        t = t
            .append_batches([events(i * 100..i * 100 + 100, 1)])
            .await
            .unwrap();
    }
    let schema = t.schema().clone();
    let p = Predicate::compare(&schema, "id", CompareOp::Eq, Value::Long(250)).unwrap();
    let plan = t.plan_files(&p).await.unwrap();
    assert_eq!(
        (plan.metrics.manifests_total, plan.metrics.manifests_kept),
        (10, 1)
    );
    assert_eq!((plan.metrics.files_total, plan.metrics.files_kept), (10, 1));
    assert_eq!(plan.record_count(), 100);

    let range = Predicate::compare(&schema, "id", CompareOp::GtEq, Value::Long(750))
        .unwrap()
        .and(Predicate::compare(&schema, "id", CompareOp::Lt, Value::Long(820)).unwrap());
    assert_eq!(t.plan_files(&range).await.unwrap().metrics.files_kept, 2);
    let either = Predicate::compare(&schema, "id", CompareOp::Lt, Value::Long(5))
        .unwrap()
        .or(Predicate::compare(&schema, "id", CompareOp::Gt, Value::Long(995)).unwrap());
    assert_eq!(t.plan_files(&either).await.unwrap().metrics.files_kept, 2);
    let none = Predicate::compare(&schema, "id", CompareOp::Gt, Value::Long(5000)).unwrap();
    assert_eq!(t.plan_files(&none).await.unwrap().metrics.manifests_kept, 0);
    let nulls = Predicate::IsNull { field: FieldId(1) };
    assert_eq!(
        t.plan_files(&nulls).await.unwrap().metrics.files_kept,
        0,
        "id has no nulls"
    );
}

#[tokio::test]
async fn pruning_never_drops_a_matching_file() {
    // A law, checked exhaustively on a small table: for every predicate, every file that
    // holds a matching row is kept.
    let w = memory_warehouse("prune-law").await;
    let mut t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    for i in 0..6 {
        t = t
            .append_batches([events(i * 7..i * 7 + 9, 4)])
            .await
            .unwrap();
    }
    let schema = t.schema().clone();
    let mut files = Vec::new();
    for file in t.plan_files(&Predicate::True).await.unwrap().data_files() {
        let ids = read_file_ids(&t, &file).await;
        files.push((file.path, ids));
    }
    let ops = [
        CompareOp::Eq,
        CompareOp::NotEq,
        CompareOp::Lt,
        CompareOp::LtEq,
        CompareOp::Gt,
        CompareOp::GtEq,
    ];
    for v in -1..60i64 {
        for op in ops {
            let p = Predicate::compare(&schema, "id", op, Value::Long(v)).unwrap();
            let plan = t.plan_files(&p).await.unwrap();
            let kept: Vec<String> = plan.data_files().into_iter().map(|f| f.path).collect();
            for (path, ids) in &files {
                let matches = ids.iter().any(|&x| match op {
                    CompareOp::Eq => x == v,
                    CompareOp::NotEq => x != v,
                    CompareOp::Lt => x < v,
                    CompareOp::LtEq => x <= v,
                    CompareOp::Gt => x > v,
                    CompareOp::GtEq => x >= v,
                });
                if matches {
                    assert!(kept.contains(path), "{op:?} {v} dropped {path}");
                }
            }
            if op == CompareOp::Eq && v >= 50 {
                assert!(
                    kept.is_empty(),
                    "no id is {v}, and every file's bounds say so"
                );
            }
        }
    }
}

#[tokio::test]
async fn bucket_partitions_prune_equality() {
    let w = memory_warehouse("buckets").await;
    let def = TableDefinition {
        fields: vec![Field::required(1, "id", PrimitiveType::Long)],
        partition_fields: vec![PartitionField {
            source_id: FieldId(1),
            field_id: FieldId(1000),
            name: "id_bucket".into(),
            transform: Transform::Bucket(8),
        }],
        properties: BTreeMap::new(),
    };
    let t = w.create_table("ns", "b", def).await.unwrap();
    let schema = Arc::new(ArrowSchema::new(vec![ArrowField::new(
        "id",
        DataType::Int64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from((0..400).collect::<Vec<i64>>()))],
    )
    .unwrap();
    let t = t.append_batches([batch]).await.unwrap();
    assert_eq!(t.snapshot().summary.total_files, 8);
    let p = Predicate::compare(t.schema(), "id", CompareOp::Eq, Value::Long(123)).unwrap();
    let plan = t.plan_files(&p).await.unwrap();
    assert_eq!(
        plan.metrics.files_kept, 1,
        "only the bucket of 123 can hold it"
    );
    let bucket = Transform::Bucket(8)
        .apply(PrimitiveType::Long, Some(&Value::Long(123)))
        .unwrap();
    assert_eq!(plan.data_files()[0].partition[0], bucket);
}

#[tokio::test]
async fn an_append_to_a_ten_thousand_file_table_writes_a_constant_number_of_objects() {
    let (store, w) = fault_warehouse().await;
    let def = TableDefinition {
        fields: vec![Field::required(1, "id", PrimitiveType::Long)],
        partition_fields: vec![PartitionField {
            source_id: FieldId(1),
            field_id: FieldId(1000),
            name: "id".into(),
            transform: Transform::Identity,
        }],
        properties: BTreeMap::new(),
    };
    let t = w.create_table("ns", "big", def).await.unwrap();
    let schema = Arc::new(ArrowSchema::new(vec![ArrowField::new(
        "id",
        DataType::Int64,
        false,
    )]));
    let batch = |ids: Vec<i64>| {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids))]).unwrap()
    };
    // One file per distinct id.
    let t = t
        .append_batches([batch((0..10_000).collect())])
        .await
        .unwrap();
    assert_eq!(t.snapshot().summary.total_files, 10_000);

    store.clear_calls();
    let t = t.append_batches([batch(vec![10_000])]).await.unwrap();
    let puts: Vec<String> = store
        .calls()
        .into_iter()
        .filter(|(op, _)| *op == Op::Put)
        .map(|(_, p)| p)
        .collect();
    let metadata_puts: Vec<&String> = puts.iter().filter(|p| p.contains("/metadata/")).collect();
    // A manifest, a manifest list, the version file and the hint.
    assert_eq!(metadata_puts.len(), 4, "{metadata_puts:#?}");
    assert_eq!(puts.len(), 5, "plus the one data file");
    assert_eq!(t.snapshot().summary.total_files, 10_001);
    let list_path = t.snapshot().manifest_list.clone().unwrap();
    let list = t.manifest_list().await.unwrap();
    assert_eq!(
        list.len(),
        2,
        "{list_path}: existing manifests are reused by reference"
    );
}
