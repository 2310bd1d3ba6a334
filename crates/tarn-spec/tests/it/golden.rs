//! Golden metadata fixtures: every valid document round-trips; every invalid one fails with
//! exactly the message stored beside it in `<name>.error`.
//!
//! Run with `TARN_BLESS=1` to rewrite the `.error` files after an intended change, then
//! review the diff.

use std::fs;
use std::path::{Path, PathBuf};

use tarn_spec::TableMetadata;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/metadata")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn valid_metadata_round_trips() {
    for path in fixtures("valid") {
        let bytes = fs::read(&path).expect("fixture is readable");
        let metadata =
            TableMetadata::from_json(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = TableMetadata::from_json(&metadata.to_json()).expect("re-reads its own output");
        assert_eq!(again, metadata, "{}", path.display());
    }
}

#[test]
fn invalid_metadata_fails_with_the_recorded_message() {
    let bless = std::env::var_os("TARN_BLESS").is_some();
    for path in fixtures("invalid") {
        let bytes = fs::read(&path).expect("fixture is readable");
        let err = match TableMetadata::from_json(&bytes) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(e) => e.to_string(),
        };
        let expected_path = path.with_extension("error");
        if bless {
            fs::write(&expected_path, format!("{err}\n")).expect("writes the golden message");
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with TARN_BLESS=1)", expected_path.display()));
        assert_eq!(err, expected.trim_end(), "{}", path.display());
    }
}
