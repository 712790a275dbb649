//! Gathering a transaction's WAL frames into one write.
//!
//! SQLite writes a WAL frame as two writes: its 24-byte header, then the
//! page. With jobq's 1 KiB pages a put's commit is several frames, so
//! several pairs of syscalls, all while it holds the write lock: `perf`
//! put these writes at about a fifth of the CPU of the put/reserve/ack
//! cycle (docs/performance.md). The store's connections open with a VFS
//! over SQLite's default one (its C glue is src/ffi/vfs.rs) whose WAL files
//! hand their writes to a [`Gather`], which keeps writes that follow each
//! other in memory and writes them at once:
//! - when the page of a commit frame (a frame header with a nonzero
//!   "database size" field) has been added: so a transaction's frames are
//!   in the file when its COMMIT returns, before SQLite publishes them to
//!   readers in the shared-memory index, and a failed write is the commit's
//!   error, as before;
//! - before any other use of the file (read, sync, size, truncate, lock,
//!   file control, close; the glue calls [`Gather::flush`]), at a write that
//!   does not follow the gathered ones, or past `MAX_GATHER` bytes.
//!
//! Other files (the database, journals) are the default VFS's own objects,
//! untouched. Programs that open the same file with the default VFS (the
//! sqlite3 shell, older jobq) share its files and locks as before.

/// Gathered bytes that are written out even before a commit frame (a
/// large transaction that spills pages).
const MAX_GATHER: usize = 1 << 20;
/// Most bytes handed to the default VFS's write at once: the unix VFS
/// writes at most 128 KiB - 1 bytes per call (it masks the length, since
/// SQLite itself never writes more than a page at once).
const MAX_WRITE: usize = 64 * 1024;
/// Size of a WAL frame header.
const FRAME_HEADER: usize = 24;

/// The writes of one WAL file not made yet. The real write is the caller's
/// closure; its error (an SQLite result code in the glue) is passed on.
#[derive(Default)]
pub(crate) struct Gather {
    /// Bytes for offsets `at..at + pending.len()`.
    pending: Vec<u8>,
    at: i64,
    /// The last write was the header of a commit frame: its page ends the
    /// transaction's frames.
    commit_next: bool,
}

impl Gather {
    /// Takes SQLite's write of `data` at `offset`; `write` makes a real
    /// write (of at most `MAX_WRITE` bytes).
    pub(crate) fn write<E, W>(&mut self, data: &[u8], offset: i64, write: &mut W) -> Result<(), E>
    where
        W: FnMut(&[u8], i64) -> Result<(), E>,
    {
        // Taken before any flush below, which clears it.
        let ends_commit = std::mem::take(&mut self.commit_next);
        let follows = !self.pending.is_empty() && offset == self.end();
        if !follows {
            self.flush(write)?;
            self.at = offset;
        }
        self.pending.extend_from_slice(data);
        if ends_commit || self.pending.len() >= MAX_GATHER {
            return self.flush(write);
        }
        // A frame header whose "database size after commit" (bytes 4..8,
        // big-endian) is nonzero: the next write, its page, ends a commit.
        if data.len() == FRAME_HEADER && data[4..8] != [0, 0, 0, 0] {
            self.commit_next = true;
        }
        Ok(())
    }

    /// Writes what is gathered. On failure it is dropped all the same:
    /// SQLite rolls the transaction back on the error, and frames past the
    /// index's end are never read.
    pub(crate) fn flush<E, W>(&mut self, write: &mut W) -> Result<(), E>
    where
        W: FnMut(&[u8], i64) -> Result<(), E>,
    {
        self.commit_next = false;
        let mut at = self.at;
        let mut result = Ok(());
        for part in self.pending.chunks(MAX_WRITE) {
            result = write(part, at);
            if result.is_err() {
                break;
            }
            at = at.saturating_add(part.len() as i64);
        }
        self.pending.clear();
        if self.pending.capacity() > MAX_GATHER {
            self.pending = Vec::new();
        }
        result
    }

    fn end(&self) -> i64 {
        self.at.saturating_add(self.pending.len() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `writes` through a Gather; returns the real writes made after
    /// each, as (offset, length).
    fn real_writes(writes: &[(&[u8], i64)]) -> Vec<Vec<(i64, usize)>> {
        let mut g = Gather::default();
        writes
            .iter()
            .map(|(data, offset)| {
                let mut made = Vec::new();
                g.write(data, *offset, &mut |buf: &[u8], at| {
                    made.push((at, buf.len()));
                    Ok::<(), ()>(())
                })
                .unwrap();
                made
            })
            .collect()
    }

    fn header(db_size: u32) -> Vec<u8> {
        let mut h = vec![0u8; FRAME_HEADER];
        h[4..8].copy_from_slice(&db_size.to_be_bytes());
        h
    }

    #[test]
    fn a_transaction_is_one_write_at_its_commit_frame() {
        let page = vec![7u8; 1024];
        let (plain, commit) = (header(0), header(12));
        let frame = (FRAME_HEADER + 1024) as i64;
        let made = real_writes(&[
            (&plain, 32),
            (&page, 32 + 24),
            (&plain, 32 + frame),
            (&page, 32 + frame + 24),
            (&commit, 32 + 2 * frame),
            (&page, 32 + 2 * frame + 24),
        ]);
        assert!(made[..5].iter().all(Vec::is_empty), "{made:?}");
        assert_eq!(made[5], vec![(32, 3 * frame as usize)]);
    }

    #[test]
    fn a_write_elsewhere_writes_what_is_gathered_first() {
        let page = vec![1u8; 1024];
        let made = real_writes(&[(&header(0), 32), (&page, 56), (&page, 4096)]);
        assert_eq!(made[2], vec![(32, 24 + 1024)]);
    }

    #[test]
    fn large_runs_go_out_in_parts() {
        let mut g = Gather::default();
        let big = vec![0u8; MAX_GATHER];
        let mut made = Vec::new();
        g.write(&big, 0, &mut |buf: &[u8], at| {
            made.push((at, buf.len()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(made.len(), MAX_GATHER / MAX_WRITE);
        assert!(made.iter().enumerate().all(|(i, &(at, len))| at == (i * MAX_WRITE) as i64 && len == MAX_WRITE));
    }

    #[test]
    fn a_failed_write_is_the_error_and_drops_the_rest() {
        let mut g = Gather::default();
        let page = vec![0u8; 1024];
        let mut ok = |_: &[u8], _: i64| Ok::<(), i32>(());
        g.write(&header(3), 32, &mut ok).unwrap();
        assert_eq!(g.write(&page, 56, &mut |_: &[u8], _| Err(13)), Err(13));
        let mut made = 0;
        g.flush(&mut |_: &[u8], _| {
            made += 1;
            Ok::<(), i32>(())
        })
        .unwrap();
        assert_eq!(made, 0);
    }
}
