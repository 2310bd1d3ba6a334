//! Deletion vectors: the positions of a data file's deleted rows, so that DELETE, UPDATE and
//! MERGE can remove rows without rewriting the files that hold them (merge-on-read).
//!
//! ```text
//! data/deletes-<id>.bin   one object per commit, the blobs of many data files end to end
//!   blob: length (u32, big endian) | magic D1 D3 39 64 | positions | CRC-32 (u32, big endian)
//!         positions: a 64-bit Roaring bitmap in the portable format (RoaringFormatSpec),
//!         the CRC covers the magic and the positions; `length` counts the magic and the
//!         positions. This is the deletion-vector-v1 blob of Apache Iceberg.
//! manifest entry of the data file: dv_path, dv_offset (of the length field), dv_length
//!   (of the whole blob), dv_cardinality (positions in it)
//! ```
//!
//! A data file has at most one vector per version: deleting more rows of it writes the
//! union of the old vector and the new positions.

use std::collections::BTreeMap;
use std::io::Cursor;

use bytes::Bytes;
use roaring::RoaringTreemap;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::location::TableLocation;

/// The magic number that starts a deletion-vector blob (after its length).
const MAGIC: [u8; 4] = [0xD1, 0xD3, 0x39, 0x64];

/// Where a data file's deletion vector is stored, and how many positions it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeletionVector {
    /// The delete file, relative to the table root.
    pub path: String,
    /// Offset of the blob in the delete file.
    pub offset: u64,
    /// Length of the blob, its length field and checksum included.
    pub length: u64,
    /// Deleted positions.
    pub cardinality: u64,
}

/// One blob: the bitmap framed as the module documentation says.
pub fn encode_blob(positions: &RoaringTreemap) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(4 + positions.serialized_size());
    body.extend_from_slice(&MAGIC);
    positions
        .serialize_into(&mut body)
        .map_err(|e| Error::invalid("deletion vector", e.to_string()))?;
    let length = u32::try_from(body.len())
        .map_err(|_| Error::invalid("deletion vector", "larger than 4 GiB"))?;
    let mut blob = Vec::with_capacity(body.len() + 8);
    blob.extend_from_slice(&length.to_be_bytes());
    blob.extend_from_slice(&body);
    blob.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    Ok(blob)
}

/// Reads one blob back, checking its framing, checksum and cardinality.
pub fn decode_blob(
    vector: &DeletionVector,
    blob: &[u8],
    shown_path: &str,
) -> Result<RoaringTreemap> {
    let corrupt = |reason: String| Error::CorruptManifest {
        path: shown_path.to_string(),
        reason: format!("the deletion vector at offset {} {reason}", vector.offset),
    };
    if blob.len() < 12 || blob.len() as u64 != vector.length {
        return Err(corrupt(format!(
            "is {} bytes, where the manifest says {}",
            blob.len(),
            vector.length
        )));
    }
    let length = u32::from_be_bytes(blob[0..4].try_into().expect("four bytes")) as usize;
    if length + 8 != blob.len() {
        return Err(corrupt(
            "has a length field that does not match its size".into(),
        ));
    }
    let body = &blob[4..4 + length];
    if body[0..4] != MAGIC {
        return Err(corrupt(
            "does not start with the deletion-vector magic".into(),
        ));
    }
    let crc = u32::from_be_bytes(blob[4 + length..].try_into().expect("four bytes"));
    if crc32fast::hash(body) != crc {
        return Err(corrupt("fails its checksum".into()));
    }
    let positions = RoaringTreemap::deserialize_from(Cursor::new(&body[4..]))
        .map_err(|e| corrupt(format!("is not a Roaring bitmap ({e})")))?;
    if positions.len() != vector.cardinality {
        return Err(corrupt(format!(
            "holds {} positions, where the manifest says {}",
            positions.len(),
            vector.cardinality
        )));
    }
    Ok(positions)
}

/// A delete file built and not stored yet: a commit stores it with its other new objects.
#[derive(Debug)]
pub struct DeleteFile {
    /// The table-relative path it is to be stored at.
    pub path: String,
    pub bytes: Bytes,
    /// Where each data file's vector is in it, by the data file's table-relative path.
    pub vectors: BTreeMap<String, DeletionVector>,
}

/// Builds one new delete file holding the vectors of several data files (keyed by their
/// table-relative paths). Without vectors there is none: a row delta that only adds rows (a
/// MERGE that inserts only) has no deletes to store.
pub fn encode_delete_file(
    env: &Env,
    vectors: &BTreeMap<String, RoaringTreemap>,
) -> Result<Option<DeleteFile>> {
    if vectors.is_empty() {
        return Ok(None);
    }
    let path = format!("data/deletes-{}.bin", env.next_id());
    let mut bytes = Vec::new();
    let mut refs = BTreeMap::new();
    for (file, positions) in vectors {
        let blob = encode_blob(positions)?;
        refs.insert(
            file.clone(),
            DeletionVector {
                path: path.clone(),
                offset: bytes.len() as u64,
                length: blob.len() as u64,
                cardinality: positions.len(),
            },
        );
        bytes.extend_from_slice(&blob);
    }
    Ok(Some(DeleteFile {
        path,
        bytes: Bytes::from(bytes),
        vectors: refs,
    }))
}

/// Reads one deletion vector (a ranged read of its delete file).
pub async fn read_vector(
    location: &TableLocation,
    vector: &DeletionVector,
) -> Result<RoaringTreemap> {
    let blob = location
        .get_range(&vector.path, vector.offset..vector.offset + vector.length)
        .await?;
    decode_blob(vector, &blob, &location.describe(&vector.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_detect_damage() {
        let positions: RoaringTreemap = [0u64, 7, 8, 1 << 33].into_iter().collect();
        let blob = encode_blob(&positions).unwrap();
        assert_eq!(&blob[4..8], &MAGIC);
        let vector = DeletionVector {
            path: "data/deletes-x.bin".into(),
            offset: 0,
            length: blob.len() as u64,
            cardinality: 4,
        };
        assert_eq!(decode_blob(&vector, &blob, "x").unwrap(), positions);
        let mut damaged = blob.clone();
        damaged[10] ^= 0xFF;
        let err = decode_blob(&vector, &damaged, "x").unwrap_err();
        assert!(err.to_string().contains("fails its checksum"), "{err}");
        let wrong_count = DeletionVector {
            cardinality: 3,
            ..vector
        };
        assert!(decode_blob(&wrong_count, &blob, "x").is_err());
    }

    /// The bitmap bytes are the portable 64-bit Roaring format: an 8-byte count of 32-bit
    /// bitmaps, then each one's 4-byte high key and portable 32-bit bitmap.
    #[test]
    fn the_bitmap_is_the_portable_64_bit_format() {
        let positions: RoaringTreemap = [1u64, 2, 3].into_iter().collect();
        let blob = encode_blob(&positions).unwrap();
        let bitmap = &blob[8..blob.len() - 4];
        assert_eq!(&bitmap[0..8], &1u64.to_le_bytes(), "one 32-bit bitmap");
        assert_eq!(&bitmap[8..12], &0u32.to_le_bytes(), "its high key");
        let mut low = roaring::RoaringBitmap::new();
        low.extend([1u32, 2, 3]);
        let mut portable = Vec::new();
        low.serialize_into(&mut portable).unwrap();
        assert_eq!(&bitmap[12..], &portable[..]);
    }
}
