//! Helpers shared by the scan tests and `examples/scan_report.rs`.

pub mod scan;
pub mod variants;
