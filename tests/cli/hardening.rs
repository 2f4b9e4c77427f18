//! Hardening (issue 5): nothing lost, nothing issued twice, no input that breaks it.
//!
//! - crash safety: `icp-audit run` killed with SIGKILL at many instants leaves the old or the new
//!   ledger, never a torn one, and a re-run completes and returns the same codes;
//! - overlapping runs on one ledger: one proceeds, the others exit 3 and write nothing;
//! - a corpus of bad inputs (`fixtures/bad/`): the documented exit code, an error that names the
//!   file (and line and column), no panic, nothing written on a refusal;
//! - hostile values: HTML and formulas neutralised, owner-only files, codes never printed;
//! - the `--max-issue` safety cap;
//! - the fuzzers' regression inputs (`fuzz/regressions/`), replayed without nightly.
//!
//! Figures (how many runs, how they ended) are printed; see them with
//! `cargo test --test cli hardening -- --nocapture`.

use crate::harness::{
    BIN, INSTANCES_HEADER, LEDGER_HEADER, REQUESTS_HEADER, RUN, Test, csv_rows, hold_lock, scratch,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The as-of time `icp-audit generate` shapes its workloads around.
const GEN_AS_OF: &str = "2026-11-27T00:00:00Z";
/// A run that takes longer than this has hung (debug build, loaded machine: generous).
const HANG: Duration = Duration::from_secs(180);

/// A number from the environment, for deeper local runs (`HARDENING_KILLS=1000 cargo test …`)
/// or to replay a printed seed (`HARDENING_SEED`).
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts `icp-audit ARGS` in `dir`, its stdout and stderr going to files beside `dir` (no pipe
/// that could fill up while the test waits).
fn spawn(dir: &Path, args: &[&str], log: &Path) -> Child {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(File::create(log.with_extension("stdout")).unwrap())
        .stderr(File::create(log.with_extension("stderr")).unwrap())
        .spawn()
        .unwrap()
}

/// Waits for a child, killing it (and failing the test) when it hangs.
fn wait(child: &mut Child, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a finished run printed.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Runs `icp-audit ARGS` in `dir` to completion.
fn run_in(dir: &Path, args: &[&str], log: &Path) -> Finished {
    let mut child = spawn(dir, args, log);
    let status = wait(&mut child, &format!("icp-audit {}", args.join(" ")));
    Finished {
        status,
        stdout: fs::read_to_string(log.with_extension("stdout")).unwrap_or_default(),
        stderr: String::from_utf8_lossy(
            &fs::read(log.with_extension("stderr")).unwrap_or_default(),
        )
        .into_owned(),
    }
}

/// `icp-audit generate` into `out`.
fn generate(out: &Path, instances: usize, requests: usize, seed: u64) {
    let ok = Command::new(BIN)
        .args(["generate", "--out"])
        .arg(out)
        .args(["--instances", &instances.to_string()])
        .args([
            "--requests",
            &requests.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .status()
        .unwrap();
    assert!(ok.success(), "generate failed");
}

/// The identity of a code: equal after Crockford normalisation.
fn key(code: &str) -> String {
    icp_audit::code::identity_key(code)
}

/// The default policy's code format.
fn format() -> icp_audit::code::Format {
    icp_audit::code::Format::new("", 19, 4).unwrap()
}

/// Cells of a ledger row, in the standard column order the generator and new ledgers use.
const L_CODE: usize = 0;
const L_INSTANCE: usize = 1;
const L_REQUEST: usize = 3;
const L_ISSUED_AT: usize = 4;
const L_STATUS: usize = 5;

/// Parses ledger rows (no header) and checks they are rows this run appended: seven cells,
/// status `issued`, issued at the as-of time, a well-formed code.
#[track_caller]
fn appended_rows(tail: &[u8], as_of: &str) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(tail).expect("appended rows are UTF-8");
    let rows = csv_rows(text);
    for r in &rows {
        assert_eq!(r.len(), 7, "an appended row has 7 cells: {r:?}");
        assert_eq!(r[L_STATUS], "issued", "an appended row is `issued`: {r:?}");
        assert_eq!(r[L_ISSUED_AT], as_of, "issued at the as-of time: {r:?}");
        assert!(
            format().verify(&r[L_CODE]).is_ok(),
            "an appended code is well-formed"
        );
    }
    rows
}

/// The identities of a ledger's codes, checking that none repeats.
#[track_caller]
fn unique_keys(rows: &[Vec<String>]) -> HashSet<String> {
    let mut seen = HashSet::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        assert!(
            seen.insert(key(&r[L_CODE])),
            "ledger row {i}: a code appears twice"
        );
    }
    seen
}

/// `request_id -> (outcome, code)` from a decisions.csv.
fn decisions_by_request(text: &str) -> HashMap<String, (String, String)> {
    csv_rows(text)
        .into_iter()
        .skip(1)
        .map(|r| (r[0].clone(), (r[3].clone(), r[4].clone())))
        .collect()
}

/// The temporary files a killed run left beside the ledger (`.ledger.csv.tmp-PID`).
fn leftovers_in(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with('.') && name.contains(".tmp-")
        })
        .collect()
}

/// The phases of a run from `--timings` (`read 0.19s peak …, index …`): where the phase that
/// commits the ledger (`write`: the ledger is committed while the outputs are written) starts
/// and how long it lasts, in seconds from the start of the run.
fn ledger_window(stderr: &str) -> Option<(f64, f64)> {
    let line = stderr.lines().find(|l| l.contains("timings:"))?;
    let mut at = 0.0;
    for part in line.split("timings:").nth(1)?.split(',') {
        let mut words = part.split_whitespace();
        let name = words.next()?;
        let secs: f64 = words.next()?.strip_suffix('s')?.parse().ok()?;
        if name == "write" {
            return Some((at, secs));
        }
        at += secs;
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Old,
    New,
}

/// SIGKILL at many instants of a run: the ledger is always the old or the new one, what
/// `issued.csv` hands off is always in the ledger, and a re-run completes and gives back, as
/// `already_issued`, every code that reached the ledger.
#[test]
fn sigkill_at_any_instant_leaves_the_old_or_the_new_ledger() {
    let size = env_or("HARDENING_CRASH_SIZE", 10_000);
    let kills = env_or("HARDENING_KILLS", 100);
    let focused = env_or("HARDENING_FOCUSED_KILLS", 10);
    // A kill that left the old ledger is followed by a re-run one time in `every` (and always
    // when it left a temporary file behind); a kill that left the new ledger, always. The
    // skipped re-runs would start from the pristine ledger, as the next kill does.
    let every = env_or("HARDENING_RERUN_EVERY", 4).max(1);
    let root = scratch("hardening-crash");
    let pristine = root.join("pristine");
    generate(&pristine, size, size, 5);
    let work = root.join("work");
    fs::create_dir_all(&work).unwrap();
    for f in ["instances.csv", "requests.csv"] {
        fs::copy(pristine.join(f), work.join(f)).unwrap();
    }
    let old = fs::read(pristine.join("ledger.csv")).unwrap();
    let old_keys = unique_keys(&csv_rows(std::str::from_utf8(&old).unwrap())[1..]);
    let ledger = work.join("ledger.csv");
    let out = work.join("out");
    let log = root.join("run.log");
    let args = [
        "run", "--input", ".", "--out", "out", "--as-of", GEN_AS_OF, "--quiet",
    ];
    let reset = || {
        fs::write(&ledger, &old).unwrap();
        let _ = fs::remove_dir_all(&out);
    };

    // One full run first (twice, the first warms the page cache): its duration, where its
    // ledger commit falls, and what it issues. Every later real run on the pristine ledger
    // issues the same number of codes.
    let (mut duration, mut window, mut issued) = (Duration::ZERO, None, 0);
    for _ in 0..2 {
        reset();
        let started = Instant::now();
        let mut timed = args.to_vec();
        timed.push("--timings");
        let ran = run_in(&work, &timed, &log);
        duration = started.elapsed();
        assert_eq!(ran.code(), 0, "the measured run: {}", ran.stderr);
        window = ledger_window(&ran.stderr);
        assert!(
            window.is_some(),
            "--timings names the write phase: {}",
            ran.stderr
        );
        let now = fs::read(&ledger).unwrap();
        assert!(now.starts_with(&old));
        issued = appended_rows(&now[old.len()..], GEN_AS_OF).len();
    }
    assert!(issued > 100, "the workload issues codes ({issued})");

    // Kill instants, as fractions of a run's duration: `kills` spread uniformly over
    // [0, 1.2] (one per stratum, at a random point in it), then `focused` around the ledger
    // commit that --timings located. Each is scaled by the duration of the latest complete run
    // (the re-run before it), so that a machine whose load changes still gets the spread.
    let seed = env_or("HARDENING_SEED", fastrand::usize(..)) as u64;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut fractions: Vec<f64> = (0..kills)
        .map(|i| 1.2 * (i as f64 + rng.f64()) / kills as f64)
        .collect();
    if let Some((start, len)) = window {
        let whole = duration.as_secs_f64();
        let (lo, hi) = (
            (start - 0.03).max(0.0) / whole,
            (start + len + 0.03) / whole,
        );
        fractions.extend((0..focused).map(|_| lo + rng.f64() * (hi - lo)));
    }

    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut leftovers, mut slowest, mut reruns) = (0, duration, 0);
    // Time spent in killed runs, in the test's checks, in re-runs.
    let mut spent = [Duration::ZERO; 3];
    let mut latest = duration;
    for (i, fraction) in fractions.iter().enumerate() {
        let delay = latest.mul_f64(*fraction);
        let what = format!("kill {i} at {fraction:.3} × {latest:?} = {delay:?} (seed {seed})");
        reset();
        for p in leftovers_in(&work) {
            fs::remove_file(p).unwrap();
        }
        let t_kill = Instant::now();
        let mut child = spawn(&work, &args, &log);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; a child that already exited is left as it ended
        let status = wait(&mut child, &what);
        spent[0] += t_kill.elapsed();
        let t_check = Instant::now();
        let finished = status.code().is_some();
        if finished {
            assert!(
                status.success(),
                "{what}: the run ended on its own but failed: {}",
                fs::read_to_string(log.with_extension("stderr")).unwrap_or_default()
            );
        }

        // The ledger is the old one or the old one plus exactly the run's new rows.
        let now = fs::read(&ledger).unwrap();
        let (ended, new_rows) = if now == old {
            (Ended::Old, Vec::new())
        } else {
            assert!(
                now.starts_with(&old),
                "{what}: the ledger is neither old nor old + new rows"
            );
            let rows = appended_rows(&now[old.len()..], GEN_AS_OF);
            assert_eq!(rows.len(), issued, "{what}: a torn ledger");
            (Ended::New, rows)
        };
        if finished {
            assert_eq!(
                ended,
                Ended::New,
                "{what}: a completed run left the old ledger"
            );
        }
        // What issued.csv hands off is in the ledger (and issued.csv is whole).
        let in_ledger: HashSet<&str> = new_rows.iter().map(|r| r[L_CODE].as_str()).collect();
        if let Ok(text) = fs::read_to_string(out.join("issued.csv")) {
            let handed = csv_rows(&text);
            assert_eq!(handed.len() - 1, issued, "{what}: a torn issued.csv");
            for r in &handed[1..] {
                assert!(
                    in_ledger.contains(r[3].as_str()),
                    "{what}: issued.csv hands off a code the ledger does not hold"
                );
            }
        }
        if let Ok(bytes) = fs::read(out.join("decisions.csv")) {
            let lines = bytes.iter().filter(|b| **b == b'\n').count();
            assert_eq!(lines, size + 1, "{what}: a torn decisions.csv");
        }

        let left = leftovers_in(&work).len();
        leftovers += left;
        if ended == Ended::Old && left == 0 && i % every != 0 {
            *tally.entry("old ledger").or_default() += 1;
            spent[1] += t_check.elapsed();
            continue;
        }

        // A re-run, not killed, completes and is consistent.
        reruns += 1;
        spent[1] += t_check.elapsed();
        let started = Instant::now();
        let rerun = run_in(&work, &args, &log);
        latest = started.elapsed();
        spent[2] += latest;
        let t_check = Instant::now();
        slowest = slowest.max(latest);
        assert_eq!(
            rerun.code(),
            0,
            "{what}: the re-run failed: {}",
            rerun.stderr
        );
        let after = fs::read(&ledger).unwrap();
        assert!(
            after.starts_with(&now),
            "{what}: the re-run changed existing rows"
        );
        let tail = appended_rows(&after[now.len()..], GEN_AS_OF);
        let want = if ended == Ended::Old { issued } else { 0 };
        assert_eq!(tail.len(), want, "{what}: rows the re-run appended");
        // Every code in the final ledger is unique: the old ones are (checked once), and the
        // new ones differ from them and from each other.
        let added: Vec<Vec<String>> = new_rows.iter().chain(&tail).cloned().collect();
        for k in unique_keys(&added) {
            assert!(
                !old_keys.contains(&k),
                "{what}: a new code repeats an old one"
            );
        }
        // Every code the killed run put in the ledger comes back as already_issued.
        if ended == Ended::New {
            let text = fs::read_to_string(out.join("decisions.csv")).unwrap();
            let decided = decisions_by_request(&text);
            for r in &new_rows {
                let (outcome, code) = &decided[&r[L_REQUEST]];
                assert_eq!(outcome, "already_issued", "{what}: {}", r[L_REQUEST]);
                assert_eq!(
                    code, &r[L_CODE],
                    "{what}: the re-run returns the ledger's code"
                );
            }
        }
        let handed = csv_rows(&fs::read_to_string(out.join("issued.csv")).unwrap());
        assert_eq!(handed.len() - 1, want, "{what}: the re-run's issued.csv");

        spent[1] += t_check.elapsed();
        if std::env::var_os("HARDENING_VERBOSE").is_some() {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{what}: {ended:?}, finished before the kill: {finished}");
            }
        }
        *tally
            .entry(match (ended, finished) {
                (Ended::Old, _) => "old ledger",
                (Ended::New, false) => "new ledger, killed after the rename",
                (Ended::New, true) => "new ledger, finished before the kill",
            })
            .or_default() += 1;
    }
    assert_eq!(tally.values().sum::<usize>(), fractions.len());
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "crash: {size} instances, {size} requests; a run of {duration:?} (slowest re-run \
             {slowest:?}) issues {issued} codes; ledger phase at {window:?} s; {} runs killed \
             ({kills} spread over [0, 1.2] × the latest run's duration, {} around the commit; \
             seed {seed}): {tally:?}; {leftovers} temporary files left behind by killed runs; \
             {reruns} re-runs, every one completed and was consistent; time in killed runs, \
             checks, re-runs: {spent:?}",
            fractions.len(),
            fractions.len() - kills,
        );
    }
}

/// Six runs started together (or nearly) on one ledger, with overlapping requests: the ledger
/// lock lets one proceed at a time; the others exit 3 and write nothing. Whatever the
/// interleaving, no code is issued twice and no instance exceeds its five codes.
#[test]
fn overlapping_runs_never_share_out_quota_or_codes() {
    const HOT: usize = 30;
    const PAD: usize = 3000;
    const RUNS: usize = 6;
    let rounds = env_or("HARDENING_ROUNDS", 20);
    let root = scratch("hardening-overlap");
    let eligible = "PrePaid,2028-06-30T16:00Z,5,1.2.3.4";
    let mut instances = String::from(
        "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip\n",
    );
    let mut ledger =
        String::from("code,instance_id,account_id,request_id,issued_at,status,domain\n");
    for h in 0..HOT {
        instances.push_str(&format!("h-{h},100,cn-hangzhou,{eligible}\n"));
        for (j, status) in ["issued", "in_use", "spent"].iter().enumerate() {
            ledger.push_str(&format!(
                "OLD-{h}-{j},h-{h},100,L-{h}-{j},2025-01-01T00:00:00Z,{status},d.example\n"
            ));
        }
    }
    for p in 0..PAD {
        instances.push_str(&format!("p-{p},200,cn-shanghai,{eligible}\n"));
    }
    fs::write(root.join("instances.csv"), &instances).unwrap();
    fs::write(root.join("ledger.csv"), &ledger).unwrap();
    // Run k asks, for every hot instance, two codes under ids all runs share and two under
    // ids of its own; and one code for each of 200 padding instances under its own id, so
    // that six runs one after the other would meet the quota there too.
    for k in 0..RUNS {
        let mut requests = String::from("request_id,account_id,instance_id,requested_at\n");
        for h in 0..HOT {
            for j in 0..2 {
                requests.push_str(&format!("S-{h}-{j},100,h-{h},2026-11-29T0{j}:00Z\n"));
                requests.push_str(&format!("U{k}-{h}-{j},100,h-{h},2026-11-29T0{j}:30Z\n"));
            }
        }
        for p in 0..200 {
            requests.push_str(&format!("Q{k}-{p},200,p-{p},2026-11-29\n"));
        }
        fs::write(root.join(format!("requests-{k}.csv")), requests).unwrap();
    }
    let pristine = ledger.into_bytes();

    let seed = env_or("HARDENING_SEED", fastrand::usize(..)) as u64;
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut winners, mut locked, mut overlapped_rounds, mut relayed_rounds) = (0, 0, 0, 0);
    for round in 0..rounds {
        let what = format!("round {round} (seed {seed})");
        fs::write(root.join("ledger.csv"), &pristine).unwrap();
        for k in 0..RUNS {
            let _ = fs::remove_dir_all(root.join(format!("out-{k}")));
        }
        // Start times: all at once in even rounds, staggered by up to 150 ms in odd ones.
        let mut starts: Vec<(u64, usize)> = (0..RUNS)
            .map(|k| (if round % 2 == 0 { 0 } else { rng.u64(..150) }, k))
            .collect();
        starts.sort();
        let t0 = Instant::now();
        let mut children = Vec::new();
        for (at, k) in starts {
            let due = Duration::from_millis(at);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
            let (requests, out) = (format!("requests-{k}.csv"), format!("out-{k}"));
            let args = [
                "run",
                "--instances",
                "instances.csv",
                "--requests",
                &requests,
                "--ledger",
                "ledger.csv",
                "--out",
                &out,
                "--as-of",
                "2026-11-30",
            ];
            let log = root.join(format!("run-{k}.log"));
            children.push((k, spawn(&root, &args, &log), log));
        }
        let mut issued_by_winners: Vec<Vec<String>> = Vec::new();
        let mut round_locked = 0;
        for (k, mut child, log) in children {
            let status = wait(&mut child, &what);
            let stderr = fs::read_to_string(log.with_extension("stderr")).unwrap();
            let out = root.join(format!("out-{k}"));
            match status.code() {
                Some(0) => {
                    winners += 1;
                    let rows = csv_rows(&fs::read_to_string(out.join("issued.csv")).unwrap());
                    issued_by_winners.extend(rows.into_iter().skip(1));
                }
                Some(3) => {
                    locked += 1;
                    round_locked += 1;
                    assert!(stderr.contains("locked"), "{what}: run {k}: {stderr}");
                    assert!(
                        !out.exists(),
                        "{what}: run {k} exited 3 but created {out:?}"
                    );
                    assert!(
                        fs::read_to_string(log.with_extension("stdout"))
                            .unwrap()
                            .is_empty(),
                        "{what}: run {k} exited 3 but printed a summary"
                    );
                }
                other => panic!("{what}: run {k} ended with {other:?}: {stderr}"),
            }
        }
        if round_locked > 0 {
            overlapped_rounds += 1;
        }
        if RUNS - round_locked > 1 {
            relayed_rounds += 1;
        }
        assert!(round_locked < RUNS, "{what}: no run proceeded");

        // The ledger: the old rows unchanged, then exactly the rows the winners handed off.
        let now = fs::read(root.join("ledger.csv")).unwrap();
        assert!(now.starts_with(&pristine), "{what}: old rows changed");
        let added = appended_rows(&now[pristine.len()..], "2026-11-30T00:00:00Z");
        let all = csv_rows(std::str::from_utf8(&now).unwrap());
        unique_keys(&all[1..]);
        let mut request_ids = HashSet::new();
        let mut per_instance: HashMap<&str, usize> = HashMap::new();
        for r in &all[1..] {
            assert!(
                request_ids.insert(r[L_REQUEST].as_str()),
                "{what}: request id {} twice in the ledger",
                r[L_REQUEST]
            );
            *per_instance.entry(r[L_INSTANCE].as_str()).or_default() += 1;
        }
        for (instance, n) in &per_instance {
            assert!(*n <= 5, "{what}: {instance} holds {n} codes");
        }
        for h in 0..HOT {
            assert_eq!(per_instance[format!("h-{h}").as_str()], 5, "{what}: h-{h}");
        }
        let mut handed: Vec<(String, String)> = issued_by_winners
            .iter()
            .map(|r| (r[0].clone(), r[3].clone()))
            .collect();
        let mut appended: Vec<(String, String)> = added
            .iter()
            .map(|r| (r[L_REQUEST].clone(), r[L_CODE].clone()))
            .collect();
        handed.sort();
        appended.sort();
        assert_eq!(
            handed, appended,
            "{what}: the ledger holds what the winners issued"
        );
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "overlap: {rounds} rounds of {RUNS} runs ({} runs; seed {seed}): {winners} proceeded, \
             {locked} exited 3 (locked) and wrote nothing; {overlapped_rounds} rounds had a \
             locked run, {relayed_rounds} had runs proceeding one after another; no code twice, \
             no instance above 5 codes",
            rounds * RUNS
        );
    }
}

/// Every file under `dir`, by path relative to it, with its bytes (folders as `None`).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                into.insert(rel, None);
                walk(root, &path, into);
            } else {
                into.insert(rel, Some(fs::read(&path).unwrap()));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// The files of a bad-input case that describe it rather than feed the run.
const CASE_META: [&str; 8] = [
    "args",
    "expected-exit",
    "expected-stderr",
    "expected-decisions",
    "expected-input-errors",
    "forbidden-stderr",
    "known-bug",
    "NOTES.md",
];

/// Copies a case's inputs (folders included) into `to`.
fn copy_inputs(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if CASE_META.contains(&name.as_str()) {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_inputs(&e.path(), &to.join(&name));
        } else {
            fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// The lines of an optional case file.
fn case_lines(case: &Path, name: &str) -> Vec<String> {
    fs::read_to_string(case.join(name))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The cases under `fixtures/bad/`, with or without a `known-bug` file (none is left).
fn bad_cases(known_bugs: bool) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad");
    let mut cases: Vec<PathBuf> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected-exit").exists())
        .filter(|p| p.join("known-bug").exists() == known_bugs)
        .collect();
    cases.sort();
    cases
}

/// Runs one bad-input case; `Err` says everything that is wrong with the outcome.
fn run_bad_case(case: &Path) -> Result<(), String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let dir = scratch(&format!("bad-{name}"));
    copy_inputs(case, &dir);
    let extra: Vec<String> = fs::read_to_string(case.join("args"))
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut args = vec!["run".to_string()];
    for (flag, value) in [("--input", "."), ("--out", "out")] {
        if !extra.iter().any(|a| a == flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args.extend(extra);
    let want: i32 = fs::read_to_string(case.join("expected-exit"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let needle = fs::read_to_string(case.join("expected-stderr")).unwrap_or_default();
    let needle = needle.trim();
    let before = snapshot(&dir);
    let ledger_before = fs::read(dir.join("ledger.csv")).ok();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = run_in(&dir, &args, &dir.with_extension("log"));

    let mut wrong = Vec::new();
    if ran.code() != want {
        wrong.push(format!("exit {} instead of {want}", ran.code()));
    }
    if !ran.stderr.contains(needle) {
        wrong.push(format!("stderr lacks `{needle}`"));
    }
    if ran.stderr.contains("panicked") || ran.code() == 101 {
        wrong.push("it panicked".to_string());
    }
    for secret in case_lines(case, "forbidden-stderr") {
        if ran.stderr.contains(&secret) || ran.stdout.contains(&secret) {
            wrong.push(format!("the output shows `{secret}`"));
        }
    }
    if want != 0 {
        // A refusal writes nothing: every file as it was, no new file but the lock.
        if !ran.stderr.starts_with("icp-audit: ") {
            wrong.push("the refusal has no message".to_string());
        }
        let mut after = snapshot(&dir);
        after.retain(|p, _| before.contains_key(p) || !p.to_string_lossy().ends_with(".lock"));
        if after != before {
            let changed: Vec<_> = after
                .iter()
                .filter(|(p, v)| before.get(*p) != Some(*v))
                .map(|(p, _)| p.display().to_string())
                .chain(
                    before
                        .keys()
                        .filter(|p| !after.contains_key(*p))
                        .map(|p| format!("{} (removed)", p.display())),
                )
                .collect();
            wrong.push(format!("a refused run wrote {changed:?}"));
        }
    } else {
        if let Some(old) = &ledger_before {
            let now = fs::read(dir.join("ledger.csv")).unwrap_or_default();
            if !now.starts_with(old) {
                wrong.push("the ledger's old rows changed".to_string());
            }
        }
        for (file, expected) in [
            ("decisions.csv", "expected-decisions"),
            ("input-errors.csv", "expected-input-errors"),
        ] {
            let text = fs::read_to_string(dir.join("out").join(file)).unwrap_or_default();
            for line in case_lines(case, expected) {
                if !text.contains(&line) {
                    wrong.push(format!("{file} lacks `{line}`"));
                }
            }
        }
        for file in icp_audit::run::OUTPUTS {
            if !dir.join("out").join(file).exists() {
                wrong.push(format!("no out/{file}"));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        let stderr: String = ran.stderr.chars().take(2000).collect();
        Err(format!("{name}: {}\n  stderr: {stderr}", wrong.join("; ")))
    }
}

/// Runs cases, failing with every problem at once.
fn run_bad_cases(cases: &[PathBuf]) -> usize {
    let failures: Vec<String> = cases.iter().filter_map(|c| run_bad_case(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases went wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

/// `fixtures/bad/`: each case's documented exit code and error (naming the file, and the line
/// and column where a row or header is at fault); never a panic; a refusal writes nothing.
#[test]
fn bad_inputs_are_refused_or_read_as_documented() {
    let cases = bad_cases(false);
    assert!(cases.len() >= 30, "the corpus is there");
    let n = run_bad_cases(&cases);
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "bad inputs: {n} cases as documented; {} known bugs",
            bad_cases(true).len()
        );
    }
}

/// `n` eligible instances `i-0…` of account 100, one request each (`r0…`).
fn eligible(n: usize) -> (String, String) {
    let mut instances = format!("{INSTANCES_HEADER}\n");
    let mut requests = format!("{REQUESTS_HEADER}\n");
    for i in 0..n {
        instances.push_str(&format!(
            "i-{i},100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.{i}\n"
        ));
        requests.push_str(&format!("r{i},100,i-{i},2026-11-29\n"));
    }
    (instances, requests)
}

/// The first byte of a cell that a spreadsheet would run as a formula.
fn formula_start(cell: &str) -> bool {
    matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// HTML in ids, regions, the policy's name and templates and a file name comes out escaped in
/// report.html; formula-looking free text is neutralised with a leading `'` in every CSV
/// output; formula-looking identifiers make their rows malformed.
/// Export spellings of "none" or of a list in the lock and address cells fail closed: a JSON
/// lock (`[{"LockReason":"financial"}]`), a comma-separated one, `[]`, `N/A` or `;` for an
/// address make the row malformed (its request `invalid`, the cell in `input-errors.csv`),
/// where read as text they passed `exists` or hid a financial lock. Addresses and lock words
/// as the API writes them, one or several `;`-separated, are read as before.
#[test]
fn export_spellings_of_locks_and_addresses_fail_closed() {
    let instances = "InstanceId,OwnerId,RegionId,InstanceChargeType,ExpiredTime,InternetMaxBandwidthOut,PublicIpAddress,EipAddress,OperationLocks\n\
i-1,A1,cn-hangzhou,PrePaid,2028-01-01T16:00Z,5,1.1.1.1,,\"[{\"\"LockReason\"\":\"\"financial\"\"}]\"\n\
i-2,A1,cn-hangzhou,PrePaid,2028-01-01T16:00Z,0,[],[],\n\
i-3,A1,cn-hangzhou,PrePaid,2028-01-01T16:00Z,5,N/A,,\n\
i-4,A1,cn-hangzhou,PrePaid,2028-01-01T16:00Z,5,;,,\n\
i-5,A1,cn-hangzhou,PrePaid,2028-01-01T16:00Z,5,1.1.1.1,,\"financial,security\"\n\
i-6,A1,cn-hangzhou,PrePaid,2028-01-01T16:00Z,5,1.1.1.1;2001:db8::1,,security;\n\
i-7,A1,cn-hangzhou,PrePaid,2028-01-01T16:00Z,0,,47.0.0.1,financial;security\n";
    let mut requests = String::from("request_id,account_id,instance_id,requested_at\n");
    for i in 1..=7 {
        requests.push_str(&format!("r{i},A1,i-{i},2026-11-29\n"));
    }
    let ran = Test::new("export-spellings")
        .file("instances.csv", instances)
        .file("requests.csv", &requests)
        .args(RUN)
        .args(["--dry-run"])
        .run()
        .expect(0);
    let malformed = ("invalid", "malformed-instance");
    assert_eq!(
        crate::harness::outcomes(&ran),
        crate::harness::pairs([
            malformed,
            malformed,
            malformed,
            malformed,
            malformed,
            ("eligible", ""),
            ("denied", "not-expired"),
        ])
    );
    let errors = csv_rows(&ran.read("out/input-errors.csv"));
    let cells: Vec<(&str, &str)> = errors[1..]
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        cells,
        [
            ("2", "operation_locks"),
            ("3", "public_ip"),
            ("3", "eip_address"),
            ("4", "public_ip"),
            ("5", "public_ip"),
            ("6", "operation_locks"),
        ]
    );
}

#[test]
fn hostile_values_are_escaped_and_neutralised() {
    let policy = icp_audit::policy::DEFAULT_TEXT;
    let hostile = policy
        .replace(
            "name: icp-service-code",
            "name: \"<script>alert('name')</script>\"",
        )
        .replace(
            "message: \"Region {instance.region_id} is outside mainland China: no ICP filing is needed\"",
            "message: \"{instance.region_id} is outside mainland China\"",
        )
        .replace(
            "remedy: \"No action: ICP filing is not required for Hong Kong or overseas regions.\"",
            "remedy: \"{instance.region_id} <script>alert('remedy')</script>\"",
        );
    assert_eq!(
        hostile.matches("<script>").count(),
        2,
        "the default policy's text changed: update this test"
    );
    assert!(hostile.contains("message: \"{instance.region_id} is outside"));
    let regions = ["=1+2", "@SUM(A1)", "+cmd", "-2+3", "\t=1"];
    let mut instances = format!(
        "{INSTANCES_HEADER}\n<script>alert(1)</script>,100,<script>alert(2)</script>,PrePaid,2028-01-01,5,1.2.3.4\n"
    );
    let mut requests =
        format!("{REQUESTS_HEADER}\nr-html,100,<script>alert(1)</script>,2026-11-29\n");
    for (k, region) in regions.iter().enumerate() {
        instances.push_str(&format!(
            "i-{k},100,{region},PrePaid,2028-01-01,5,1.2.3.4\n"
        ));
        requests.push_str(&format!("r-{k},100,i-{k},2026-11-29\n"));
    }
    // Identifiers that a spreadsheet would run: the rows are malformed.
    instances.push_str("-i-9,100,cn-hangzhou,PrePaid,2028-01-01,5,1.2.3.4\n");
    requests
        .push_str("=r1,100,i-0,2026-11-29\nr-at,@100,i-0,2026-11-29\nr-plus,100,+i-1,2026-11-29\n");
    let file = "<img src=x onerror=alert(1)>.csv";
    let ran = Test::new("hostile-values")
        .file(file, &instances)
        .file("requests.csv", &requests)
        .file("policy.yaml", &hostile)
        .args(RUN)
        .args(["--instances", file, "--policy", "policy.yaml"])
        .run()
        .expect(0);

    let html = ran.read("out/report.html");
    let lower = html.to_lowercase();
    for tag in ["<script", "<img", "onerror=alert(1)>"] {
        assert!(!lower.contains(tag), "report.html contains `{tag}`");
    }
    for escaped in [
        "&lt;script&gt;alert(&#39;name&#39;)",
        "&lt;script&gt;alert(&#39;remedy&#39;)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;.csv",
    ] {
        assert!(
            html.contains(escaped),
            "report.html lacks `{escaped}`:\n{html}"
        );
    }

    // No cell of any CSV output starts like a formula; the hostile regions are there, quoted.
    for out in [
        "decisions.csv",
        "denials.csv",
        "issued.csv",
        "input-errors.csv",
    ] {
        for row in csv_rows(&ran.read(&format!("out/{out}"))) {
            for cell in &row {
                assert!(
                    !formula_start(cell),
                    "{out}: cell `{cell}` runs as a formula"
                );
            }
        }
    }
    let denials = csv_rows(&ran.read("out/denials.csv"));
    for (k, region) in regions.iter().enumerate() {
        let row = denials
            .iter()
            .find(|r| r[0] == format!("r-{k}"))
            .unwrap_or_else(|| panic!("no denial for r-{k}"));
        assert_eq!(row[4], "mainland-region");
        // Region ids are read trimmed and in lower case.
        let region = region.trim().to_lowercase();
        assert_eq!(row[5], format!("'{region} is outside mainland China"));
        assert_eq!(
            row[6],
            format!("'{region} <script>alert('remedy')</script>")
        );
    }
    let decisions = decisions_by_request(&ran.read("out/decisions.csv"));
    for id in ["'=r1", "r-at", "r-plus"] {
        assert_eq!(decisions[id].0, "invalid", "{id}");
    }
    let d = ran.read("out/decisions.csv");
    assert!(d.contains("'=r1,i-0,100,invalid,,malformed-request"), "{d}");
    assert!(
        d.contains("r-at,i-0,'@100,invalid,,malformed-request"),
        "{d}"
    );
    assert!(
        d.contains("r-plus,'+i-1,100,invalid,,malformed-request"),
        "{d}"
    );
    let errors = csv_rows(&ran.read("out/input-errors.csv"));
    assert!(
        errors
            .iter()
            .any(|r| r[1] == "8" && r[2] == "instance_id" && r[3].contains("begins with `-`")),
        "{errors:?}"
    );
}

/// Every output and a new ledger are owner-only (codes are secrets); an existing ledger keeps
/// its mode.
#[cfg(unix)]
#[test]
fn outputs_and_new_ledgers_are_owner_only_and_existing_ledgers_keep_their_mode() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let (instances, requests) = eligible(3);
    let t = Test::new("modes-new")
        .file("instances.csv", &instances)
        .file("requests.csv", &requests);
    let ran = t.args(RUN).run().expect(0);
    assert_eq!(mode(&ran.dir.join("ledger.csv")), 0o600, "a new ledger");
    for out in icp_audit::run::OUTPUTS {
        assert_eq!(mode(&ran.dir.join("out").join(out)), 0o600, "out/{out}");
    }

    for (name, existing) in [("modes-0640", 0o640), ("modes-0604", 0o604)] {
        let t = Test::new(name)
            .file("instances.csv", &instances)
            .file("requests.csv", &requests)
            .file("ledger.csv", &format!("{LEDGER_HEADER}\n"));
        fs::set_permissions(
            t.dir.join("ledger.csv"),
            fs::Permissions::from_mode(existing),
        )
        .unwrap();
        let ran = t.args(RUN).run().expect(0);
        assert_eq!(mode(&ran.dir.join("ledger.csv")), existing, "{name}");
        assert_eq!(csv_rows(&ran.read("ledger.csv")).len(), 4);
        assert_eq!(mode(&ran.dir.join("out/issued.csv")), 0o600);
    }

    // --ledger-out to a new file: owner-only too, the input untouched.
    let t = Test::new("modes-ledger-out")
        .file("instances.csv", &instances)
        .file("requests.csv", &requests)
        .file("ledger.csv", &format!("{LEDGER_HEADER}\n"));
    fs::set_permissions(t.dir.join("ledger.csv"), fs::Permissions::from_mode(0o644)).unwrap();
    let ran = t
        .args(RUN)
        .args(["--ledger-out", "new-ledger.csv"])
        .run()
        .expect(0);
    assert_eq!(mode(&ran.dir.join("new-ledger.csv")), 0o600);
    assert_eq!(ran.read("ledger.csv"), format!("{LEDGER_HEADER}\n"));
}

/// All the forms one code may be written in (as issued, lower case, without hyphens).
fn code_forms(code: &str) -> Vec<String> {
    vec![
        code.to_string(),
        code.to_lowercase(),
        code.replace('-', ""),
        code.replace('-', "").to_lowercase(),
    ]
}

#[track_caller]
fn assert_no_code_in(text: &str, codes: &[String], what: &str) {
    for code in codes {
        for form in code_forms(code) {
            assert!(!text.contains(&form), "{what} shows a code");
        }
    }
}

/// Codes are secrets: a run's stdout and stderr (with --timings too) never show one, nor does
/// the error of a run refused for a duplicated code, nor `verify-code`.
#[test]
fn codes_never_appear_in_stdout_or_stderr() {
    let (instances, requests) = eligible(4);
    let t = Test::new("codes-secret")
        .file("instances.csv", &instances)
        .file("requests.csv", &requests);
    let ran = t.args(RUN).args(["--timings"]).run().expect(0);
    let codes: Vec<String> = csv_rows(&ran.read("out/issued.csv"))
        .into_iter()
        .skip(1)
        .map(|r| r[3].clone())
        .collect();
    assert_eq!(codes.len(), 4);
    assert_no_code_in(&(ran.stdout() + &ran.stderr()), &codes, "a run");

    // A re-run returns them as already_issued, still without printing them.
    let rerun = run_in(&ran.dir, &RUN, &ran.dir.with_extension("rerun"));
    assert_eq!(rerun.code(), 0, "{}", rerun.stderr);
    assert_no_code_in(&(rerun.stdout + &rerun.stderr), &codes, "a re-run");
    assert!(
        ran.read("out/decisions.csv")
            .matches("already_issued")
            .count()
            == 4
    );

    // A ledger holding a code twice (once in another spelling) is refused without naming it.
    let ledger = ran.read("ledger.csv");
    let twin = format!(
        "{},i-0,100,,2026-11-30T00:00:00Z,spent,d.example\n",
        codes[1].to_lowercase().replace('-', "")
    );
    let refused = Test::new("codes-secret-duplicate")
        .file("instances.csv", &instances)
        .file("requests.csv", &requests)
        .file("ledger.csv", &format!("{ledger}{twin}"))
        .args(RUN)
        .run()
        .expect(2);
    assert!(
        refused
            .stderr()
            .contains("ledger.csv:6: column `code`: this code already appears on line 3"),
        "{}",
        refused.stderr()
    );
    assert_no_code_in(&(refused.stdout() + &refused.stderr()), &codes, "a refusal");
    assert!(!refused.dir.join("out").exists());

    // verify-code reports by position.
    let mut args = vec!["verify-code".to_string()];
    args.extend(codes.iter().cloned());
    args.push(format!("{}X", codes[0]));
    let verified = Test::new("codes-secret-verify").args(&args).run().expect(1);
    assert_no_code_in(
        &(verified.stdout() + &verified.stderr()),
        &codes,
        "verify-code",
    );
}

/// Codes appear only in the ledger, `decisions.csv` and `issued.csv`: a code shifted into
/// another ledger column (a hand-edited or exported ledger) is found, but the finding in
/// `input-errors.csv` names the place, not the cell; no other output shows it either.
#[test]
fn a_code_in_the_wrong_ledger_column_is_not_repeated_in_any_report() {
    let (instances, requests) = eligible(1);
    let code = "MM2V-CGG2-0ME5-SFGG-WCHK";
    let ledger = format!(
        "code,instance_id,account_id,request_id,issued_at,status,domain\n\
         A-1,i-0,100,,2025-01-01,issued,x.example\n\
         A-2,i-0,100,,{code},issued,x.example\n"
    );
    let ran = Test::new("code-wrong-column")
        .file("instances.csv", &instances)
        .file("requests.csv", &requests)
        .file("ledger.csv", &ledger)
        .args(RUN)
        .args(["--dry-run"])
        .run()
        .expect(0);
    let errors = ran.read("out/input-errors.csv");
    assert!(
        csv_rows(&errors)
            .iter()
            .any(|r| r[0].ends_with("ledger.csv")
                && r[1] == "3"
                && r[2] == "issued_at"
                && r[3].starts_with("the value is not a time (expected YYYY-MM-DD")),
        "{errors}"
    );
    let codes = [code.to_string()];
    assert_no_code_in(&(ran.stdout() + &ran.stderr()), &codes, "the run");
    for name in [
        "input-errors.csv",
        "denials.csv",
        "summary.json",
        "report.html",
    ] {
        assert_no_code_in(&ran.read(&format!("out/{name}")), &codes, name);
    }
}

/// The safety cap: a run that would issue more than N codes is refused (exit 2, the number in
/// the message, nothing written); exactly N passes. The policy's `max_issue` too; the flag wins.
/// A dry run over the cap goes on, with a warning.
#[test]
fn the_safety_cap_refuses_a_run_that_would_issue_too_many() {
    let (instances, requests) = eligible(5);
    let ledger = format!("{LEDGER_HEADER}\nOLD-1,i-0,100,,2025-01-01T00:00:00Z,spent,x\n");
    let capped_policy = |n: u64| {
        let text = icp_audit::policy::DEFAULT_TEXT
            .replace("\nsets:", &format!("\nmax_issue: {n}\n\nsets:"));
        assert!(
            text.contains("max_issue:"),
            "the default policy's text changed"
        );
        text
    };
    let case = |name: &str, args: &[&str], policy: Option<String>| {
        let mut t = Test::new(name)
            .file("instances.csv", &instances)
            .file("requests.csv", &requests)
            .file("ledger.csv", &ledger)
            .args(RUN)
            .args(args);
        if let Some(p) = policy {
            t = t.file("policy.yaml", &p).args(["--policy", "policy.yaml"]);
        }
        let before = snapshot(&t.dir);
        (t.run(), before)
    };
    let refused = |name: &str, args: &[&str], policy: Option<String>| {
        let (ran, before) = case(name, args, policy);
        let ran = ran.expect(2);
        assert!(
            ran.stderr().contains("would issue 5 codes"),
            "{name}: {}",
            ran.stderr()
        );
        assert!(!ran.stderr().contains("panicked"));
        let mut after = snapshot(&ran.dir);
        after.remove(Path::new("ledger.csv.lock"));
        assert!(after == before, "{name}: a refused run wrote something");
        assert!(!ran.dir.join("out").exists());
    };
    let passes = |name: &str, args: &[&str], policy: Option<String>| {
        let (ran, _) = case(name, args, policy);
        let ran = ran.expect(0);
        assert_eq!(csv_rows(&ran.read("out/issued.csv")).len(), 6, "{name}");
        assert_eq!(csv_rows(&ran.read("ledger.csv")).len(), 7, "{name}");
    };
    refused("cap-flag-4", &["--max-issue", "4"], None);
    refused("cap-flag-0", &["--max-issue", "0"], None);
    passes("cap-flag-5", &["--max-issue", "5"], None);
    passes("cap-flag-6", &["--max-issue", "6"], None);
    refused("cap-policy-4", &[], Some(capped_policy(4)));
    passes("cap-policy-5", &[], Some(capped_policy(5)));
    passes(
        "cap-policy-4-flag-5",
        &["--max-issue", "5"],
        Some(capped_policy(4)),
    );
    refused(
        "cap-policy-5-flag-4",
        &["--max-issue", "4"],
        Some(capped_policy(5)),
    );
    // A dry run over the cap is not refused: it shows the batch, and warns (with --quiet too)
    // that the real run would be refused. Within the cap it says nothing of it.
    let dry = |name: &str, args: &[&str], policy: Option<String>, warned: bool| {
        let (ran, _) = case(name, args, policy);
        let ran = ran.expect(0);
        let warning = "warning: a real run would issue 5 codes, more than the safety cap of 4";
        assert_eq!(
            ran.stderr().contains(warning),
            warned,
            "{name}: {}",
            ran.stderr()
        );
        assert_eq!(ran.stderr().contains("warning"), warned, "{name}");
        assert_eq!(
            ran.read("out/decisions.csv").matches(",eligible,").count(),
            5,
            "{name}"
        );
        assert_eq!(ran.read("ledger.csv"), ledger, "{name}");
        assert!(
            !ran.dir.join("ledger.csv.lock").exists(),
            "{name}: a dry run takes no lock"
        );
    };
    dry(
        "cap-dry-flag",
        &["--max-issue", "4", "--dry-run", "--quiet"],
        None,
        true,
    );
    dry(
        "cap-dry-policy",
        &["--dry-run"],
        Some(capped_policy(4)),
        true,
    );
    dry(
        "cap-dry-within",
        &["--max-issue", "5", "--dry-run"],
        None,
        false,
    );
    // A re-run of a capped batch issues nothing new: already_issued rows do not count.
    let (ran, _) = case("cap-rerun", &["--max-issue", "5"], None);
    let ran = ran.expect(0);
    let ledger = ran.read("ledger.csv");
    let mut args = RUN.to_vec();
    args.extend(["--max-issue", "0"]);
    let rerun = run_in(&ran.dir, &args, &ran.dir.with_extension("rerun"));
    assert_eq!(rerun.code(), 0, "{}", rerun.stderr);
    assert_eq!(csv_rows(&ran.read("out/issued.csv")).len(), 1);
    assert_eq!(ran.read("ledger.csv"), ledger);
}

/// The fuzz targets' checks (`fuzz/src/lib.rs`), compiled into this test binary too.
#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_checks;

/// Runs every input of `fuzz/{regressions,seeds}/TARGET/` through that fuzz target's checks.
/// Returns how many inputs each folder had.
fn replay_fuzz_inputs() -> BTreeMap<String, usize> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let mut replayed = BTreeMap::new();
    let mut failures = Vec::new();
    for kind in ["regressions", "seeds"] {
        let Ok(targets) = fs::read_dir(fuzz.join(kind)) else {
            continue;
        };
        for target in targets {
            let target = target.unwrap().path();
            let name = target.file_name().unwrap().to_string_lossy().into_owned();
            for input in fs::read_dir(&target).unwrap() {
                let input = input.unwrap().path();
                let data = fs::read(&input).unwrap();
                let check = || match name.as_str() {
                    "csv_tables" => fuzz_checks::csv_tables(&data),
                    "ledger" => fuzz_checks::ledger(&data),
                    "policy" => fuzz_checks::policy(&data),
                    "policy_run" => fuzz_checks::policy_run(&data, &demo),
                    "verify_code" => fuzz_checks::verify_code(&data),
                    "times" => fuzz_checks::times(&data),
                    other => panic!("fuzz/{kind}/{other}: no such fuzz target"),
                };
                if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{}: {msg}", input.display()));
                }
                *replayed.entry(format!("{kind}/{name}")).or_insert(0) += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} fuzz inputs fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    replayed
}

/// Replays the inputs the fuzzers found (`fuzz/regressions/`, kept as regression cases) and
/// their seeds (`fuzz/seeds/`) through the fuzz targets' own checks, so that `cargo test`
/// covers them without nightly or cargo-fuzz.
#[test]
fn fuzz_regressions_replay() {
    let replayed = replay_fuzz_inputs();
    assert!(replayed.keys().any(|k| k.starts_with("seeds/")));
    #[allow(clippy::print_stderr)]
    {
        eprintln!("fuzz inputs replayed: {replayed:?}");
    }
}

/// An absurd `--jobs` must not panic (exit 101) nor hang holding the ledger lock: it should be
/// refused (exit 2) or capped. Here the address space is limited so that thread creation fails
/// quickly instead of taking minutes (`--jobs 20000` without a limit ran for over 100 s).
#[cfg(unix)]
#[test]
fn absurd_jobs_is_refused_not_a_panic() {
    let (instances, requests) = eligible(3);
    let t = Test::new("absurd-jobs")
        .file("instances.csv", &instances)
        .file("requests.csv", &requests)
        .file("ledger.csv", &format!("{LEDGER_HEADER}\n"));
    let mut args = vec!["-c", "ulimit -v 400000 && exec \"$0\" \"$@\"", BIN];
    args.extend(RUN);
    args.extend(["--jobs", "100000"]);
    let mut child = Command::new("sh")
        .args(&args)
        .current_dir(&t.dir)
        .stdout(Stdio::null())
        .stderr(File::create(t.dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let status = wait(&mut child, "--jobs 100000");
    let stderr = fs::read_to_string(t.dir.join("stderr")).unwrap();
    assert!(
        matches!(status.code(), Some(1 | 2)),
        "exit {status:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("--jobs"),
        "the message names the flag: {stderr}"
    );
    assert_eq!(
        fs::read_to_string(t.dir.join("ledger.csv")).unwrap(),
        format!("{LEDGER_HEADER}\n")
    );
}

/// A run killed during its commit leaves `.ledger.csv.tmp-PID` behind (the crash test counts
/// them). A later run whose process id is that PID (ids are reused: after a reboot, in a fresh
/// container where the job often gets the same small id) must still succeed, whether the
/// leftover is beside the ledger or in `out/` (where failing would lose the hand-off after the
/// ledger is committed). Set up by leaving such files for the next few thousand process ids.
#[cfg(unix)]
#[test]
fn a_leftover_temporary_file_does_not_fail_a_later_run() {
    const AHEAD: u32 = 3000;
    let (instances, requests) = eligible(3);
    for (name, folder) in [("stale-tmp-ledger", ""), ("stale-tmp-out", "out")] {
        let t = Test::new(name)
            .file("instances.csv", &instances)
            .file("requests.csv", &requests)
            .file("ledger.csv", &format!("{LEDGER_HEADER}\n"));
        let dir = t.dir.join(folder);
        fs::create_dir_all(&dir).unwrap();
        let probe = Command::new("true").spawn().unwrap();
        let next = probe.id() + 1;
        let _ = { probe }.wait();
        for pid in next..next + AHEAD {
            let name = if folder.is_empty() {
                format!(".ledger.csv.tmp-{pid}")
            } else {
                format!(".issued.csv.tmp-{pid}")
            };
            fs::write(dir.join(name), b"left by a killed run").unwrap();
        }
        let log = t.dir.with_extension("log");
        let mut child = spawn(&t.dir, &RUN, &log);
        let pid = child.id();
        let status = wait(&mut child, name);
        if !(next..next + AHEAD).contains(&pid) {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{name}: pid {pid} fell outside the prepared range; not shown");
            }
            continue;
        }
        let stderr = fs::read_to_string(log.with_extension("stderr")).unwrap();
        assert_eq!(status.code(), Some(0), "{name} (pid {pid}): {stderr}");
        assert_eq!(
            csv_rows(&fs::read_to_string(t.dir.join("out/issued.csv")).unwrap()).len(),
            4
        );
    }
}

/// A ledger reached through a symbolic link (`ledger.csv -> real/ledger.csv`, as operators
/// point a job at the current file) is the file it points to: the new rows must land there,
/// and the link must stay a link; otherwise the real ledger would never receive the codes just
/// issued (a job reading it directly would give out the same quota again).
#[cfg(unix)]
#[test]
fn a_symlinked_ledger_is_updated_where_it_points() {
    let (instances, requests) = eligible(2);
    let t = Test::new("symlinked-ledger")
        .file("instances.csv", &instances)
        .file("requests.csv", &requests)
        .file("real/ledger.csv", &format!("{LEDGER_HEADER}\n"));
    std::os::unix::fs::symlink("real/ledger.csv", t.dir.join("ledger.csv")).unwrap();
    let ran = t.args(RUN).run().expect(0);
    assert!(
        fs::symlink_metadata(ran.dir.join("ledger.csv"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a regular file"
    );
    assert_eq!(
        csv_rows(&ran.read("real/ledger.csv")).len(),
        3,
        "the real ledger got the new rows"
    );
}

/// The lock belongs to the ledger file, not to the path a run names it by: a run that reaches
/// the same ledger through a symbolic link must see the lock another run holds (here, held by
/// the test on `real/ledger.csv.lock`) and exit 3, or two runs could hand out the same quota.
#[cfg(unix)]
#[test]
fn the_lock_holds_whatever_path_names_the_ledger() {
    let (instances, requests) = eligible(2);
    let t = Test::new("lock-by-file")
        .file("instances.csv", &instances)
        .file("requests.csv", &requests)
        .file("real/ledger.csv", &format!("{LEDGER_HEADER}\n"));
    std::os::unix::fs::symlink("real/ledger.csv", t.dir.join("ledger.csv")).unwrap();
    let _lock = hold_lock(&t.dir.join("real/ledger.csv.lock"));
    let ran = t.args(RUN).run();
    assert_eq!(
        ran.code(),
        3,
        "a second run on a locked ledger: {}",
        ran.stderr()
    );
}
