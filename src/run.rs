//! The main job, top to bottom: load the policy → lock the ledger → load the inputs → evaluate
//! → issue → commit the ledger → write the reports. Everything that can refuse the run does so
//! before the first byte is written.

use crate::cli::RunConfig;
use crate::digest::Fingerprinter;
use crate::error::{Error, Result};
use crate::eval::{self, Decision, World};
use crate::input::ledger::Codes;
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
use std::path::{Path, PathBuf};

pub fn run(cfg: &RunConfig) -> Result<(Summary, Phases)> {
    let mut phases = Phases::start();
    let (policy, waivers) = load_policy(cfg)?;
    refuse_overwrites(cfg)?;
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
    if !cfg.dry_run && !in_place {
        refuse_losing_codes(cfg, &ledger_out, &ledger.codes, &fingerprints)?;
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
    let facts = Facts {
        policy: &policy,
        instances: &instances.info,
        requests: &requests.info,
        ledger: &ledger.info,
        ledger_exists: ledger.exists,
        ledger_after: ledger.info.rows + issued.rows.len() as u64,
        as_of: cfg.as_of,
        dry_run: cfg.dry_run,
        waivers: &waivers,
        waived: &evaluation.waived,
        exemptions: &evaluation.exemptions,
    };
    let mut summary = commit_and_write(cfg, &world, &decisions, &issued, &facts, draft)?;
    if let Some((n, cap)) = issued.over_cap {
        summary.warnings.push(format!(
            "a real run would issue {n} codes, more than the safety cap of {cap}, and would be \
             refused (exit 2, nothing written); raise --max-issue to issue them"
        ));
    }
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
    codes: &Codes,
    fingerprints: &Fingerprinter,
) -> Result<()> {
    let named = ledger_out_named(cfg, ledger_out);
    match input::ledger::codes_missing_from(ledger_out, codes, fingerprints) {
        Ok(0) => Ok(()),
        Ok(n) => Err(Error::refused(format!(
            "{named}: holds {n} code(s) that the ledger {} lacks, which replacing it would \
             lose (a new ledger an earlier run wrote there?); decide by it (--ledger {}), \
             or move it away; nothing was written",
            shown(&cfg.ledger),
            ledger_out.display()
        ))),
        Err(why) => Err(Error::refused(format!(
            "{named}: is already there and {why}; replacing it could lose what it holds: \
             move it away; nothing was written"
        ))),
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

/// Removes an output an earlier run left. A folder of that name is no earlier run's file: it
/// is left as it is.
fn remove_stale(stale: &Path) -> Result<()> {
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

/// Refuses an `--out` (or `--ledger-out`) that would overwrite an input, a `--ledger-out` that
/// is one of the outputs or the `--out` folder, and a `--ledger-out` that is a folder. A path
/// whose target cannot be told (a loop of links) is refused too.
fn refuse_overwrites(cfg: &RunConfig) -> Result<()> {
    // The ledger itself, when it is a folder, is refused as an input, with its own name.
    // A path ending in `/` names a folder even before it exists (it would fail only at the
    // rename, after all the work).
    let slash = cfg
        .ledger_out
        .as_os_str()
        .as_encoded_bytes()
        .ends_with(b"/");
    let folder = slash || (cfg.ledger_out != cfg.ledger && cfg.ledger_out.is_dir());
    if !cfg.dry_run && folder {
        return Err(Error::refused(format!(
            "{}: is a folder, not a file",
            ledger_out_named(cfg, &cfg.ledger_out)
        )));
    }
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
    let mut written = inputs.clone();
    // A dry run writes no ledger: only its outputs are checked.
    if !cfg.dry_run {
        written.push((cfg.ledger_out.as_path(), ledger_out.clone()));
    }
    for name in every_output() {
        let path = cfg.out.join(name);
        let target = canonical(&path)?;
        // `waived.csv` is written only with waivers (and a stale one removed only if a file).
        let writes_it = name != WAIVED || cfg.waivers.is_some();
        if let Some((input, _)) = written.iter().find(|(_, c)| *c == target) {
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
    }
    if cfg.dry_run {
        return refuse_replacing_a_handoff(&cfg.out);
    }
    if ledger_out == canonical(&cfg.out)? {
        return Err(Error::refused(format!(
            "{}: is the --out folder",
            ledger_out_named(cfg, &cfg.ledger_out)
        )));
    }
    // A lock file is no ledger: replaced, the ledger it locks would have two locks, the old
    // file a run holds and the new one the next run takes.
    let lock_name = |n: &std::ffi::OsStr| {
        let n = n.as_encoded_bytes();
        n.len() >= 5 && n[n.len() - 5..].eq_ignore_ascii_case(b".lock")
    };
    if ledger_out.file_name().is_some_and(lock_name) {
        return Err(Error::refused(format!(
            "{}: names a lock file (`.lock`), not a ledger",
            ledger_out_named(cfg, &cfg.ledger_out)
        )));
    }
    // Every input but the ledger itself (the third: `--ledger ./instances.csv` names the same
    // path as the inventory, and must not hide it).
    let mut read_only = inputs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, input)| input);
    if let Some((input, _)) = read_only.find(|(_, c)| *c == ledger_out) {
        return Err(Error::refused(format!(
            "{}: would overwrite the input `{}`",
            ledger_out_named(cfg, &cfg.ledger_out),
            input.display()
        )));
    }
    Ok(())
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
fn prepare_out(out: &Path) -> Result<()> {
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
