//! Writing the ledger safely. A run holds an exclusive lock on `<ledger>.lock` from before the
//! ledger is read until after the new ledger is in place; the new ledger is the old file's bytes,
//! unchanged, followed by the new rows, written to a temporary file in the same folder, synced,
//! renamed over the old one, and the folder synced: a crash at any instant leaves the old or the
//! new ledger, never a torn one.

use crate::direct::DirectWriter;
use crate::error::{Error, Result};
use crate::input::ledger::Snapshot;
use crate::report::csvrow;
use crate::schema::{LEDGER_COLUMNS, ledger_column};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// The lock of one ledger; released when dropped (or when the process dies).
pub struct Lock {
    _file: File,
}

/// The file a path names once symbolic links are followed, also where a link is dangling (the
/// path itself when it is not a link, or when its links loop).
pub fn resolve_links(p: &Path) -> PathBuf {
    let is_link = fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    // A dangling link too: the new ledger is made, and locked, where it points (its folder
    // created if missing), not in the link's place, where it would be a second ledger.
    if is_link && let Some(real) = crate::paths::canonical(p) {
        return real;
    }
    p.to_path_buf()
}

/// `<ledger>.lock`, beside the ledger.
pub fn lock_path(ledger: &Path) -> PathBuf {
    let mut name = ledger.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    ledger.with_file_name(name)
}

/// Takes the ledger's lock without waiting: another run holding it is exit 3.
pub fn lock(ledger: &Path) -> Result<Lock> {
    let path = lock_path(ledger);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            Error::refused(format!(
                "{}: cannot create the lock file: {e}",
                path.display()
            ))
        })?;
    hold(file, &path)
}

/// Locks an open lock file without waiting: another run holding it is exit 3.
fn hold(file: File, path: &Path) -> Result<Lock> {
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(Error::locked(format!(
            "{}: the ledger is locked by another run; try again later",
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(Error::failed(format!(
            "{}: cannot lock: {e}",
            path.display()
        ))),
    }
}

/// Refuses to replace the file at `path` (a ledger, or a `--ledger-out` file; `named` as
/// messages name it) when its mode lets no one write it: its keeper froze it (`chmod a-w`), and
/// the rename that replaces a file never asks for the file's own write permission.
pub fn refuse_frozen(path: &Path, named: &str) -> Result<()> {
    if fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().readonly()) {
        return Err(Error::refused(format!(
            "{named}: is read-only (its mode lets no one write it): a run that issues codes \
             replaces it; make it writable, write the new ledger elsewhere with --ledger-out, or \
             decide with --dry-run; nothing was written"
        )));
    }
    Ok(())
}

/// Takes the lock of the ledger a `--ledger-out` run reads, without waiting: a run writing that
/// ledger meanwhile would hand out quota this run also hands out (exit 3, as for the ledger
/// written). A lock file already there that this run may not write (a read-only folder or
/// mount, another owner) is locked through a read-only handle; one that can be neither made
/// nor opened refuses the run (exit 2): another user, or another mount, may be writing that
/// ledger, so going on unlocked could hand out the same quota twice.
pub fn lock_input(ledger: &Path) -> Result<Lock> {
    let path = lock_path(ledger);
    match lock(ledger) {
        Ok(lock) => Ok(lock),
        Err(e) if e.exit != crate::error::Exit::Refused => Err(e),
        Err(made) => match File::open(&path) {
            Err(_) => Err(Error::refused(format!(
                "{}; the ledger --ledger-out is made from must be locked while it is read, \
                 lest a run writing it hand out the same quota: run where that lock can be made",
                made.message
            ))),
            Ok(file) => hold(file, &path),
        },
    }
}

/// A row to append.
pub struct NewRow<'a> {
    pub code: &'a str,
    pub instance_id: &'a str,
    pub account_id: &'a str,
    pub request_id: &'a str,
    pub issued_at: &'a str,
}

/// Writes `old` (when it exists) followed by `rows` to `out`, atomically. `header` is the old
/// ledger's header (empty for a new ledger, which gets the standard header).
pub fn commit<'r>(
    old: &Path,
    out: &Path,
    header: &[String],
    rows: impl IntoIterator<Item = NewRow<'r>>,
) -> Result<()> {
    let shown = old.display().to_string();
    let renamed = std::sync::atomic::AtomicBool::new(false);
    draft(&Snapshot::open(old, &shown)?, out, old == out).commit(header, rows, false, &renamed)
}

/// The new ledger in the making: a temporary file beside `out` into which a thread of its own
/// copies the old ledger's bytes (past the page cache: `DirectWriter`), while the run reads and
/// decides; `commit` then appends the new rows, syncs, and renames it over `out`. Dropped
/// uncommitted (the run was refused or failed), it waits for the copy and removes the temporary
/// file, so a refused run leaves nothing behind.
pub struct Draft {
    tmp: PathBuf,
    old: Snapshot,
    out: PathBuf,
    old_exists: bool,
    /// `out` is the ledger itself (see `draft`).
    in_place: bool,
    copy: Option<JoinHandle<io::Result<(DirectWriter, Ending)>>>,
    /// Renamed into place: no temporary file is left to remove.
    committed: bool,
}

/// Starts the new ledger: removes what killed runs left beside `out`, then copies `old` (the
/// open file the run also scans) into a temporary file on a thread of its own. Only called
/// while holding the ledger's lock. `in_place`: `out` is the ledger itself, whose owner and
/// group the new one keeps (a file planted at a `--ledger-out` path gives its owner nothing).
pub fn draft(old: &Snapshot, out: &Path, in_place: bool) -> Draft {
    let dir = parent(out);
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        out.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    remove_stale(dir, out);
    let old_exists = old.exists();
    let copy = {
        let (old, out, tmp) = (old.clone(), out.to_path_buf(), tmp.clone());
        std::thread::Builder::new()
            .name("ledger-copy".into())
            // The old bytes go to disk now, beside the run's other work (whole blocks are
            // written as they are copied), so that the commit's sync has little left to wait for.
            .spawn(move || copy_into(&tmp, &old, &out, in_place))
    };
    Draft {
        in_place,
        tmp,
        old: old.clone(),
        out: out.to_path_buf(),
        old_exists,
        // A thread that cannot start leaves the copy to `commit`.
        copy: copy.ok(),
        committed: false,
    }
}

impl Draft {
    /// Appends `rows` after the old ledger's bytes and puts the new ledger in place: synced,
    /// renamed over `out`, the folder synced. `header` is the old ledger's header (empty for a
    /// new ledger, which gets the standard header).
    /// The rows are made as they are written, not gathered first. With `unquoted`, their ids
    /// are known to need no quotes (they come from a `plain` table) and are copied as they are.
    /// `renamed` is set as soon as the new ledger is in place: a failure after it (the folder's
    /// sync) leaves the new rows in the ledger, which the caller must tell.
    pub fn commit<'r>(
        mut self,
        header: &[String],
        rows: impl IntoIterator<Item = NewRow<'r>>,
        unquoted: bool,
        renamed: &std::sync::atomic::AtomicBool,
    ) -> Result<()> {
        let out = self.out.clone();
        let fail =
            |what: &str, e: io::Error| Error::failed(format!("{}: {what}: {e}", out.display()));
        let copied = match self.copy.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the copying thread panicked"))),
            None => copy_into(&self.tmp, &self.old, &self.out, self.in_place),
        };
        let (mut w, ending) = copied.map_err(|e| fail("cannot copy the old ledger", e))?;
        let standard: Vec<String> = LEDGER_COLUMNS.iter().map(|s| s.to_string()).collect();
        let header = if self.old_exists {
            header
        } else {
            &standard[..]
        };
        append(&mut w, !self.old_exists, header, rows, ending, unquoted)
            .map_err(|e| fail("cannot write", e))?;
        let file = w.finish().map_err(|e| fail("cannot write", e))?;
        file.sync_all().map_err(|e| fail("cannot sync", e))?;
        // The last moment before the old ledger is replaced: what a program that does not take
        // the lock wrote to it since the run opened it would be lost (the run neither decided
        // by it nor copied it), so the run is refused instead.
        if let Some(why) = self.old.changed(self.in_place) {
            return Err(Error::refused(why));
        }
        // Asked again under the lock, on the file the rename would replace: a path looked up
        // before the lock made its folders (`nox/../ledger.csv`), or a `chmod a-w` meanwhile.
        refuse_frozen(&out, &out.display().to_string())?;
        fs::rename(&self.tmp, &out).map_err(|e| fail("cannot replace the ledger", e))?;
        self.committed = true;
        renamed.store(true, std::sync::atomic::Ordering::SeqCst);
        sync_dir(parent(&out)).map_err(|e| fail("cannot sync the folder", e))
    }
}

/// Creates `tmp` (with `out`'s permissions) and copies the old ledger into it when there is one.
fn copy_into(
    tmp: &Path,
    old: &Snapshot,
    out: &Path,
    in_place: bool,
) -> io::Result<(DirectWriter, Ending)> {
    let file = match in_place {
        true => create_owned_like(tmp, out)?,
        // Written elsewhere (`--ledger-out`): what is there lends its mode, as an output's.
        false => create_like(tmp, out)?,
    };
    let mut w = DirectWriter::new(file);
    let ending = match old.seekable() {
        Some(r) => copy_old(r, &mut w)?,
        None => Ending::Lf,
    };
    // The old bytes are synced now, while the run reads and decides, rather than by the
    // commit's sync, which would otherwise wait for the device to take them all while the
    // reports are being written.
    if old.exists() {
        w.sync_so_far()?;
    }
    Ok((w, ending))
}

impl Drop for Draft {
    fn drop(&mut self) {
        if let Some(handle) = self.copy.take() {
            let _ = handle.join();
        }
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Removes temporary files that a killed run left beside `out` (`.NAME.tmp-PID`, the name
/// exactly: a file an operator named `.NAME.tmp-backup`, or gave the run as its input, is not
/// one). Only called while holding the ledger's lock, so no live run is writing one.
fn remove_stale(dir: &Path, out: &Path) {
    let prefix = format!(
        ".{}.tmp-",
        out.file_name().unwrap_or_default().to_string_lossy()
    );
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if is_stale_name(&e.file_name().to_string_lossy(), &prefix) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Whether `name` is `prefix` followed by a process id (digits only).
fn is_stale_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// The folder a path is in (`.` for a bare file name).
pub fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Creates `tmp` with the permissions of `like` when it exists, owner-only otherwise. A file
/// already at `tmp` was left by a dead process (the name holds our process id, unique among
/// live processes) and is replaced.
pub fn create_like(tmp: &Path, like: &Path) -> io::Result<File> {
    create_with(tmp, like, false, 0o777)
}

/// `create_like` that also gives the new file the owner and group of `like` (the ledger's,
/// rewritten in place), and keeps its every mode bit.
fn create_owned_like(tmp: &Path, like: &Path) -> io::Result<File> {
    create_with(tmp, like, true, 0o7777)
}

fn create_with(tmp: &Path, like: &Path, keep_owner: bool, bits: u32) -> io::Result<File> {
    let _ = fs::remove_file(tmp);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        let old = fs::metadata(like).ok();
        // An output keeps no set-id or sticky bit (`bits`): a root run would otherwise make a
        // set-id root file of a planted one.
        let mode = old
            .as_ref()
            .map_or(0o600, |m| m.permissions().mode() & bits);
        opts.mode(mode);
        let file = opts.open(tmp)?;
        // The ledger's owner and group too, where this process may give them (root may; others
        // may give a group they are in): a ledger that its owner's group reads stays readable.
        // Where it may not, the file is this process's, with the same mode. Outputs never:
        // a file planted in `--out` must not make its owner the owner of new codes.
        if keep_owner && let Some(m) = &old {
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        // The umask may have narrowed the mode (and a change of owner cleared set-id bits);
        // set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        let _ = (like, keep_owner, bits);
        opts.open(tmp)
    }
}

/// Creates `folder` when missing, then syncs each folder that holds a new one, up to the first
/// that was there, so that a ledger renamed into it survives a power loss.
pub fn create_folder(folder: &Path) -> io::Result<()> {
    let here = |p: &Path| -> PathBuf {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    };
    let existing = folder.ancestors().map(here).find(|p| p.exists());
    fs::create_dir_all(folder)?;
    if existing.as_deref() == Some(&here(folder)) {
        return Ok(());
    }
    for holder in folder.ancestors().skip(1).map(here) {
        let _ = sync_dir(&holder);
        if Some(&holder) == existing.as_ref() {
            break;
        }
    }
    Ok(())
}

/// Syncs a folder so that a rename in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// A ledger's line ending: its header's (the CSV reader takes all three).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Lf,
    Crlf,
    /// A carriage return alone, as old Mac files end lines.
    Cr,
}

impl Ending {
    fn bytes(self) -> &'static [u8] {
        match self {
            Ending::Lf => b"\n",
            Ending::Crlf => b"\r\n",
            Ending::Cr => b"\r",
        }
    }

    /// Whether a file whose last byte is `last` ends with a whole line end.
    fn ends(self, last: u8) -> bool {
        last == b'\n' || (self == Ending::Cr && last == b'\r')
    }
}

/// Copies the old ledger into `out` and ends it with a line end; returns the line ending its
/// header uses.
fn copy_old(mut r: impl Read + Seek, out: &mut DirectWriter) -> io::Result<Ending> {
    let mut ending = Ending::Lf;
    let mut buf = vec![0u8; 64 << 10];
    // The first line end: a line feed, or a carriage return and the byte after it (which may
    // be in the next read).
    let mut cr_before = false;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            if cr_before {
                ending = Ending::Cr;
            }
            break;
        }
        if cr_before {
            ending = if buf[0] == b'\n' {
                Ending::Crlf
            } else {
                Ending::Cr
            };
            break;
        }
        if let Some(i) = memchr::memchr2(b'\n', b'\r', &buf[..n]) {
            match (buf[i], buf.get(i + 1).filter(|_| i + 1 < n)) {
                (b'\n', _) => {}
                (_, Some(b'\n')) => ending = Ending::Crlf,
                (_, Some(_)) => ending = Ending::Cr,
                (_, None) => {
                    cr_before = true;
                    continue;
                }
            }
            break;
        }
    }
    r.seek(SeekFrom::Start(0))?;
    let copied = out.copy_from(&mut r)?;
    let mut last = b'\n';
    if copied > 0 {
        r.seek(SeekFrom::Start(copied - 1))?;
        let mut byte = [0u8];
        r.read_exact(&mut byte)?;
        last = byte[0];
    }
    if !ending.ends(last) {
        out.write_all(ending.bytes())?;
    }
    Ok(ending)
}

/// The columns an existing ledger's `header` lacks that a re-run needs to answer a request with
/// the code this run gives it (decision step 3 matches the request id, the instance and the
/// account): new rows keep the header's columns only, so without `request_id` a re-run would
/// issue the request a second code, and without `account_id` it would find its code held by
/// another account.
pub fn unrecorded_columns(header: &[String]) -> Vec<&'static str> {
    ["account_id", "request_id"]
        .into_iter()
        .filter(|c| {
            !header
                .iter()
                .any(|h| ledger_column(h).is_some_and(|i| LEDGER_COLUMNS[i] == *c))
        })
        .collect()
}

fn append<'r>(
    w: &mut impl Write,
    write_header: bool,
    header: &[String],
    rows: impl IntoIterator<Item = NewRow<'r>>,
    ending: Ending,
    unquoted: bool,
) -> io::Result<()> {
    let end = ending.bytes();
    // Rows are written as the `csv` crate's writer would write them (`csvrow`'s tests hold the
    // two to the same bytes), straight into a buffer handed over a megabyte at a time.
    let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
    if write_header {
        csvrow::record(&mut buf, header.iter().map(String::as_str), end);
    }
    let slots: Vec<Option<usize>> = header.iter().map(|h| ledger_column(h)).collect();
    for row in rows {
        let values = [
            row.code,
            row.instance_id,
            row.account_id,
            row.request_id,
            row.issued_at,
            "issued",
            "",
        ];
        let cells = slots.iter().map(|s| s.map_or("", |i| values[i]));
        // The other cells are ours: a code (letters, digits, hyphens), a time, a status word.
        if unquoted {
            csvrow::record_unquoted(&mut buf, cells, end);
        } else {
            csvrow::record(&mut buf, cells, end);
        }
        if buf.len() >= FLUSH_AT {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)?;
    w.flush()
}

/// How many bytes of new rows `append` gathers before writing them.
const FLUSH_AT: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder of the test's own, removed when the test ends (passed or failed).
    struct Scratch(PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("icp-ledger-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    #[test]
    fn only_a_dead_runs_temporary_files_are_removed() {
        let d = scratch("stale");
        let names = [
            ".l.csv.tmp-123",
            ".l.csv.tmp-bak",
            ".l.csv.tmp-",
            ".l.csv.tmp-12x",
        ];
        for n in names {
            fs::write(d.join(n), "code\n").unwrap();
        }
        remove_stale(&d, &d.join("l.csv"));
        let left: Vec<bool> = names.iter().map(|n| d.join(n).exists()).collect();
        assert_eq!(left, [false, true, true, true]);
    }

    fn row() -> NewRow<'static> {
        NewRow {
            code: "C1",
            instance_id: "i-1",
            account_id: "a",
            request_id: "r",
            issued_at: "2026-11-30T00:00:00Z",
        }
    }

    #[test]
    fn appends_in_the_old_header_order_keeping_bytes_and_line_endings() {
        let d = scratch("order");
        let p = d.join("ledger.csv");
        fs::write(&p, "status,code,instance_id,extra\r\nspent,OLD,i-0,x").unwrap();
        let header: Vec<String> = ["status", "code", "instance_id", "extra"]
            .map(String::from)
            .to_vec();
        commit(&p, &p, &header, [row()]).unwrap();
        let got = fs::read_to_string(&p).unwrap();
        assert_eq!(
            got,
            "status,code,instance_id,extra\r\nspent,OLD,i-0,x\r\nissued,C1,i-1,\r\n"
        );
    }

    /// Each line ending a CSV reader takes (LF, CRLF, a CR alone) is kept for the new rows;
    /// a last line without its end gets one, and a last line end is not doubled.
    #[test]
    fn new_rows_keep_every_line_ending_the_old_ledger_uses() {
        let d = scratch("endings");
        let p = d.join("ledger.csv");
        let header: Vec<String> = ["status", "code", "instance_id"].map(String::from).to_vec();
        for end in ["\n", "\r\n", "\r"] {
            for last in ["", end] {
                let old = format!("status,code,instance_id{end}spent,OLD,i-0{last}");
                fs::write(&p, &old).unwrap();
                commit(&p, &p, &header, [row()]).unwrap();
                let got = fs::read_to_string(&p).unwrap();
                let want =
                    format!("status,code,instance_id{end}spent,OLD,i-0{end}issued,C1,i-1{end}");
                assert_eq!(got, want, "old ledger {old:?}");
            }
        }
        // The header's line end decides, also when the file's first read ends between the
        // carriage return and what follows it (a header of 64 KiB).
        let long = "x".repeat((64 << 10) - "status,code,instance_id,".len() - 1);
        let header: Vec<String> = ["status", "code", "instance_id", &long]
            .map(String::from)
            .to_vec();
        for (end, want_end) in [("\r\n", "\r\n"), ("\r", "\r")] {
            fs::write(
                &p,
                format!("status,code,instance_id,{long}{end}spent,OLD,i-0,"),
            )
            .unwrap();
            commit(&p, &p, &header, [row()]).unwrap();
            let got = fs::read_to_string(&p).unwrap();
            assert!(
                got.ends_with(&format!("spent,OLD,i-0,{want_end}issued,C1,i-1,{want_end}")),
                "{:?}",
                &got[got.len() - 40..]
            );
        }
    }

    #[test]
    fn a_header_without_the_columns_a_rerun_needs_is_named() {
        let header = |h: &str| h.split(',').map(str::to_string).collect::<Vec<_>>();
        assert!(unrecorded_columns(&header(&LEDGER_COLUMNS.join(","))).is_empty());
        assert!(
            unrecorded_columns(&header("Status,CODE,Request_ID,InstanceId,OwnerId")).is_empty(),
            "any order and case, OwnerId for account_id, no issue time or domain needed"
        );
        assert_eq!(
            unrecorded_columns(&header("code,instance_id,status")),
            ["account_id", "request_id"]
        );
        assert_eq!(
            unrecorded_columns(&header("code,instance_id,account_id,status,note")),
            ["request_id"]
        );
    }

    #[test]
    fn a_new_ledger_gets_the_standard_header_and_owner_only_mode() {
        let d = scratch("new");
        let p = d.join("ledger.csv");
        commit(&p, &p, &[], [row()]).unwrap();
        let got = fs::read_to_string(&p).unwrap();
        assert_eq!(
            got,
            "code,instance_id,account_id,request_id,issued_at,status,domain\nC1,i-1,a,r,2026-11-30T00:00:00Z,issued,\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn a_dropped_draft_leaves_the_folder_as_it_was() {
        let d = scratch("dropped");
        let p = d.join("ledger.csv");
        fs::write(&p, "code,instance_id,status\nOLD,i-0,spent\n").unwrap();
        let names = || -> Vec<String> {
            let mut n: Vec<String> = fs::read_dir(&*d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        let draft = draft(&Snapshot::open(&p, "ledger.csv").unwrap(), &p, true);
        drop(draft);
        assert_eq!(names(), ["ledger.csv"], "no temporary file is left");
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "code,instance_id,status\nOLD,i-0,spent\n"
        );
    }

    #[test]
    fn a_second_lock_is_refused_with_exit_3() {
        let d = scratch("lock");
        let p = d.join("ledger.csv");
        let held = lock(&p).unwrap();
        let err = lock(&p).err().unwrap();
        assert_eq!(err.exit, crate::error::Exit::Locked);
        drop(held);
        assert!(lock(&p).is_ok());
    }
}
