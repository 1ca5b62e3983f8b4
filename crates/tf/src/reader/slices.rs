//! Partitioned variables: the slices a full-name entry lists, checked at open (each inside the tensor,
//! its own entry present and matching, no two overlapping), and rows assembled from them at read.

use std::ops::Range;

use warmstart_core::{DType, Slice, TensorInfo};

use super::entries::SliceEntries;
use super::shards::Stored;
use super::TfSource;
use crate::proto::{BundleEntryProto, TensorSliceProto};
use crate::slice_key::{self, Extent};
use crate::TfError;

impl TfSource {
    /// Checks and collects the slices a full-name entry lists.
    pub(super) fn parts(
        &self,
        name: &str,
        entry: &BundleEntryProto,
        dtype: DType,
        shape: &[u64],
        slice_entries: &SliceEntries,
    ) -> Result<Vec<(Slice, Stored)>, TfError> {
        let bad =
            |reason: String| TfError::BadSlice { path: self.index_path.clone(), tensor: name.to_string(), reason };
        let mut parts: Vec<(Slice, Stored)> = Vec::new();
        for (i, proto) in entry.slices.iter().enumerate() {
            let (slice, extents) = slice_of(i, proto, shape).map_err(bad)?;
            let desc = format!("{name} slice {:?}+{:?}", slice.start, slice.len);
            let key = slice_key::encode(name, &extents);
            let value = slice_entries
                .get(&key)
                .ok_or_else(|| bad(format!("the entry of slice {:?}+{:?} is missing", slice.start, slice.len)))?;
            let part = self.decode_entry(&desc, value)?;
            let (part_dtype, part_shape) = self.dtype_and_shape(&desc, &part)?;
            if part_dtype != dtype || part_shape != slice.len {
                return Err(bad(format!(
                    "slice entry {desc} holds {part_dtype} {part_shape:?}, expected {dtype} {:?}",
                    slice.len
                )));
            }
            if let Some((other, _)) = parts.iter().find(|(s, _)| overlaps(s, &slice)) {
                return Err(bad(format!(
                    "slices {:?}+{:?} and {:?}+{:?} overlap",
                    other.start, other.len, slice.start, slice.len
                )));
            }
            let stored = self.stored(&desc, &part, dtype, &part_shape)?;
            parts.push((slice, stored));
        }
        Ok(parts)
    }

    /// Copies rows `rows` of a sliced tensor out of its slices.
    pub(super) fn assemble(
        &self,
        name: &str,
        info: &TensorInfo,
        width: usize,
        parts: &[(Slice, Stored)],
        rows: Range<u64>,
    ) -> warmstart_core::Result<Vec<u8>> {
        let (lo, hi) = row_region(&info.shape, &rows);
        let wanted = volume(&lo, &hi);
        let (pieces, covered) = pieces(parts, &lo, &hi);
        // The slices do not overlap (checked at open), so volumes add up exactly when they cover.
        if wanted == 0 {
            return Ok(Vec::new());
        }
        if covered != wanted {
            return Err(TfError::SlicesDoNotCover {
                path: self.prefix.clone(),
                tensor: name.to_string(),
                start: rows.start,
                end: rows.end,
            }
            .into());
        }
        // Bounded by the slices' data, which lies in the files.
        let out_len = usize::try_from(wanted * width as u128).map_err(|_| self.too_large(name))?;
        let mut out = vec![0u8; out_len];
        let region: Vec<u64> = lo.iter().zip(&hi).map(|(l, h)| h - l).collect();
        let dst_strides = strides(&region);
        for piece in pieces {
            let slice = piece.slice;
            let src = self.verified(&format!("{name} slice {:?}+{:?}", slice.start, slice.len), piece.stored)?;
            copy_piece(&mut out, src, &piece, &lo, &dst_strides, width);
        }
        Ok(out)
    }
}

/// Slice `i` of a tensor of `shape`, as its entry lists it, with the extents its key is made of; or
/// why it is invalid.
fn slice_of(i: usize, proto: &TensorSliceProto, shape: &[u64]) -> Result<(Slice, Vec<Extent>), String> {
    if proto.extent.len() != shape.len() {
        return Err(format!("slice {i} has rank {}, the tensor {}", proto.extent.len(), shape.len()));
    }
    let mut extents = Vec::with_capacity(shape.len());
    let mut slice = Slice { start: Vec::with_capacity(shape.len()), len: Vec::with_capacity(shape.len()) };
    for (d, e) in proto.extent.iter().enumerate() {
        let length = e.has_length.map(|crate::proto::tensor_slice_proto::extent::HasLength::Length(l)| l);
        let (start, len) = match length {
            None if e.start == 0 => (0, shape[d]),
            Some(l) if e.start >= 0 && l >= 0 => (e.start as u64, l as u64),
            _ => return Err(format!("slice {i} has extent start {} length {length:?}", e.start)),
        };
        if start.checked_add(len).is_none_or(|end| end > shape[d]) {
            return Err(format!("slice {i} runs past dimension {d} ({start}+{len} > {})", shape[d]));
        }
        extents.push(Extent { start: e.start, length });
        slice.start.push(start);
        slice.len.push(len);
    }
    Ok((slice, extents))
}

/// Where a slice meets the region asked for: from `lo` to `hi` (one past) in every dimension.
struct Piece<'a> {
    slice: &'a Slice,
    stored: &'a Stored,
    lo: Vec<u64>,
    hi: Vec<u64>,
}

/// Elements in the box from `a` to `b` (one past).
fn volume(a: &[u64], b: &[u64]) -> u128 {
    a.iter().zip(b).map(|(x, y)| u128::from(y - x)).product::<u128>()
}

/// Row-major strides, in elements, of an array of `dims`.
fn strides(dims: &[u64]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for d in (0..dims.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * dims[d + 1] as usize;
    }
    s
}

/// The box of rows `rows` of a tensor of `shape`: its first index and one past its last, in every
/// dimension.
fn row_region(shape: &[u64], rows: &Range<u64>) -> (Vec<u64>, Vec<u64>) {
    let rank = shape.len();
    if rank == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut lo = vec![0; rank];
    let mut hi = shape.to_vec();
    lo[0] = rows.start;
    hi[0] = rows.end;
    (lo, hi)
}

/// The slices of `parts` that meet the box `lo..hi`, each with the box they share, and how many of
/// its elements they cover together.
fn pieces<'a>(parts: &'a [(Slice, Stored)], lo: &[u64], hi: &[u64]) -> (Vec<Piece<'a>>, u128) {
    let rank = lo.len();
    let mut pieces = Vec::new();
    let mut covered: u128 = 0;
    for (slice, stored) in parts {
        let ilo: Vec<u64> = (0..rank).map(|d| lo[d].max(slice.start[d])).collect();
        let ihi: Vec<u64> = (0..rank).map(|d| hi[d].min(slice.start[d] + slice.len[d])).collect();
        if (0..rank).any(|d| ilo[d] >= ihi[d]) {
            continue;
        }
        covered += volume(&ilo, &ihi);
        pieces.push(Piece { slice, stored, lo: ilo, hi: ihi });
    }
    (pieces, covered)
}

/// Copies `piece` out of `src` (its slice's bytes) into `out` (the box from `lo`, row-major with
/// `dst_strides`), a run along the last dimension at a time.
fn copy_piece(out: &mut [u8], src: &[u8], piece: &Piece<'_>, lo: &[u64], dst_strides: &[usize], width: usize) {
    let rank = lo.len();
    if rank == 0 {
        out.copy_from_slice(&src[..width]);
        return;
    }
    let (slice, ilo, ihi) = (piece.slice, &piece.lo, &piece.hi);
    let src_strides = strides(&slice.len);
    let run = (ihi[rank - 1] - ilo[rank - 1]) as usize * width;
    let mut idx = ilo.clone();
    'copy: loop {
        let src_el: usize = (0..rank).map(|d| (idx[d] - slice.start[d]) as usize * src_strides[d]).sum();
        let dst_el: usize = (0..rank).map(|d| (idx[d] - lo[d]) as usize * dst_strides[d]).sum();
        out[dst_el * width..dst_el * width + run].copy_from_slice(&src[src_el * width..src_el * width + run]);
        // Advance an odometer over every dimension but the last.
        let mut d = rank - 1;
        loop {
            if d == 0 {
                break 'copy;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < ihi[d] {
                break;
            }
            idx[d] = ilo[d];
        }
    }
}

/// Whether two slices share an element.
fn overlaps(a: &Slice, b: &Slice) -> bool {
    (0..a.start.len()).all(|d| a.start[d] < b.start[d] + b.len[d] && b.start[d] < a.start[d] + a.len[d])
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use warmstart_core::CheckpointSource;

    #[test]
    fn forged_slices() {
        let key =
            slice_key::encode("emb", &[Extent { start: 100, length: Some(100) }, Extent { start: 0, length: Some(2) }]);
        let e = open_err("tf1_partitioned", "model-0", |x| x.retain(|(k, _)| *k != key));
        assert!(matches!(&e, TfError::BadSlice { tensor, .. } if tensor == "emb"), "{e}");
        assert!(e.to_string().contains("missing"), "{e}");
        let e = open_err("tf1_partitioned", "model-0", |x| {
            edit_entry(x, b"emb", |e| {
                let first = e.slices[0].clone();
                e.slices.push(first);
            })
        });
        assert!(e.to_string().contains("overlap"), "{e}");
        let e = open_err("tf1_partitioned", "model-0", |x| {
            edit_entry(x, b"emb", |e| e.shape.as_mut().unwrap().dim[0].size = 250)
        });
        assert!(e.to_string().contains("runs past"), "{e}");
        let e = open_err("tf1_partitioned", "model-0", |x| {
            edit_entry(x, b"emb", |e| {
                e.slices[0].extent.pop();
            })
        });
        assert!(matches!(&e, TfError::BadSlice { .. }), "{e}");
        // Dropping a slice from the list leaves rows uncovered: reads there fail, others work.
        let (_dir, p) = edited("tf1_partitioned", "model-0", |x| {
            edit_entry(x, b"emb", |e| {
                e.slices.remove(1);
            })
        });
        let ckpt = TfSource::open(&p).unwrap();
        assert!(ckpt.read_rows("emb", 0..100).is_ok());
        assert!(ckpt.read_rows("emb", 250..300).is_ok());
        let e = ckpt.read_rows("emb", 99..101).unwrap_err();
        assert!(matches!(e.tf(), Some(TfError::SlicesDoNotCover { start: 99, end: 101, .. })), "{e}");
    }
}
