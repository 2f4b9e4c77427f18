//! `icp-audit run` starts itself again with glibc's huge-page tunable (src/hugepages.rs) when
//! `ICP_AUDIT_HUGE_PAGES_FROM` asks for it and the inputs are that large, unless the kernel's
//! huge pages are off or the operator has set `GLIBC_TUNABLES`; `--timings` says which, and the
//! decisions are the same either way.

use crate::harness::{RUN, Test};
use icp_audit::hugepages;

const INSTANCES: &str =
    "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip
i-1,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4
i-2,100,cn-hangzhou,PostPaid,2099-12-31T15:59Z,5,1.2.3.5
i-3,200,ap-southeast-1,PrePaid,2028-01-01,5,1.2.3.6
";
const REQUESTS: &str = "request_id,account_id,instance_id,requested_at
r1,100,i-1,2026-11-29
r2,100,i-2,2026-11-29
r3,100,i-3,2026-11-29
";

/// The `--timings` line's word on huge pages (`asked` or `not asked`), and `decisions.csv`,
/// of a dry run with `GLIBC_TUNABLES` set to `tunables` (or removed) and the size from which
/// huge pages are asked set to `from` bytes (or left at its default).
fn dry_run(name: &str, tunables: Option<&str>, from: Option<&str>) -> (String, String) {
    let ran = Test::new(name)
        .file("instances.csv", INSTANCES)
        .file("requests.csv", REQUESTS)
        .env("GLIBC_TUNABLES", tunables)
        .env(hugepages::MARKER, None)
        .env(hugepages::FROM_VAR, from)
        .args(RUN)
        .args(["--dry-run", "--timings"])
        .run()
        .expect(0);
    let stderr = ran.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("timings:"))
        .unwrap_or_else(|| panic!("no --timings line in {stderr}"));
    let word = line
        .split("; huge pages ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("--timings does not say whether huge pages were asked: {line}"));
    (word.to_string(), ran.read("out/decisions.csv"))
}

#[test]
fn a_run_asks_for_huge_pages_only_when_told_and_unless_the_operator_chose() {
    // The inputs here are a few hundred bytes: huge pages asked from 0 bytes, to see the restart.
    let (default, decided) = dry_run("huge-default", None, Some("0"));
    // The kernel's setting is the restart's one condition that a test does not set.
    let on = hugepages::kernel_thp_on();
    let expected = if cfg!(all(target_os = "linux", target_env = "gnu")) && on {
        "asked"
    } else {
        "not asked"
    };
    assert_eq!(default, expected, "with no GLIBC_TUNABLES");
    let (small, _) = dry_run("huge-small", None, None);
    assert_eq!(small, "not asked", "not asked for by default");
    let (below, _) = dry_run("huge-below", None, Some("100000"));
    assert_eq!(below, "not asked", "inputs below the size set");

    let (declined, decided_without) =
        dry_run("huge-declined", Some("glibc.malloc.hugetlb=0"), Some("0"));
    assert_eq!(
        declined, "not asked",
        "GLIBC_TUNABLES=glibc.malloc.hugetlb=0 is kept"
    );
    let (other, _) = dry_run("huge-other", Some("glibc.malloc.arena_max=2"), Some("0"));
    assert_eq!(
        other, "not asked",
        "another tunable is kept, and nothing added"
    );
    let (own, _) = dry_run("huge-own", Some("glibc.malloc.hugetlb=1"), None);
    assert_eq!(
        own, "asked",
        "the operator's own request is seen, at any size"
    );

    assert_eq!(decided, decided_without, "huge pages change no decision");
    assert_eq!(decided.lines().count(), 4, "{decided}");
}
