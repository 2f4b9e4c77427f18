//! The command line (clap): raw arguments, then one validated `Command` for `main` to run.
//! Paths are resolved here (`--input DIR` fills the file flags it was not given), so nothing
//! downstream looks at flags.

use crate::error::{Error, Result};
use crate::time::{self, Time};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Decides which cloud instances may receive ICP Filing service codes, issues the codes,
/// records them in the ledger and reports every refusal with its reasons and remedies.
#[derive(Debug, Parser)]
#[command(name = "icp-audit", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: RawCommand,
}

#[derive(Debug, Subcommand)]
enum RawCommand {
    /// Evaluate the day's requests, issue codes to the eligible ones, append them to the ledger
    /// and write decisions, denials, issued codes, input errors, summary.json and report.html.
    ///
    /// Exit codes: 0 the run completed (denials are normal outcomes); 2 refused before writing
    /// anything (usage, policy, input files, corrupt ledger, an --out that would overwrite an
    /// input or cannot be written, the --max-issue cap); 3 the ledger is locked by another run;
    /// 1 anything else (a disk that fails mid-write).
    Run(Box<RunArgs>),
    /// Compile a policy file and report its problems as file:line:column: message.
    ///
    /// The document's shape is checked first: every unknown key and every wrong rule `kind` or
    /// `when_fails` is listed at once, with the first other problem of shape (YAML syntax, a
    /// value of the wrong type, a missing key). A policy of the right shape is then compiled,
    /// and every problem found (unknown columns, type mismatches, duplicate rule ids, unknown
    /// placeholders, a weak code format) is listed at once. Exit codes: 0 the policy compiles;
    /// 2 it does not, or cannot be read.
    CheckPolicy {
        /// The policy YAML file.
        file: PathBuf,
    },
    /// Check that codes are well-formed (prefix, alphabet, length, check symbol); exit 0 only
    /// when every one is. Input is case-insensitive, hyphens are ignored, I and L read as 1, O as 0.
    VerifyCode {
        /// The policy whose code format applies (default: the built-in policy).
        #[arg(long, value_name = "F")]
        policy: Option<PathBuf>,
        /// The codes to check.
        #[arg(required = true)]
        codes: Vec<String>,
    },
    /// Run policy test cases (YAML): each case's request is decided by the real engine, as a
    /// dry run, and its outcome and reason ids compared with the expected ones.
    ///
    /// Prints `ok   NAME` or `FAIL NAME: …` per case and `N passed, M failed`. Exit codes: 0
    /// every case passed (and, with --coverage, every rule was both refused and passed); 1 a
    /// case failed or a rule side was not exercised; 2 a file or policy could not be read.
    Test {
        /// Also name each rule whose refusing or passing side no case exercises.
        #[arg(long)]
        coverage: bool,
        /// The test files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema (draft 2020-12) of the policy file, for editors.
    Schema,
    /// Write a synthetic workload (instances.csv, ledger.csv, requests.csv) for benchmarks.
    ///
    /// The files are written under temporary names and put in place, one after another, once
    /// all three are whole; the ledger's lock is held throughout, as a run holds it. Exit
    /// codes: 0 written; 2 refused, nothing written (a file already there without --force, a
    /// folder where a file goes, an --out that cannot be made or written in); 1 a failure while
    /// writing (the files that were there are left as they were) or while putting them in
    /// place (some may be replaced); 3 a run holds the ledger's lock.
    Generate {
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// How many instances.
        #[arg(long)]
        instances: usize,
        /// How many requests.
        #[arg(long)]
        requests: usize,
        /// The seed: the same seed writes the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Replace the three files when they are already in the folder (without it, generate
        /// refuses rather than write over what may be a real ledger).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A folder holding instances.csv, requests.csv and ledger.csv; explicit file flags win.
    /// Without it, --instances, --requests and --ledger must all be given.
    #[arg(long, value_name = "DIR")]
    input: Option<PathBuf>,
    /// The instance inventory (as ECS DescribeInstances describes instances).
    #[arg(long, value_name = "F")]
    instances: Option<PathBuf>,
    /// The day's code requests.
    #[arg(long, value_name = "F")]
    requests: Option<PathBuf>,
    /// The ledger of every code ever issued; a missing file is an empty ledger, but the ledger
    /// must be named (here or by --input). Updated in place unless --ledger-out is given.
    #[arg(long, value_name = "F")]
    ledger: Option<PathBuf>,
    /// Write the complete new ledger here and leave --ledger untouched. A file already there is
    /// replaced only when --ledger holds every code in it (else exit 2: its codes would be lost).
    #[arg(long, value_name = "F")]
    ledger_out: Option<PathBuf>,
    /// The policy YAML (default: the built-in policies/icp-service-code.yaml).
    #[arg(long, value_name = "F")]
    policy: Option<PathBuf>,
    /// A waivers file (YAML): time-limited exemptions of one instance or account from one check.
    #[arg(long, value_name = "F")]
    waivers: Option<PathBuf>,
    /// The time the rules are evaluated at: YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fraction]]
    /// then Z or ±HH:MM (default: now, UTC, to the second).
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
    /// The folder for the outputs (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Decide without issuing: eligible requests are reported as `eligible`, the ledger is
    /// neither locked nor written. Refused into an --out whose issued.csv hands over codes.
    /// What would refuse the real run (its --ledger-out, the --max-issue cap) is a warning.
    #[arg(long)]
    dry_run: bool,
    /// Threads for evaluation, 1 to 256 (default: one per core).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    jobs: Option<usize>,
    /// No progress bars and no summary line.
    #[arg(long)]
    quiet: bool,
    /// Refuse the run (exit 2, nothing written) when it would issue more than N codes; a
    /// policy's max_issue does the same, and this flag wins over it. A dry run over the cap
    /// goes on and warns that the real run would be refused.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    max_issue: Option<u64>,
    /// Print the wall time, CPU seconds, peak memory and minor page faults (pages touched for
    /// the first time) of each phase to stderr: read (the inventory and the requests), index,
    /// scan (the ledger, while the rules that read only the instance are decided), evaluate,
    /// issue, write (the outputs, while the ledger is committed); then whether malloc was
    /// asked for transparent huge pages (GLIBC_TUNABLES) and the most it held.
    #[arg(long)]
    timings: bool,
}

/// The most evaluation threads a run starts.
pub const MAX_JOBS: usize = 256;

/// A validated run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub instances: PathBuf,
    pub requests: PathBuf,
    pub ledger: PathBuf,
    /// Where the new ledger goes (the ledger itself unless --ledger-out).
    pub ledger_out: PathBuf,
    /// Whether --ledger-out was given (messages name it only then).
    pub ledger_out_given: bool,
    pub policy: Option<PathBuf>,
    pub waivers: Option<PathBuf>,
    pub as_of: Time,
    pub out: PathBuf,
    pub dry_run: bool,
    pub jobs: usize,
    pub quiet: bool,
    pub max_issue: Option<u64>,
    pub timings: bool,
}

pub enum Command {
    Run(Box<RunConfig>),
    CheckPolicy(PathBuf),
    VerifyCode {
        policy: Option<PathBuf>,
        codes: Vec<String>,
    },
    Generate {
        out: PathBuf,
        instances: usize,
        requests: usize,
        seed: u64,
        force: bool,
    },
    Test {
        files: Vec<PathBuf>,
        coverage: bool,
    },
    Schema,
}

/// Parses the process arguments (clap prints help and usage errors itself, exit 2).
pub fn parse() -> Result<Command> {
    let cli = Cli::try_parse().map_err(|e| usage(e, std::env::args_os()))?;
    // What clap leaves to us (a missing input, an --as-of that is no time, --jobs out of range)
    // is a usage error too, told with the usage line as clap's are.
    cli.validate().map_err(|mut e| {
        e.message.push('\n');
        e.message.push_str(&usage_of(std::env::args_os()));
        e
    })
}

/// A usage error as the program's other refusals are told (exit 2, behind `icp-audit: `), so
/// that every message on standard error starts alike; `--help` and `--version`, which clap
/// also hands back as errors, are printed by clap and end the program as it would.
fn usage(e: clap::Error, args: impl IntoIterator<Item = std::ffi::OsString>) -> Error {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // In the program's style: no blank lines, lowercase, no sentence with a period (clap's
    // pointer to `--help`, which the usage line makes plain).
    let text = e.render().to_string();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .map(|l| match l.starts_with("Usage: ") {
            true => lowercase_usage(l),
            false => l.strip_prefix("error: ").unwrap_or(l).to_string(),
        })
        .collect();
    // clap shows the usage with some errors only (not with a value it cannot parse, or a
    // missing one): every usage error gets the usage of the command it is about.
    if !lines.iter().any(|l| l.starts_with("usage: ")) {
        lines.push(usage_of(args));
    }
    Error::refused(lines.join("\n"))
}

/// The usage line of the subcommand that `args` (the program's, its name first) name, or of
/// the program when they name none.
fn usage_of(args: impl IntoIterator<Item = std::ffi::OsString>) -> String {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let named = args
        .into_iter()
        .skip(1)
        .find_map(|a| cmd.find_subcommand(a).map(|s| s.get_name().to_string()));
    let usage = match named.and_then(|n| cmd.find_subcommand_mut(n)) {
        Some(sub) => sub.render_usage(),
        None => cmd.render_usage(),
    };
    lowercase_usage(&usage.to_string())
}

/// clap's `Usage: …` line in the program's style (`usage: …`).
fn lowercase_usage(line: &str) -> String {
    match line.strip_prefix("Usage: ") {
        Some(rest) => format!("usage: {rest}"),
        None => line.to_string(),
    }
}

impl Cli {
    fn validate(self) -> Result<Command> {
        Ok(match self.command {
            RawCommand::Run(args) => Command::Run(Box::new(args.validate()?)),
            RawCommand::CheckPolicy { file } => Command::CheckPolicy(file),
            RawCommand::VerifyCode { policy, codes } => Command::VerifyCode { policy, codes },
            RawCommand::Generate {
                out,
                instances,
                requests,
                seed,
                force,
            } => Command::Generate {
                out,
                instances,
                requests,
                seed,
                force,
            },
            RawCommand::Test { coverage, files } => Command::Test { files, coverage },
            RawCommand::Schema => Command::Schema,
        })
    }
}

impl RunArgs {
    fn validate(self) -> Result<RunConfig> {
        let from_dir = |flag: Option<PathBuf>, name: &str| -> Result<PathBuf> {
            flag.or_else(|| self.input.as_ref().map(|d| d.join(name)))
                .ok_or_else(|| {
                    Error::refused(format!(
                        "give --input DIR or --{} F",
                        name.trim_end_matches(".csv")
                    ))
                })
        };
        let instances = from_dir(self.instances.clone(), "instances.csv")?;
        let requests = from_dir(self.requests.clone(), "requests.csv")?;
        let ledger = from_dir(self.ledger.clone(), "ledger.csv")?;
        let as_of = match &self.as_of {
            // With its fraction, if it has one, to the microsecond: decided and written so
            // (`time::write`).
            Some(t) => time::whole_micros(
                time::parse(t).map_err(|e| Error::refused(format!("--as-of: {e}")))?,
            ),
            // The clock is read once per run, to the second.
            None => time::now(),
        };
        if let Some(jobs) = self.jobs
            && !(1..=MAX_JOBS).contains(&jobs)
        {
            return Err(Error::refused(format!(
                "--jobs: give 1 to {MAX_JOBS} threads, not {jobs}"
            )));
        }
        Ok(RunConfig {
            ledger_out_given: self.ledger_out.is_some(),
            ledger_out: self.ledger_out.unwrap_or_else(|| ledger.clone()),
            instances,
            requests,
            ledger,
            policy: self.policy,
            waivers: self.waivers,
            as_of,
            out: self.out,
            dry_run: self.dry_run,
            jobs: self.jobs.unwrap_or(0),
            quiet: self.quiet,
            max_issue: self.max_issue,
            timings: self.timings,
        })
    }
}
