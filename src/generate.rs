//! Synthetic workloads for benchmarks (`icp-audit generate`).

use crate::error::{Error, Result};
use std::path::Path;

/// Writes instances.csv, ledger.csv and requests.csv into `out`.
pub fn write(out: &Path, instances: usize, requests: usize, seed: u64) -> Result<()> {
    let _ = (out, instances, requests, seed);
    Err(Error::failed("generate is not built yet"))
}
