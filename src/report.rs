//! The outputs of a run (SPEC §5): `decisions.csv`, `denials.csv`, `issued.csv`,
//! `input-errors.csv`, `summary.json` and `report.html`, each written atomically into `--out`.
//! Every CSV cell that a spreadsheet would run as a formula is neutralised here, and nothing but
//! this module and `main` prints. The large tables are rendered on rayon's threads in pieces
//! and written in order.

mod counts;
mod html;
mod summary;
mod svg;
mod tables;
pub mod terminal;

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
use std::path::Path;

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
    pub as_of: Time,
    pub dry_run: bool,
    pub waivers: &'a Waivers,
    /// Per waiver, how many requests it exempted.
    pub waived: &'a [u64],
}

/// Writes every output but `issued.csv` (which the caller writes right after the ledger).
pub fn write(
    out: &Path,
    world: &World<'_>,
    decisions: &[Decision],
    issued: &Issued,
    problems: &[&Problem],
    facts: &Facts<'_>,
) -> Result<Summary> {
    // The two large tables are written side by side: while one thread copies a batch into its
    // file, the others render.
    let ((written, remedies), counts) = rayon::join(
        || {
            rayon::join(
                || tables::write_decisions(out, world, decisions, issued),
                || tables::write_denials(out, world, decisions),
            )
        },
        || Counts::of(world, decisions),
    );
    written?;
    let remedies = remedies?;
    tables::write_input_errors(out, problems)?;
    let summary = Summary::new(facts, &counts, decisions.len(), problems.len());
    atomic(&out.join("summary.json"), Durable::Renamed, |w| {
        serde_json::to_writer_pretty(&mut *w, &summary.json)?;
        w.write_all(b"\n")
    })?;
    let page = html::render(facts, &counts, &remedies);
    atomic(&out.join("report.html"), Durable::Renamed, |w| {
        w.write_all(page.as_bytes())
    })?;
    Ok(summary)
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
    const ROWS: usize = 4096;
    let batch = ROWS * rayon::current_num_threads().max(1) * 2;
    let render = |start: usize| -> std::io::Result<Vec<(Vec<u8>, T)>> {
        let end = (start + batch).min(n);
        let starts: Vec<usize> = (start..end).step_by(ROWS).collect();
        starts
            .into_par_iter()
            .map(|s| {
                let mut buf = Vec::with_capacity(ROWS * 128);
                let t = piece(s..(s + ROWS).min(end), &mut buf)?;
                Ok((buf, t))
            })
            .collect()
    };
    let mut tallies = Vec::new();
    let mut write = |rendered: Vec<(Vec<u8>, T)>| -> std::io::Result<()> {
        for (buf, t) in rendered {
            w.write_all(&buf)?;
            tallies.push(t);
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

/// Writes `path` through a temporary file in the same folder, renamed into place.
pub fn atomic(
    path: &Path,
    durable: Durable,
    fill: impl FnOnce(&mut BufWriter<fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let fail = |e: std::io::Error| Error::failed(format!("{}: cannot write: {e}", path.display()));
    let dir = crate::ledger::parent(path);
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = create_like(&tmp, path)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        if durable == Durable::Synced {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable == Durable::Synced {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// A cell as a spreadsheet will safely show it: one that would run as a formula gets a leading
/// apostrophe.
pub fn neutralise(s: &str) -> std::borrow::Cow<'_, str> {
    if matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    ) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}
