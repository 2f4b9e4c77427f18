//! A small builder for end-to-end runs of the real executable in a scratch folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_icp-audit");

/// `run` on the inputs in the scratch folder, writing `out/`, as of 2026-11-30.
pub const RUN: [&str; 7] = [
    "run",
    "--input",
    ".",
    "--out",
    "out",
    "--as-of",
    "2026-11-30",
];

/// The standard headers of the three inputs (no line end).
pub const INSTANCES_HEADER: &str = "instance_id,account_id,region_id,charge_type,expired_time,internet_max_bandwidth_out,public_ip";
pub const REQUESTS_HEADER: &str = "request_id,account_id,instance_id,requested_at";
pub const LEDGER_HEADER: &str = "code,instance_id,account_id,request_id,issued_at,status,domain";

/// Each request's outcome and reasons, from a run's `out/decisions.csv`, in file order.
pub fn outcomes(ran: &Ran) -> Vec<(String, String)> {
    csv_rows(&ran.read("out/decisions.csv"))[1..]
        .iter()
        .map(|r| (r[3].clone(), r[5].clone()))
        .collect()
}

/// `(outcome, reasons)` pairs as `outcomes` gives them, from string literals.
pub fn pairs<const N: usize>(expected: [(&str, &str); N]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(o, r)| (o.to_string(), r.to_string()))
        .collect()
}

/// Makes a named pipe at `path` (`mkfifo`).
#[cfg(unix)]
pub fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// A fresh, empty scratch folder named after the test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Test {
    pub dir: PathBuf,
    args: Vec<String>,
    /// Environment variables set (`Some`) or removed (`None`) for the run.
    envs: Vec<(String, Option<String>)>,
    /// Run as a user whom file modes stop (see `unprivileged`).
    unprivileged: bool,
}

/// What a run left behind.
pub struct Ran {
    pub dir: PathBuf,
    pub output: Output,
}

impl Test {
    pub fn new(name: &str) -> Test {
        Test {
            dir: scratch(name),
            args: Vec::new(),
            envs: Vec::new(),
            unprivileged: false,
        }
    }

    /// Writes a file into the scratch folder.
    pub fn file(self, name: &str, text: &str) -> Test {
        let p = self.dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Test {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Sets (`Some`) or removes (`None`) an environment variable for the run.
    pub fn env(mut self, name: &str, value: Option<&str>) -> Test {
        self.envs
            .push((name.to_string(), value.map(str::to_string)));
        self
    }

    /// Runs the program as a user whom file modes stop: as this user, or, when that is root
    /// (whom they do not stop; CI runs as root), as `nobody` (uid and gid 65534, through
    /// `setpriv`), so that a test of an unreadable or unwritable file tests what it says. The
    /// scratch folder is opened to every user, so that the run may write there.
    #[cfg(unix)]
    pub fn unprivileged(mut self) -> Test {
        self.unprivileged = true;
        chmod(&self.dir, 0o777);
        self
    }

    pub fn run(&self) -> Ran {
        let mut command = match self.unprivileged && is_root() {
            true => {
                let mut setpriv = Command::new("setpriv");
                setpriv.args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--",
                    BIN,
                ]);
                setpriv
            }
            false => Command::new(BIN),
        };
        command.args(&self.args).current_dir(&self.dir);
        for (name, value) in &self.envs {
            match value {
                Some(v) => command.env(name, v),
                None => command.env_remove(name),
            };
        }
        let output = command.output().unwrap();
        Ran {
            dir: self.dir.clone(),
            output,
        }
    }
}

impl Ran {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts the exit code, showing stderr when it differs.
    pub fn expect(self, code: i32) -> Ran {
        assert_eq!(
            self.code(),
            code,
            "exit code; stderr:\n{}\nstdout:\n{}",
            self.stderr(),
            self.stdout()
        );
        self
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\nstderr:\n{}", self.stderr()))
    }
}

/// Asserts two texts are equal, showing a line-by-line diff when they are not.
#[track_caller]
pub fn assert_same_text(got: &str, want: &str, what: &str) {
    if got == want {
        return;
    }
    let mut report = format!("{what} differs (- want, + got):\n");
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    for i in 0..g.len().max(w.len()) {
        match (w.get(i), g.get(i)) {
            (Some(a), Some(b)) if a == b => report.push_str(&format!("  {a}\n")),
            (a, b) => {
                if let Some(a) = a {
                    report.push_str(&format!("- {a}\n"));
                }
                if let Some(b) = b {
                    report.push_str(&format!("+ {b}\n"));
                }
            }
        }
    }
    panic!("{report}");
}

/// Parses a CSV text into rows of cells (header included).
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

/// Copies every file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Whether this process runs as root: its effective user id, from `/proc/self/status`.
pub fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uids = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("/proc/self/status has a Uid line");
    uids.split_whitespace().nth(1) == Some("0")
}

/// Sets a file's or folder's permission bits.
#[cfg(unix)]
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Takes the exclusive lock a run takes on `path` (a `<ledger>.lock`), held until dropped.
pub fn hold_lock(path: &Path) -> fs::File {
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    lock.try_lock().unwrap();
    lock
}
