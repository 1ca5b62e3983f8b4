//! The `.index` file: a LevelDB-format sorted table, read whole into memory (every block's CRC verified,
//! every varint, length and handle checked against the bytes it points into) and written with
//! TensorFlow's options (`block_size` 256 KiB, restart interval 16, no compression), so that the same
//! entries give the same bytes TensorFlow writes.

use std::path::{Path, PathBuf};

use crate::varint::{fixed32, put_varint, read_varint32, read_varint64};
use crate::TfError;

/// The table magic number, stored little-endian at the very end of the file.
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// The footer: two block handles padded to 40 bytes, then the magic.
const FOOTER_LEN: usize = 48;
/// Type byte and masked CRC after every block.
const TRAILER_LEN: usize = 5;
/// TensorFlow's `TableOptions::block_size`.
const BLOCK_SIZE: usize = 262_144;
/// TensorFlow's `TableOptions::block_restart_interval`.
const RESTART_INTERVAL: usize = 16;
/// Snappy expands at most about 21 times (a 3-byte copy element gives 64 bytes); a larger claimed
/// length is a forgery, refused before allocating it.
const MAX_SNAPPY_RATIO: usize = 32;
/// Prefix compression lets an entry repeat a long key in a few bytes, so the keys and values a table
/// expands to are bounded by this many times the file (plus [`MIN_EXPANSION_BUDGET`]): TensorFlow's
/// tables expand a few times at most, a forged block that repeats a long key could expand without
/// bound.
const MAX_EXPANSION: u64 = 64;
/// The expansion allowed whatever the file's size.
const MIN_EXPANSION_BUDGET: u64 = 1 << 20;

/// LevelDB's CRC mask: stored checksums are masked so that a CRC of data containing CRCs stays strong.
pub(crate) fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The inverse of [`mask_crc`].
pub(crate) fn unmask_crc(masked: u32) -> u32 {
    masked.wrapping_sub(0xa282_ead8).rotate_left(15)
}

/// A location in the file: offset and size of a block, not counting its trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockHandle {
    offset: u64,
    size: u64,
}

impl BlockHandle {
    fn decode(buf: &[u8], pos: &mut usize) -> Option<BlockHandle> {
        let offset = read_varint64(buf, pos)?;
        let size = read_varint64(buf, pos)?;
        Some(BlockHandle { offset, size })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.offset);
        put_varint(out, self.size);
    }
}

/// Every key and value of a table, in key order.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads a whole table from its bytes; `path` only names the file in errors.
pub(crate) fn read_table(path: &Path, file: &[u8]) -> Result<Entries, TfError> {
    let budget = (file.len() as u64).saturating_mul(MAX_EXPANSION).saturating_add(MIN_EXPANSION_BUDGET);
    let reader = TableReader { path, file, budget: std::cell::Cell::new(budget) };
    reader.read_all()
}

struct TableReader<'a> {
    path: &'a Path,
    file: &'a [u8],
    /// The bytes of keys and values the blocks may still expand to.
    budget: std::cell::Cell<u64>,
}

impl TableReader<'_> {
    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> TfError {
        TfError::CorruptTable { path: self.path.to_path_buf(), offset, reason: reason.into() }
    }

    fn read_all(&self) -> Result<Entries, TfError> {
        let len = self.file.len();
        if len < FOOTER_LEN {
            return Err(TfError::TooShort { path: self.path.to_path_buf(), len: len as u64 });
        }
        let footer_at = len - FOOTER_LEN;
        let footer = &self.file[footer_at..];
        let magic = u64::from(fixed32(footer, 40).unwrap_or(0)) | (u64::from(fixed32(footer, 44).unwrap_or(0)) << 32);
        if magic != MAGIC {
            return Err(TfError::BadMagic { path: self.path.to_path_buf() });
        }
        let handles = &footer[..40];
        let mut pos = 0;
        let metaindex = BlockHandle::decode(handles, &mut pos)
            .ok_or_else(|| self.corrupt(footer_at as u64, "bad metaindex handle in footer"))?;
        let index = BlockHandle::decode(handles, &mut pos)
            .ok_or_else(|| self.corrupt(footer_at as u64, "bad index handle in footer"))?;

        // The metaindex is never used by TensorFlow, but every block read is verified.
        self.read_block(metaindex)?;
        let index_block = self.read_block(index)?;
        let mut entries: Entries = Vec::new();
        // Data blocks follow one another: each is read once, so the work is bounded by the file.
        let mut next_block = 0u64;
        for (_, handle_bytes) in self.parse_block(&index_block, index.offset)? {
            let mut pos = 0;
            let handle = BlockHandle::decode(&handle_bytes, &mut pos)
                .ok_or_else(|| self.corrupt(index.offset, "bad block handle in index block"))?;
            if handle.offset < next_block {
                return Err(self.corrupt(
                    index.offset,
                    format!("the index names a data block at {}, before the end of the previous one", handle.offset),
                ));
            }
            next_block = handle.offset.saturating_add(handle.size).saturating_add(TRAILER_LEN as u64);
            let block = self.read_block(handle)?;
            for (key, value) in self.parse_block(&block, handle.offset)? {
                if let Some((last, _)) = entries.last() {
                    if key <= *last {
                        return Err(TfError::KeysOutOfOrder {
                            path: self.path.to_path_buf(),
                            key: String::from_utf8_lossy(&key).into_owned(),
                        });
                    }
                }
                entries.push((key, value));
            }
        }
        Ok(entries)
    }

    /// The contents of a block, CRC verified and decompressed.
    fn read_block(&self, handle: BlockHandle) -> Result<Vec<u8>, TfError> {
        let data_end = (self.file.len() - FOOTER_LEN) as u64;
        let end = handle
            .offset
            .checked_add(handle.size)
            .and_then(|e| e.checked_add(TRAILER_LEN as u64))
            .filter(|&e| e <= data_end)
            .ok_or_else(|| {
                self.corrupt(
                    handle.offset,
                    format!("block of {} bytes at {} runs past the table data", handle.size, handle.offset),
                )
            })?;
        // Both fit in usize: they are at most the file length.
        let start = handle.offset as usize;
        let contents_end = start + handle.size as usize;
        let contents = &self.file[start..contents_end];
        let kind = self.file[contents_end];
        let stored = fixed32(self.file, contents_end + 1).unwrap_or(0);
        debug_assert_eq!(contents_end + TRAILER_LEN, end as usize);
        let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]);
        if mask_crc(crc) != stored {
            return Err(TfError::BlockChecksum { path: self.path.to_path_buf(), offset: handle.offset });
        }
        match kind {
            0 => Ok(contents.to_vec()),
            1 => {
                let snappy_err = |e: snap::Error| TfError::Snappy {
                    path: self.path.to_path_buf(),
                    offset: handle.offset,
                    reason: e.to_string(),
                };
                let n = snap::raw::decompress_len(contents).map_err(snappy_err)?;
                if n > contents.len().saturating_mul(MAX_SNAPPY_RATIO).saturating_add(64) {
                    return Err(self.corrupt(handle.offset, format!("snappy block claims {n} bytes")));
                }
                snap::raw::Decoder::new().decompress_vec(contents).map_err(snappy_err)
            }
            other => {
                Err(TfError::UnknownCompression { path: self.path.to_path_buf(), offset: handle.offset, kind: other })
            }
        }
    }

    /// The entries of a block (prefix-compressed keys resolved).
    fn parse_block(&self, block: &[u8], at: u64) -> Result<Entries, TfError> {
        let num_restarts = fixed32(block, block.len().wrapping_sub(4))
            .filter(|_| block.len() >= 4)
            .ok_or_else(|| self.corrupt(at, "block too short for its restart count"))?;
        let restarts_len = (num_restarts as usize)
            .checked_mul(4)
            .and_then(|n| n.checked_add(4))
            .filter(|&n| n <= block.len())
            .ok_or_else(|| self.corrupt(at, format!("block claims {num_restarts} restart points")))?;
        let data_end = block.len() - restarts_len;
        for i in 0..num_restarts as usize {
            let restart = fixed32(block, data_end + 4 * i).unwrap_or(u32::MAX) as usize;
            if restart > data_end || (restart == data_end && data_end != 0) {
                return Err(self.corrupt(at, format!("restart point {restart} outside the block")));
            }
        }
        let data = &block[..data_end];
        let mut entries = Vec::new();
        let mut key: Vec<u8> = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let entry_at = pos;
            let bad = || self.corrupt(at, format!("bad entry at byte {entry_at} of the block"));
            let shared = read_varint32(data, &mut pos).ok_or_else(bad)? as usize;
            let non_shared = read_varint32(data, &mut pos).ok_or_else(bad)? as usize;
            let value_len = read_varint32(data, &mut pos).ok_or_else(bad)? as usize;
            if shared > key.len() {
                return Err(bad());
            }
            let key_end = pos.checked_add(non_shared).filter(|&e| e <= data.len()).ok_or_else(bad)?;
            let value_end = key_end.checked_add(value_len).filter(|&e| e <= data.len()).ok_or_else(bad)?;
            let expanded = (shared + non_shared + value_len) as u64;
            let Some(left) = self.budget.get().checked_sub(expanded) else {
                return Err(self.corrupt(
                    at,
                    format!(
                        "the entries expand to more than {MAX_EXPANSION} times the file's size (a key repeated by prefix compression)"
                    ),
                ));
            };
            self.budget.set(left);
            key.truncate(shared);
            key.extend_from_slice(&data[pos..key_end]);
            entries.push((key.clone(), data[key_end..value_end].to_vec()));
            pos = value_end;
        }
        Ok(entries)
    }
}

/// Builds one block: prefix-compressed entries with a restart point every `interval` entries.
struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    interval: usize,
    last_key: Vec<u8>,
}

impl BlockBuilder {
    fn new(interval: usize) -> Self {
        BlockBuilder { buf: Vec::new(), restarts: vec![0], counter: 0, interval, last_key: Vec::new() }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn size_estimate(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        let shared = if self.counter < self.interval {
            key.iter().zip(&self.last_key).take_while(|(a, b)| a == b).count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.counter += 1;
    }

    /// The finished block contents; the builder is reset.
    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        *self = BlockBuilder::new(self.interval);
        out
    }
}

/// LevelDB's bytewise `FindShortestSeparator`: a short key in `[start, limit)`.
fn shortest_separator(start: &mut Vec<u8>, limit: &[u8]) {
    let min_len = start.len().min(limit.len());
    let diff = start.iter().zip(limit).take_while(|(a, b)| a == b).count();
    if diff >= min_len {
        return;
    }
    let byte = start[diff];
    if byte < 0xff && byte + 1 < limit[diff] {
        start[diff] += 1;
        start.truncate(diff + 1);
    }
}

/// LevelDB's bytewise `FindShortSuccessor`: a short key not below `key`.
fn short_successor(key: &mut Vec<u8>) {
    if let Some(i) = key.iter().position(|&b| b != 0xff) {
        key[i] += 1;
        key.truncate(i + 1);
    }
}

/// Writes a table holding `entries`, which must be sorted by key with no duplicates.
pub(crate) fn build_table(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut data = BlockBuilder::new(RESTART_INTERVAL);
    let mut index = BlockBuilder::new(1);
    let mut pending: Option<BlockHandle> = None;
    let mut last_key: Vec<u8> = Vec::new();

    fn write_block(out: &mut Vec<u8>, contents: &[u8]) -> BlockHandle {
        let handle = BlockHandle { offset: out.len() as u64, size: contents.len() as u64 };
        out.extend_from_slice(contents);
        out.push(0);
        let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[0]);
        out.extend_from_slice(&mask_crc(crc).to_le_bytes());
        handle
    }

    for (key, value) in entries {
        // TensorFlow's builder flushes before an entry that alone would fill two blocks.
        if !data.is_empty() && key.len() + value.len() >= 2 * BLOCK_SIZE {
            pending = Some(write_block(&mut out, &data.finish()));
        }
        if let Some(handle) = pending.take() {
            shortest_separator(&mut last_key, key);
            let mut h = Vec::new();
            handle.encode(&mut h);
            index.add(&last_key, &h);
        }
        last_key.clear();
        last_key.extend_from_slice(key);
        data.add(key, value);
        if data.size_estimate() >= BLOCK_SIZE {
            pending = Some(write_block(&mut out, &data.finish()));
        }
    }
    if !data.is_empty() {
        pending = Some(write_block(&mut out, &data.finish()));
    }
    let metaindex = write_block(&mut out, &BlockBuilder::new(RESTART_INTERVAL).finish());
    if let Some(handle) = pending {
        short_successor(&mut last_key);
        let mut h = Vec::new();
        handle.encode(&mut h);
        index.add(&last_key, &h);
    }
    let index_handle = write_block(&mut out, &index.finish());
    let mut footer = Vec::with_capacity(FOOTER_LEN);
    metaindex.encode(&mut footer);
    index_handle.encode(&mut footer);
    footer.resize(40, 0);
    footer.extend_from_slice(&(MAGIC as u32).to_le_bytes());
    footer.extend_from_slice(&((MAGIC >> 32) as u32).to_le_bytes());
    out.extend_from_slice(&footer);
    out
}

/// Reads the `.index` file at `path` whole.
pub(crate) fn read_index_file(path: &Path) -> Result<(PathBuf, Entries), TfError> {
    let bytes = std::fs::read(path).map_err(|e| TfError::io(path, e))?;
    let entries = read_table(path, &bytes)?;
    Ok((path.to_path_buf(), entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.index")
    }

    fn sample(n: usize) -> Entries {
        (0..n).map(|i| (format!("key{i:05}").into_bytes(), vec![i as u8; i % 7])).collect()
    }

    #[test]
    fn round_trip_small_and_multi_block() {
        for n in [0, 1, 17, 40] {
            let entries = sample(n);
            assert_eq!(read_table(p(), &build_table(&entries)).unwrap(), entries);
        }
        // Values large enough to need several blocks.
        let big: Entries = (0..5).map(|i| (vec![b'k', i], vec![i; 100_000])).collect();
        assert_eq!(read_table(p(), &build_table(&big)).unwrap(), big);
    }

    #[test]
    fn empty_metaindex_block_bytes() {
        assert_eq!(BlockBuilder::new(16).finish(), [0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn mask_round_trip() {
        for c in [0u32, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(unmask_crc(mask_crc(c)), c);
        }
    }

    #[test]
    fn separators() {
        let mut s = b"abcd".to_vec();
        shortest_separator(&mut s, b"abzz");
        assert_eq!(s, b"abd");
        let mut s = b"abc".to_vec();
        shortest_separator(&mut s, b"abcd");
        assert_eq!(s, b"abc");
        let mut s = vec![0xff, 0xff, 3];
        short_successor(&mut s);
        assert_eq!(s, [0xff, 0xff, 4]);
    }

    #[test]
    fn errors() {
        assert!(matches!(read_table(p(), &[0; 47]), Err(TfError::TooShort { .. })));
        assert!(matches!(read_table(p(), &[0; 48]), Err(TfError::BadMagic { .. })));
        let good = build_table(&sample(3));
        let mut flipped = good.clone();
        flipped[2] ^= 1;
        assert!(matches!(read_table(p(), &flipped), Err(TfError::BlockChecksum { .. })));
        // A footer handle pointing past the data.
        let mut forged = good.clone();
        let at = forged.len() - FOOTER_LEN;
        let mut footer = Vec::new();
        BlockHandle { offset: 0, size: 1 << 40 }.encode(&mut footer);
        BlockHandle { offset: 0, size: 1 << 40 }.encode(&mut footer);
        forged[at..at + footer.len()].copy_from_slice(&footer);
        assert!(matches!(read_table(p(), &forged), Err(TfError::CorruptTable { .. })));
    }

    /// A table of hand-made blocks: `data` blocks (contents and compression type byte), then an empty
    /// metaindex, then an index whose entries (`keys[i]`) point at `data[targets[i]]`.
    fn hand_made_table(data: &[(&[u8], u8)], keys: &[&[u8]], targets: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let put = |contents: &[u8], kind: u8, out: &mut Vec<u8>| {
            let h = BlockHandle { offset: out.len() as u64, size: contents.len() as u64 };
            out.extend_from_slice(contents);
            out.push(kind);
            let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]);
            out.extend_from_slice(&mask_crc(crc).to_le_bytes());
            h
        };
        let handles: Vec<BlockHandle> = data.iter().map(|(b, kind)| put(b, *kind, &mut out)).collect();
        let meta_h = put(&BlockBuilder::new(16).finish(), 0, &mut out);
        let mut index = BlockBuilder::new(1);
        for (key, &t) in keys.iter().zip(targets) {
            let mut hv = Vec::new();
            handles[t].encode(&mut hv);
            index.add(key, &hv);
        }
        let index_h = put(&index.finish(), 0, &mut out);
        let mut footer = Vec::new();
        meta_h.encode(&mut footer);
        index_h.encode(&mut footer);
        footer.resize(40, 0);
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&footer);
        out
    }

    fn raw_block(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut block = BlockBuilder::new(16);
        for (k, v) in entries {
            block.add(k, v);
        }
        block.finish()
    }

    #[test]
    fn a_data_block_named_twice_by_the_index_is_refused() {
        // Each index entry naming the same (large) block made the reader verify and parse it again:
        // a small file could cost entries x block size of work. Blocks must follow one another.
        let block = raw_block(&sample(3));
        let good = hand_made_table(&[(&block, 0)], &[b"z"], &[0]);
        assert_eq!(read_table(p(), &good).unwrap(), sample(3));
        let twice = hand_made_table(&[(&block, 0)], &[b"x", b"z"], &[0, 0]);
        let err = read_table(p(), &twice).unwrap_err();
        assert!(
            matches!(&err, TfError::CorruptTable { reason, .. } if reason.contains("before the end of the previous one")),
            "{err}"
        );
    }

    #[test]
    fn a_key_repeated_by_prefix_compression_cannot_expand_without_bound() {
        // One 64 KiB key, then 200 000 entries of five bytes each repeating all of it (shared = 65536):
        // a 1 MB block that expanded to 13 GB of keys before any check.
        let mut data = Vec::new();
        put_varint(&mut data, 0);
        put_varint(&mut data, 1 << 16);
        put_varint(&mut data, 0);
        data.extend(std::iter::repeat_n(b'k', 1 << 16));
        for _ in 0..200_000 {
            put_varint(&mut data, 1 << 16);
            put_varint(&mut data, 0);
            put_varint(&mut data, 0);
        }
        data.extend_from_slice(&0u32.to_le_bytes()); // one restart point, at 0
        data.extend_from_slice(&1u32.to_le_bytes());
        let table = hand_made_table(&[(&data, 0)], &[b"l"], &[0]);
        let err = read_table(p(), &table).unwrap_err();
        assert!(matches!(&err, TfError::CorruptTable { reason, .. } if reason.contains("64 times")), "{err}");
    }

    #[test]
    fn snappy_blocks_are_read() {
        // Recompress the data block of a table TensorFlow-style options would not write.
        let entries = sample(20);
        let compressed = snap::raw::Encoder::new().compress_vec(&raw_block(&entries)).unwrap();
        let out = hand_made_table(&[(&compressed, 1)], &[b"z"], &[0]);
        assert_eq!(read_table(p(), &out).unwrap(), entries);
        // An unknown compression type is its own error.
        let mut bad = out.clone();
        let type_at = compressed.len();
        bad[type_at] = 7;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&compressed), &[7]);
        bad[type_at + 1..type_at + 5].copy_from_slice(&mask_crc(crc).to_le_bytes());
        assert!(matches!(read_table(p(), &bad), Err(TfError::UnknownCompression { kind: 7, .. })));
    }
}
