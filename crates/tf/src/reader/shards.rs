//! The data shards: each `.data-*` file memory-mapped (guarded: a shard truncated under the map reads
//! as zeros and is reported as changed, see [`warmstart_core::mapped::InputMap`]), the runs of bytes entries point at, the rows of a
//! tensor located in them (to drop them from resident memory), and each run's CRC32C verified once,
//! before any of its bytes are handed out (large runs hashed in parallel chunks).

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;
use warmstart_core::mapped::InputMap;

use super::{Layout, TfSource};
use crate::state::data_path;
use crate::table::mask_crc;
use crate::TfError;

/// Opens and maps the `num_shards` data files of the bundle `prefix`; the first missing one is the error.
pub(super) fn map_shards(prefix: &Path, num_shards: u32) -> Result<Vec<Shard>, TfError> {
    let mut shards = Vec::new();
    for i in 0..num_shards {
        let path = data_path(prefix, i, num_shards);
        let file = File::open(&path).map_err(|source| TfError::MissingShard {
            path: path.clone(),
            shard: i,
            num_shards,
            source,
        })?;
        let map = InputMap::new(file, &path).map_err(|e| TfError::io(&path, e))?;
        shards.push(Shard { path, map });
    }
    Ok(shards)
}

/// One memory-mapped data file.
pub(super) struct Shard {
    pub(super) path: PathBuf,
    pub(super) map: InputMap,
}

impl Shard {
    pub(super) fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// Drops bytes `range` of the shard from resident memory (see [`warmstart_core::mapped::release`]).
    pub(super) fn release(&self, range: Range<usize>) {
        self.map.release(range);
    }

    /// The CRC32C of bytes `range` (within the shard). A large run is hashed in parallel chunks, each
    /// dropped from resident memory once hashed, so that verifying a tensor does not keep it mapped.
    pub(super) fn checksum(&self, range: Range<usize>) -> u32 {
        self.checksum_in_chunks(range, CHECKSUM_CHUNK)
    }

    pub(super) fn checksum_in_chunks(&self, range: Range<usize>, chunk_bytes: usize) -> u32 {
        let bytes = &self.bytes()[range.clone()];
        if bytes.len() <= chunk_bytes {
            return crc32c::crc32c(bytes);
        }
        let hash = |(i, chunk): (usize, &[u8])| {
            let crc = crc32c::crc32c(chunk);
            let at = range.start + i * chunk_bytes;
            self.release(at..at + chunk.len());
            (crc, chunk.len())
        };
        let combine = |(crc_a, len_a): (u32, usize), (crc_b, len_b): (u32, usize)| {
            (crc32c::crc32c_combine(crc_a, crc_b, len_b), len_a + len_b)
        };
        // Inside a rayon task the chunks are hashed in turn, not as more tasks: the task holds the
        // tensor's one-time check, which other tasks may be waiting for, and waiting in a join could
        // run one of them here.
        let (crc, _) = if rayon::current_thread_index().is_some() {
            bytes.chunks(chunk_bytes).enumerate().map(hash).fold((0, 0), combine)
        } else {
            bytes.par_chunks(chunk_bytes).enumerate().map(hash).reduce(|| (0, 0), combine)
        };
        crc
    }
}

/// Bytes one task hashes when a large tensor's checksum is verified in parallel.
const CHECKSUM_CHUNK: usize = 4 << 20;

/// A run of bytes in a data shard holding one tensor or one slice.
pub(super) struct Stored {
    pub(super) shard: usize,
    pub(super) offset: usize,
    pub(super) size: usize,
    /// The masked CRC32C from the entry.
    pub(super) crc: u32,
    /// The masked CRC32C of the bytes, computed on first read.
    pub(super) computed: OnceLock<u32>,
}

impl TfSource {
    /// Calls `visit` with the shard and byte range of rows `rows` of `name`: in the tensor, or in each
    /// of its slices that hold whole rows (partitions along the first axis; other slices are skipped).
    pub(super) fn for_each_run_of_rows(&self, name: &str, rows: Range<u64>, visit: impl Fn(&Shard, Range<usize>)) {
        let Ok((info, layout)) = self.layout(name) else { return };
        let Some(row_bytes) = info.row_bytes() else { return };
        // Bytes of rows `rows` in a run whose first row is `first`.
        let run = |stored: &Stored, first: u64, rows: Range<u64>| -> Option<Range<usize>> {
            let start = usize::try_from(rows.start.checked_sub(first)?.checked_mul(row_bytes)?).ok()?;
            let end = usize::try_from(rows.end.checked_sub(first)?.checked_mul(row_bytes)?).ok()?;
            (start <= end && end <= stored.size).then(|| stored.offset + start..stored.offset + end)
        };
        match layout {
            Layout::Whole(stored) => {
                if let Some(bytes) = run(stored, 0, rows) {
                    visit(&self.shards[stored.shard], bytes);
                }
            }
            Layout::Sliced(parts) => {
                for (slice, stored) in parts {
                    let (Some((&first, inner_start)), Some((&len, inner_len))) =
                        (slice.start.split_first(), slice.len.split_first())
                    else {
                        continue;
                    };
                    let whole_rows = inner_start.iter().all(|&s| s == 0) && Some(inner_len) == info.shape.get(1..);
                    if !whole_rows {
                        continue;
                    }
                    let end = first.saturating_add(len);
                    let (lo, hi) = (rows.start.max(first), rows.end.min(end));
                    if let Some(bytes) = (lo < hi).then(|| run(stored, first, lo..hi)).flatten() {
                        visit(&self.shards[stored.shard], bytes);
                    }
                }
            }
        }
    }

    /// The bytes of a stored run, after verifying its CRC32C (computed once), and that its shard was
    /// not found truncated (checked on every read: bytes read before may have vanished since).
    pub(super) fn verified(&self, name: &str, stored: &Stored) -> warmstart_core::Result<&[u8]> {
        let shard = &self.shards[stored.shard];
        let bytes = &shard.bytes()[stored.offset..stored.offset + stored.size];
        let computed =
            *stored.computed.get_or_init(|| mask_crc(shard.checksum(stored.offset..stored.offset + stored.size)));
        self.compare(name, stored, computed)?;
        Ok(bytes)
    }

    /// Checks `crc32c`, the (unmasked) CRC32C of a stored run's bytes as a caller read and hashed them,
    /// as [`TfSource::verified`] checks its own; the run counts as verified once it passed.
    pub(super) fn check_given(&self, name: &str, stored: &Stored, crc32c: u32) -> warmstart_core::Result<()> {
        let computed = mask_crc(crc32c);
        self.compare(name, stored, computed)?;
        // Only a sum that passed is kept (a failed one is reported again by the next read).
        let _ = stored.computed.set(computed);
        Ok(())
    }

    /// The checksum error unless `computed` (masked) is the stored run's CRC32C, or the shard's if it
    /// was found truncated.
    fn compare(&self, name: &str, stored: &Stored, computed: u32) -> warmstart_core::Result<()> {
        let shard = &self.shards[stored.shard];
        // Before the checksum: a truncated shard reads zeros, which fail it (or, for zeros, pass).
        shard.map.check_read()?;
        if computed != stored.crc {
            return Err(TfError::TensorChecksum {
                path: shard.path.clone(),
                tensor: name.to_string(),
                stored: stored.crc,
                computed,
            }
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_in_parallel_chunks_equal_the_whole_crc() {
        use std::io::Write;
        let data: Vec<u8> = (0..100_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&data).unwrap();
        let map = InputMap::open(file.path()).unwrap();
        let shard = Shard { path: file.path().to_path_buf(), map };
        for (range, chunk) in [(0..data.len(), 4096), (17..99_000, 1000), (5..6, 1), (0..0, 7), (3..50_000, 49_997)] {
            let expected = crc32c::crc32c(&data[range.clone()]);
            assert_eq!(shard.checksum_in_chunks(range.clone(), chunk), expected, "{range:?} in chunks of {chunk}");
            // Within a rayon task, the chunks are hashed in turn.
            let in_task = rayon::scope(|_| shard.checksum_in_chunks(range.clone(), chunk));
            assert_eq!(in_task, expected, "{range:?} in chunks of {chunk}, in a task");
        }
        // And the pages dropped while hashing read back the same.
        assert_eq!(shard.bytes(), &data[..]);
    }
}
