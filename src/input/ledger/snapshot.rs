//! The old ledger's file, opened once under the lock and read by position from every reader
//! (the copy, the scan, a second read), and the checks of whether a ledger is there at all.

use crate::error::{Error, Result};
use crate::input::chunks;
use std::path::Path;

/// The old ledger, opened once: the copy into the new ledger, the scan the run decides by and
/// the second read for a repeat's lines all read this one open file, so they read the same
/// bytes even if another run (one writing the ledger in place, while this one writes
/// `--ledger-out`) renames a new ledger over its path meanwhile. A ledger that is not a regular
/// file (a pipe, `/dev/stdin`) can be read once only, in order: a dry run may scan it; a run
/// that writes a ledger refuses it before it opens it (`unseekable`). `None`: no ledger file.
#[derive(Clone, Default)]
pub struct Snapshot(Option<Opened>);

#[derive(Clone)]
enum Opened {
    /// Read by position, as many times as needed.
    Regular(std::sync::Arc<std::fs::File>),
    /// Read once, in order: the first reader takes it.
    Stream(std::sync::Arc<std::sync::Mutex<Option<std::fs::File>>>),
}

impl Snapshot {
    /// Opens the ledger at `path`; a ledger that is not found is an empty one (see `present`).
    pub fn open(path: &Path, shown: &str) -> Result<Snapshot> {
        if !present(path, shown)? {
            return Ok(Snapshot(None));
        }
        let file = chunks::open(path, shown)?;
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        Ok(Snapshot(Some(if regular {
            Opened::Regular(std::sync::Arc::new(file))
        } else {
            Opened::Stream(std::sync::Arc::new(std::sync::Mutex::new(Some(file))))
        })))
    }

    pub fn exists(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the ledger can be read once only (a pipe).
    pub fn is_stream(&self) -> bool {
        matches!(self.0, Some(Opened::Stream(_)))
    }

    /// The file's size in bytes (0 without a file, or when it cannot be told).
    pub fn size(&self) -> u64 {
        match &self.0 {
            Some(Opened::Regular(f)) => f.metadata().map_or(0, |m| m.len()),
            _ => 0,
        }
    }

    /// A reader from the file's first byte, with its own position (others read beside it); a
    /// pipe's only reader, the first time (`None` after).
    pub fn reader(&self) -> Option<Box<dyn std::io::Read + Send>> {
        match &self.0 {
            None => None,
            Some(Opened::Regular(_)) => self
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
        match &self.0 {
            Some(Opened::Regular(file)) => Some(ReadAt {
                file: file.clone(),
                at: 0,
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
/// one open file never move each other's position.
pub struct ReadAt {
    file: std::sync::Arc<std::fs::File>,
    at: u64,
}

impl std::io::Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
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
        let end = || self.file.metadata().map(|m| m.len());
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
