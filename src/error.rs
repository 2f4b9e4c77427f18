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

/// `message` with each system error the way the program's own words are written: the standard
/// library writes one as `No such file or directory (os error 2)`; here it reads `no such file
/// or directory`. Only where the program puts a system error: after `: `, and at the end of the
/// message or of a line, or before the `;` or `,` that goes on with the sentence; so a file
/// named like one (`Permission denied (os error 13).csv`) is written as it is.
pub fn plain(message: &str) -> String {
    const MARK: &str = " (os error ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        match system_words(&rest[..at], after) {
            Some((before, said, close)) => {
                out.push_str(before);
                let mut chars = said.chars();
                out.extend(chars.next().map(|c| c.to_ascii_lowercase()));
                out.push_str(chars.as_str());
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[..at + MARK.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// For `… : <words> (os error N)<next>`, split as `head` and `after` (what follows the mark):
/// the head without the words, the words, and where the `)` is in `after`; `None` unless the
/// words are the system's own for `N` and stand where the program puts them (see `plain`).
fn system_words<'m>(head: &'m str, after: &str) -> Option<(&'m str, String, usize)> {
    let close = after.find(')')?;
    let code: i32 = after[..close].parse().ok()?;
    let next = after[close + 1..].chars().next();
    if !next.is_none_or(|c| matches!(c, '\n' | ';' | ',')) {
        return None;
    }
    let whole = std::io::Error::from_raw_os_error(code).to_string();
    let said = whole.strip_suffix(&format!(" (os error {code})"))?;
    let before = head.strip_suffix(said)?;
    (!said.is_empty() && before.ends_with(": ")).then(|| (before, said.to_string(), close))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_errors_are_written_in_the_programs_words() {
        let gone = std::io::Error::from_raw_os_error(2);
        let denied = std::io::Error::from_raw_os_error(13);
        let said = format!("a.csv: cannot open: {gone}\nout: cannot write there: {denied}; x");
        assert_eq!(
            plain(&said),
            "a.csv: cannot open: no such file or directory\nout: cannot write there: \
             permission denied; x"
        );
        // Text a user wrote that merely looks alike is left as it is: a file named like a
        // system error keeps its name, and the error after it is still made plain.
        assert_eq!(
            plain(&format!(
                "Permission denied (os error 13).csv: cannot open: {gone}"
            )),
            "Permission denied (os error 13).csv: cannot open: no such file or directory"
        );
        assert_eq!(
            plain(&format!("x/{gone}: cannot open: {gone}")),
            format!("x/{gone}: cannot open: no such file or directory")
        );
        for kept in [
            "a (os error 2) b",
            "Odd name (os error 99999)",
            "x (os error ",
            "x (os error 2",
            "a: No such file or directory (os error 2",
            "a: No such file or directory (os error 2).csv",
            "No such file or directory (os error 2)",
        ] {
            assert_eq!(plain(kept), kept);
        }
    }
}
