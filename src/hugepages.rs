//! Transparent huge pages for a large run's tables. A large run looks its rows up at random in
//! tables of gigabytes: with 4 KiB pages nearly every lookup also misses the TLB, and on a virtual
//! machine each miss walks two page tables. glibc's `malloc` asks the kernel for huge pages
//! (`madvise(MADV_HUGEPAGE)`) when started with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`; the
//! variable is read only as a program starts, so `icp-audit run` starts itself again with it,
//! once, before it opens anything (the same process: `exec` keeps its id). It does so only when
//! the inputs are large (`LARGE`: getting huge pages costs the kernel a compaction and a 2 MiB
//! clearing, which smaller runs do not earn back), and not when the kernel's huge pages are off,
//! when `GLIBC_TUNABLES` is already set (the operator's own choice: `glibc.malloc.hugetlb=0`
//! keeps 4 KiB pages, `=1` asks at any size), or when starting again fails, in which case the run
//! goes on as it is. The measurements are in README › Performance › The machine and
//! `benches/HISTORY.md` (the thirteenth session).

use std::ffi::OsStr;

/// What the run asks of glibc.
pub const TUNABLE: &str = "glibc.malloc.hugetlb=1";
/// Set beside `TUNABLE` on the second start, so that a system that drops `GLIBC_TUNABLES`
/// (a program run with raised privileges) is not started again and again.
pub const MARKER: &str = "ICP_AUDIT_RESTARTED";
/// The inputs' size (the three files together, in bytes) from which a run asks for huge pages.
/// Measured on one machine, with and without them, alternating: at 1M rows (326 MiB of input)
/// and 3M (976 MiB) a run that got them was 5 % and 11 % slower; at 10M (3.2 GiB) 3 % faster,
/// and a fifth faster on another machine.
pub const LARGE: u64 = 2 << 30;
/// Replaces `LARGE` when set to a number of bytes (0: at any size).
pub const LARGE_VAR: &str = "ICP_AUDIT_HUGE_PAGES_FROM";

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
/// whether `MARKER` is set, `thp` the kernel's setting (see `thp_on`), `input` the inputs'
/// size in bytes and `large` the size from which huge pages pay (`LARGE`).
pub fn should_restart(
    tunables: Option<&OsStr>,
    restarted: bool,
    thp: Option<&str>,
    input: u64,
    large: u64,
) -> bool {
    tunables.is_none() && !restarted && thp_on(thp) && input >= large
}

/// The size from which huge pages are asked: `LARGE_VAR` when it is a number, else `LARGE`.
fn large(var: Option<&OsStr>) -> u64 {
    var.and_then(OsStr::to_str)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(LARGE)
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
        let large = large(std::env::var_os(LARGE_VAR).as_deref());
        if !should_restart(tunables.as_deref(), restarted, thp.as_deref(), input, large) {
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
        let big = |tunables, restarted, thp| should_restart(tunables, restarted, thp, LARGE, LARGE);
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
    fn restarts_only_for_large_inputs() {
        assert!(should_restart(None, false, MADVISE, LARGE, LARGE));
        assert!(should_restart(None, false, MADVISE, LARGE + 1, LARGE));
        assert!(!should_restart(None, false, MADVISE, LARGE - 1, LARGE));
        assert!(!should_restart(None, false, MADVISE, 0, LARGE));
        assert!(should_restart(None, false, MADVISE, 0, 0), "0: at any size");
        assert_eq!(large(None), LARGE);
        assert_eq!(large(Some(OsStr::new("0"))), 0);
        assert_eq!(large(Some(OsStr::new(" 4096 "))), 4096);
        assert_eq!(
            large(Some(OsStr::new("two gigabytes"))),
            LARGE,
            "not a number"
        );
        assert_eq!(large(Some(OsStr::new("-1"))), LARGE, "not a size");
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
