//! Helpers shared by the scan tests and `benches/scan_report.rs`.

pub mod scan;
pub mod variants;
