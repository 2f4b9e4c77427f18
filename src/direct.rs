//! Writing a large new file past the page cache. On this kind of virtual machine a page of new
//! page cache costs the host a fault of its own: writing a new 2 GiB file with `write()` took
//! 7.4 s of system time, with `O_DIRECT` 1.35 s (benches/HISTORY.md › The machine). The large
//! reports and the new ledger are written here in whole aligned blocks with `O_DIRECT`; the last
//! partial block goes through the page cache as usual. Where the file system refuses `O_DIRECT`
//! (tmpfs, some network file systems), or on a system without it, every byte goes through the
//! page cache: the bytes written are the same either way.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// What `O_DIRECT` asks of a write's memory, offset and length, on every device in use (most
/// need 512 bytes).
const ALIGN: usize = 4096;
/// How much is gathered before it is written: a multiple of `ALIGN`.
const BLOCK: usize = 4 << 20;

/// A block on its way to the file: `buf[start..start + len]`, `start` being where the buffer's
/// memory is aligned, to be written at offset `at`.
struct Block {
    buf: Vec<u8>,
    start: usize,
    len: usize,
    at: u64,
}

impl Block {
    /// A new buffer of `BLOCK + ALIGN` bytes, so that `BLOCK` of them start aligned.
    fn new(at: u64) -> Block {
        Block::reuse(crate::input::filled(BLOCK + ALIGN, 0u8), at)
    }

    fn reuse(buf: Vec<u8>, at: u64) -> Block {
        let start = buf.as_ptr().align_offset(ALIGN);
        Block {
            buf,
            start,
            len: 0,
            at,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Room left, as a slice to fill.
    fn room(&mut self) -> &mut [u8] {
        let at = self.start + self.len;
        &mut self.buf[at..self.start + BLOCK]
    }
}

/// A file written whole from its start. Whole blocks are handed to a thread of its own, which
/// writes them while the caller goes on gathering the next (a write past the page cache waits
/// for the device); at most two blocks are on their way at once.
pub struct DirectWriter {
    /// The file as opened by the caller: the last partial block is written through it, and
    /// `finish` hands it back positioned at the end.
    file: File,
    /// The block being gathered.
    block: Block,
    /// To the writing thread; `None` once it has stopped.
    blocks: Option<SyncSender<Block>>,
    /// Buffers the thread is done with.
    spare: Receiver<Vec<u8>>,
    /// The writing thread; it returns whether O_DIRECT was still in use when it ended.
    io: Option<JoinHandle<io::Result<bool>>>,
}

impl DirectWriter {
    /// Writes into `file`, newly created and empty.
    pub fn new(file: File) -> DirectWriter {
        let direct = open_direct(&file);
        DirectWriter::with(file, direct)
    }

    /// A writer that never uses `O_DIRECT`, as on a file system that refuses it (for tests).
    #[cfg(test)]
    fn buffered(file: File) -> DirectWriter {
        DirectWriter::with(file, None)
    }

    /// A writer dropped unfinished (its output abandoned) lets its thread write what it was
    /// given and end on its own.
    fn with(file: File, direct: Option<File>) -> DirectWriter {
        let (blocks, to_write) = sync_channel::<Block>(1);
        let (done, spare) = sync_channel::<Vec<u8>>(2);
        let io = file.try_clone().and_then(|plain| {
            std::thread::Builder::new()
                .name("direct-writer".into())
                .spawn(move || write_blocks(plain, direct, to_write, done))
        });
        let (blocks, io) = match io {
            Ok(handle) => (Some(blocks), Some(handle)),
            // No thread: every block is written on the caller's, through the page cache.
            Err(_) => (None, None),
        };
        DirectWriter {
            file,
            block: Block::new(0),
            blocks,
            spare,
            io,
        }
    }

    /// Reads `r` to its end into the file, straight into the block being gathered (one copy,
    /// where `io::copy` would add one through a buffer of its own); returns how many bytes.
    pub fn copy_from(&mut self, r: &mut impl Read) -> io::Result<u64> {
        let mut copied = 0;
        loop {
            let n = match r.read(self.block.room()) {
                Ok(0) => return Ok(copied),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            copied += n as u64;
            self.gathered(n)?;
        }
    }

    /// Counts `n` more bytes into the block, and hands the block over once it is full.
    fn gathered(&mut self, n: usize) -> io::Result<()> {
        self.block.len += n;
        if self.block.len == BLOCK {
            self.send()?;
        }
        Ok(())
    }

    /// Writes everything gathered and returns the file, positioned at its end, and whether
    /// O_DIRECT was in use to the end (for tests).
    fn finish_and_tell(mut self) -> io::Result<(File, bool)> {
        // The whole part of the last block goes the way of the others; the rest, unaligned,
        // through the page cache once they are written.
        let whole = self.block.len / ALIGN * ALIGN;
        let tail = self.block.bytes()[whole..].to_vec();
        let end = self.block.at + self.block.len as u64;
        if whole > 0 {
            let mut last = std::mem::replace(&mut self.block, Block::reuse(Vec::new(), end));
            last.len = whole;
            self.hand_over(last)?;
        }
        let direct = self.stop()?;
        write_all_at(&self.file, &tail, end - tail.len() as u64)?;
        self.file.seek(SeekFrom::Start(end))?;
        Ok((self.file, direct))
    }

    /// Syncs what has reached the file so far (`fdatasync`), without waiting for the blocks
    /// still on their way: an early sync, so that the final one has less to wait for. Its error
    /// is the caller's to report (the kernel reports a failed write back only once).
    pub fn sync_so_far(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Writes everything gathered and returns the file, positioned at its end.
    pub fn finish(self) -> io::Result<File> {
        self.finish_and_tell().map(|(file, _)| file)
    }

    /// Hands the gathered block to the writing thread (or writes it, without one) and starts
    /// the next.
    fn send(&mut self) -> io::Result<()> {
        let next_at = self.block.at + self.block.len as u64;
        let next = match self.spare.try_recv() {
            Ok(buf) => Block::reuse(buf, next_at),
            Err(_) => Block::new(next_at),
        };
        let full = std::mem::replace(&mut self.block, next);
        self.hand_over(full)
    }

    fn hand_over(&mut self, full: Block) -> io::Result<()> {
        match &self.blocks {
            Some(blocks) => {
                if blocks.send(full).is_err() {
                    // The thread stopped on an error: it is reported.
                    self.stop()?;
                    return Err(io::Error::other("the writing thread stopped"));
                }
                Ok(())
            }
            None => write_all_at(&self.file, full.bytes(), full.at),
        }
    }

    /// Waits for the writing thread to write what it was given and end; its error, if any.
    fn stop(&mut self) -> io::Result<bool> {
        self.blocks = None;
        match self.io.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writing thread panicked"))),
            None => Ok(false),
        }
    }
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.block.room();
        let n = data.len().min(room.len());
        room[..n].copy_from_slice(&data[..n]);
        self.gathered(n)?;
        Ok(n)
    }

    /// Writes nothing: only whole blocks are written before `finish`, which writes the rest.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writing thread: each block at its offset, past the page cache while the file system
/// takes it; buffers go back to the writer for reuse. Returns whether O_DIRECT was still in use.
fn write_blocks(
    plain: File,
    mut direct: Option<File>,
    blocks: Receiver<Block>,
    spare: SyncSender<Vec<u8>>,
) -> io::Result<bool> {
    for block in blocks {
        let (bytes, at) = (block.bytes(), block.at);
        match &direct {
            Some(file) => match write_all_at(file, bytes, at) {
                Ok(()) => {}
                // A file system that opened the file with O_DIRECT may still refuse the write
                // (or a short write left the rest unaligned): the block is written again, whole,
                // through the page cache, and so is every block after it. (EINVAL is the
                // kind `InvalidInput`.)
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    direct = None;
                    write_all_at(&plain, bytes, at)?;
                }
                Err(e) => return Err(e),
            },
            None => write_all_at(&plain, bytes, at)?,
        }
        let _ = spare.try_send(block.buf);
    }
    Ok(direct.is_some())
}

/// The file opened again for writing with `O_DIRECT`, when the file system allows it: through
/// `/proc/self/fd`, so that it is the same file even if its name were replaced meanwhile (a
/// second descriptor is needed: the flag belongs to the open file, and the tail is written
/// without it).
#[cfg(target_os = "linux")]
fn open_direct(file: &File) -> Option<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &File) -> Option<File> {
    None
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, at)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    type Make = fn(File) -> DirectWriter;

    /// Writes `bytes` into a new file in `dir` through a writer from `make` (in uneven slices,
    /// or with `copy_from` when `copy`), appends a few bytes to the file `finish` returns and
    /// reads the file back; also says whether O_DIRECT was still in use at the end.
    fn round_trip(dir: &Path, make: Make, bytes: &[u8], copy: bool) -> (Vec<u8>, bool) {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("direct-{}-{copy}", bytes.len()));
        let _ = std::fs::remove_file(&path);
        let file = File::create_new(&path).unwrap();
        let mut w = make(file);
        if copy {
            w.write_all(b"head,").unwrap();
            assert_eq!(w.copy_from(&mut &bytes[..]).unwrap(), bytes.len() as u64);
            // As the ledger's copy does: an early sync, blocks perhaps still on their way.
            w.sync_so_far().unwrap();
            w.write_all(b",tail").unwrap();
        } else {
            let mut rest = bytes;
            let mut step = 1;
            while !rest.is_empty() {
                let n = step.min(rest.len());
                w.write_all(&rest[..n]).unwrap();
                rest = &rest[n..];
                step = step * 3 + 7;
            }
        }
        let (mut file, direct) = w.finish_and_tell().unwrap();
        file.write_all(b"after").unwrap();
        drop(file);
        let back = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (back, direct)
    }

    /// Every size around the alignment and the block, written both ways, reads back exactly;
    /// returns whether O_DIRECT was in use for each.
    fn check_in(dir: &Path, make: Make) -> Vec<bool> {
        let sizes = [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + ALIGN + 3,
            3 * BLOCK + 5,
        ];
        let mut used_direct = Vec::new();
        for n in sizes {
            let mut rng = fastrand::Rng::with_seed(n as u64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            for copy in [false, true] {
                let (back, direct) = round_trip(dir, make, &bytes, copy);
                used_direct.push(direct);
                let (head, tail): (&[u8], &[u8]) = match copy {
                    true => (b"head,", b",tail"),
                    false => (b"", b""),
                };
                let want = [head, &bytes, tail, b"after"].concat();
                assert_eq!(back.len(), want.len(), "length, {n} bytes, copy {copy}");
                assert!(back == want, "{n} bytes (copy {copy}) read back differ");
            }
        }
        let _ = std::fs::remove_dir(dir);
        used_direct
    }

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("icp-audit-{name}-{}", std::process::id()))
    }

    #[test]
    fn every_size_reads_back_exactly_past_the_page_cache() {
        let dir = scratch("direct");
        let used = check_in(&dir, DirectWriter::new);
        // Where the file system takes O_DIRECT, it was used throughout: no write was refused
        // for its alignment.
        if let Some(fs) = file_system_of(&std::env::temp_dir())
            && ["ext4", "xfs", "btrfs"].contains(&fs.as_str())
        {
            assert!(used.iter().all(|d| *d), "O_DIRECT on {fs}: {used:?}");
        }
    }

    /// The type of the file system `path` is on, from the longest mount point that holds it.
    fn file_system_of(path: &Path) -> Option<String> {
        let path = std::fs::canonicalize(path).ok()?;
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((*f.get(1)?, *f.get(2)?))
            })
            .filter(|(at, _)| path.starts_with(at))
            .max_by_key(|(at, _)| at.len())
            .map(|(_, fs)| fs.to_string())
    }

    #[test]
    fn every_size_reads_back_exactly_through_the_page_cache() {
        let used = check_in(&scratch("buffered"), DirectWriter::buffered);
        assert!(used.iter().all(|d| !d), "{used:?}");
    }
}
