//! The outputs of a run (SPEC §5): `decisions.csv`, `denials.csv`, `issued.csv`,
//! `input-errors.csv`, `summary.json` and `report.html`, each written atomically into `--out`.
//! Every CSV cell that a spreadsheet would run as a formula is neutralised here, and nothing but
//! this module and `main` prints. The large tables are rendered on rayon's threads in pieces
//! and written in order.

mod counts;
pub(crate) mod csvrow;
mod html;
mod summary;
mod svg;
mod tables;
pub mod terminal;

use crate::direct::DirectWriter;
use crate::error::{Error, Result};
use crate::eval::{Decision, World};
use crate::input::{FileInfo, Problem};
use crate::issue::Issued;
use crate::ledger::{create_like, sync_dir};
use crate::policy::Policy;
use crate::policy::waivers::Waivers;
use crate::time::Time;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use counts::Counts;
pub use summary::Summary;
pub use tables::write_issued;

/// What the run was, for the summary and the report header.
pub struct Facts<'a> {
    pub policy: &'a Policy,
    pub instances: &'a FileInfo,
    pub requests: &'a FileInfo,
    pub ledger: &'a FileInfo,
    pub ledger_exists: bool,
    pub ledger_after: u64,
    /// Where the new ledger was written, as the command line named it (`--ledger-out`, or the
    /// ledger itself); `None` in a dry run, which writes none.
    pub ledger_out: Option<String>,
    pub as_of: Time,
    pub dry_run: bool,
    pub waivers: &'a Waivers,
    /// Per waiver, how many requests it exempted.
    pub waived: &'a [u64],
    /// Each check a waiver let a request pass (`waived.csv`).
    pub exemptions: &'a [crate::eval::Exemption],
    /// What the operator must be told (a dry run's rehearsal of the real run's refusals): on
    /// stderr, and in `summary.json`.
    pub warnings: Vec<String>,
}

/// Writes every output but `issued.csv` under temporary names; the caller puts them in place
/// (`Staged::publish`) once the ledger holds the codes they name.
pub fn write(
    out: &Path,
    world: &World<'_>,
    decisions: &[Decision],
    issued: &Issued,
    problems: &[&Problem],
    facts: &Facts<'_>,
) -> Result<(Summary, Vec<Staged>)> {
    // The two large tables are written side by side: while one thread copies a batch into its
    // file, the others render. `denials.csv`, the largest output and the phase's longest task,
    // is started on this thread; a thread that comes free (from `issued.csv`) takes the counts,
    // then `decisions.csv` (rayon steals the oldest job first). With the order the other way
    // round, the denials started only after `issued.csv` and the counts were done.
    let ((remedies, written), counts) = rayon::join(
        || {
            rayon::join(
                || tables::write_denials(out, world, decisions),
                || tables::write_decisions(out, world, decisions, issued),
            )
        },
        || Counts::of(world, decisions),
    );
    let mut staged = vec![written?];
    let (denials, remedies) = remedies?;
    staged.push(denials);
    staged.push(tables::write_input_errors(out, problems)?);
    // Only a run given waivers writes `waived.csv` (SPEC's outputs are the others).
    if !facts.waivers.source.is_empty() {
        staged.push(tables::write_waived(
            out,
            world,
            decisions,
            facts.exemptions,
        )?);
    }
    let summary = Summary::new(facts, &counts, decisions.len(), problems.len());
    staged.push(stage(&out.join("summary.json"), Durable::Renamed, |w| {
        serde_json::to_writer_pretty(&mut *w, &summary.json)?;
        w.write_all(b"\n")
    })?);
    let page = html::render(facts, &counts, &remedies);
    staged.push(stage(&out.join("report.html"), Durable::Renamed, |w| {
        w.write_all(page.as_bytes())
    })?);
    Ok((summary, staged))
}

/// Whether an output is synced to disk before it is renamed into place. Every output is renamed
/// into place whole; the hand-off of new codes is also synced, while the large reports, which a
/// re-run writes again, are left to the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    Synced,
    Renamed,
}

/// Renders rows `0..n` in parallel pieces and writes the pieces in order, a bounded batch at a
/// time; returns what each piece tallied. The output is the same for any number of threads.
pub fn write_in_pieces<T: Send>(
    w: &mut (impl Write + Send),
    n: usize,
    piece: impl Fn(std::ops::Range<usize>, &mut Vec<u8>) -> std::io::Result<T> + Sync,
) -> std::io::Result<Vec<T>> {
    use rayon::prelude::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const ROWS: usize = 4096;
    let batch = ROWS * rayon::current_num_threads().max(1) * 2;
    // Each piece's buffer starts as large as the largest piece so far, and a little more, so
    // that a table of long rows (denials: over 200 bytes a request) is not copied as it grows.
    let capacity = AtomicUsize::new(ROWS * 128);
    // Buffers written out are handed back and rendered into again: a buffer this large is a
    // mapping of its own, and a new one for every piece cost a fault per page and, when freed,
    // a wait for the other cores (a TLB flush).
    let spare: Mutex<Vec<Vec<u8>>> = Mutex::default();
    let render = |start: usize| -> std::io::Result<Vec<(Vec<u8>, T)>> {
        let end = (start + batch).min(n);
        let starts: Vec<usize> = (start..end).step_by(ROWS).collect();
        starts
            .into_par_iter()
            .map(|s| {
                let reused = spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let mut buf = reused.unwrap_or_default();
                buf.reserve(capacity.load(Ordering::Relaxed));
                let t = piece(s..(s + ROWS).min(end), &mut buf)?;
                capacity.fetch_max(buf.len() + buf.len() / 8, Ordering::Relaxed);
                Ok((buf, t))
            })
            .collect()
    };
    let mut tallies = Vec::new();
    let mut write = |rendered: Vec<(Vec<u8>, T)>| -> std::io::Result<()> {
        for (mut buf, t) in rendered {
            w.write_all(&buf)?;
            tallies.push(t);
            buf.clear();
            spare.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
        }
        Ok(())
    };
    // One batch is written while the next is rendered.
    let mut ready = Vec::new();
    for start in (0..n).step_by(batch) {
        let (written, rendered) =
            rayon::join(|| write(std::mem::take(&mut ready)), || render(start));
        written?;
        ready = rendered?;
    }
    write(ready)?;
    Ok(tallies)
}

/// An output written whole under a temporary name in its folder, waiting to be renamed into
/// place. Dropped unpublished (the run failed), it is removed.
#[must_use = "an output is only in place once published"]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    durable: Durable,
    published: bool,
    /// The temporary file, held open with an exclusive lock until it is published or removed:
    /// so another run sharing `--out` tells it from one a killed run left (`run`'s cleanup).
    _held: Option<fs::File>,
}

impl Staged {
    /// Renames the output into place (and, when durable, syncs its folder).
    pub fn publish(mut self) -> Result<()> {
        let fail = |e: std::io::Error| {
            Error::failed(format!("{}: cannot write: {e}", self.path.display()))
        };
        fs::rename(&self.tmp, &self.path).map_err(fail)?;
        self.published = true;
        if self.durable == Durable::Synced {
            sync_dir(crate::ledger::parent(&self.path)).map_err(fail)?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `path`'s contents to a temporary file in the same folder (synced when durable), to be
/// published later.
pub fn stage(
    path: &Path,
    durable: Durable,
    fill: impl FnOnce(&mut BufWriter<fs::File>) -> std::io::Result<()>,
) -> Result<Staged> {
    // Small: only small files come this way (the large tables go through `stage_large`).
    let open = |file| BufWriter::with_capacity(64 << 10, file);
    let close = |w: BufWriter<fs::File>| w.into_inner().map_err(|e| e.into_error());
    stage_through(path, durable, open, close, fill)
}

/// `stage` for the large tables: written in whole blocks past the page cache (`DirectWriter`),
/// where new page cache is what costs most on this kind of machine.
pub fn stage_large(
    path: &Path,
    durable: Durable,
    fill: impl FnOnce(&mut DirectWriter) -> std::io::Result<()>,
) -> Result<Staged> {
    stage_through(path, durable, DirectWriter::new, DirectWriter::finish, fill)
}

/// `stage` through the writer that `open` makes of the new file (and `close` turns back into
/// the file).
fn stage_through<W>(
    path: &Path,
    durable: Durable,
    open: impl FnOnce(fs::File) -> W,
    close: impl FnOnce(W) -> std::io::Result<fs::File>,
    fill: impl FnOnce(&mut W) -> std::io::Result<()>,
) -> Result<Staged> {
    let fail = |e: std::io::Error| Error::failed(format!("{}: cannot write: {e}", path.display()));
    let dir = crate::ledger::parent(path);
    // The process id names the run; a random part makes the name unique where process ids are
    // not (runs in separate process namespaces, each process 1, sharing `--out`).
    let mut salt = [0u8; 8];
    let _ = getrandom::fill(&mut salt);
    let staged = Staged {
        tmp: dir.join(format!(
            ".{}.tmp-{}-{}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id(),
            crate::digest::hex(&salt)
        )),
        path: path.to_path_buf(),
        durable,
        published: false,
        _held: None,
    };
    let file = create_like(&staged.tmp, path).map_err(fail)?;
    let mut staged = staged;
    // Waits for the lock: another run's clean-up may hold it a moment while it looks.
    staged._held = file.try_clone().ok().filter(|held| held.lock().is_ok());
    // An output that replaces a file keeps its mode (an operator may share the hand-off with a
    // group), but one that holds codes never keeps a mode that lets anyone read it (a file
    // made by `touch` is 0644): codes are secrets.
    #[cfg(unix)]
    if matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("issued.csv" | "decisions.csv")
    ) {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(fail)?.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            file.set_permissions(fs::Permissions::from_mode(mode & !0o007))
                .map_err(fail)?;
        }
    }
    let mut w = open(file);
    fill(&mut w).map_err(fail)?;
    let file = close(w).map_err(fail)?;
    if durable == Durable::Synced {
        file.sync_all().map_err(fail)?;
    }
    Ok(staged)
}

/// `n` and a noun, singular or plural as `n` asks: `1 rule`, `9 rules`.
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A cell as a spreadsheet will safely show it: one that would run as a formula gets a leading
/// apostrophe.
pub fn neutralise(s: &str) -> std::borrow::Cow<'_, str> {
    if crate::schema::looks_like_formula(s) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A staged output is held locked until published, so that another run's cleanup of
    /// killed runs' files leaves it alone; once in place, nothing holds it.
    #[test]
    fn a_staged_output_is_held_locked_until_published() {
        let dir = std::env::temp_dir().join(format!("icp-audit-held-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("issued.csv");
        let staged = stage(&path, Durable::Renamed, |w| w.write_all(b"a\n")).unwrap();
        let tmp = fs::File::open(&staged.tmp).unwrap();
        assert!(tmp.try_lock().is_err(), "a staged file is held");
        drop(tmp);
        staged.publish().unwrap();
        assert!(fs::File::open(&path).unwrap().try_lock().is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Two stagings of one output by one process (as two runs that are each process 1 in
    /// their own namespace would be) get names of their own: neither removes the other's.
    #[test]
    fn staged_names_are_unique_beyond_the_process_id() {
        let dir = std::env::temp_dir().join(format!("icp-audit-salt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("issued.csv");
        let a = stage(&path, Durable::Renamed, |w| w.write_all(b"a\n")).unwrap();
        let b = stage(&path, Durable::Renamed, |w| w.write_all(b"b\n")).unwrap();
        assert_ne!(a.tmp, b.tmp);
        assert_eq!(fs::read_to_string(&a.tmp).unwrap(), "a\n");
        drop((a, b));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_staged_output_appears_only_when_published() {
        let dir = std::env::temp_dir().join(format!("icp-audit-staged-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (kept, dropped) = (dir.join("kept.csv"), dir.join("dropped.csv"));
        let write = |path: &Path| stage(path, Durable::Synced, |w| w.write_all(b"a,b\n")).unwrap();
        let staged = [write(&kept), write(&dropped)];
        let names = || {
            let mut n: Vec<String> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert!(!kept.exists() && !dropped.exists());
        assert_eq!(names().len(), 2, "two temporary files: {:?}", names());
        let [k, d] = staged;
        k.publish().unwrap();
        drop(d);
        assert_eq!(fs::read_to_string(&kept).unwrap(), "a,b\n");
        assert_eq!(
            names(),
            ["kept.csv"],
            "the dropped output left nothing behind"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
