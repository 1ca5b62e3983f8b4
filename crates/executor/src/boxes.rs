//! Row-major box arithmetic: extracting the part of a block of full rows that a partition covers, and
//! overwriting a partition's box in one block with another's.

use std::ops::Range;

/// Whether a slice covers every dimension but the first in full.
pub(crate) fn inner_is_full(shape: &[u64], start: &[u64], len: &[u64]) -> bool {
    shape.len() <= 1 || (start[1..].iter().all(|&s| s == 0) && len[1..] == shape[1..])
}

/// Appends to `out` the box `start[1..]`, `len[1..]` of each of `rows` full rows in `block` (full shape
/// `shape`, elements of `elem` bytes).
pub(crate) fn extract_box(
    block: &[u8],
    shape: &[u64],
    rows: u64,
    start: &[u64],
    len: &[u64],
    elem: usize,
    out: &mut Vec<u8>,
) {
    let inner = &shape[1..];
    let row_elems: usize = inner.iter().product::<u64>() as usize;
    for r in 0..rows as usize {
        let row = &block[r * row_elems * elem..(r + 1) * row_elems * elem];
        walk(inner, &start[1..], &len[1..], elem, &mut |offset, n| out.extend_from_slice(&row[offset..offset + n]));
    }
}

/// Copies the box of the partition (`start`, `len` in the full shape) from `src` to `dst`, both holding
/// full rows `rows` of the variable.
pub(crate) fn copy_box(
    src: &[u8],
    dst: &mut [u8],
    shape: &[u64],
    rows: Range<u64>,
    start: &[u64],
    len: &[u64],
    elem: usize,
) {
    let (first, count) = match (start.first(), len.first()) {
        (Some(&s), Some(&l)) => (s, l),
        _ => (0, 1),
    };
    let lo = rows.start.max(first);
    let hi = rows.end.min(first + count);
    let inner = shape.get(1..).unwrap_or(&[]);
    let row_bytes = inner.iter().product::<u64>() as usize * elem;
    for r in lo..hi {
        let at = (r - rows.start) as usize * row_bytes;
        let (s_row, d_row) = (&src[at..at + row_bytes], &mut dst[at..at + row_bytes]);
        walk(inner, start.get(1..).unwrap_or(&[]), len.get(1..).unwrap_or(&[]), elem, &mut |o, n| {
            d_row[o..o + n].copy_from_slice(&s_row[o..o + n])
        });
    }
}

/// Calls `f(byte_offset, byte_len)` for each contiguous run of the box `start`, `len` within one
/// row-major array of shape `shape`.
fn walk(shape: &[u64], start: &[u64], len: &[u64], elem: usize, f: &mut dyn FnMut(usize, usize)) {
    if shape.is_empty() {
        f(0, elem);
        return;
    }
    let stride: usize = shape[1..].iter().product::<u64>() as usize * elem;
    if shape.len() == 1 {
        f(start[0] as usize * elem, len[0] as usize * elem);
        return;
    }
    for i in start[0]..start[0] + len[0] {
        let base = i as usize * stride;
        walk(&shape[1..], &start[1..], &len[1..], elem, &mut |o, n| f(base + o, n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_columns() {
        // 2 rows of 3 one-byte elements; take columns 1..3.
        let block = [0u8, 1, 2, 10, 11, 12];
        let mut out = Vec::new();
        extract_box(&block, &[2, 3], 2, &[0, 1], &[2, 2], 1, &mut out);
        assert_eq!(out, [1, 2, 11, 12]);
        assert!(inner_is_full(&[2, 3], &[1, 0], &[1, 3]));
        assert!(!inner_is_full(&[2, 3], &[0, 1], &[2, 2]));
    }

    #[test]
    fn copies_a_box() {
        let src = [1u8; 6];
        let mut dst = [0u8; 6];
        copy_box(&src, &mut dst, &[2, 3], 0..2, &[1, 0], &[1, 3], 1);
        assert_eq!(dst, [0, 0, 0, 1, 1, 1]);
    }
}
