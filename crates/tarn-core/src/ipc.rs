//! Arrow IPC file encoding of manifests and manifest lists (LZ4-compressed buffers when large).

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use bytes::Bytes;

use crate::error::{Error, Result};

/// Batches with fewer rows are written uncompressed: the one-file manifest of an append gains
/// nothing from it. Larger ones (manifest lists, which every commit writes and which grow
/// with the number of manifests, and merged manifests) are compressed, so the bytes a commit
/// writes stay flat as history grows. LZ4 rather than zstd: a zstd context costs more to set
/// up than compressing a list takes, which showed in commit latency. (Readers take either;
/// older tables have zstd-compressed manifests.)
const COMPRESS_FROM_ROWS: usize = 64;

/// One batch as an Arrow IPC file, its buffers LZ4-compressed when it is large.
pub(crate) fn encode(batch: &RecordBatch) -> Result<Bytes> {
    let context = "encoding a manifest";
    let compression =
        (batch.num_rows() >= COMPRESS_FROM_ROWS).then_some(CompressionType::LZ4_FRAME);
    let options = IpcWriteOptions::default()
        .try_with_compression(compression)
        .map_err(|e| Error::arrow(context, e))?;
    let mut buf = Vec::new();
    let mut writer = FileWriter::try_new_with_options(&mut buf, &batch.schema(), options)
        .map_err(|e| Error::arrow(context, e))?;
    writer.write(batch).map_err(|e| Error::arrow(context, e))?;
    writer.finish().map_err(|e| Error::arrow(context, e))?;
    drop(writer);
    Ok(Bytes::from(buf))
}

/// The single batch of an Arrow IPC file (an empty batch of its schema when it has none).
pub(crate) fn decode(path: &str, bytes: Bytes) -> Result<RecordBatch> {
    let corrupt = |reason: String| Error::CorruptManifest {
        path: path.to_string(),
        reason,
    };
    let reader =
        FileReader::try_new(Cursor::new(bytes), None).map_err(|e| corrupt(e.to_string()))?;
    let schema: SchemaRef = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(e.to_string()))?;
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema)),
        1 => Ok(batches.into_iter().next().expect("one batch")),
        _ => arrow::compute::concat_batches(&schema, &batches).map_err(|e| corrupt(e.to_string())),
    }
}

/// Checks that `batch` starts with the columns of `expected`, by name and type.
pub(crate) fn check_leading_columns(
    path: &str,
    batch: &RecordBatch,
    expected: &[arrow::datatypes::Field],
) -> Result<()> {
    for (i, field) in expected.iter().enumerate() {
        let ok = batch.num_columns() > i
            && batch.schema().field(i).name() == field.name()
            && batch.column(i).data_type() == field.data_type();
        if !ok {
            return Err(Error::CorruptManifest {
                path: path.to_string(),
                reason: format!(
                    "column {i} must be '{}' of type {}",
                    field.name(),
                    field.data_type()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema, UInt64Type};

    use super::*;

    fn numbers(rows: u64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::UInt64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(UInt64Array::from_iter_values(
                (0..rows).map(|i| i % 10),
            ))],
        )
        .unwrap()
    }

    fn with(batch: &RecordBatch, compression: Option<CompressionType>) -> Bytes {
        let options = IpcWriteOptions::default()
            .try_with_compression(compression)
            .unwrap();
        let mut buf = Vec::new();
        let mut writer =
            FileWriter::try_new_with_options(&mut buf, &batch.schema(), options).unwrap();
        writer.write(batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        Bytes::from(buf)
    }

    #[test]
    fn large_batches_are_compressed_and_every_encoding_reads_back() {
        let large = numbers(1_000);
        let compressed = encode(&large).unwrap();
        assert!(compressed.len() < with(&large, None).len() / 2);
        let small = numbers(3);
        assert_eq!(encode(&small).unwrap(), with(&small, None));
        for bytes in [
            compressed,
            with(&large, Some(CompressionType::ZSTD)),
            with(&large, None),
        ] {
            let read = decode("m.arrow", bytes).unwrap();
            let values = read.column(0).as_primitive::<UInt64Type>();
            let expected: Vec<u64> = (0..1_000).map(|i| i % 10).collect();
            assert_eq!(values.values().to_vec(), expected);
        }
    }
}
