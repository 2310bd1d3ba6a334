//! Integration tests of tarn-spec.

mod golden;
