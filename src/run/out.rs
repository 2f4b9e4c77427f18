//! The `--out` folder: what a run writes there, and the checks that keep it from writing over
//! an input, a ledger or another run's hand-off. All of it runs before the ledger is touched,
//! but for the removal of an earlier run's stale output once the reports are in place.

use super::ledger_out_named;
use crate::cli::RunConfig;
use crate::error::{Error, Result};
use crate::paths;
use std::fs;
use std::path::{Path, PathBuf};

/// The names the run writes into `--out`.
pub const OUTPUTS: [&str; 6] = [
    "decisions.csv",
    "denials.csv",
    "issued.csv",
    "input-errors.csv",
    "summary.json",
    "report.html",
];

/// The output a run given waivers writes as well.
pub const WAIVED: &str = "waived.csv";

/// Every name a run may write into `--out`.
fn every_output() -> impl Iterator<Item = &'static str> {
    OUTPUTS.into_iter().chain([WAIVED])
}

/// Refuses an `--out` that would overwrite an input, and a `--ledger-out` (or the ledger
/// rewritten in place) that is a folder, the `--out` folder, one of the outputs, a lock file or
/// another input. A path whose target cannot be told (a loop of links) is refused too. A dry
/// run writes no ledger: what would refuse a real run for its ledger is returned instead, as a
/// warning, so that a dry run of the nightly command still tells of it.
pub(super) fn refuse_overwrites(cfg: &RunConfig) -> Result<Vec<String>> {
    // Each path made canonical once (it may not exist yet); one whose target cannot be told is
    // refused.
    let canonical = |p: &Path| -> Result<PathBuf> {
        paths::canonical(p).ok_or_else(|| {
            Error::refused(format!(
                "cannot tell where `{}` leads (a loop of links?)",
                p.display()
            ))
        })
    };
    let mut inputs = Vec::new();
    for p in [&cfg.instances, &cfg.requests, &cfg.ledger]
        .into_iter()
        .chain(cfg.policy.as_ref())
        .chain(cfg.waivers.as_ref())
    {
        inputs.push((p.as_path(), canonical(p)?));
    }
    let ledger_out = canonical(&cfg.ledger_out)?;
    let mut outputs = Vec::new();
    for name in every_output() {
        let path = cfg.out.join(name);
        let target = canonical(&path)?;
        // `waived.csv` is written only with waivers (and a stale one removed only if a file).
        let writes_it = name != WAIVED || cfg.waivers.is_some();
        if let Some((input, _)) = inputs.iter().find(|(_, c)| *c == target) {
            return Err(Error::refused(format!(
                "--out {}: writing `{name}` there would overwrite `{}`",
                cfg.out.display(),
                input.display()
            )));
        }
        // An output is renamed into place, which a folder there refuses: found only then, it
        // would stop the run after the ledger took its codes.
        if writes_it && fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Err(Error::refused(format!(
                "--out {}: `{name}` there is a folder, where the run writes a file; nothing was written",
                cfg.out.display()
            )));
        }
        outputs.push((name, target));
    }
    let ledger_trouble = ledger_out_trouble(cfg, &inputs, &outputs, &ledger_out, &canonical)?;
    if cfg.dry_run {
        refuse_replacing_a_handoff(&cfg.out)?;
        return Ok(ledger_trouble
            .into_iter()
            .map(|why| rehearsed(&why))
            .collect());
    }
    match ledger_trouble {
        Some(why) => Err(Error::refused(why)),
        None => Ok(Vec::new()),
    }
}

/// A refusal of the real run as a dry run tells it (a warning: the dry run goes on).
pub(super) fn rehearsed(why: &str) -> String {
    let why = why.strip_suffix("; nothing was written").unwrap_or(why);
    format!("a real run would be refused (exit 2): {why}")
}

/// Why the new ledger cannot be written where it would be (`ledger_out`, made canonical), if it
/// cannot: a folder, the `--out` folder, one of the outputs (`outputs`), a lock file, or an input
/// other than the ledger itself.
fn ledger_out_trouble(
    cfg: &RunConfig,
    inputs: &[(&Path, PathBuf)],
    outputs: &[(&str, PathBuf)],
    ledger_out: &Path,
    canonical: &dyn Fn(&Path) -> Result<PathBuf>,
) -> Result<Option<String>> {
    let named = ledger_out_named(cfg, &cfg.ledger_out);
    // The ledger itself, when it is a folder, is refused as an input, with its own name.
    // A path ending in `/` names a folder even before it exists (it would fail only at the
    // rename, after all the work).
    let slash = cfg
        .ledger_out
        .as_os_str()
        .as_encoded_bytes()
        .ends_with(b"/");
    if slash || (cfg.ledger_out != cfg.ledger && cfg.ledger_out.is_dir()) {
        return Ok(Some(format!("{named}: is a folder, not a file")));
    }
    if let Some((name, _)) = outputs.iter().find(|(_, c)| c == ledger_out) {
        return Ok(Some(format!(
            "{named}: is where the run writes its `{name}` (--out {})",
            cfg.out.display()
        )));
    }
    if ledger_out == canonical(&cfg.out)? {
        return Ok(Some(match cfg.ledger_out_given {
            true => format!("{named}: is the --out folder"),
            false => format!(
                "--out {}: is {named}, which the run rewrites in place; give the outputs a \
                 folder of their own",
                cfg.out.display()
            ),
        }));
    }
    // A lock file is no ledger: replaced, the ledger it locks would have two locks, the old
    // file a run holds and the new one the next run takes.
    let lock_name = |n: &std::ffi::OsStr| {
        let n = n.as_encoded_bytes();
        n.len() >= 5 && n[n.len() - 5..].eq_ignore_ascii_case(b".lock")
    };
    if ledger_out.file_name().is_some_and(lock_name) {
        return Ok(Some(format!(
            "{named}: names a lock file (`.lock`), not a ledger"
        )));
    }
    // Every input but the ledger itself (the third: `--ledger ./instances.csv` names the same
    // path as the inventory, and must not hide it).
    let mut read_only = inputs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, input)| input);
    Ok(read_only
        .find(|(_, c)| c == ledger_out)
        .map(|(input, _)| format!("{named}: would overwrite the input `{}`", input.display())))
}

/// Refuses a dry run whose `--out` holds an `issued.csv` with codes in it: the hand-off of a
/// real run, which the dry run's `issued.csv` (a header only) would replace.
fn refuse_replacing_a_handoff(out: &Path) -> Result<()> {
    let path = out.join("issued.csv");
    if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let refuse = || {
        Err(Error::refused(format!(
            "--out {}: its issued.csv hands over codes a real run issued, which this dry run \
             would replace with none; give the dry run another --out; nothing was written",
            out.display()
        )))
    };
    // One this run cannot read may hold codes as well.
    let Ok(file) = fs::File::open(&path) else {
        return refuse();
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(std::io::BufReader::new(file));
    let code = rdr
        .byte_headers()
        .ok()
        .and_then(|h| crate::input::table::header_names(h, "").ok())
        .and_then(|h| h.iter().position(|c| c == "code"));
    // A row with a code in it: a code handed over (a file that cannot be read to its end is
    // taken to hold one).
    let mut record = csv::ByteRecord::new();
    let handed_over = code.is_some_and(|at| {
        loop {
            match rdr.read_byte_record(&mut record) {
                Ok(false) => break false,
                Ok(true) if record.get(at).is_some_and(|c| !c.trim_ascii().is_empty()) => {
                    break true;
                }
                Ok(true) => {}
                Err(_) => break true,
            }
        }
    });
    if handed_over {
        return refuse();
    }
    Ok(())
}

/// Creates `--out` and proves it writable before the ledger is touched.
pub(super) fn prepare_out(out: &Path) -> Result<()> {
    let refuse = |e: std::io::Error| {
        Error::refused(format!(
            "--out {}: cannot write there: {e}; nothing was written",
            out.display()
        ))
    };
    fs::create_dir_all(out).map_err(refuse)?;
    let probe = out.join(format!(".icp-audit-probe-{}", std::process::id()));
    // Made new, never opened through what is there (a link planted under the name in a folder
    // others write to must not truncate where it points): what is there is removed first.
    let _ = fs::remove_file(&probe);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(refuse)?;
    fs::remove_file(&probe).map_err(refuse)?;
    remove_dead_outputs(out);
    Ok(())
}

/// Removes the outputs that runs killed while writing them left in `out` under their temporary
/// names (`.issued.csv.tmp-PID`: a killed run's hand-off holds codes). Several runs may share
/// an `--out` folder, and a live run holds a lock on each of its temporary files until it puts
/// it in place (`report::Staged`): only a file that no process holds, and that is more than a
/// minute old (a run locks its file a moment after making it), is removed. Locks, unlike
/// process ids, are seen the same from every process namespace.
fn remove_dead_outputs(out: &Path) {
    let Ok(entries) = fs::read_dir(out) else {
        return;
    };
    let old = |m: &fs::Metadata| {
        m.modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 60)
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_output_temp) {
            continue;
        }
        // Young files are left alone before anything else: a live run locks its file a moment
        // after making it, and is not made to wait for this look.
        if !fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_file() && old(&m)) {
            continue;
        }
        // Opened without following a link and without waiting (a pipe swapped in meanwhile
        // must not hold the run, which holds the ledger's lock); only a regular file goes on.
        let mut opts = fs::OpenOptions::new();
        opts.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
        }
        let Ok(file) = opts.open(entry.path()) else {
            continue;
        };
        let unheld = file.try_lock().is_ok();
        if unheld && file.metadata().is_ok_and(|m| m.is_file() && old(&m)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether `name` is an output's temporary name: `.<output>.tmp-<pid>`, or
/// `.<output>.tmp-<pid>-<hex>` (`report::stage`).
fn is_output_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    every_output().any(|output| {
        let Some(tail) = rest
            .strip_prefix(output)
            .and_then(|t| t.strip_prefix(".tmp-"))
        else {
            return false;
        };
        let (pid, salt) = tail.split_once('-').unwrap_or((tail, ""));
        !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && salt.bytes().all(|b| b.is_ascii_hexdigit())
            && salt.is_empty() != tail.contains('-')
    })
}

/// Removes an output an earlier run left. A folder of that name is no earlier run's file: it
/// is left as it is.
pub(super) fn remove_stale(stale: &Path) -> Result<()> {
    let folder = fs::symlink_metadata(stale).is_ok_and(|m| m.is_dir());
    if !folder
        && let Err(e) = fs::remove_file(stale)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(Error::failed(format!(
            "{}: cannot remove an earlier run's file: {e}",
            stale.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writability probe is made new: a link planted under its name (in a folder others
    /// write to) is removed, not followed, so what it points to keeps its bytes.
    #[cfg(unix)]
    #[test]
    fn the_out_probe_never_writes_through_a_planted_link() {
        let dir = std::env::temp_dir().join(format!("icp-probe-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("out")).unwrap();
        let precious = dir.join("precious.txt");
        fs::write(&precious, "keep me").unwrap();
        let probe = dir
            .join("out")
            .join(format!(".icp-audit-probe-{}", std::process::id()));
        std::os::unix::fs::symlink(&precious, &probe).unwrap();
        prepare_out(&dir.join("out")).unwrap();
        assert_eq!(fs::read_to_string(&precious).unwrap(), "keep me");
        assert!(fs::symlink_metadata(&probe).is_err(), "the probe is gone");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_temporary_names_are_told_apart() {
        assert!(is_output_temp(".issued.csv.tmp-42"));
        assert!(is_output_temp(".report.html.tmp-7-00ff3a"));
        assert!(is_output_temp(".waived.csv.tmp-1-deadbeef01234567"));
        assert!(!is_output_temp("issued.csv.tmp-42"));
        assert!(!is_output_temp(".ledger.csv.tmp-42"));
        assert!(!is_output_temp(".issued.csv.tmp-x"));
        assert!(!is_output_temp(".issued.csv.tmp-42-"));
        assert!(!is_output_temp(".issued.csv.tmp-42-zz"));
        assert!(!is_output_temp(".issued.csv.tmp-"));
    }
}
