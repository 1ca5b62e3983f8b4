//! `[[transpose]]`'s kernels: the rows of a transposed tensor, computed from the source's rows one
//! block at a time, so a tensor larger than memory is transposed with memory bounded by the blocks.
//!
//! Output axis `i` is source axis `perm[i]` (as `np.transpose(x, perm)`). When `perm[0] == 0` output
//! row `r` is source row `r`, permuted within. Otherwise output rows `a..b` are the slab
//! `a <= index[perm[0]] < b` of every source row: [`scatter_block`] copies the part of one block of
//! source rows that lies in the slab to where it goes. The 2-D case (`perm = [1, 0]`) is done in
//! cache-sized tiles, segments of source rows split across threads.

use rayon::prelude::*;

/// Output rows (source columns) of a tile of the 2-D kernel: with `SEGMENT` source rows, 64 x 256
/// elements of 2 bytes are 32 KiB.
const TILE: usize = 64;

/// Source rows of one task of the 2-D kernel.
const SEGMENT: usize = 256;

/// A transpose of a tensor of shape `shape` (source) by `perm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transpose {
    /// The source shape.
    pub shape: Vec<u64>,
    /// Output axis `i` is source axis `perm[i]`.
    pub perm: Vec<usize>,
}

impl Transpose {
    /// The output shape.
    pub fn out_shape(&self) -> Vec<u64> {
        self.perm.iter().map(|&p| self.shape[p]).collect()
    }

    /// Whether output rows are source rows (permuted within): `perm[0] == 0`, or a scalar.
    pub fn keeps_rows(&self) -> bool {
        self.perm.first().is_none_or(|&p| p == 0)
    }

    /// Strides (in elements) of the output, per *source* axis.
    fn out_strides_by_source_axis(&self) -> Vec<usize> {
        let out = self.out_shape();
        let mut strides = vec![0usize; out.len()];
        let mut acc = 1usize;
        for i in (0..out.len()).rev() {
            strides[self.perm[i]] = acc;
            acc *= out[i] as usize;
        }
        strides
    }

    /// Copies the elements of source rows `src_rows` (`block`, element size `es`) whose output row lies
    /// in `out_rows` into `out`, which holds output rows `out_rows`. Sizes were checked by the caller
    /// (the tensor's byte length fits in memory).
    pub fn scatter_block(
        &self,
        es: usize,
        block: &[u8],
        src_rows: std::ops::Range<u64>,
        out: &mut [u8],
        out_rows: std::ops::Range<u64>,
    ) {
        if self.shape.len() == 2 && self.perm == [1, 0] {
            return transpose_2d(es, block, src_rows, self.shape[1] as usize, self.shape[0] as usize, out, out_rows);
        }
        let rank = self.shape.len();
        if rank == 0 {
            out.copy_from_slice(&block[..out.len()]);
            return;
        }
        let ostride = self.out_strides_by_source_axis();
        let a0 = self.perm[0];
        // The ranges of each source axis to visit: the block's rows, the slab along axis a0.
        let mut lo: Vec<usize> = vec![0; rank];
        let mut hi: Vec<usize> = self.shape.iter().map(|&d| d as usize).collect();
        (lo[0], hi[0]) = (src_rows.start as usize, src_rows.end as usize);
        lo[a0] = lo[a0].max(out_rows.start as usize);
        hi[a0] = hi[a0].min(out_rows.end as usize);
        if lo.iter().zip(&hi).any(|(l, h)| l >= h) {
            return;
        }
        let mut sstride = vec![1usize; rank];
        for k in (0..rank - 1).rev() {
            sstride[k] = sstride[k + 1] * self.shape[k + 1] as usize;
        }
        let out_base = out_rows.start as usize * ostride[a0];
        let src_base = src_rows.start as usize * sstride[0];
        let mut idx = lo.clone();
        loop {
            let s: usize = idx.iter().zip(&sstride).map(|(i, st)| i * st).sum::<usize>() - src_base;
            let o: usize = idx.iter().zip(&ostride).map(|(i, st)| i * st).sum::<usize>() - out_base;
            out[o * es..(o + 1) * es].copy_from_slice(&block[s * es..(s + 1) * es]);
            // The odometer, innermost source axis fastest.
            let mut k = rank;
            loop {
                if k == 0 {
                    return;
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < hi[k] {
                    break;
                }
                idx[k] = lo[k];
            }
        }
    }
}

/// `out[c - out_rows.start][r] = block[r - src_rows.start][c]` for the block's rows `r` and the
/// output rows `c` in `out_rows`: a source of `cols` columns whose transpose has rows of `rows`
/// elements. The block's rows are split into segments of `SEGMENT` rows, one task each on its own
/// piece of every output row, so a chunk of few (long) output rows is shared by all threads too; a
/// task walks its rows in `TILE`-column tiles, reading the source row by row.
fn transpose_2d(
    es: usize,
    block: &[u8],
    src_rows: std::ops::Range<u64>,
    cols: usize,
    rows: usize,
    out: &mut [u8],
    out_rows: std::ops::Range<u64>,
) {
    let (r0, r1) = (src_rows.start as usize, src_rows.end as usize);
    let c0 = out_rows.start as usize;
    let out_row_bytes = rows * es;
    if out_row_bytes == 0 || r0 >= r1 {
        return;
    }
    // pieces[s][c]: segment s of output row c (bytes of source rows r0 + s * SEGMENT ..).
    let mut pieces: Vec<Vec<&mut [u8]>> = Vec::new();
    for row in out.chunks_exact_mut(out_row_bytes) {
        for (s, piece) in row[r0 * es..r1 * es].chunks_mut(SEGMENT * es).enumerate() {
            if pieces.len() <= s {
                pieces.push(Vec::new());
            }
            pieces[s].push(piece);
        }
    }
    pieces.into_par_iter().enumerate().for_each(|(s, mut by_col)| {
        let segment = &block[s * SEGMENT * cols * es..];
        // Elements of a size known at compile time are moved, not memmove'd one call each.
        match es {
            1 => segment_2d::<1>(segment, cols, c0, &mut by_col),
            2 => segment_2d::<2>(segment, cols, c0, &mut by_col),
            4 => segment_2d::<4>(segment, cols, c0, &mut by_col),
            8 => segment_2d::<8>(segment, cols, c0, &mut by_col),
            16 => segment_2d::<16>(segment, cols, c0, &mut by_col),
            _ => {}
        }
    });
}

/// One task of [`transpose_2d`]: `by_col[c][k] = segment[k][c0 + c]` (elements of `N` bytes).
fn segment_2d<const N: usize>(segment: &[u8], cols: usize, c0: usize, by_col: &mut [&mut [u8]]) {
    for tile in (0..by_col.len()).step_by(TILE) {
        let tile_end = (tile + TILE).min(by_col.len());
        for k in 0..by_col[tile].len() / N {
            let src_row = &segment[k * cols * N..][..cols * N];
            for (ci, dst) in by_col[tile..tile_end].iter_mut().enumerate() {
                let c = (c0 + tile + ci) * N;
                dst[k * N..(k + 1) * N].copy_from_slice(&src_row[c..c + N]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transpose of `shape` by `perm` of the elements 0, 1, 2, ... (as u16), done in blocks of
    /// `block_rows` source rows and `out_block` output rows.
    fn transposed(shape: &[u64], perm: &[usize], block_rows: u64, out_block: u64) -> Vec<u16> {
        let t = Transpose { shape: shape.to_vec(), perm: perm.to_vec() };
        let n: u64 = shape.iter().product();
        let src: Vec<u8> = (0..n as u16).flat_map(u16::to_le_bytes).collect();
        let out_shape = t.out_shape();
        let out_rows = out_shape.first().copied().unwrap_or(1);
        let out_row = (n / out_rows.max(1)) as usize * 2;
        let src_rows = shape.first().copied().unwrap_or(1);
        let src_row = (n / src_rows.max(1)) as usize * 2;
        let mut all = Vec::new();
        for a in (0..out_rows).step_by(out_block as usize) {
            let b = (a + out_block).min(out_rows);
            let mut out = vec![0u8; (b - a) as usize * out_row];
            for r in (0..src_rows).step_by(block_rows as usize) {
                let e = (r + block_rows).min(src_rows);
                let block = &src[r as usize * src_row..e as usize * src_row];
                t.scatter_block(2, block, r..e, &mut out, a..b);
            }
            all.extend(out.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])));
        }
        all
    }

    #[test]
    fn two_d_in_any_blocks() {
        let expect: Vec<u16> = vec![0, 3, 1, 4, 2, 5];
        for (b, o) in [(1, 1), (2, 3), (5, 2)] {
            assert_eq!(transposed(&[2, 3], &[1, 0], b, o), expect, "blocks {b} {o}");
        }
        assert_eq!(transposed(&[2, 3], &[0, 1], 1, 1), (0..6).collect::<Vec<u16>>());
    }

    #[test]
    fn three_d() {
        // np.transpose(np.arange(24).reshape(2, 3, 4), (2, 0, 1)).ravel()
        let expect: Vec<u16> =
            vec![0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23];
        assert_eq!(transposed(&[2, 3, 4], &[2, 0, 1], 1, 3), expect);
        assert_eq!(transposed(&[2, 3, 4], &[2, 0, 1], 2, 1), expect);
    }
}
