//! `cargo bench`: the end-to-end benchmark against the DuckDB baseline. It runs
//! `benches/run.sh` with the binary cargo has just built for benchmarking (the release profile),
//! so the script does not build one of its own. The figures and the verdict on each target are
//! the script's output; its exit status is this benchmark's (1 when a target is missed).
//!
//! `cargo bench -- 1000000` runs one size; the script's environment (ROUNDS, JOBS_ROUNDS, SEED,
//! KEEP, BENCH_TIMER) passes through.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    // Cargo adds `--bench` (and a filter, when one is given) to a benchmark's arguments: the
    // sizes are the arguments that are numbers.
    let sizes: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/run.sh");
    let status = Command::new("bash")
        .arg(script)
        .args(&sizes)
        .env("ICP_AUDIT_BIN", env!("CARGO_BIN_EXE_icp-audit"))
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().map_or(1, |c| c.clamp(1, 255) as u8)),
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "cannot run `bash {script}`: {e}");
            ExitCode::FAILURE
        }
    }
}
