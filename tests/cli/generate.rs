//! `icp-audit generate`: what it refuses (exit 2, nothing written) and what a failure while
//! writing leaves (the files that were there, as they were).

use crate::harness::{Test, chmod};
use std::fs;

const FILES: [&str; 3] = ["instances.csv", "ledger.csv", "requests.csv"];

fn generate(out: &str, force: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "generate",
        "--out",
        out,
        "--instances",
        "5",
        "--requests",
        "5",
    ]
    .map(String::from)
    .to_vec();
    if force {
        args.push("--force".to_string());
    }
    args
}

/// An --out that is a file, and a folder where one of the files goes (also with --force), are
/// refused with exit 2 and nothing written; a workload written leaves no temporary file.
#[test]
fn generate_refuses_what_it_cannot_replace_and_writes_nothing() {
    let t = Test::new("generate-refusals").file("w/instances.csv", "keep me");
    let ran = t.args(generate("w/instances.csv", false)).run().expect(2);
    assert_eq!(
        ran.stderr(),
        "icp-audit: generate --out w/instances.csv: is a file, not a folder; nothing was written\n"
    );
    let t = Test::new("generate-folder-in-place").file("w/ledger.csv/x", "");
    let ran = t.args(generate("w", true)).run().expect(2);
    assert!(
        ran.stderr().contains("ledger.csv is a folder, not a file"),
        "{}",
        ran.stderr()
    );
    let names = |dir: &std::path::Path| {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&ran.dir.join("w")), ["ledger.csv"], "nothing written");
    let ran = Test::new("generate-written")
        .args(generate("w", false))
        .run()
        .expect(0);
    let mut want = FILES.to_vec();
    want.insert(2, "ledger.csv.lock");
    assert_eq!(
        names(&ran.dir.join("w")),
        want,
        "the three files, the lock, nothing else"
    );
}

/// generate holds the ledger's lock as a run does: while a run (or another generate) holds it,
/// generate is exit 3 and writes nothing, so a ledger a run is committing is never replaced.
#[test]
fn generate_takes_the_ledger_lock_as_a_run_does() {
    let t = Test::new("generate-locked").args(generate("w", true));
    fs::create_dir_all(t.dir.join("w")).unwrap();
    let held = crate::harness::hold_lock(&t.dir.join("w/ledger.csv.lock"));
    let ran = t.run().expect(3);
    assert!(
        ran.stderr().contains("locked by another run"),
        "{}",
        ran.stderr()
    );
    assert_eq!(
        fs::read_dir(ran.dir.join("w")).unwrap().count(),
        1,
        "only the lock"
    );
    drop(held);
    t.run().expect(0);
}

/// An --out the run may not make files in is refused (exit 2), and the files that were there
/// stay as they were, with no temporary file beside them. Run as a user whom
/// file modes stop (`nobody` under root).
#[cfg(unix)]
#[test]
fn a_generate_refused_leaves_the_files_there_as_they_were() {
    let mut t = Test::new("generate-fails");
    for f in FILES {
        t = t.file(&format!("w/{f}"), "old");
    }
    let t = t.unprivileged().args(generate("w", true));
    let w = t.dir.join("w");
    // The files themselves may be written: only their folder may not (a file rewritten in
    // place would be half-written by a failure).
    // Its lock file is there and may be taken: the folder refuses the new files only.
    fs::write(w.join("ledger.csv.lock"), "").unwrap();
    for f in FILES.iter().chain(&["ledger.csv.lock"]) {
        chmod(&w.join(f), 0o666);
    }
    chmod(&w, 0o555);
    let ran = t.run().expect(2);
    chmod(&w, 0o755);
    assert!(
        ran.stderr().contains("cannot create instances.csv there"),
        "{}",
        ran.stderr()
    );
    for f in FILES {
        assert_eq!(ran.read(&format!("w/{f}")), "old", "{f}");
    }
    assert_eq!(
        fs::read_dir(&w).unwrap().count(),
        4,
        "no temporary file is left"
    );
}
