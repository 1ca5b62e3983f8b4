//! [`diff`]: two checkpoints compared tensor by tensor: the tensors only in one, dtype and shape
//! changes, and for tensors of one shape the elements that differ beyond `numpy.isclose`'s tolerance
//! (`|a - b| <= atol + rtol * |b|`; infinities close only to themselves; NaN at the same place counts
//! as equal), with the largest absolute and relative differences and the first differing index.
//!
//! Tensors are compared in parallel, each streamed in row blocks from both sources (a block whose
//! bytes are identical is equal without decoding it), and a block's elements in parallel chunks.

use std::ops::Range;

use rayon::prelude::*;
use serde::Serialize;
use warmstart_core::copy::{row_blocks, DEFAULT_BLOCK_BYTES};
use warmstart_core::{CheckpointSource, DType, Result, TensorInfo};

use crate::decode::{decodes, is_int, to_f64, to_i128};

/// Elements compared per parallel task.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// The tolerance, and how much to read at a time.
#[derive(Debug, Clone, Copy)]
pub struct DiffOptions {
    /// Relative tolerance (numpy.isclose's `rtol`); 0 by default.
    pub rtol: f64,
    /// Absolute tolerance (numpy.isclose's `atol`); 0 by default.
    pub atol: f64,
    /// Bytes of rows read at a time from each source, per tensor.
    pub block_bytes: u64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions { rtol: 0.0, atol: 0.0, block_bytes: DEFAULT_BLOCK_BYTES }
    }
}

/// What [`diff`] found.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// Tensors only in A, in A's order.
    pub only_in_a: Vec<String>,
    /// Tensors only in B, in B's order.
    pub only_in_b: Vec<String>,
    /// The tensors in both, in A's order.
    pub tensors: Vec<TensorDiff>,
}

impl DiffReport {
    /// Whether the checkpoints hold the same tensors, equal within the tolerance.
    pub fn equal(&self) -> bool {
        self.only_in_a.is_empty() && self.only_in_b.is_empty() && self.tensors.iter().all(TensorDiff::equal)
    }
}

/// One tensor in both checkpoints.
#[derive(Debug, Clone, Serialize)]
pub struct TensorDiff {
    /// Its name.
    pub name: String,
    /// Its dtype in A.
    pub dtype_a: &'static str,
    /// Its dtype in B.
    pub dtype_b: &'static str,
    /// Its shape in A.
    pub shape_a: Vec<u64>,
    /// Its shape in B.
    pub shape_b: Vec<u64>,
    /// How the elements compare, or `None` if the shapes differ or the dtypes cannot be compared.
    pub values: Option<ValueDiff>,
}

impl TensorDiff {
    /// Same dtype, same shape, every element close.
    pub fn equal(&self) -> bool {
        self.dtype_a == self.dtype_b
            && self.shape_a == self.shape_b
            && self.values.as_ref().is_some_and(|v| v.differing == 0)
    }
}

/// How the elements of one tensor compare.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ValueDiff {
    /// Elements compared.
    pub elements: u64,
    /// Elements not close.
    pub differing: u64,
    /// The largest `|a - b|` (over elements neither of which is NaN), or `None` for dtypes compared
    /// only byte for byte (8-bit floats, complex, strings) or no such element.
    #[serde(serialize_with = "float_or_name")]
    pub max_abs: Option<f64>,
    /// The largest `|a - b| / |b|` (infinite where `b` is 0 and `a` is not), likewise.
    #[serde(serialize_with = "float_or_name")]
    pub max_rel: Option<f64>,
    /// The index (per dimension) of the first element not close.
    pub first_differing: Option<Vec<u64>>,
}

/// A float as a JSON number, or `"inf"` / `"nan"`, which JSON cannot hold.
fn float_or_name<S: serde::Serializer>(v: &Option<f64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.is_finite() => s.serialize_f64(*x),
        Some(x) if x.is_nan() => s.serialize_str("nan"),
        Some(_) => s.serialize_str("inf"),
        None => s.serialize_none(),
    }
}

/// Compares `a` with `b` (see the module docs).
pub fn diff(a: &dyn CheckpointSource, b: &dyn CheckpointSource, opts: &DiffOptions) -> Result<DiffReport> {
    let only_in_a = a.tensors().iter().filter(|t| b.tensor(&t.name).is_none()).map(|t| t.name.clone()).collect();
    let only_in_b = b.tensors().iter().filter(|t| a.tensor(&t.name).is_none()).map(|t| t.name.clone()).collect();
    let common: Vec<(&TensorInfo, &TensorInfo)> =
        a.tensors().iter().filter_map(|ta| b.tensor(&ta.name).map(|tb| (ta, tb))).collect();
    let tensors = common.par_iter().map(|(ta, tb)| diff_tensor(a, ta, b, tb, opts)).collect::<Result<Vec<_>>>()?;
    Ok(DiffReport { only_in_a, only_in_b, tensors })
}

fn diff_tensor(
    a: &dyn CheckpointSource,
    ta: &TensorInfo,
    b: &dyn CheckpointSource,
    tb: &TensorInfo,
    opts: &DiffOptions,
) -> Result<TensorDiff> {
    let mut d = TensorDiff {
        name: ta.name.clone(),
        dtype_a: ta.dtype.name(),
        dtype_b: tb.dtype.name(),
        shape_a: ta.shape.clone(),
        shape_b: tb.shape.clone(),
        values: None,
    };
    if ta.shape != tb.shape {
        return Ok(d);
    }
    d.values = if ta.dtype == DType::String && tb.dtype == DType::String {
        Some(diff_strings(a, b, ta)?)
    } else if ta.dtype == tb.dtype || (decodes(ta.dtype) && decodes(tb.dtype)) {
        Some(diff_numbers(a, ta, b, tb, opts)?)
    } else {
        None
    };
    Ok(d)
}

fn diff_strings(a: &dyn CheckpointSource, b: &dyn CheckpointSource, t: &TensorInfo) -> Result<ValueDiff> {
    let (va, vb) = (a.read_strings(&t.name)?, b.read_strings(&t.name)?);
    let mut v = ValueDiff { elements: va.len() as u64, ..Default::default() };
    for (i, (x, y)) in va.iter().zip(&vb).enumerate() {
        if x != y {
            v.differing += 1;
            v.first_differing.get_or_insert_with(|| index_of(i as u64, &t.shape));
        }
    }
    Ok(v)
}

/// The running comparison of a tensor's elements.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    differing: u64,
    max_abs: Option<f64>,
    max_rel: Option<f64>,
    first: Option<u64>,
}

impl Acc {
    fn merge(mut self, o: Acc) -> Acc {
        self.differing += o.differing;
        self.max_abs = max_of(self.max_abs, o.max_abs);
        self.max_rel = max_of(self.max_rel, o.max_rel);
        self.first = match (self.first, o.first) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        self
    }
}

fn max_of(x: Option<f64>, y: Option<f64>) -> Option<f64> {
    match (x, y) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn diff_numbers(
    a: &dyn CheckpointSource,
    ta: &TensorInfo,
    b: &dyn CheckpointSource,
    tb: &TensorInfo,
    opts: &DiffOptions,
) -> Result<ValueDiff> {
    // Blocks of rows sized by the wider of the two dtypes.
    let wider = if ta.dtype.size() >= tb.dtype.size() { ta } else { tb };
    let (ea, eb) = (ta.dtype.size().unwrap_or(1), tb.dtype.size().unwrap_or(1));
    let numeric = decodes(ta.dtype) && decodes(tb.dtype);
    let mut acc = Acc { max_abs: numeric.then_some(0.0), max_rel: numeric.then_some(0.0), ..Acc::default() };
    let mut elements = 0u64;
    for rows in row_blocks(a.path(), wider, opts.block_bytes)? {
        let (xa, xb) = (a.read_rows(&ta.name, rows.clone())?, b.read_rows(&tb.name, rows.clone())?);
        let n = (xa.len() / ea).min(xb.len() / eb);
        if ta.dtype != tb.dtype || xa[..] != xb[..] {
            let block = compare_block(ta.dtype, &xa, tb.dtype, &xb, n, opts);
            acc = acc.merge(Acc { first: block.first.map(|i| i + elements), ..block });
        }
        elements += n as u64;
        drop((xa, xb));
        release(a, &ta.name, b, &tb.name, rows);
    }
    let first_differing = acc.first.map(|i| index_of(i, &ta.shape));
    Ok(ValueDiff { elements, differing: acc.differing, max_abs: acc.max_abs, max_rel: acc.max_rel, first_differing })
}

fn release(a: &dyn CheckpointSource, na: &str, b: &dyn CheckpointSource, nb: &str, rows: Range<u64>) {
    a.release(na, rows.clone());
    b.release(nb, rows);
}

/// The comparison of the first `n` elements of two blocks, chunks of them in parallel.
fn compare_block(da: DType, a: &[u8], db: DType, b: &[u8], n: usize, opts: &DiffOptions) -> Acc {
    let chunks: Vec<Range<usize>> = (0..n).step_by(CHUNK_ELEMENTS).map(|s| s..(s + CHUNK_ELEMENTS).min(n)).collect();
    chunks.into_par_iter().map(|r| compare_range(da, a, db, b, r, opts)).reduce(Acc::default, Acc::merge)
}

fn compare_range(da: DType, a: &[u8], db: DType, b: &[u8], range: Range<usize>, opts: &DiffOptions) -> Acc {
    let mut acc = Acc::default();
    let numeric = decodes(da) && decodes(db);
    let (ea, eb) = (da.size().unwrap_or(1), db.size().unwrap_or(1));
    for i in range {
        let (close, abs, rel) = if !numeric {
            (a[i * ea..(i + 1) * ea] == b[i * eb..(i + 1) * eb], None, None)
        } else if is_int(da) && is_int(db) {
            let (x, y) = (to_i128(da, a, i), to_i128(db, b, i));
            let d = x.abs_diff(y) as f64;
            let by = y.unsigned_abs() as f64;
            let rel = if d == 0.0 { 0.0 } else { d / by };
            (d <= opts.atol + opts.rtol * by, Some(d), Some(rel))
        } else {
            compare_floats(to_f64(da, a, i), to_f64(db, b, i), opts)
        };
        if !close {
            acc.differing += 1;
            acc.first.get_or_insert(i as u64);
        }
        acc.max_abs = max_of(acc.max_abs, abs);
        acc.max_rel = max_of(acc.max_rel, rel);
    }
    acc
}

/// numpy.isclose(x, y, rtol, atol, equal_nan=True), and the differences (`None` where either is NaN).
fn compare_floats(x: f64, y: f64, opts: &DiffOptions) -> (bool, Option<f64>, Option<f64>) {
    if x.is_nan() || y.is_nan() {
        return (x.is_nan() && y.is_nan(), None, None);
    }
    if x == y {
        return (true, Some(0.0), Some(0.0));
    }
    if x.is_infinite() || y.is_infinite() {
        return (false, Some(f64::INFINITY), Some(f64::INFINITY));
    }
    let d = (x - y).abs();
    (d <= opts.atol + opts.rtol * y.abs(), Some(d), Some(d / y.abs()))
}

/// Flat element index `i` as an index per dimension of `shape`.
fn index_of(mut i: u64, shape: &[u64]) -> Vec<u64> {
    let mut index = vec![0; shape.len()];
    for (k, &dim) in shape.iter().enumerate().rev() {
        if dim > 0 {
            index[k] = i % dim;
            i /= dim;
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use warmstart_core::test_support::MemorySource;

    fn f32s(name: &str, shape: &[u64], v: &[f32]) -> (TensorInfo, Vec<u8>) {
        (TensorInfo::new(name, DType::F32, shape.to_vec()), v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    #[test]
    fn finds_what_differs() {
        let (t, x) = f32s("w", &[2, 2], &[1.0, f32::NAN, 3.0, 4.0]);
        let (_, y) = f32s("w", &[2, 2], &[1.0, f32::NAN, 3.5, 4.0]);
        let a = MemorySource::new()
            .with_bytes(t.clone(), x)
            .with_bytes(TensorInfo::new("a", DType::F32, vec![]), vec![0; 4]);
        let b = MemorySource::new().with_bytes(t, y).with_bytes(TensorInfo::new("b", DType::F32, vec![]), vec![0; 4]);
        let r = diff(&a, &b, &DiffOptions { block_bytes: 8, ..Default::default() }).unwrap();
        assert_eq!((r.only_in_a.as_slice(), r.only_in_b.as_slice()), (&["a".to_string()][..], &["b".to_string()][..]));
        let v = r.tensors[0].values.clone().unwrap();
        assert_eq!((v.elements, v.differing, v.max_abs, v.first_differing), (4, 1, Some(0.5), Some(vec![1, 0])));
        assert!(!r.equal());
        let loose = diff(&a, &b, &DiffOptions { atol: 0.5, ..Default::default() }).unwrap();
        assert_eq!(loose.tensors[0].values.as_ref().unwrap().differing, 0);
    }

    #[test]
    fn index_per_dimension() {
        assert_eq!(index_of(7, &[2, 3, 2]), [1, 0, 1]);
        assert_eq!(index_of(0, &[]), Vec::<u64>::new());
    }

    #[test]
    fn blocks_and_chunks_do_not_change_the_answer() {
        let n = 300_000u64;
        let t = TensorInfo::new("w", DType::F32, vec![n / 100, 100]);
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut y = x.clone();
        for (i, delta) in [(250_123usize, 2.0f32), (70_001, 0.5), (299_999, -1.0)] {
            y[i] += delta;
        }
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let a = MemorySource::new().with_bytes(t.clone(), bytes(&x));
        let b = MemorySource::new().with_bytes(t, bytes(&y));
        for block_bytes in [DEFAULT_BLOCK_BYTES, 4000, 400] {
            let r = diff(&a, &b, &DiffOptions { block_bytes, ..Default::default() }).unwrap();
            let v = r.tensors[0].values.clone().unwrap();
            assert_eq!((v.elements, v.differing, v.max_abs), (n, 3, Some(2.0)), "blocks of {block_bytes}");
            assert_eq!(v.first_differing, Some(vec![700, 1]), "blocks of {block_bytes}");
        }
    }
}
