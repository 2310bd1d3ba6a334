//! Arrow IPC file encoding of manifests and manifest lists (zstd-compressed buffers when large).

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use bytes::Bytes;

use crate::error::{Error, Result};

/// Batches with fewer rows are written uncompressed: a zstd context per buffer costs more
/// than the bytes it saves on the one-file manifests and short lists most commits write.
const COMPRESS_FROM_ROWS: usize = 1024;

/// One batch as an Arrow IPC file, its buffers zstd-compressed when it is large.
pub(crate) fn encode(batch: &RecordBatch) -> Result<Bytes> {
    let context = "encoding a manifest";
    let compression = (batch.num_rows() >= COMPRESS_FROM_ROWS).then_some(CompressionType::ZSTD);
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
