//! The main job, top to bottom: load the policy → lock the ledger → load the inputs → evaluate
//! → issue → commit the ledger → write the reports. Everything that can refuse the run does so
//! before the first byte is written.

mod out;

use crate::cli::RunConfig;
use crate::digest::Fingerprinter;
use crate::error::{Error, Result};
use crate::eval::{self, Decision, World};
use crate::input::ledger::Ledger;
use crate::input::{self, InstanceIndex, Problem, RequestIndex};
use crate::issue::{self, Issued};
use crate::ledger::{self, NewRow};
use crate::phases::Phases;
use crate::policy::{self, Policy, waivers::Waivers};
use crate::progress::Progress;
use crate::report::{self, Facts, Staged, Summary};
use crate::schema::col;
use crate::{paths, time};
use std::fs;
use std::path::Path;

pub use out::{OUTPUTS, WAIVED};
use out::{prepare_out, refuse_overwrites, rehearsed, remove_stale};

/// Runs the main job as `cfg` says; what it wrote is described by the summary, and how long
/// each phase took by the phases.
pub fn run(cfg: &RunConfig) -> Result<(Summary, Phases)> {
    let mut phases = Phases::start();
    let (policy, waivers) = load_policy(cfg)?;
    // A dry run's warnings of what would refuse the real run (its ledger, the safety cap).
    let mut rehearsal = refuse_overwrites(cfg)?;
    refuse_unopenable(cfg)?;
    // A ledger reached through a symbolic link is replaced where the link points, and locked
    // there, so that every path to it shares one lock.
    let ledger_out = ledger::resolve_links(&cfg.ledger_out);
    // The ledger and --ledger-out name one file (links followed, as the run would make it).
    let same_path =
        paths::canonical(&cfg.ledger).is_some_and(|c| Some(c) == paths::canonical(&ledger_out));
    // INVARIANT: the lock is held from before the ledger is read until after it is replaced.
    let _lock = lock_ledgers(cfg, &ledger_out, same_path)?;
    // The old ledger's bytes are copied beside the new ledger's place, and synced, while the
    // inputs are read and decided; dropped on a refusal, the copy is removed.
    // The old ledger is opened once, under the lock: the copy and the scan read this one open
    // file, so the new ledger holds exactly the rows the run decided by, even if the ledger at
    // its path is replaced meanwhile (by hand, or by a run through another hard-link name).
    let old_ledger = input::ledger::Snapshot::open(&cfg.ledger, &shown(&cfg.ledger))?;
    // Rewritten in place (the same file however named): the new ledger keeps its owner. Not
    // when the ledger could not be found while a file is there to replace: the two names
    // part somewhere the system resolves otherwise (`nox/../ledger.csv` with no `nox`), and
    // that file's codes must be guarded like any --ledger-out file's.
    let in_place = same_path && (old_ledger.exists() || fs::symlink_metadata(&ledger_out).is_err());
    let draft = (!cfg.dry_run).then(|| ledger::draft(&old_ledger, &ledger_out, in_place));
    let spin = Progress::spinner("reading the inputs", !cfg.quiet);
    // The two files are read side by side: each reader's own serial steps (reading a block,
    // merging its pieces) leave a core idle that the other's parsing fills. A refusal of the
    // inventory is reported before one of the requests, as when they were read in turn.
    let (instances, requests) = rayon::join(
        || input::load_table(&cfg.instances, &shown(&cfg.instances), &policy.instances),
        || input::load_table(&cfg.requests, &shown(&cfg.requests), &policy.requests),
    );
    let (instances, requests) = (instances?, requests?);
    phases.mark("read");
    let fingerprints = Fingerprinter::default();
    let (by_instance, by_request) = rayon::join(
        || InstanceIndex::new(&instances),
        || RequestIndex::new(&requests),
    );
    phases.mark("index");
    let pool = eval::pool(cfg.jobs).map_err(Error::failed)?;
    // The rules that read only the instance are decided while the ledger is read: the scan's
    // serial steps (reading a block, merging its pieces) leave a core idle that they fill.
    let (ledger, verdicts) = rayon::join(
        || {
            input::ledger::scan_snapshot(
                &old_ledger,
                &shown(&cfg.ledger),
                &fingerprints,
                &by_instance,
                &by_request,
            )
        },
        || pool.install(|| eval::verdicts(&policy, &instances, cfg.as_of)),
    );
    let mut ledger = ledger?;
    // (A dry run warned of its --ledger-out already tells the first refusal, as a real run would.)
    if !in_place && rehearsal.is_empty() {
        match refuse_losing_codes(cfg, &ledger_out, &ledger, &fingerprints) {
            Err(e) if cfg.dry_run => rehearsal.push(rehearsed(&e.message)),
            refused => refused?,
        }
    }
    spin.finish();
    phases.mark("scan");
    // What is needed only up to issuing is freed as soon as it is done with, so that it is not
    // held while the reports are written (the run's peak): the request id lookups after the scan,
    // the ledger's code fingerprints after issuing.
    let repeats = by_request.into_repeats();
    let existing_codes = std::mem::take(&mut ledger.codes);
    // The as-of time as text: what messages name as `as_of`, and the new codes' `issued_at`.
    let as_of_text = time::format(cfg.as_of);
    let world = World {
        policy: &policy,
        instances: &instances,
        requests: &requests,
        ledger: &ledger,
        by_instance: &by_instance,
        repeats: &repeats,
        waivers: &waivers,
        as_of: cfg.as_of,
        as_of_text: &as_of_text,
    };
    let progress = Progress::new(requests.len() as u64, "evaluate", !cfg.quiet);
    let evaluation =
        eval::decide_with(&world, &verdicts, &pool, &progress).map_err(Error::failed)?;
    drop(verdicts);
    let mut decisions = evaluation.decisions;
    progress.finish();
    phases.mark("evaluate");
    let max_issue = cfg.max_issue.or(policy.max_issue);
    let issued = issue::assign(
        &mut decisions,
        &policy.code,
        &existing_codes,
        &fingerprints,
        cfg.dry_run,
        max_issue,
    )?;
    drop(existing_codes);
    if !issued.rows.is_empty() {
        refuse_unrecorded(&ledger.header, &shown(&cfg.ledger))?;
    }
    prepare_out(&cfg.out)?;
    phases.mark("issue");
    if let Some((n, cap)) = issued.over_cap {
        rehearsal.push(format!(
            "a real run would issue {n} codes, more than the safety cap of {cap}, and would be \
             refused (exit 2, nothing written); raise --max-issue to issue them"
        ));
    }
    let facts = Facts {
        policy: &policy,
        instances: &instances.info,
        requests: &requests.info,
        ledger: &ledger.info,
        ledger_exists: ledger.exists,
        ledger_after: ledger.info.rows + issued.rows.len() as u64,
        ledger_out: (!cfg.dry_run).then(|| cfg.ledger_out.display().to_string()),
        as_of: cfg.as_of,
        dry_run: cfg.dry_run,
        waivers: &waivers,
        waived: &evaluation.waived,
        exemptions: &evaluation.exemptions,
        warnings: rehearsal,
    };
    let summary = commit_and_write(cfg, &world, &decisions, &issued, &facts, draft)?;
    phases.mark("write");
    Ok((summary, phases))
}

/// The policy (`--policy`, or the default one built in) and the waivers given with it.
fn load_policy(cfg: &RunConfig) -> Result<(Policy, Waivers)> {
    let policy = match &cfg.policy {
        Some(p) => policy::load(p)?,
        None => policy::default_policy(),
    };
    let waivers = match &cfg.waivers {
        Some(p) => policy::waivers::load(p, &policy)?,
        None => Waivers::default(),
    };
    Ok((policy, waivers))
}

/// A ledger that is there but cannot be looked up, and inputs that cannot be opened, are
/// refused before the ledger's folder and lock are made: a mistyped --input leaves nothing
/// behind. So is a ledger a run that writes one could read only once (a pipe).
fn refuse_unopenable(cfg: &RunConfig) -> Result<()> {
    input::ledger::present(&cfg.ledger, &shown(&cfg.ledger))?;
    if !cfg.dry_run && fs::metadata(&cfg.ledger).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Err(input::ledger::unseekable(&shown(&cfg.ledger)));
    }
    // Asked again just before the rename (`Draft::commit`), once the lock made any folders.
    if !cfg.dry_run {
        ledger::refuse_frozen(&cfg.ledger_out, &ledger_out_named(cfg, &cfg.ledger_out))?;
    }
    for p in [&cfg.instances, &cfg.requests] {
        input::check_openable(p, &shown(p))?;
    }
    Ok(())
}

/// The locks a real run holds until its new ledger is in place: the one of the ledger it
/// writes, and, for a `--ledger-out` run, the one of the ledger it reads (a run writing that
/// ledger meanwhile would hand out the same quota). A dry run takes none.
fn lock_ledgers(
    cfg: &RunConfig,
    ledger_out: &Path,
    same_path: bool,
) -> Result<Option<(ledger::Lock, Option<ledger::Lock>)>> {
    if cfg.dry_run {
        return Ok(None);
    }
    // The ledger read is locked first, so that a run refused for it (exit 3) has made
    // nothing, not even the new ledger's folder.
    let read = ledger::resolve_links(&cfg.ledger);
    let read = match read == ledger_out || same_path {
        true => None,
        false => Some(ledger::lock_input(&read)?),
    };
    // Like --out, a new ledger's folder is created when missing (durably).
    ledger::create_folder(ledger::parent(ledger_out)).map_err(|e| {
        Error::refused(format!(
            "{}: cannot create its folder: {e}",
            ledger_out_named(cfg, ledger_out)
        ))
    })?;
    Ok(Some((ledger::lock(ledger_out)?, read)))
}

/// A `--ledger-out` file already there (a previous run's new ledger) is replaced whole: codes
/// it holds that the ledger read lacks would be lost, though they were handed out. Such a run
/// is refused.
fn refuse_losing_codes(
    cfg: &RunConfig,
    ledger_out: &Path,
    ledger: &Ledger,
    fingerprints: &Fingerprinter,
) -> Result<()> {
    let named = ledger_out_named(cfg, ledger_out);
    let refused = |why: String| {
        Error::refused(format!(
            "{named}: {why}, which replacing it would lose (a new ledger an earlier run wrote \
             there?); decide by it (--ledger {}), or move it away; nothing was written",
            ledger_out.display()
        ))
    };
    let held = match input::ledger::codes_missing_from(ledger_out, &ledger.codes, fingerprints) {
        Ok(held) => held,
        Err(why) => {
            return Err(Error::refused(format!(
                "{named}: is already there and {why}; replacing it could lose what it holds: \
                 move it away; nothing was written"
            )));
        }
    };
    if held.missing > 0 {
        return Err(refused(format!(
            "holds {} code(s) that the ledger {} lacks",
            held.missing,
            shown(&cfg.ledger)
        )));
    }
    match ledger.unspent(&held.spent, fingerprints) {
        Ok(0) => Ok(()),
        Ok(n) => Err(Error::refused(format!(
            "{named}: records {n} code(s) as spent that the ledger {} does not, which replacing \
             it would make usable again (SPEC: a spent code is permanently invalid); record \
             them as spent in {}, or decide by {} (--ledger), or move it away; nothing was \
             written",
            shown(&cfg.ledger),
            shown(&cfg.ledger),
            ledger_out.display()
        ))),
        Err(why) => Err(Error::failed(why)),
    }
}

/// Commits the new ledger and writes the reports, then puts the reports in place. The ledger
/// is committed (written, synced, renamed) while the outputs are written under temporary
/// names; an output is put in place only once the ledger holds every code it names,
/// `issued.csv` first, so no output ever hands over a code the ledger could lose. An error
/// once the ledger is renamed into place says that its codes are issued.
fn commit_and_write(
    cfg: &RunConfig,
    world: &World<'_>,
    decisions: &[Decision],
    issued: &Issued,
    facts: &Facts<'_>,
    draft: Option<ledger::Draft>,
) -> Result<Summary> {
    let (requests, ledger) = (world.requests, world.ledger);
    // The new ledger rows, made as the commit writes them rather than gathered first (80 bytes
    // a code: 180 MB at 10M requests).
    let rows = issued.iter().map(|(r, code)| NewRow {
        code,
        instance_id: requests.text(col::REQUEST_INSTANCE, r),
        account_id: requests.text(col::REQUEST_ACCOUNT, r),
        request_id: requests.text(col::REQUEST_ID, r),
        issued_at: world.as_of_text,
    });
    let problems: Vec<&Problem> = world
        .instances
        .problems
        .iter()
        .chain(&requests.problems)
        .chain(&ledger.problems)
        .collect();
    let writing = if cfg.dry_run {
        "writing the reports"
    } else {
        "writing the ledger and the reports"
    };
    let spin = Progress::spinner(writing, !cfg.quiet);
    // Set once the new ledger is renamed into place (before the folder's sync): an error after
    // it must say that codes were issued.
    let ledger_committed = std::sync::atomic::AtomicBool::new(false);
    let (handed_over, written) = std::thread::scope(|s| {
        let (send_handoff, handoff) = std::sync::mpsc::sync_channel::<Result<Staged>>(1);
        // The commit mostly waits for the disk (its sync): on a thread of its own it keeps
        // neither of rayon's threads from rendering meanwhile. The same thread then puts
        // `issued.csv` in place as soon as both are ready, while the other reports are still
        // being written: the folder's sync then waits only for what reached the disk so far, not
        // for every report's bytes (0.40 s at 1M on a machine whose disk flushes slowly).
        // A failed commit drops `issued.csv` unpublished, and so removes it.
        let (header, plain) = (&ledger.header, requests.plain());
        let committed = &ledger_committed;
        let commit = s.spawn(move || -> Result<()> {
            if let Some(draft) = draft {
                draft.commit(header, rows, plain, committed)?;
            }
            let staged = handoff
                .recv()
                .unwrap_or_else(|_| Err(Error::failed("issued.csv was not written")))?;
            staged.publish()
        });
        let written = rayon::join(
            || {
                let staged = report::write_issued(&cfg.out, requests, issued, world.as_of_text);
                // Refused only once the commit has failed, which drops `issued.csv` here.
                let _ = send_handoff.send(staged);
            },
            || report::write(&cfg.out, world, decisions, issued, &problems, facts),
        )
        .1;
        let handed_over = commit
            .join()
            .unwrap_or_else(|_| Err(Error::failed("the ledger commit stopped unexpectedly")));
        (handed_over, written)
    });
    // Once the ledger holds the new codes, a failure says so, lest an operator who sees exit 1
    // take the run for one that did nothing.
    let codes = match ledger_committed.into_inner() {
        true => issued.rows.len(),
        false => 0,
    };
    handed_over.map_err(|e| after_commit(e, codes, false, &cfg.out))?;
    let committed = |e: Error| after_commit(e, codes, true, &cfg.out);
    let (summary, others) = written.map_err(committed)?;
    for output in others {
        output.publish().map_err(committed)?;
    }
    // A run without waivers writes no `waived.csv`: one an earlier run left would describe
    // exemptions that this run's decisions do not have.
    if cfg.waivers.is_none() {
        remove_stale(&cfg.out.join(WAIVED)).map_err(committed)?;
    }
    spin.finish();
    Ok(summary)
}

/// An error after the ledger's commit, told that `codes` new codes are recorded (nothing is
/// added when none are): handed over in `issued.csv`, or, when that failed, to be had from a
/// re-run.
fn after_commit(mut e: Error, codes: usize, handed_over: bool, out: &Path) -> Error {
    if codes == 0 {
        return e;
    }
    let issued = out.join("issued.csv");
    e.message.push_str(&if handed_over {
        format!(
            "\nthe ledger was committed first: its {codes} new code(s) are recorded and handed \
             over in {}; a re-run reports them as already_issued",
            issued.display()
        )
    } else {
        format!(
            "\nthe ledger was committed first: its {codes} new code(s) are recorded, but {}, \
             which hands them over, was not written; a re-run reports them as already_issued, \
             with their codes in decisions.csv",
            issued.display()
        )
    });
    e
}

/// A path as the user wrote it, for messages.
fn shown(p: &Path) -> String {
    p.display().to_string()
}

/// The new ledger's path for messages: as `--ledger-out` when it was given, else as the ledger
/// (which is then rewritten in place).
fn ledger_out_named(cfg: &RunConfig, path: &Path) -> String {
    if cfg.ledger_out_given {
        format!("--ledger-out {}", path.display())
    } else {
        format!("the ledger {}", path.display())
    }
}

/// Refuses a run that issues codes into a ledger without a column a re-run needs to hand them
/// back (see `ledger::unrecorded_columns`). A run that issues nothing, and a dry run, go on.
fn refuse_unrecorded(header: &[String], shown: &str) -> Result<()> {
    let missing = ledger::unrecorded_columns(header);
    if header.is_empty() || missing.is_empty() {
        return Ok(());
    }
    let why = |column: &str| match column {
        "request_id" => "without it a re-run would issue the same request a second code",
        _ => "without it a re-run would find the request's code held by no account",
    };
    let reasons: Vec<String> = missing
        .iter()
        .map(|c| format!("no `{c}` column: {}", why(c)))
        .collect();
    Err(Error::refused(format!(
        "{shown}:1: the ledger cannot record the codes this run would issue: {}; add the \
         column (with an empty cell in each row), or decide with --dry-run; nothing was written",
        reasons.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error after the commit says that the codes are issued, and where they are: in
    /// `issued.csv`, or (when that was not written) from a re-run; nothing when none were.
    #[test]
    fn an_error_after_the_commit_says_the_codes_are_issued() {
        let out = Path::new("out");
        let said = |codes, handed_over| {
            after_commit(
                Error::failed("out/x: cannot write"),
                codes,
                handed_over,
                out,
            )
            .message
        };
        assert_eq!(said(0, true), "out/x: cannot write");
        assert_eq!(said(0, false), "out/x: cannot write");
        assert_eq!(
            said(3, true),
            "out/x: cannot write\nthe ledger was committed first: its 3 new code(s) are recorded \
             and handed over in out/issued.csv; a re-run reports them as already_issued"
        );
        assert_eq!(
            said(3, false),
            "out/x: cannot write\nthe ledger was committed first: its 3 new code(s) are recorded, \
             but out/issued.csv, which hands them over, was not written; a re-run reports them as \
             already_issued, with their codes in decisions.csv"
        );
    }
}
