//! Transparent huge pages for a run's tables. A large run looks its rows up at random in tables
//! of gigabytes: with 4 KiB pages nearly every lookup also misses the TLB, and on a virtual
//! machine each miss walks two page tables. glibc's `malloc` asks the kernel for huge pages
//! (`madvise(MADV_HUGEPAGE)`) when started with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`; the
//! variable is read only as a program starts, so `icp-audit run` starts itself again with it,
//! once, before it opens anything (the same process: `exec` keeps its id). It does not when the
//! kernel's huge pages are off, when `GLIBC_TUNABLES` is already set (the operator's own choice:
//! `glibc.malloc.hugetlb=0` keeps 4 KiB pages), or when starting again fails, in which case the
//! run goes on as it is. The measurements are in
//! `benches/HISTORY.md` (the thirteenth session) and README › Performance › The machine.

use std::ffi::OsStr;

/// What the run asks of glibc.
pub const TUNABLE: &str = "glibc.malloc.hugetlb=1";
/// Set beside `TUNABLE` on the second start, so that a system that drops `GLIBC_TUNABLES`
/// (a program run with raised privileges) is not started again and again.
pub const MARKER: &str = "ICP_AUDIT_RESTARTED";

/// The kernel's setting for transparent huge pages, e.g. `always [madvise] never`.
const KERNEL_SETTING: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// Whether `thp`, the kernel's setting (`None` where there is no such file, as on a kernel
/// without huge pages), lets a program have huge pages.
fn thp_on(thp: Option<&str>) -> bool {
    thp.is_some_and(|s| !s.contains("[never]"))
}

/// Whether this kernel's transparent huge pages are on (`always` or `madvise`).
pub fn kernel_thp_on() -> bool {
    thp_on(std::fs::read_to_string(KERNEL_SETTING).ok().as_deref())
}

/// Whether to start again with `TUNABLE`: `tunables` is `GLIBC_TUNABLES` as found, `restarted`
/// whether `MARKER` is set, and `thp` the kernel's setting (see `thp_on`).
pub fn should_restart(tunables: Option<&OsStr>, restarted: bool, thp: Option<&str>) -> bool {
    tunables.is_none() && !restarted && thp_on(thp)
}

/// Whether `GLIBC_TUNABLES` asks `malloc` for huge pages (`glibc.malloc.hugetlb` set to
/// anything but 0; the last setting counts, as in glibc).
pub fn asked(tunables: Option<&OsStr>) -> bool {
    let Some(text) = tunables.and_then(OsStr::to_str) else {
        return false;
    };
    text.rsplit(':')
        .find_map(|item| item.strip_prefix("glibc.malloc.hugetlb="))
        .is_some_and(|v| !v.is_empty() && v != "0")
}

/// Starts this program again with `TUNABLE` when `should_restart` says so; returns only when it
/// does not (or cannot: the run then goes on without huge pages).
pub fn restart_with_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let thp = std::fs::read_to_string(KERNEL_SETTING).ok();
        let tunables = std::env::var_os("GLIBC_TUNABLES");
        let restarted = std::env::var_os(MARKER).is_some();
        if !should_restart(tunables.as_deref(), restarted, thp.as_deref()) {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut again = std::process::Command::new(exe);
        if let Some(name) = args.next() {
            again.arg0(name);
        }
        // `exec` returns only on failure: the run then goes on in this process.
        let _ = again
            .args(args)
            .env("GLIBC_TUNABLES", TUNABLE)
            .env(MARKER, "1")
            .exec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MADVISE: Option<&str> = Some("always [madvise] never\n");

    #[test]
    fn restarts_only_when_huge_pages_are_on_and_the_choice_is_still_open() {
        assert!(should_restart(None, false, MADVISE));
        assert!(should_restart(None, false, Some("[always] madvise never")));
        assert!(!should_restart(None, false, Some("always madvise [never]")));
        assert!(!should_restart(None, false, None));
        // The operator's own GLIBC_TUNABLES, whatever it says, is left alone.
        assert!(!should_restart(
            Some(OsStr::new("glibc.malloc.hugetlb=0")),
            false,
            MADVISE
        ));
        assert!(!should_restart(
            Some(OsStr::new("glibc.malloc.arena_max=2")),
            false,
            MADVISE
        ));
        // Started again already (GLIBC_TUNABLES dropped on the way): not again.
        assert!(!should_restart(None, true, MADVISE));
    }

    #[test]
    fn asked_reads_the_last_hugetlb_setting() {
        assert!(asked(Some(OsStr::new(TUNABLE))));
        assert!(asked(Some(OsStr::new(
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"
        ))));
        assert!(!asked(Some(OsStr::new("glibc.malloc.hugetlb=0"))));
        assert!(!asked(Some(OsStr::new(
            "glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0"
        ))));
        assert!(!asked(Some(OsStr::new("glibc.malloc.arena_max=2"))));
        assert!(!asked(None));
    }
}
