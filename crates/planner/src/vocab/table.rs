//! The old vocabulary's table of `GenerateVocabRemapping` (token -> its line), made for a million
//! tokens or more: built on all cores, and looked up in batches whose memory reads overlap.
//!
//! A lookup in a big table is bound by the latency of its dependent cache misses (slot, then token
//! bytes), not by computing. So the table is a small open-addressing table of its own (linear probing,
//! at most 3/4 full) whose entries hold everything a probe needs: 32 bits of the token's hash, its
//! line, and where the token is in the old file (offset and length). A probe reads the entry's slot
//! and, only when hash and length agree, the token bytes to compare. Lookups go in batches: all slots
//! of a batch are prefetched, then all candidate tokens, then compared, so the misses of a batch
//! overlap instead of following one another. hashbrown's tables keep their slot addresses private,
//! so they cannot be prefetched this way. (A partitioned join, new tokens split by shard with their
//! bytes copied so that each shard's lookups stay in cache, measured slower: copying both files
//! costs more than the overlapped misses.)
//!
//! The table is [`SHARDS`] such tables chosen by the top bits of the hash: each is built by one rayon
//! task in file order, small enough to stay in cache while it is built, and keeps the first line of
//! each token, so the first duplicate (in file order) is known as TF's table initialisation finds it.
//!
//! Memory is the one state of a run that grows with the vocabulary (issue 13: at most 48 bytes a token
//! beyond W1's million). Each shard's entries are freed as soon as its table is built, so that the
//! entries and the tables are not all held at once, and the tables are 3/4 full; with the vocabulary
//! files shared with the plan (an `Arc`, where the plan cloned both), `warmstart plan` at 10M tokens
//! peaks at 504 MiB instead of 823 MiB, and `run` at 4 x W1 at 230 MiB instead of 326 MiB: (230 - 95)
//! MiB / 3M tokens = 47 bytes a token beyond W1 (it was 81).

use std::hash::BuildHasher;
use std::ops::{ControlFlow, Range};

use rayon::prelude::*;

use super::lines::{for_each_line, Layout, Piece};

/// The hasher of the vocabulary tables: foldhash's fast hash, seeded per process, several times faster
/// than SipHash on short tokens.
pub(super) type TableHasher = foldhash::fast::RandomState;

/// The top bits of the hash that choose the shard.
const SHARD_BITS: u32 = 6;

/// Shards of the old vocabulary's table.
const SHARDS: usize = 1 << SHARD_BITS;

/// Tokens one batch looks up with their memory reads overlapped.
const LOOKUP_BATCH: usize = 32;

/// The integer type of the lines and offsets in the table's entries: `u32` (16-byte entries) when the
/// old file is smaller than 4 GiB, else `usize`.
pub(super) trait LineIndex: Copy + Default + Send + Sync {
    /// Whether every number up to `max` fits.
    fn fits(max: usize) -> bool;
    /// `value`, at most the `max` of a [`LineIndex::fits`] that held.
    fn from_usize(value: usize) -> Self;
    /// The number.
    fn to_usize(self) -> usize;
}

impl LineIndex for u32 {
    fn fits(max: usize) -> bool {
        u32::try_from(max).is_ok()
    }

    #[inline]
    fn from_usize(value: usize) -> Self {
        debug_assert!(Self::fits(value));
        value as u32
    }

    #[inline]
    fn to_usize(self) -> usize {
        self as usize
    }
}

impl LineIndex for usize {
    fn fits(_: usize) -> bool {
        true
    }

    #[inline]
    fn from_usize(value: usize) -> Self {
        value
    }

    #[inline]
    fn to_usize(self) -> usize {
        self
    }
}

/// One slot of a shard: a token of the old file, or empty (`len == 0`: tokens are never empty).
#[derive(Debug, Clone, Copy, Default)]
struct Entry<I> {
    /// The low 32 bits of the token's hash (which also choose its first slot).
    hash: u32,
    /// The token's line.
    line: I,
    /// The token's offset in the old file.
    start: I,
    /// The token's length in bytes.
    len: I,
}

impl<I: LineIndex> Entry<I> {
    fn is_empty(&self) -> bool {
        self.len.to_usize() == 0
    }

    /// Whether this entry may be `token`, whose hash's low bits are `hash`, without reading its bytes.
    #[inline]
    fn may_be(&self, hash: u32, token: &[u8]) -> bool {
        self.hash == hash && self.len.to_usize() == token.len()
    }
}

/// The first line (in file order) whose token an earlier line already had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Duplicate<'a> {
    /// The earlier line.
    pub previous: usize,
    /// The line that repeats it.
    pub line: usize,
    /// The token.
    pub token: &'a [u8],
}

/// The shard of a hash.
#[inline]
fn shard_of(hash: u64) -> usize {
    (hash >> (64 - SHARD_BITS)) as usize
}

/// The first slot of a hash's low bits in a shard of `slots` slots (`hash * slots / 2^32`).
#[inline]
fn first_slot(hash: u32, slots: usize) -> usize {
    ((u64::from(hash) * slots as u64) >> 32) as usize
}

/// The slots of a shard holding `count` tokens: at most 3/4 full, and at least one slot empty, which
/// ends every probe. (At 2/3 the table took 24 bytes a token, at 3/4 21; the probes' extra length
/// did not show in `warmstart plan`'s time at 10M tokens, 3.1-5.7 s against 3.4-5.8 s, busy machine.)
fn slots_for(count: usize) -> usize {
    count + count / 3 + 1
}

/// Hints the processor to bring `item` into its caches.
#[inline(always)]
fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86_64; a prefetch only hints the cache and never faults (the address is
    // a reference's anyway).
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((item as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// The old vocabulary's table: token -> first line, over the old file's bytes.
pub(super) struct OldTable<'a, I> {
    contents: &'a [u8],
    hasher: TableHasher,
    shards: Vec<Vec<Entry<I>>>,
    /// The first line (in file order) whose token an earlier line already had.
    first_duplicate: Option<Duplicate<'a>>,
}

/// `GenerateVocabRemapping`'s table and lookups: the old line of each line `wanted.start + k` of
/// `new` (its lines: `new_layout`) at `k`, -1 for those the first `old_lines` lines of `old` (its
/// lines: `old_layout`; none of them empty) do not have, and how many were found. The wanted lines
/// must exist. Refuses, as TF does before any lookup, an old vocabulary with a duplicate.
pub(super) fn remap<'a>(
    old: &'a [u8],
    old_layout: &Layout,
    old_lines: usize,
    new: &[u8],
    new_layout: &Layout,
    wanted: Range<usize>,
) -> Result<(Vec<i64>, usize), Duplicate<'a>> {
    let mut out = vec![0i64; wanted.len()];
    let found = match OldTable::<u32>::build(old, &old_layout.pieces, old_lines) {
        Some(table) => table.remap(new, &new_layout.pieces, wanted.start, &mut out),
        None => OldTable::build_wide(old, &old_layout.pieces, old_lines).remap(
            new,
            &new_layout.pieces,
            wanted.start,
            &mut out,
        ),
    }?;
    Ok((out, found))
}

impl<'a, I: LineIndex> OldTable<'a, I> {
    /// The table of the first `lines` lines of `contents` (cut into `pieces`), which must not be
    /// empty; `None` if `contents` is too big for `I`.
    fn build(contents: &'a [u8], pieces: &[Piece], lines: usize) -> Option<Self> {
        I::fits(contents.len()).then(|| Self::build_in(contents, pieces, lines))
    }

    /// [`OldTable::build`], `I` holding every offset and line (each at most `contents.len()`).
    fn build_in(contents: &'a [u8], pieces: &[Piece], lines: usize) -> Self {
        let hasher = TableHasher::default();
        // Each piece's tokens, by shard, in file order.
        let parts: Vec<Vec<Vec<Entry<I>>>> = pieces
            .par_iter()
            .filter(|piece| piece.first_line < lines)
            .map(|piece| {
                let taken = piece.lines.min(lines - piece.first_line);
                // The binomial spread of a shard's share is about its square root: a quarter more
                // rarely grows.
                let per_shard = taken / SHARDS + taken / SHARDS / 4 + 8;
                let mut parts: Vec<Vec<Entry<I>>> = (0..SHARDS).map(|_| Vec::with_capacity(per_shard)).collect();
                for_each_line(contents, piece, |line, start, token| {
                    if line >= lines {
                        return ControlFlow::Break(());
                    }
                    let hash = hasher.hash_one(token);
                    parts[shard_of(hash)].push(Entry {
                        hash: hash as u32,
                        line: I::from_usize(line),
                        start: I::from_usize(start),
                        len: I::from_usize(token.len()),
                    });
                    ControlFlow::Continue(())
                });
                parts
            })
            .collect();
        // Each shard's tokens from every piece, in file order; freed as soon as the shard is built, so
        // that the entries and the tables are not all held at once.
        let mut by_shard: Vec<Vec<Vec<Entry<I>>>> = (0..SHARDS).map(|_| Vec::with_capacity(parts.len())).collect();
        for piece in parts {
            for (shard, entries) in by_shard.iter_mut().zip(piece) {
                shard.push(entries);
            }
        }
        let token = |e: &Entry<I>| &contents[e.start.to_usize()..e.start.to_usize() + e.len.to_usize()];
        let built: Vec<(Vec<Entry<I>>, Option<Duplicate<'a>>)> = by_shard
            .into_par_iter()
            .map(|pieces| {
                let count = pieces.iter().map(Vec::len).sum();
                let mut slots = vec![Entry::default(); slots_for(count)];
                let mut duplicate = None;
                for entry in pieces.iter().flatten() {
                    let mut at = first_slot(entry.hash, slots.len());
                    loop {
                        let here = &slots[at];
                        if here.is_empty() {
                            slots[at] = *entry;
                            break;
                        }
                        if here.may_be(entry.hash, token(entry)) && token(here) == token(entry) {
                            let line = entry.line.to_usize();
                            duplicate = duplicate.or(Some(Duplicate {
                                previous: here.line.to_usize(),
                                line,
                                token: token(entry),
                            }));
                            break;
                        }
                        at = if at + 1 == slots.len() { 0 } else { at + 1 };
                    }
                }
                drop(pieces);
                (slots, duplicate)
            })
            .collect();
        let first_duplicate = built.iter().filter_map(|(_, d)| *d).min_by_key(|d| d.line);
        OldTable { contents, hasher, shards: built.into_iter().map(|(s, _)| s).collect(), first_duplicate }
    }

    /// The line of `token`, probing `shard` from slot `at`.
    fn find_from(&self, shard: &[Entry<I>], mut at: usize, hash: u32, token: &[u8]) -> Option<usize> {
        loop {
            let here = &shard[at];
            if here.is_empty() {
                return None;
            }
            if here.may_be(hash, token) && self.token(here) == token {
                return Some(here.line.to_usize());
            }
            at = if at + 1 == shard.len() { 0 } else { at + 1 };
        }
    }

    /// The bytes of an entry's token.
    #[inline]
    fn token(&self, entry: &Entry<I>) -> &'a [u8] {
        let start = entry.start.to_usize();
        &self.contents[start..start + entry.len.to_usize()]
    }

    /// The line of `token`, if the old vocabulary has it.
    #[cfg(test)]
    fn get(&self, token: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(token);
        let shard = &self.shards[shard_of(hash)];
        self.find_from(shard, first_slot(hash as u32, shard.len()), hash as u32, token)
    }

    /// Writes the line of each of `tokens` (at most [`LOOKUP_BATCH`]) or -1 to `out`; returns how many
    /// were found. The slots of all tokens are fetched first, then the candidates' bytes, then compared.
    fn get_batch(&self, tokens: &[&[u8]], out: &mut [i64]) -> usize {
        let mut probes = [(0usize, 0usize, 0u32); LOOKUP_BATCH];
        for (probe, token) in probes.iter_mut().zip(tokens) {
            let hash = self.hasher.hash_one(token);
            let shard = shard_of(hash);
            let at = first_slot(hash as u32, self.shards[shard].len());
            prefetch(&self.shards[shard][at]);
            *probe = (shard, at, hash as u32);
        }
        // The first slot whose entry may be the token, or `usize::MAX` if an empty slot comes first.
        let mut candidates = [usize::MAX; LOOKUP_BATCH];
        for ((candidate, &(shard, mut at, hash)), token) in candidates.iter_mut().zip(&probes).zip(tokens) {
            let shard = &self.shards[shard];
            loop {
                let here = &shard[at];
                if here.is_empty() {
                    break;
                }
                if here.may_be(hash, token) {
                    if let Some(first_byte) = self.contents.get(here.start.to_usize()) {
                        prefetch(first_byte);
                    }
                    *candidate = at;
                    break;
                }
                at = if at + 1 == shard.len() { 0 } else { at + 1 };
            }
        }
        let mut found = 0;
        for (((slot, &candidate), &(shard, _, hash)), token) in out.iter_mut().zip(&candidates).zip(&probes).zip(tokens)
        {
            let line = (candidate != usize::MAX)
                .then(|| {
                    let shard = &self.shards[shard];
                    let here = &shard[candidate];
                    if self.token(here) == *token {
                        Some(here.line.to_usize())
                    } else {
                        // Same hash bits and length, other bytes: rare, probed on without batching.
                        self.find_from(shard, if candidate + 1 == shard.len() { 0 } else { candidate + 1 }, hash, token)
                    }
                })
                .flatten();
            // Lines are at most the old file's length, far below `i64::MAX`.
            *slot = line.map_or(-1, |l| l as i64);
            found += usize::from(line.is_some());
        }
        found
    }

    /// Writes the old line of each line `first + k` of `data` (cut into `pieces`) to `out[k]`, -1 for
    /// those the old vocabulary does not have, in parallel; returns how many were found. The lines must
    /// exist. Refuses, as TF does before any lookup, an old vocabulary with a duplicate.
    fn remap(&self, data: &[u8], pieces: &[Piece], first: usize, out: &mut [i64]) -> Result<usize, Duplicate<'a>> {
        if let Some(duplicate) = self.first_duplicate {
            return Err(duplicate);
        }
        let end = first + out.len();
        let mut rest = out;
        let mut jobs = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let (from, to) = (piece.first_line.max(first), (piece.first_line + piece.lines).min(end));
            if from < to {
                let n = (to - from).min(rest.len());
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(n);
                rest = tail;
                jobs.push((piece, from, mine));
            }
        }
        let found = jobs
            .into_par_iter()
            .map(|(piece, from, out)| {
                let mut batch: [&[u8]; LOOKUP_BATCH] = [&[]; LOOKUP_BATCH];
                let (mut filled, mut done, mut found) = (0, 0, 0);
                for_each_line(data, piece, |line, _, token| {
                    if line < from {
                        return ControlFlow::Continue(());
                    }
                    if line - from >= out.len() {
                        return ControlFlow::Break(());
                    }
                    batch[filled] = token;
                    filled += 1;
                    if filled == LOOKUP_BATCH {
                        found += self.get_batch(&batch, &mut out[done..done + filled]);
                        done += filled;
                        filled = 0;
                    }
                    ControlFlow::Continue(())
                });
                found + self.get_batch(&batch[..filled], &mut out[done..done + filled])
            })
            .sum();
        Ok(found)
    }
}

impl<'a> OldTable<'a, usize> {
    /// [`OldTable::build`] with `usize` entries, which hold any file in memory.
    fn build_wide(contents: &'a [u8], pieces: &[Piece], lines: usize) -> Self {
        Self::build_in(contents, pieces, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::super::lines::Layout;
    use super::*;

    fn tokens(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| format!("tok{i}\n").into_bytes()).collect()
    }

    fn check_both<R: PartialEq + std::fmt::Debug>(
        data: &[u8],
        pieces: usize,
        f: impl Fn(&dyn Fn(&[u8]) -> Option<usize>, Option<(usize, usize)>) -> R,
    ) -> R {
        let layout = Layout::with_pieces(data, pieces);
        let narrow = OldTable::<u32>::build(data, &layout.pieces, layout.lines).unwrap();
        let wide = OldTable::build_wide(data, &layout.pieces, layout.lines);
        let dup = |t: &Option<Duplicate<'_>>| t.map(|d| (d.previous, d.line));
        let a = f(&|t| narrow.get(t), dup(&narrow.first_duplicate));
        let b = f(&|t| wide.get(t), dup(&wide.first_duplicate));
        assert_eq!(a, b);
        a
    }

    #[test]
    fn finds_every_token_and_only_them() {
        let data = tokens(20_000);
        check_both(&data, 7, |get, dup| {
            assert_eq!(dup, None);
            for i in 0..20_000 {
                assert_eq!(get(format!("tok{i}").as_bytes()), Some(i));
            }
            for absent in ["tok20000", "tok", "", "tok1 ", "ok1", "tok01"] {
                assert_eq!(get(absent.as_bytes()), None);
            }
        });
    }

    #[test]
    fn first_duplicate_in_file_order() {
        // Lines 3 and 5 repeat lines 1 and 0; line 3 is the first repeat, whichever shards they are in.
        let data = b"a\nb\nc\nb\nd\na\nb\n";
        let dup = check_both(data, 3, |get, dup| {
            assert_eq!(get(b"b"), Some(1));
            assert_eq!(get(b"a"), Some(0));
            dup
        });
        assert_eq!(dup, Some((1, 3)));
        // Only the first `lines` lines are in the table.
        let layout = Layout::with_pieces(data, 2);
        let table = OldTable::<u32>::build(data, &layout.pieces, 3).unwrap();
        assert_eq!(table.first_duplicate, None);
        assert_eq!(table.get(b"d"), None);
        assert_eq!(table.get(b"c"), Some(2));
        // Among many shards and pieces too.
        let mut data = tokens(100_000);
        data.extend_from_slice(b"tok77777\ntok5\n");
        let layout = Layout::with_pieces(&data, 9);
        let table = OldTable::<u32>::build(&data, &layout.pieces, layout.lines).unwrap();
        let duplicate = Duplicate { previous: 77_777, line: 100_000, token: b"tok77777" };
        assert_eq!(table.first_duplicate, Some(duplicate));
    }

    #[test]
    fn crowded_shard_wraps_around() {
        // A one-token table has two slots: every probe of an absent token must still end.
        let table = OldTable::<u32>::build(b"x", &Layout::with_pieces(b"x", 1).pieces, 1).unwrap();
        assert_eq!(table.get(b"x"), Some(0));
        for i in 0..1000 {
            assert_eq!(table.get(format!("y{i}").as_bytes()), None);
        }
    }

    #[test]
    fn remap_in_batches_matches_single_lookups() {
        let old = tokens(5_000);
        let new: Vec<u8> = (0..3_000).rev().flat_map(|i| format!("tok{}\r\n", i * 3).into_bytes()).collect();
        let old_layout = Layout::with_pieces(&old, 5);
        let new_layout = Layout::with_pieces(&new, 6);
        let wide = OldTable::build_wide(&old, &old_layout.pieces, old_layout.lines);
        for (first, n) in [(0, 3_000), (17, 1_000), (2_999, 1), (5, 0)] {
            let (out, found) = remap(&old, &old_layout, old_layout.lines, &new, &new_layout, first..first + n).unwrap();
            let expected: Vec<i64> = (first..first + n)
                .map(|k| {
                    let id = (2_999 - k) * 3;
                    if id < 5_000 {
                        id as i64
                    } else {
                        -1
                    }
                })
                .collect();
            assert!(out == expected, "lines {first}..{}", first + n);
            assert_eq!(found, expected.iter().filter(|&&o| o >= 0).count());
            let mut out = vec![0i64; n];
            assert_eq!(wide.remap(&new, &new_layout.pieces, first, &mut out), Ok(found));
            assert!(out == expected, "lines {first}..{} (usize entries)", first + n);
        }
    }
}
