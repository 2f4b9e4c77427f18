//! The one integration-test binary: runs the real `icp-audit` executable on fixtures and
//! generated data in scratch folders.

mod cases;
mod codes;
mod generate;
mod hardening;
mod harness;
mod hugepages;
mod ledger;
mod limits;
mod policy;
mod policytest;
mod properties;
mod report;
mod waivers;
