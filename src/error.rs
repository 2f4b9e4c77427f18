//! The one error type of a run, carrying the exit code it ends the process with (SPEC §6).

use std::fmt;

/// Exit codes of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Anything unexpected (an output folder that cannot be written, a failing disk).
    Failed = 1,
    /// The run was refused before writing anything: usage, policy, input files, a corrupt ledger.
    Refused = 2,
    /// The ledger is locked by another run.
    Locked = 3,
}

#[derive(Debug)]
pub struct Error {
    pub exit: Exit,
    /// One line per problem, already in `file:line:column: message` form where there is a place.
    pub message: String,
}

impl Error {
    pub fn refused(message: impl Into<String>) -> Error {
        Error {
            exit: Exit::Refused,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error {
            exit: Exit::Failed,
            message: message.into(),
        }
    }

    pub fn locked(message: impl Into<String>) -> Error {
        Error {
            exit: Exit::Locked,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
