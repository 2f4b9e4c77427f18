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
/// or directory`. Only the system's own text for that number is changed, nothing a user wrote.
pub fn plain(message: &str) -> String {
    const MARK: &str = " (os error ";
    let mut out = message.to_string();
    let mut from = 0;
    while let Some(at) = out[from..].find(MARK).map(|i| from + i) {
        let digits = &out[at + MARK.len()..];
        let end = digits.find(')').unwrap_or(digits.len());
        let Ok(code) = digits[..end].parse::<i32>() else {
            from = at + MARK.len();
            continue;
        };
        let whole = std::io::Error::from_raw_os_error(code).to_string();
        let said = whole
            .strip_suffix(&format!("{MARK}{code})"))
            .unwrap_or(&whole);
        let tail_end = at + MARK.len() + end + 1;
        match out[..at].strip_suffix(said) {
            Some(before) if !said.is_empty() => {
                let mut low = said.to_string();
                if let Some(first) = low.get(..1) {
                    low.replace_range(..1, &first.to_lowercase());
                }
                let start = before.len();
                out.replace_range(start..tail_end.min(out.len()), &low);
                from = start + low.len();
            }
            _ => from = at + MARK.len(),
        }
    }
    out
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
        // Text a user wrote that merely looks alike is left as it is.
        for kept in [
            "a (os error 2) b",
            "Odd name (os error 99999)",
            "x (os error ",
            "x (os error 2",
        ] {
            assert_eq!(plain(kept), kept);
        }
    }
}
