//! icp-audit: decides which cloud instances may receive ICP Filing service codes, issues them,
//! records them in the ledger and reports every refusal. `main` parses the command line, runs
//! one command and turns its result into an exit code; the pipeline lives in `run`.

use icp_audit::cli::{self, Command};
use icp_audit::error::{Error, Exit};
use icp_audit::{generate, hugepages, policy, policytest, report, run};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let result = cli::parse().and_then(|command| {
        if let Command::Run(cfg) = &command {
            // Returns only when this is already the run's process (or cannot be another).
            let input = hugepages::input_size(
                [&cfg.instances, &cfg.requests, &cfg.ledger].map(|p| p.as_path()),
            );
            hugepages::restart_with_huge_pages(input);
        }
        execute(command).and_then(|()| stdout_result())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                let message = icp_audit::error::plain(&e.message);
                eprintln!("icp-audit: {}", message.replace('\n', "\nicp-audit: "));
            }
            ExitCode::from(e.exit as u8)
        }
    }
}

fn execute(command: Command) -> Result<(), Error> {
    match command {
        Command::Run(cfg) => {
            let (summary, phases) = run::run(&cfg)?;
            for warning in &summary.warnings {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("icp-audit: warning: {}", icp_audit::error::plain(warning));
                }
            }
            if cfg.timings {
                #[allow(clippy::print_stderr)]
                {
                    let asked = hugepages::asked(std::env::var_os("GLIBC_TUNABLES").as_deref());
                    eprintln!(
                        "icp-audit: timings: {}; huge pages {}, at most {} MiB",
                        phases.describe(),
                        if asked { "asked" } else { "not asked" },
                        phases.huge_kib / 1024
                    );
                }
            }
            if !cfg.quiet {
                say(&summary.line);
                if std::io::stdout().is_terminal() {
                    say(&report::terminal::render(&summary));
                    say(&format!("outputs in {}", cfg.out.display()));
                }
            }
            // A summary line lost (a full disk) fails the command, but must not pass for a run
            // that did nothing: one retried would hand over none of the codes it issued.
            stdout_result().map_err(|mut e| {
                e.message.push_str(&completed(&cfg, &summary));
                e
            })
        }
        Command::CheckPolicy(path) => {
            let p = policy::load(&path)?;
            say(&format!(
                "{}: ok: policy `{}`, {} ({} of them quota)",
                path.display(),
                p.name,
                report::counted(p.rules.len() + p.quotas.len(), "rule"),
                p.quotas.len()
            ));
            Ok(())
        }
        Command::VerifyCode { policy, codes } => verify_codes(policy.as_deref(), &codes),
        Command::Generate {
            out,
            instances,
            requests,
            seed,
            force,
        } => generate::write(&out, instances, requests, seed, force),
        Command::Test { files, coverage } => test_policies(&files, coverage),
        Command::Schema => {
            say(policy::schema::text().trim_end());
            Ok(())
        }
    }
}

/// Runs the policy test cases: a line per case, the coverage when asked, and the total line.
fn test_policies(files: &[std::path::PathBuf], coverage: bool) -> Result<(), Error> {
    let suite = policytest::load(files)?;
    let results = policytest::run(&suite)?;
    for line in results.iter().flat_map(|r| r.lines(&suite)) {
        say(&line);
    }
    let mut gaps = 0;
    if coverage {
        for c in policytest::measure(&suite, &results) {
            c.describe().iter().for_each(|l| say(l));
            gaps += c.gaps().len();
        }
    }
    let failed = results.iter().filter(|r| !r.passed(&suite)).count();
    say(&format!(
        "{} passed, {failed} failed",
        results.len() - failed
    ));
    let mut problems = Vec::new();
    if failed > 0 {
        problems.push(format!("{failed} of {} cases failed", results.len()));
    }
    if gaps > 0 {
        problems.push(format!("{gaps} sides of rules were not exercised"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error {
            exit: Exit::Failed,
            message: problems.join("; "),
        })
    }
}

/// Prints one line per code, by position: codes are secrets and are never echoed.
fn verify_codes(policy: Option<&std::path::Path>, codes: &[String]) -> Result<(), Error> {
    let policy = match policy {
        Some(p) => policy::load(p)?,
        None => policy::default_policy(),
    };
    let mut bad = 0;
    for (i, c) in codes.iter().enumerate() {
        match policy.code.verify(c) {
            Ok(_) => say(&format!("code {}: well-formed", i + 1)),
            Err(e) => {
                bad += 1;
                say(&format!("code {}: not well-formed: it {e}", i + 1));
            }
        }
    }
    if bad == 0 {
        Ok(())
    } else {
        Err(Error {
            exit: Exit::Failed,
            message: format!("{bad} of {} codes are not well-formed", codes.len()),
        })
    }
}

/// What a run whose summary line could not be written did all the same, and what a retry does.
fn completed(cfg: &cli::RunConfig, summary: &report::Summary) -> String {
    let out = cfg.out.display();
    if cfg.dry_run {
        return format!("\nthe dry run itself completed: its outputs are in {out}");
    }
    let issued = summary
        .outcomes
        .iter()
        .find(|(outcome, _)| *outcome == "issued")
        .map_or(0, |(_, n)| *n);
    let elsewhere = cfg.ledger_out_given && cfg.ledger_out != cfg.ledger;
    let (ledger, retry) = match elsewhere {
        false => (
            format!("the ledger {}", cfg.ledger.display()),
            "a re-run would issue none of them again and hand over none".to_string(),
        ),
        true => (
            format!("--ledger-out {}", cfg.ledger_out.display()),
            format!(
                "a re-run must decide by it (--ledger {}), or it is refused",
                cfg.ledger_out.display()
            ),
        ),
    };
    format!(
        "\nthe run itself completed: {ledger} holds its {issued} new code(s), handed over in {}, \
         and its outputs are in {out}; {retry}",
        cfg.out.join("issued.csv").display()
    )
}

/// The first failure to write to stdout other than a closed pipe (a full disk, say), reported
/// when the command ends: what a log was to get must not be lost without a word.
static STDOUT_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A line on stdout; a closed pipe is not an error (`icp-audit … | head`), any other failure is
/// remembered for `stdout_result`.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = STDOUT_FAILED.set(e.to_string());
    }
}

/// `Ok` unless a line could not be written to stdout (see `say`).
fn stdout_result() -> Result<(), Error> {
    match STDOUT_FAILED.get() {
        None => Ok(()),
        Some(e) => Err(Error {
            exit: Exit::Failed,
            message: format!("cannot write to standard output: {e}"),
        }),
    }
}
