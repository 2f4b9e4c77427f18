//! Transparent huge pages for a large run's tables, when the operator asks for them. A large run
//! looks its rows up at random in tables of gigabytes: with 4 KiB pages nearly every lookup also
//! misses the TLB, and on a virtual machine each miss walks two page tables. glibc's `malloc`
//! asks the kernel for huge pages (`madvise(MADV_HUGEPAGE)`) when started with
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`; the variable is read only as a program starts, so
//! with `ICP_AUDIT_HUGE_PAGES_FROM=BYTES` set, `icp-audit run` over inputs of at least that size
//! starts itself again with it, once, before it opens anything (the same process: `exec` keeps
//! its id). It does not by default: getting huge pages costs the kernel a compaction and a
//! clearing of 2 MiB at a time, and the run reserves room it never touches (the tables' texts,
//! the fingerprint buckets), which 4 KiB pages leave unbacked and a huge page may back whole (a
//! 10M run held about 110 MiB more with them): on one machine huge pages made a 10M run a fifth
//! faster, on another every size slower. Nor does it
//! when the kernel's huge pages are off, when `GLIBC_TUNABLES` is already set (the operator's
//! own choice), or when starting again fails, in which case the run goes on as it is. The
//! measurements are in README › Performance › The machine and `benches/HISTORY.md`.

use std::ffi::OsStr;

/// What the run asks of glibc.
pub const TUNABLE: &str = "glibc.malloc.hugetlb=1";
/// Set beside `TUNABLE` on the second start, so that a system that drops `GLIBC_TUNABLES`
/// (a program run with raised privileges) is not started again and again.
pub const MARKER: &str = "ICP_AUDIT_RESTARTED";
/// When set to a number of bytes, the inputs' size (the three files together) from which a run
/// asks for huge pages (0: at any size); unset, or not a number, it never does.
pub const FROM_VAR: &str = "ICP_AUDIT_HUGE_PAGES_FROM";

/// The kernel's setting for transparent huge pages, e.g. `always [madvise] never`.
const KERNEL_SETTING: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// Whether `thp`, the kernel's setting (`None` where there is no such file, as on a kernel
/// without huge pages), lets a program have huge pages.
fn thp_on(thp: Option<&str>) -> bool {
    thp.is_some_and(|s| !s.contains("[never]"))
}

/// Whether a process can hold huge pages: `malloc` asked for them (`tunables`, see `asked`), or
/// the kernel gives them unasked (`thp`, its setting, is `always`). Only then is it worth
/// reading `/proc/self/smaps_rollup` for them, which walks every page the process holds (about
/// 2 ms at 300 MiB, on the run's serial path at each phase's end).
pub fn may_get(tunables: Option<&OsStr>, thp: Option<&str>) -> bool {
    asked(tunables) || thp.is_some_and(|s| s.contains("[always]"))
}

/// `may_get` for this process and kernel.
pub fn may_get_here() -> bool {
    may_get(
        std::env::var_os("GLIBC_TUNABLES").as_deref(),
        std::fs::read_to_string(KERNEL_SETTING).ok().as_deref(),
    )
}

/// Whether this kernel's transparent huge pages are on (`always` or `madvise`).
pub fn kernel_thp_on() -> bool {
    thp_on(std::fs::read_to_string(KERNEL_SETTING).ok().as_deref())
}

/// Whether to start again with `TUNABLE`: `tunables` is `GLIBC_TUNABLES` as found, `restarted`
/// whether `MARKER` is set, `thp` the kernel's setting (see `thp_on`), `input` the inputs'
/// size in bytes and `from` the size from which huge pages are asked (`None`: never).
pub fn should_restart(
    tunables: Option<&OsStr>,
    restarted: bool,
    thp: Option<&str>,
    input: u64,
    from: Option<u64>,
) -> bool {
    tunables.is_none() && !restarted && thp_on(thp) && from.is_some_and(|f| input >= f)
}

/// The size from which huge pages are asked: `FROM_VAR` when it is a number, else `None`.
fn from(var: Option<&OsStr>) -> Option<u64> {
    var.and_then(OsStr::to_str)
        .and_then(|v| v.trim().parse().ok())
}

/// The size in bytes of the files at `paths` together (a file that cannot be read counts 0:
/// the run reports it).
pub fn input_size<'a>(paths: impl IntoIterator<Item = &'a std::path::Path>) -> u64 {
    paths
        .into_iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
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

/// Starts this program again with `TUNABLE` when `should_restart` says so for inputs of `input`
/// bytes; returns only when it does not (or cannot: the run then goes on without huge pages).
pub fn restart_with_huge_pages(input: u64) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let thp = std::fs::read_to_string(KERNEL_SETTING).ok();
        let tunables = std::env::var_os("GLIBC_TUNABLES");
        let restarted = std::env::var_os(MARKER).is_some();
        let from = from(std::env::var_os(FROM_VAR).as_deref());
        if !should_restart(tunables.as_deref(), restarted, thp.as_deref(), input, from) {
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
    fn huge_pages_are_looked_for_only_when_asked_or_given_unasked() {
        let asked = Some(OsStr::new("glibc.malloc.hugetlb=1"));
        assert!(may_get(asked, MADVISE));
        assert!(may_get(None, Some("[always] madvise never")));
        assert!(!may_get(None, MADVISE));
        assert!(!may_get(None, None));
        assert!(!may_get(
            Some(OsStr::new("glibc.malloc.hugetlb=0")),
            MADVISE
        ));
    }

    #[test]
    fn restarts_only_when_huge_pages_are_on_and_the_choice_is_still_open() {
        let big = |tunables, restarted, thp| should_restart(tunables, restarted, thp, 9, Some(0));
        assert!(big(None, false, MADVISE));
        assert!(big(None, false, Some("[always] madvise never")));
        assert!(!big(None, false, Some("always madvise [never]")));
        assert!(!big(None, false, None));
        // The operator's own GLIBC_TUNABLES, whatever it says, is left alone.
        assert!(!big(
            Some(OsStr::new("glibc.malloc.hugetlb=0")),
            false,
            MADVISE
        ));
        assert!(!big(
            Some(OsStr::new("glibc.malloc.arena_max=2")),
            false,
            MADVISE
        ));
        // Started again already (GLIBC_TUNABLES dropped on the way): not again.
        assert!(!big(None, true, MADVISE));
    }

    #[test]
    fn restarts_only_when_asked_and_for_inputs_of_the_size_asked() {
        const GIB: u64 = 1 << 30;
        assert!(should_restart(None, false, MADVISE, GIB, Some(GIB)));
        assert!(should_restart(None, false, MADVISE, GIB + 1, Some(GIB)));
        assert!(!should_restart(None, false, MADVISE, GIB - 1, Some(GIB)));
        assert!(
            should_restart(None, false, MADVISE, 0, Some(0)),
            "0: at any size"
        );
        assert!(
            !should_restart(None, false, MADVISE, u64::MAX, None),
            "not asked"
        );
        assert_eq!(from(None), None);
        assert_eq!(from(Some(OsStr::new("0"))), Some(0));
        assert_eq!(from(Some(OsStr::new(" 4096 "))), Some(4096));
        assert_eq!(
            from(Some(OsStr::new("two gigabytes"))),
            None,
            "not a number"
        );
        assert_eq!(from(Some(OsStr::new("-1"))), None, "not a size");
    }

    #[test]
    fn the_input_size_adds_the_files_up_and_counts_a_missing_one_as_empty() {
        let dir = std::env::temp_dir().join(format!("icp-audit-sizes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.csv"), dir.join("b.csv"));
        std::fs::write(&a, [b'x'; 1000]).unwrap();
        std::fs::write(&b, [b'y'; 24]).unwrap();
        let missing = dir.join("missing.csv");
        assert_eq!(
            input_size([a.as_path(), b.as_path(), missing.as_path()]),
            1024
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
