//! Reading the three input files. Tables are parsed by the schemas the policy declared; a
//! problem inside a row makes that row malformed and is recorded, while a problem with a whole
//! file (unreadable, missing or doubled column, a corrupt ledger) refuses the run. Nothing here
//! evaluates a rule.

mod chunks;
mod index;
pub mod ledger;
mod table;

pub use index::{BATCH, InstanceIndex, Repeats, RequestIndex};
pub use ledger::Ledger;
pub use table::{Table, load as load_table};

/// A problem found in an input row, for `input-errors.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub column: String,
    pub message: String,
}

impl Problem {
    /// `file:line: column `c`: message`, the form built-in reasons use.
    pub fn describe(&self) -> String {
        if self.column.is_empty() {
            format!("{}:{}: {}", self.file, self.line, self.message)
        } else {
            format!(
                "{}:{}: column `{}`: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// What the summary says about an input file.
#[derive(Debug, Clone, Default)]
pub struct FileInfo {
    pub path: String,
    /// Data rows (blank lines are not rows).
    pub rows: u64,
    /// SHA-256 of the file's bytes, hex; empty for a ledger file that does not exist.
    pub sha256: String,
}
