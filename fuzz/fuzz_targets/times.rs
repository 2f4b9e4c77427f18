#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| icp_audit_fuzz::times(data));
