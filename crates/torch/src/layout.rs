//! A tensor as a view of its storage (an element offset, a shape and strides, as
//! `_rebuild_tensor_v2` takes them), and reading its rows row-major and little-endian: borrowed from
//! the storage when the view is contiguous and the file little-endian, else gathered element by
//! element (views of a larger tensor, transposes, broadcasts, big-endian files) into a new buffer.

use std::ops::Range;

/// A view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct View {
    /// Bytes per element.
    pub(crate) elem: usize,
    /// The first element, in elements from the storage's start.
    pub(crate) offset: u64,
    /// The shape.
    pub(crate) shape: Vec<u64>,
    /// The strides, in elements.
    pub(crate) strides: Vec<u64>,
    /// Whether the storage is big-endian (each element's bytes are reversed on read).
    pub(crate) swap: bool,
}

impl View {
    /// One past the last element the view reaches (0 if it has no elements), or `None` on overflow.
    pub(crate) fn extent(&self) -> Option<u64> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        let mut last = self.offset;
        for (&size, &stride) in self.shape.iter().zip(&self.strides) {
            last = last.checked_add((size - 1).checked_mul(stride)?)?;
        }
        last.checked_add(1)
    }

    /// Whether the elements lie row-major and back to back from the offset.
    fn contiguous(&self) -> bool {
        let mut expected = 1u64;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size == 0 {
                return true;
            }
            if size != 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(size);
        }
        true
    }

    /// Elements per row (all dimensions but the first).
    fn row_elems(&self) -> u64 {
        self.shape.iter().skip(1).product()
    }

    /// The byte range of the storage holding rows `rows`, if they can be borrowed as they are.
    pub(crate) fn in_place(&self, rows: Range<u64>) -> Option<Range<usize>> {
        if !self.contiguous() || (self.swap && self.elem > 1) {
            return None;
        }
        let byte = |row: u64| {
            row.checked_mul(self.row_elems())?
                .checked_add(self.offset)?
                .checked_mul(self.elem as u64)
                .and_then(|b| usize::try_from(b).ok())
        };
        Some(byte(rows.start)?..byte(rows.end)?)
    }

    /// Rows `rows` gathered from `storage`, row-major and little-endian; `None` if an element lies
    /// outside `storage` (which the extent check at open rules out). Runs of elements that lie back
    /// to back (an innermost stride of 1, little-endian) are copied whole.
    pub(crate) fn gather(&self, storage: &[u8], rows: Range<u64>) -> Option<Vec<u8>> {
        let inner = self.shape.get(1..).unwrap_or(&[]);
        let inner_strides = self.strides.get(1..).unwrap_or(&[]);
        let (outer, outer_strides, run) = match (inner.split_last(), inner_strides.split_last()) {
            (Some((&run, outer)), Some((&1, outer_strides))) if !self.swap => (outer, outer_strides, run),
            _ => (inner, inner_strides, 1),
        };
        let row_stride = self.strides.first().copied().unwrap_or(0);
        let count = (rows.end - rows.start).checked_mul(self.row_elems())?;
        let mut out = Vec::with_capacity(usize::try_from(count.checked_mul(self.elem as u64)?).ok()?);
        if inner.contains(&0) {
            return Some(out);
        }
        let mut index = vec![0u64; outer.len()];
        for row in rows {
            let base = self.offset.checked_add(row.checked_mul(row_stride)?)?;
            index.iter_mut().for_each(|i| *i = 0);
            loop {
                let at = index.iter().zip(outer_strides).try_fold(base, |acc, (&i, &s)| acc.checked_add(i * s))?;
                self.push_run(storage, at, run, &mut out)?;
                if !advance(&mut index, outer) {
                    break;
                }
            }
        }
        Some(out)
    }

    /// Appends the `run` elements from element `at` on, each byte-swapped if the storage is big-endian.
    fn push_run(&self, storage: &[u8], at: u64, run: u64, out: &mut Vec<u8>) -> Option<()> {
        let start = usize::try_from(at).ok()?.checked_mul(self.elem)?;
        let len = usize::try_from(run).ok()?.checked_mul(self.elem)?;
        let bytes = storage.get(start..start.checked_add(len)?)?;
        if self.swap {
            bytes.chunks_exact(self.elem).for_each(|e| out.extend(e.iter().rev()));
        } else {
            out.extend_from_slice(bytes);
        }
        Some(())
    }
}

/// Steps the row-major multi-index `index` within `shape`; `false` once it wraps around.
fn advance(index: &mut [u64], shape: &[u64]) -> bool {
    for (i, &size) in index.iter_mut().zip(shape).rev() {
        *i += 1;
        if *i < size {
            return true;
        }
        *i = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(offset: u64, shape: &[u64], strides: &[u64]) -> View {
        View { elem: 1, offset, shape: shape.to_vec(), strides: strides.to_vec(), swap: false }
    }

    /// The storage 0, 1, ..., 11 (one byte per element): a [3, 4] matrix.
    const STORAGE: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

    #[test]
    fn contiguous_views_are_borrowed() {
        let v = view(4, &[2, 4], &[4, 1]);
        assert_eq!(v.extent(), Some(12));
        assert_eq!(v.in_place(0..2), Some(4..12));
        assert_eq!(v.in_place(1..2), Some(8..12));
        // A scalar, and dimensions of size 1 with any stride.
        assert_eq!(view(5, &[], &[]).in_place(0..1), Some(5..6));
        assert_eq!(view(0, &[1, 3], &[99, 1]).in_place(0..1), Some(0..3));
    }

    #[test]
    fn transposes_slices_and_broadcasts_are_gathered() {
        let t = view(0, &[4, 3], &[1, 4]);
        assert_eq!(t.in_place(0..4), None);
        assert_eq!(t.gather(&STORAGE, 0..4).unwrap(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
        assert_eq!(t.gather(&STORAGE, 2..3).unwrap(), [2, 6, 10]);
        let every_other = view(1, &[3, 2], &[4, 2]);
        assert_eq!(every_other.gather(&STORAGE, 0..3).unwrap(), [1, 3, 5, 7, 9, 11]);
        let broadcast = view(4, &[3, 2], &[0, 1]);
        assert_eq!(broadcast.extent(), Some(6));
        assert_eq!(broadcast.gather(&STORAGE, 0..3).unwrap(), [4, 5, 4, 5, 4, 5]);
        assert_eq!(view(0, &[2, 0], &[0, 1]).gather(&STORAGE, 0..2).unwrap(), [] as [u8; 0]);
        assert_eq!(view(0, &[2, 0], &[0, 1]).extent(), Some(0));
    }

    #[test]
    fn big_endian_elements_are_swapped() {
        let v = View { elem: 2, offset: 0, shape: vec![3], strides: vec![1], swap: true };
        assert_eq!(v.in_place(0..3), None);
        assert_eq!(v.gather(&[0, 1, 0, 2, 1, 0], 0..3).unwrap(), [1, 0, 2, 0, 0, 1]);
    }

    #[test]
    fn overflowing_or_outside_views_are_none() {
        assert_eq!(view(0, &[2, u64::MAX], &[1, u64::MAX]).extent(), None);
        assert_eq!(view(20, &[1], &[1]).gather(&STORAGE, 0..1), None);
    }
}
