//! Helpers the workspace's tests and benches share (behind the `test-support` cargo feature, for
//! dev-dependencies only): where the fixtures are, a small deterministic random generator for bounded
//! corruption loops, reading everything a caller could ask of a checkpoint, and a checkpoint held in
//! memory.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{CheckpointSource, DType, Error, Format, Result, TensorInfo};

/// The workspace's `tests/fixtures` folder: what the reference libraries wrote (see its README.md).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// `tests/fixtures/<area>/<case>`, for instance `fixture("hdf5", "keras3")`.
pub fn fixture(area: &str, case: &str) -> PathBuf {
    fixtures().join(area).join(case)
}

/// A small deterministic generator (xorshift64*), so that a corruption loop is the same on every run.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Reads everything a caller could ask of `src`: every numeric tensor whole (checking that it has as
/// many bytes as its dtype and shape say) and its rows `1..`, every string tensor, and the object
/// graph's keys. Returns the first error.
pub fn read_everything(src: &dyn CheckpointSource) -> Result<()> {
    for t in src.tensors() {
        if t.dtype == DType::String {
            src.read_strings(&t.name)?;
            continue;
        }
        let whole = src.read(&t.name)?;
        assert_eq!(Some(whole.len() as u64), t.byte_len(), "{}: bytes read", t.name);
        if t.rows() > 1 {
            src.read_rows(&t.name, 1..t.rows())?;
        }
    }
    src.object_graph_keys()?;
    Ok(())
}

/// A checkpoint held in memory: numeric tensors as little-endian bytes, string tensors as values, and
/// metadata. It records every row range it serves, so tests can check how a caller streams.
#[derive(Debug, Default)]
pub struct MemorySource {
    path: PathBuf,
    tensors: Vec<TensorInfo>,
    data: Vec<Vec<u8>>,
    strings: Vec<Vec<Vec<u8>>>,
    metadata: Option<BTreeMap<String, String>>,
    reads: Mutex<Vec<(String, Range<u64>)>>,
}

impl MemorySource {
    /// An empty checkpoint whose path is `memory`.
    pub fn new() -> Self {
        MemorySource { path: PathBuf::from("memory"), ..Default::default() }
    }

    /// Adds a numeric tensor with its bytes (which must be as many as its dtype and shape say).
    pub fn with_bytes(mut self, info: TensorInfo, bytes: Vec<u8>) -> Self {
        assert_eq!(info.byte_len(), Some(bytes.len() as u64), "{}: bytes for its dtype and shape", info.name);
        self.tensors.push(info);
        self.data.push(bytes);
        self.strings.push(Vec::new());
        self
    }

    /// Lists a numeric tensor whose data is missing: reading it fails.
    pub fn with_unreadable(mut self, info: TensorInfo) -> Self {
        self.tensors.push(info);
        self.data.push(Vec::new());
        self.strings.push(Vec::new());
        self
    }

    /// Adds a float32 tensor.
    pub fn with_f32(self, name: &str, shape: &[u64], values: &[f32]) -> Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.with_bytes(TensorInfo::new(name, DType::F32, shape.to_vec()), bytes)
    }

    /// Adds a string tensor.
    pub fn with_strings(mut self, name: &str, shape: &[u64], values: Vec<Vec<u8>>) -> Self {
        self.tensors.push(TensorInfo::new(name, DType::String, shape.to_vec()));
        self.data.push(Vec::new());
        self.strings.push(values);
        self
    }

    /// Sets the metadata the checkpoint carries.
    pub fn with_metadata(mut self, metadata: BTreeMap<String, String>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The bytes of numeric tensor `name`.
    pub fn bytes(&self, name: &str) -> &[u8] {
        &self.data[self.index(name).expect("a tensor of this source")]
    }

    /// Every row range served so far, with the tensor's name, in order.
    pub fn reads(&self) -> Vec<(String, Range<u64>)> {
        self.reads.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }
}

impl CheckpointSource for MemorySource {
    /// A memory source stores what safetensors stores: whole numeric tensors, no graph.
    fn format(&self) -> Format {
        Format::Safetensors
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        let info = self.require(name)?;
        let i = self.index(name).unwrap_or_default();
        let wrong = || Error::WrongDType { path: self.path.clone(), name: name.to_string(), dtype: info.dtype };
        let row = info.row_bytes().ok_or_else(wrong)?;
        let out_of_range = || Error::RowsOutOfRange {
            path: self.path.clone(),
            name: name.to_string(),
            start: rows.start,
            end: rows.end,
            rows: info.rows(),
        };
        if rows.start > rows.end || rows.end > info.rows() {
            return Err(out_of_range());
        }
        if let Ok(mut reads) = self.reads.lock() {
            reads.push((name.to_string(), rows.clone()));
        }
        let (start, end) = ((rows.start * row) as usize, (rows.end * row) as usize);
        self.data[i].get(start..end).map(Cow::Borrowed).ok_or_else(out_of_range)
    }

    fn read_strings(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        let info = self.require(name)?;
        if info.dtype != DType::String {
            return Err(Error::WrongDType { path: self.path.clone(), name: name.to_string(), dtype: info.dtype });
        }
        Ok(self.strings[self.index(name).unwrap_or_default()].clone())
    }

    fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_bounded() {
        let (mut a, mut b) = (Rng(42), Rng(42));
        let xs: Vec<usize> = (0..100).map(|_| a.below(7)).collect();
        assert!(xs.iter().all(|&x| x < 7));
        assert_eq!(xs, (0..100).map(|_| b.below(7)).collect::<Vec<_>>());
        assert!((0..7).all(|v| xs.contains(&v)));
        assert_eq!(Rng(1).below(0), 0);
    }

    #[test]
    fn memory_source_serves_rows_strings_and_refusals() {
        let src = MemorySource::new().with_f32("w", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).with_strings(
            "s",
            &[2],
            vec![b"a".to_vec(), b"".to_vec()],
        );
        assert_eq!(&*src.read_rows("w", 1..3).unwrap(), &src.bytes("w")[8..]);
        assert_eq!(src.reads(), [("w".to_string(), 1..3)]);
        assert_eq!(src.read_strings("s").unwrap(), [b"a".to_vec(), vec![]]);
        assert!(matches!(src.read_rows("w", 2..4), Err(Error::RowsOutOfRange { .. })));
        assert!(matches!(src.read_rows("s", 0..1), Err(Error::WrongDType { .. })));
        assert!(matches!(src.read_strings("w"), Err(Error::WrongDType { .. })));
        assert!(matches!(src.read("x"), Err(Error::TensorNotFound { .. })));
    }
}
