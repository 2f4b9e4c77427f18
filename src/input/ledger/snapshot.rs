//! The old ledger's file, opened once under the lock and read by position from every reader
//! (the copy, the scan, a second read) up to the size it had when opened, the check that it is
//! still that file with those bytes before a new ledger replaces it, and the checks of whether a
//! ledger is there at all.

use crate::error::{Error, Result};
use crate::input::chunks;
use std::path::{Path, PathBuf};

/// The old ledger, opened once: the copy into the new ledger, the scan the run decides by and
/// the second read for a repeat's lines all read this one open file, so they read the same
/// bytes even if another run (one writing the ledger in place, while this one writes
/// `--ledger-out`) renames a new ledger over its path meanwhile. A ledger that is not a regular
/// file (a pipe, `/dev/stdin`) can be read once only, in order: a dry run may scan it; a run
/// that writes a ledger refuses it before it opens it (`unseekable`).
/// Every reader stops at the size the file had when opened, so the copy and the scan read the
/// same rows even if a program that does not take the lock appends one meanwhile; `changed`
/// then tells, before the new ledger replaces the old, that such a row would be lost.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// `None`: no ledger file.
    opened: Option<Opened>,
    path: PathBuf,
    shown: String,
}

#[derive(Clone)]
enum Opened {
    /// Read by position, as many times as needed, up to `Seen::len`.
    Regular(std::sync::Arc<std::fs::File>, Seen),
    /// Read once, in order: the first reader takes it.
    Stream(std::sync::Arc<std::sync::Mutex<Option<std::fs::File>>>),
}

/// What a regular ledger file was when it was opened: which file (device and inode), its size
/// and its modification time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Seen {
    file: (u64, u64),
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Seen {
    fn of(m: &std::fs::Metadata) -> Seen {
        #[cfg(unix)]
        let file = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let file = (0, 0);
        Seen {
            file,
            len: m.len(),
            modified: m.modified().ok(),
        }
    }
}

impl Snapshot {
    /// Opens the ledger at `path`; a ledger that is not found is an empty one (see `present`).
    pub fn open(path: &Path, shown: &str) -> Result<Snapshot> {
        let (path, shown) = (path.to_path_buf(), shown.to_string());
        if !present(&path, &shown)? {
            return Ok(Snapshot {
                opened: None,
                path,
                shown,
            });
        }
        let file = chunks::open(&path, &shown)?;
        let seen = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| Seen::of(&m));
        let opened = match seen {
            Some(seen) => Opened::Regular(std::sync::Arc::new(file), seen),
            None => Opened::Stream(std::sync::Arc::new(std::sync::Mutex::new(Some(file)))),
        };
        Ok(Snapshot {
            opened: Some(opened),
            path,
            shown,
        })
    }

    pub fn exists(&self) -> bool {
        self.opened.is_some()
    }

    /// Whether the ledger can be read once only (a pipe).
    pub fn is_stream(&self) -> bool {
        matches!(self.opened, Some(Opened::Stream(_)))
    }

    /// The file's size in bytes when it was opened: what its readers read (0 without a file, or
    /// for a pipe).
    pub fn size(&self) -> u64 {
        match &self.opened {
            Some(Opened::Regular(_, seen)) => seen.len,
            _ => 0,
        }
    }

    /// Why a new ledger made from this one may not be put in place now: another program (one
    /// that does not take the lock, which every run of ours takes) wrote to it since it was
    /// opened. The file grew, shrank or was written to, another file took its name, or, where
    /// there was none, one was made. Replacing it (`in_place`) would lose what was written;
    /// writing `--ledger-out` would hand out codes decided without it. `None` when it is as it
    /// was. Read just before the new ledger is renamed into place.
    pub fn changed(&self, in_place: bool) -> Option<String> {
        let now = std::fs::metadata(&self.path);
        let what = match (&self.opened, now) {
            (None, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
            (None, Err(e)) => {
                format!("there was none, and its path can no longer be looked up: {e}")
            }
            (None, Ok(_)) => "there was none, and one was made".to_string(),
            (Some(Opened::Stream(_)), _) => return None,
            (Some(Opened::Regular(..)), Err(e)) => format!("it can no longer be looked up: {e}"),
            (Some(Opened::Regular(_, seen)), Ok(now)) => {
                // The path still names the opened file: then its metadata is that file's.
                let now = Seen::of(&now);
                if now.file != seen.file {
                    "another file was put in its place".to_string()
                } else if now.len != seen.len {
                    format!(
                        "it was written to: {} bytes when the run opened it, {} now",
                        seen.len, now.len
                    )
                } else if now != *seen {
                    format!(
                        "it was written to: its modification time changed ({} bytes, as when \
                         the run opened it)",
                        seen.len
                    )
                } else {
                    return None;
                }
            }
        };
        let lost = match in_place {
            true => "the new ledger would have lost what it wrote",
            false => {
                "the run decided without what it wrote, which may answer a request or count \
                      toward a limit"
            }
        };
        Some(format!(
            "{}: the ledger changed while the run read it ({what}): a program that does not take \
             its lock wrote to it; nothing was written ({lost}); run again once it is done",
            self.shown
        ))
    }

    /// A reader from the file's first byte, with its own position (others read beside it); a
    /// pipe's only reader, the first time (`None` after).
    pub fn reader(&self) -> Option<Box<dyn std::io::Read + Send>> {
        match &self.opened {
            None => None,
            Some(Opened::Regular(..)) => self
                .seekable()
                .map(|r| Box::new(r) as Box<dyn std::io::Read + Send>),
            Some(Opened::Stream(once)) => once
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .map(|f| Box::new(f) as Box<dyn std::io::Read + Send>),
        }
    }

    /// `reader`, positioned reads only (the copy seeks): `None` for a pipe or no file.
    pub fn seekable(&self) -> Option<ReadAt> {
        match &self.opened {
            Some(Opened::Regular(file, seen)) => Some(ReadAt {
                file: file.clone(),
                at: 0,
                len: seen.len,
            }),
            _ => None,
        }
    }
}

/// The refusal of a ledger that is not a regular file, by a run that writes a ledger.
pub fn unseekable(shown: &str) -> Error {
    Error::refused(format!(
        "{shown}: the ledger is not a regular file (a pipe?): a run that writes a ledger reads \
         it twice; give a file, or decide with --dry-run"
    ))
}

/// Reads a shared open file from a position of its own (`pread`), so that several readers of
/// one open file never move each other's position; up to `len` bytes, the size the file had
/// when opened: what is appended later is not read.
pub struct ReadAt {
    file: std::sync::Arc<std::fs::File>,
    at: u64,
    len: u64,
}

impl std::io::Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = usize::try_from(self.len.saturating_sub(self.at)).unwrap_or(usize::MAX);
        let take = room.min(buf.len());
        let buf = &mut buf[..take];
        if buf.is_empty() {
            return Ok(0);
        }
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&*self.file, buf, self.at)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&*self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for ReadAt {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let end = || Ok::<_, std::io::Error>(self.len);
        let at = match to {
            std::io::SeekFrom::Start(n) => Some(n),
            std::io::SeekFrom::Current(d) => self.at.checked_add_signed(d),
            std::io::SeekFrom::End(d) => end()?.checked_add_signed(d),
        };
        self.at = at.ok_or_else(|| std::io::Error::other("seek before the start of the file"))?;
        Ok(self.at)
    }
}

/// Whether the ledger file is there. Only a ledger that is not found is an empty ledger (a
/// dangling link too: the new ledger is made where it points); one that cannot be looked up (a
/// folder it is in that cannot be read, a file where a folder should be) refuses the run, as
/// an unreadable file does: read as empty, it would lose every code it holds.
pub fn present(path: &Path, shown: &str) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::refused(format!("{shown}: cannot read: {e}"))),
    }
}
