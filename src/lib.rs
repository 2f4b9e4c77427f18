//! icp-audit as a library: the stages of the main job, for the binary, the fuzz targets and
//! benchmarks. The pipeline reads top to bottom in `run::run`.

pub mod cli;
pub mod code;
pub mod digest;
pub mod direct;
pub mod error;
pub mod eval;
pub mod generate;
pub mod hugepages;
pub mod input;
pub mod issue;
pub mod ledger;
pub mod paths;
pub mod phases;
pub mod policy;
pub mod policytest;
pub mod progress;
pub mod report;
pub mod run;
pub mod schema;
pub mod time;
