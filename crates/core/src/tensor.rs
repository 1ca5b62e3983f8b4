//! Tensor metadata: a name, a dtype and a shape, with overflow-checked size arithmetic, and the
//! rectangular [`Slice`] of a tensor that a partition covers.

use crate::DType;

/// A tensor as a reader presents it: its logical (full) name, dtype and full shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorInfo {
    /// The tensor's name in the checkpoint (for a partitioned TF variable, its full name).
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// The dimensions, outermost first; empty for a scalar.
    pub shape: Vec<u64>,
}

impl TensorInfo {
    /// A new tensor description.
    pub fn new(name: impl Into<String>, dtype: DType, shape: Vec<u64>) -> Self {
        TensorInfo { name: name.into(), dtype, shape }
    }

    /// The number of elements, or `None` if it overflows `u64`.
    pub fn num_elements(&self) -> Option<u64> {
        num_elements(&self.shape)
    }

    /// The number of bytes of the whole tensor, or `None` for strings or on overflow.
    pub fn byte_len(&self) -> Option<u64> {
        self.num_elements()?.checked_mul(self.dtype.size()? as u64)
    }

    /// How many rows the tensor has: its first dimension, or 1 for a scalar.
    pub fn rows(&self) -> u64 {
        self.shape.first().copied().unwrap_or(1)
    }

    /// The number of bytes of one row (all dimensions but the first), or `None` for strings or on
    /// overflow.
    pub fn row_bytes(&self) -> Option<u64> {
        let inner = num_elements(self.shape.get(1..).unwrap_or(&[]))?;
        inner.checked_mul(self.dtype.size()? as u64)
    }
}

/// The product of `shape`, or `None` on overflow (1 for a scalar).
pub fn num_elements(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// A rectangular part of a tensor: per dimension, a start and a length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slice {
    /// The start of the slice in each dimension.
    pub start: Vec<u64>,
    /// The length of the slice in each dimension.
    pub len: Vec<u64>,
}

impl Slice {
    /// The slice that covers all of `shape`.
    pub fn full(shape: &[u64]) -> Self {
        Slice { start: vec![0; shape.len()], len: shape.to_vec() }
    }

    /// Whether the slice covers the whole of `shape`.
    pub fn is_full(&self, shape: &[u64]) -> bool {
        self.start.iter().all(|&s| s == 0) && self.len == shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rows() {
        let t = TensorInfo::new("w", DType::F32, vec![4, 3]);
        assert_eq!(t.num_elements(), Some(12));
        assert_eq!(t.byte_len(), Some(48));
        assert_eq!(t.rows(), 4);
        assert_eq!(t.row_bytes(), Some(12));
        let s = TensorInfo::new("s", DType::F64, vec![]);
        assert_eq!((s.rows(), s.row_bytes(), s.byte_len()), (1, Some(8), Some(8)));
    }

    #[test]
    fn overflow_is_none() {
        let t = TensorInfo::new("big", DType::F32, vec![u64::MAX, 2]);
        assert_eq!(t.num_elements(), None);
        assert_eq!(t.byte_len(), None);
        let t = TensorInfo::new("big", DType::F64, vec![u64::MAX / 4]);
        assert_eq!(t.byte_len(), None);
    }

    #[test]
    fn strings_have_no_byte_len() {
        let t = TensorInfo::new("s", DType::String, vec![3]);
        assert_eq!(t.byte_len(), None);
    }

    #[test]
    fn full_slice() {
        let s = Slice::full(&[4, 1]);
        assert!(s.is_full(&[4, 1]));
        assert!(!Slice { start: vec![2, 0], len: vec![2, 1] }.is_full(&[4, 1]));
    }
}
