//! Arrow IPC file encoding of manifests, manifest lists and removed-files objects: an
//! Arrow IPC file, as a whole compressed in one LZ4 frame when it is large.

use std::io::{Cursor, Read, Write};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use bytes::Bytes;

use crate::error::{Error, Result};

/// Batches with fewer rows are written as plain Arrow IPC files: the one-file manifest of an
/// append gains nothing from compression. Larger ones (manifest lists, which every commit
/// writes and which grow with the number of manifests, and merged manifests) are
/// compressed, so the bytes a commit writes stay flat as history grows.
///
/// The whole file is one LZ4 frame rather than each buffer compressed by the IPC writer:
/// arrow-ipc starts a new LZ4 frame per buffer, each with its own 64 KiB buffers, which made
/// a manifest list of 64 to 100 rows take 4 to 10 times as long to encode as the plain file;
/// one frame over the file takes about twice as long, and compresses better, as it sees every
/// column at once. (Readers also take per-buffer LZ4 or ZSTD, which older tables have.)
const COMPRESS_FROM_ROWS: usize = 64;

/// The magic number an LZ4 frame starts with (little-endian 0x184D2204).
const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];

/// The name extension of an Arrow IPC file compressed as one LZ4 frame.
const COMPRESSED_EXTENSION: &str = "arrow.lz4";

/// One batch as an Arrow IPC file, compressed as one LZ4 frame when it is large; see
/// [`extension`] for the name it takes.
pub(crate) fn encode(batch: &RecordBatch) -> Result<Bytes> {
    let context = "encoding a manifest";
    let mut file = Vec::new();
    let mut writer =
        FileWriter::try_new(&mut file, &batch.schema()).map_err(|e| Error::arrow(context, e))?;
    writer.write(batch).map_err(|e| Error::arrow(context, e))?;
    writer.finish().map_err(|e| Error::arrow(context, e))?;
    drop(writer);
    if batch.num_rows() < COMPRESS_FROM_ROWS {
        return Ok(Bytes::from(file));
    }
    let io = |e: std::io::Error| Error::arrow(context, e.into());
    let mut frame = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(file.len() / 2));
    frame.write_all(&file).map_err(io)?;
    let compressed = frame.finish().map_err(|e| io(e.into()))?;
    Ok(Bytes::from(compressed))
}

/// The file name extension of an object [`encode`] made: `arrow` for an Arrow IPC file,
/// `arrow.lz4` for one compressed as an LZ4 frame (`lz4 -d` restores the Arrow file).
pub(crate) fn extension(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&LZ4_FRAME_MAGIC) {
        COMPRESSED_EXTENSION
    } else {
        "arrow"
    }
}

/// Whether the object at `path` is an LZ4-compressed Arrow IPC file, by its name.
pub(crate) fn is_compressed_object(path: &str) -> bool {
    path.strip_suffix(COMPRESSED_EXTENSION)
        .is_some_and(|stem| stem.ends_with('.'))
}

/// The single batch of an Arrow IPC file, plain or compressed as an LZ4 frame (an empty
/// batch of its schema when it has none).
pub(crate) fn decode(path: &str, bytes: Bytes) -> Result<RecordBatch> {
    let corrupt = |reason: String| Error::CorruptManifest {
        path: path.to_string(),
        reason,
    };
    let bytes = if bytes.starts_with(&LZ4_FRAME_MAGIC) {
        let mut file = Vec::with_capacity(bytes.len() * 3);
        lz4_flex::frame::FrameDecoder::new(&bytes[..])
            .read_to_end(&mut file)
            .map_err(|e| corrupt(e.to_string()))?;
        Bytes::from(file)
    } else {
        bytes
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
    use arrow::ipc::CompressionType;
    use arrow::ipc::writer::IpcWriteOptions;

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
        assert_eq!(extension(&compressed), "arrow.lz4");
        let small = numbers(3);
        assert_eq!(encode(&small).unwrap(), with(&small, None));
        assert_eq!(extension(&encode(&small).unwrap()), "arrow");
        for bytes in [
            compressed,
            with(&large, Some(CompressionType::LZ4_FRAME)),
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
