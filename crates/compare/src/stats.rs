//! [`stats`]: per numeric tensor, the min, max, mean and standard deviation (population, numpy's
//! default `ddof=0`) of its finite elements, computed in `f64`, and the counts of NaN, infinite and
//! zero elements. Streams each tensor in row blocks; tensors, and a block's chunks, in parallel
//! (chunks merged with Chan et al.'s pairwise update of the mean and the sum of squared deviations).

use rayon::prelude::*;
use serde::Serialize;
use warmstart_core::copy::{row_blocks, DEFAULT_BLOCK_BYTES};
use warmstart_core::{CheckpointSource, Result, TensorInfo};

use crate::decode::{decodes, to_f64};

/// Elements summarised per parallel task.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// The statistics of one tensor.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TensorStats {
    /// Elements.
    pub elements: u64,
    /// The smallest finite element (`None` if there is none).
    pub min: Option<f64>,
    /// The largest finite element.
    pub max: Option<f64>,
    /// The mean of the finite elements.
    pub mean: Option<f64>,
    /// Their standard deviation (population: divided by their count).
    pub std: Option<f64>,
    /// NaN elements.
    pub nan: u64,
    /// Infinite elements (either sign).
    pub inf: u64,
    /// Zero elements (either sign).
    pub zeros: u64,
}

/// The running summary: count, mean and sum of squared deviations of the finite elements.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    nan: u64,
    inf: u64,
    zeros: u64,
    elements: u64,
}

impl Acc {
    fn merge(self, o: Acc) -> Acc {
        if o.n == 0 || self.n == 0 {
            let (finite, other) = if o.n == 0 { (self, o) } else { (o, self) };
            return Acc {
                nan: finite.nan + other.nan,
                inf: finite.inf + other.inf,
                zeros: finite.zeros + other.zeros,
                elements: finite.elements + other.elements,
                ..finite
            };
        }
        let n = self.n + o.n;
        let delta = o.mean - self.mean;
        let mean = self.mean + delta * (o.n as f64 / n as f64);
        let m2 = self.m2 + o.m2 + delta * delta * (self.n as f64 * o.n as f64 / n as f64);
        Acc {
            n,
            mean,
            m2,
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            nan: self.nan + o.nan,
            inf: self.inf + o.inf,
            zeros: self.zeros + o.zeros,
            elements: self.elements + o.elements,
        }
    }

    fn of(dtype: warmstart_core::DType, bytes: &[u8], range: std::ops::Range<usize>) -> Acc {
        let mut acc = Acc { min: f64::INFINITY, max: f64::NEG_INFINITY, ..Acc::default() };
        for i in range {
            acc.elements += 1;
            let x = to_f64(dtype, bytes, i);
            if x.is_nan() {
                acc.nan += 1;
                continue;
            }
            if x.is_infinite() {
                acc.inf += 1;
                continue;
            }
            if x == 0.0 {
                acc.zeros += 1;
            }
            acc.n += 1;
            let delta = x - acc.mean;
            acc.mean += delta / acc.n as f64;
            acc.m2 += delta * (x - acc.mean);
            acc.min = acc.min.min(x);
            acc.max = acc.max.max(x);
        }
        acc
    }
}

/// The statistics of the numeric tensor `t` of `src`, or `None` for dtypes that are not numbers here
/// (strings, complex, 8-bit floats).
pub fn stats(src: &dyn CheckpointSource, t: &TensorInfo) -> Result<Option<TensorStats>> {
    if !decodes(t.dtype) {
        return Ok(None);
    }
    let es = t.dtype.size().unwrap_or(1);
    let mut acc = Acc::default();
    for rows in row_blocks(src.path(), t, DEFAULT_BLOCK_BYTES)? {
        let bytes = src.read_rows(&t.name, rows.clone())?;
        let n = bytes.len() / es;
        let chunks: Vec<_> = (0..n).step_by(CHUNK_ELEMENTS).map(|s| s..(s + CHUNK_ELEMENTS).min(n)).collect();
        // Merged in order, so that the result does not depend on the number of threads.
        let parts: Vec<Acc> = chunks.into_par_iter().map(|r| Acc::of(t.dtype, &bytes, r)).collect();
        acc = parts.into_iter().fold(acc, Acc::merge);
        drop(bytes);
        src.release(&t.name, rows);
    }
    let finite = acc.n > 0;
    Ok(Some(TensorStats {
        elements: acc.elements,
        min: finite.then_some(acc.min),
        max: finite.then_some(acc.max),
        mean: finite.then_some(acc.mean),
        std: finite.then(|| (acc.m2 / acc.n as f64).sqrt()),
        nan: acc.nan,
        inf: acc.inf,
        zeros: acc.zeros,
    }))
}

/// [`stats`] of several tensors of `src`, in parallel, in the order given.
pub fn stats_of(src: &dyn CheckpointSource, tensors: &[&TensorInfo]) -> Result<Vec<Option<TensorStats>>> {
    tensors.par_iter().map(|t| stats(src, t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warmstart_core::test_support::MemorySource;
    use warmstart_core::DType;

    #[test]
    fn summarises_finite_elements_and_counts_the_rest() {
        let v = [1.0f32, 2.0, f32::NAN, f32::INFINITY, 0.0, -0.0, 3.0];
        let t = TensorInfo::new("w", DType::F32, vec![7]);
        let src = MemorySource::new().with_bytes(t.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect());
        let s = stats(&src, &t).unwrap().unwrap();
        assert_eq!((s.elements, s.nan, s.inf, s.zeros), (7, 1, 1, 2));
        assert_eq!((s.min, s.max, s.mean), (Some(-0.0), Some(3.0), Some(1.2)));
        assert!((s.std.unwrap() - 1.16619037896906).abs() < 1e-12);
        let strings = TensorInfo::new("s", DType::String, vec![1]);
        assert_eq!(stats(&MemorySource::new().with_strings("s", &[1], vec![vec![]]), &strings).unwrap(), None);
    }
}
