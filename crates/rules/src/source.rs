//! [`RulesSource`]: a checkpoint seen through rules. It lists the tensors the rules keep, under their
//! new names, dtypes and shapes, and serves their rows transposed and cast, so that anything that reads
//! a [`CheckpointSource`] (`convert`, `diff`, a sink) ports a checkpoint without knowing of rules.
//!
//! Rows are computed from the source's rows block by block. A transpose that moves the first axis
//! (`perm[0] != 0`) needs a slab of every source row for each block of output rows, so it computes
//! a chunk of [`CHUNK_BYTES`] of output rows (or 64 bytes of every source row, if more) at a time and
//! serves the following reads from it:
//! memory stays bounded by a few chunks and source blocks, whatever the tensor's size.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};

use warmstart_core::copy::{row_blocks, DEFAULT_BLOCK_BYTES};
use warmstart_core::{CheckpointSource, DType, Error, Format, Result, TensorInfo};

use crate::transpose::Transpose;
use crate::{Entry, Fate, Kept, Mapping, Rules, RulesError};

/// The most output rows of a transposed tensor computed at once, unless a cache line's worth of
/// them (64 bytes of each source row) is more: passes over the source cost the same per cache line.
pub const CHUNK_BYTES: u64 = 16 << 20;

/// How many chunks are kept, for as many transposed tensors read at once (by `diff`'s threads): the
/// oldest is dropped first.
const MAX_CHUNKS: usize = 4;

/// How one destination tensor is made from its source tensor.
#[derive(Debug)]
struct Made {
    source: TensorInfo,
    transpose: Option<Transpose>,
    cast: Option<DType>,
}

/// Output rows of one transposed tensor, already cast.
#[derive(Debug)]
struct Chunk {
    index: usize,
    rows: Range<u64>,
    bytes: Vec<u8>,
}

/// The checkpoint a [`RulesSource`] reads: borrowed, or shared (for a reader that must own what it
/// reads, as the Python package's).
pub enum Inner<'a> {
    /// Borrowed for `'a`.
    Borrowed(&'a dyn CheckpointSource),
    /// Shared, kept alive by the [`RulesSource`].
    Shared(Arc<dyn CheckpointSource>),
}

impl<'a> std::ops::Deref for Inner<'a> {
    type Target = dyn CheckpointSource + 'a;

    fn deref(&self) -> &Self::Target {
        match self {
            Inner::Borrowed(inner) => *inner,
            Inner::Shared(inner) => inner.as_ref(),
        }
    }
}

impl<'a> From<&'a dyn CheckpointSource> for Inner<'a> {
    fn from(inner: &'a dyn CheckpointSource) -> Self {
        Inner::Borrowed(inner)
    }
}

impl From<Arc<dyn CheckpointSource>> for Inner<'static> {
    fn from(inner: Arc<dyn CheckpointSource>) -> Self {
        Inner::Shared(inner)
    }
}

/// A checkpoint seen through rules (see the module docs).
pub struct RulesSource<'a> {
    inner: Inner<'a>,
    mapping: Mapping,
    tensors: Vec<TensorInfo>,
    made: Vec<Made>,
    by_name: HashMap<String, usize>,
    chunks: Mutex<Vec<Chunk>>,
}

impl std::fmt::Debug for RulesSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulesSource").field("inner", &self.inner.path()).field("tensors", &self.tensors).finish()
    }
}

impl<'a> RulesSource<'a> {
    /// `inner` through `rules`; refused as [`Rules::map`] refuses.
    pub fn new(inner: &'a dyn CheckpointSource, rules: &Rules, strict: bool) -> Result<Self, RulesError> {
        let mapping = rules.map(inner.path(), inner.tensors(), strict)?;
        Ok(Self::from_mapping(Inner::Borrowed(inner), mapping))
    }

    fn from_mapping(inner: Inner<'a>, mapping: Mapping) -> Self {
        let mut tensors = Vec::new();
        let mut made = Vec::new();
        for entry in &mapping.entries {
            if let Fate::Kept(k) = &entry.fate {
                tensors.push(k.dest.clone());
                made.push(Made {
                    source: entry.source.clone(),
                    transpose: k
                        .transpose
                        .as_ref()
                        .map(|(_, perm)| Transpose { shape: entry.source.shape.clone(), perm: perm.clone() }),
                    cast: k.cast.as_ref().map(|_| k.dest.dtype),
                });
            }
        }
        let by_name = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        RulesSource { inner, mapping, tensors, made, by_name, chunks: Mutex::new(Vec::new()) }
    }

    /// `inner` (a `&dyn CheckpointSource` or an `Arc` of one) with its tensors renamed as `names` says
    /// (by source name; others keep theirs), nothing transposed or cast; two tensors given one name are
    /// refused.
    pub fn renamed(inner: impl Into<Inner<'a>>, names: &HashMap<String, String>) -> Result<Self, RulesError> {
        let inner = inner.into();
        let mut entries = Vec::new();
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for t in inner.tensors() {
            let name = names.get(&t.name).unwrap_or(&t.name);
            if let Some(first) = seen.insert(name, &t.name) {
                return Err(RulesError::Collision {
                    path: inner.path().to_path_buf(),
                    first: first.to_string(),
                    second: t.name.clone(),
                    name: name.clone(),
                });
            }
            let dest = TensorInfo::new(name.clone(), t.dtype, t.shape.clone());
            entries.push(Entry { source: t.clone(), fate: Fate::Kept(Kept { dest, transpose: None, cast: None }) });
        }
        Ok(Self::from_mapping(inner, Mapping { entries, unmatched: Vec::new() }))
    }

    /// What the rules made of each source tensor.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    fn too_large(&self, name: &str) -> Error {
        Error::TooLarge { path: self.inner.path().to_path_buf(), name: name.to_string() }
    }

    /// Source rows `rows` of `m`, checked to hold as many bytes as they should.
    fn source_rows(&self, m: &Made, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        let bytes = self.inner.read_rows(&m.source.name, rows.clone())?;
        let expected = m.source.row_bytes().and_then(|r| r.checked_mul(rows.end - rows.start));
        if expected != Some(bytes.len() as u64) {
            return Err(Error::SizeMismatch {
                path: self.inner.path().to_path_buf(),
                name: m.source.name.clone(),
                given: bytes.len() as u64,
                expected: expected.unwrap_or(u64::MAX),
            });
        }
        Ok(bytes)
    }

    /// Output rows `rows` of `m` (whose transpose keeps rows, or which has none), in the source dtype.
    fn same_rows(&self, m: &Made, rows: Range<u64>) -> Result<Vec<u8>> {
        let block = self.source_rows(m, rows.clone())?;
        let out = match &m.transpose {
            Some(t) => {
                let es = m.source.dtype.size().ok_or_else(|| self.too_large(&m.source.name))?;
                let mut out = vec![0u8; block.len()];
                t.scatter_block(es, &block, rows.clone(), &mut out, rows.clone());
                out
            }
            None => block.into_owned(),
        };
        self.inner.release(&m.source.name, rows);
        Ok(out)
    }

    /// Output rows `rows` of `m`, whose transpose moves the first axis, in the source dtype: a slab of
    /// every block of source rows.
    fn slab_rows(&self, m: &Made, t: &Transpose, rows: Range<u64>, out_row_bytes: u64) -> Result<Vec<u8>> {
        let es = m.source.dtype.size().ok_or_else(|| self.too_large(&m.source.name))?;
        let len = out_row_bytes.checked_mul(rows.end - rows.start).ok_or_else(|| self.too_large(&m.source.name))?;
        let mut out = vec![0u8; usize::try_from(len).map_err(|_| self.too_large(&m.source.name))?];
        for block_rows in row_blocks(self.inner.path(), &m.source, DEFAULT_BLOCK_BYTES)? {
            let block = self.source_rows(m, block_rows.clone())?;
            t.scatter_block(es, &block, block_rows.clone(), &mut out, rows.clone());
            drop(block);
            self.inner.release(&m.source.name, block_rows);
        }
        Ok(out)
    }

    fn lock_chunks(&self) -> std::sync::MutexGuard<'_, Vec<Chunk>> {
        self.chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cast(m: &Made, dest: &TensorInfo, bytes: Vec<u8>) -> Vec<u8> {
        match m.cast {
            Some(to) => {
                let mut out = Vec::new();
                crate::cast::convert(m.source.dtype, to, &bytes, &mut out);
                debug_assert_eq!(to, dest.dtype);
                out
            }
            None => bytes,
        }
    }

    /// Rows `rows` of the transposed tensor `index`, from the chunk that holds them (computed if
    /// needed).
    fn chunked_rows(&self, index: usize, rows: Range<u64>) -> Result<Vec<u8>> {
        let (m, dest) = (&self.made[index], &self.tensors[index]);
        let Some(t) = &m.transpose else { return Ok(Vec::new()) };
        let src_row = dest.row_bytes().ok_or_else(|| self.too_large(&dest.name))?;
        // The output row's size in the source dtype (the chunk is made before the cast).
        let pre_cast_row = m.source.row_bytes().zip(dest.row_bytes()).map_or(src_row, |_| {
            let inner: u64 = dest.shape.get(1..).unwrap_or(&[]).iter().product();
            inner * m.source.dtype.size().unwrap_or(0) as u64
        });
        let slice = |c: &Chunk| {
            let from = ((rows.start - c.rows.start) * src_row) as usize;
            let to = ((rows.end - c.rows.start) * src_row) as usize;
            c.bytes[from..to].to_vec()
        };
        let holds = |c: &Chunk| c.index == index && c.rows.start <= rows.start && rows.end <= c.rows.end;
        if let Some(c) = self.lock_chunks().iter().find(|c| holds(c)) {
            return Ok(slice(c));
        }
        // Computed without the lock, so that threads reading other tensors are not held up.
        // At least a cache line of each source row per pass over the source (64 bytes of output rows).
        let line = (64 / m.source.dtype.size().unwrap_or(1).max(1)) as u64;
        let want = (CHUNK_BYTES / pre_cast_row.max(1)).max(line).max(rows.end - rows.start);
        let end = rows.start.saturating_add(want).min(dest.rows());
        let chunk_rows = rows.start..end;
        let bytes = Self::cast(m, dest, self.slab_rows(m, t, chunk_rows.clone(), pre_cast_row)?);
        let chunk = Chunk { index, rows: chunk_rows, bytes };
        let out = slice(&chunk);
        let mut chunks = self.lock_chunks();
        chunks.retain(|c| c.index != index);
        if chunks.len() >= MAX_CHUNKS {
            chunks.remove(0);
        }
        chunks.push(chunk);
        Ok(out)
    }
}

impl CheckpointSource for RulesSource<'_> {
    fn format(&self) -> Format {
        self.inner.format()
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        let index = *self
            .by_name
            .get(name)
            .ok_or_else(|| Error::TensorNotFound { path: self.inner.path().to_path_buf(), name: name.to_string() })?;
        let (m, dest) = (&self.made[index], &self.tensors[index]);
        if rows.start > rows.end || rows.end > dest.rows() {
            return Err(Error::RowsOutOfRange {
                path: self.inner.path().to_path_buf(),
                name: name.to_string(),
                start: rows.start,
                end: rows.end,
                rows: dest.rows(),
            });
        }
        match &m.transpose {
            None if m.cast.is_none() => self.inner.read_rows(&m.source.name, rows),
            Some(t) if !t.keeps_rows() => Ok(Cow::Owned(self.chunked_rows(index, rows)?)),
            _ => Ok(Cow::Owned(Self::cast(m, dest, self.same_rows(m, rows)?))),
        }
    }

    fn release(&self, name: &str, rows: Range<u64>) {
        if let Some(m) = self.by_name.get(name).map(|&i| &self.made[i]) {
            if m.transpose.is_none() && m.cast.is_none() {
                self.inner.release(&m.source.name, rows);
            }
        }
    }

    fn check_unchanged(&self) -> Result<()> {
        self.inner.check_unchanged()
    }
    fn check_cancelled(&self) -> Result<()> {
        self.inner.check_cancelled()
    }

    fn read_strings(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        match self.by_name.get(name) {
            Some(&i) => self.inner.read_strings(&self.made[i].source.name),
            None => Err(Error::TensorNotFound { path: self.inner.path().to_path_buf(), name: name.to_string() }),
        }
    }

    fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.inner.metadata()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warmstart_core::test_support::MemorySource;

    fn source() -> MemorySource {
        let w: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let v: Vec<u8> = (0..24u16).flat_map(u16::to_le_bytes).collect();
        MemorySource::new()
            .with_bytes(TensorInfo::new("a/w", DType::F32, vec![2, 3]), w)
            .with_bytes(TensorInfo::new("a/v", DType::U16, vec![2, 3, 4]), v)
            .with_bytes(TensorInfo::new("a/w/adam_m", DType::F32, vec![2, 3]), vec![0; 24])
            .with_strings("vocab", &[1], vec![b"x".to_vec()])
    }

    fn rules() -> Rules {
        Rules::from_toml(
            "skip = ['adam_m$']\n[[rename]]\npattern = '/'\nreplace = '.'\n\
             [[transpose]]\npattern = 'w$'\nperm = [1, 0]\n[[transpose]]\npattern = 'v$'\nperm = [2, 0, 1]\n\
             [[cast]]\npattern = 'w$'\nto = 'F64'\n",
            Path::new("r.toml"),
        )
        .unwrap()
    }

    #[test]
    fn lists_and_reads_through_the_rules() {
        let inner = source();
        let src = RulesSource::new(&inner, &rules(), true).unwrap();
        let names: Vec<_> = src.tensors().iter().map(|t| (t.name.as_str(), t.dtype, t.shape.clone())).collect();
        assert_eq!(
            names,
            [("a.w", DType::F64, vec![3, 2]), ("a.v", DType::U16, vec![4, 2, 3]), ("vocab", DType::String, vec![1])]
        );
        let w: Vec<f64> =
            src.read("a.w").unwrap().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(w, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        // Row by row, as a streaming reader asks, from the chunk.
        let row1: Vec<u8> = src.read_rows("a.v", 1..2).unwrap().into_owned();
        let row1: Vec<u16> = row1.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(row1, [1, 5, 9, 13, 17, 21]);
        assert_eq!(src.read_strings("vocab").unwrap(), [b"x".to_vec()]);
        assert!(matches!(src.read_rows("a.v", 3..5), Err(Error::RowsOutOfRange { .. })));
        assert!(matches!(src.read_rows("a/v", 0..1), Err(Error::TensorNotFound { .. })));
    }

    #[test]
    fn a_large_transpose_reads_its_source_once_in_blocks() {
        let (r, c) = (3000u64, 1500u64);
        let value = |i: u64, j: u64| ((i * c + j) % 65521) as u16;
        let data: Vec<u8> = (0..r).flat_map(|i| (0..c).flat_map(move |j| value(i, j).to_le_bytes())).collect();
        let inner = MemorySource::new().with_bytes(TensorInfo::new("w", DType::U16, vec![r, c]), data);
        let rules = Rules::from_toml("[[transpose]]\npattern = 'w'\nperm = [1, 0]\n", Path::new("r")).unwrap();
        let src = RulesSource::new(&inner, &rules, true).unwrap();
        for a in (0..c).step_by(100) {
            let got = src.read_rows("w", a..a + 100).unwrap();
            for (j, i) in [(a, 0), (a + 99, r - 1), (a + 37, 1234)] {
                let at = (((j - a) * r + i) * 2) as usize;
                assert_eq!(u16::from_le_bytes([got[at], got[at + 1]]), value(i, j), "({i}, {j})");
            }
        }
        // 9 MB of source in blocks of 4 MiB (1398 rows), once: all 1500 output rows fit one chunk.
        let reads: Vec<_> = inner.reads().into_iter().map(|(_, rows)| rows).collect();
        assert_eq!(reads, [0..1398, 1398..2796, 2796..3000]);
    }
}
