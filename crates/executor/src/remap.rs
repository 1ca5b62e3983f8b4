//! The execution of a vocabulary remap: carries out a [`RemapPlan`] made by the planner (its module
//! `warmstart_planner::remap_plan` decides the geometry, which old row and column feed each new one,
//! and the backup initializer; nothing here decides). Each new row is gathered from its old row
//! (columns remapped), missing cells taken from the backup initializer, rows computed in parallel
//! with rayon.
//!
//! The old tensor is read as few times as possible: when its source serves it borrowed (a memory map),
//! the whole tensor is borrowed once per variable and rows are copied straight out of it; otherwise
//! each block reads the range of old rows it needs once (falling back to one read per row only when
//! that range would be too large to hold). Rows whose columns are not remapped are copied whole.
//!
//! This gather, at random from the whole old tensor, is for old tensors of a few blocks: a larger one
//! is remapped in one pass in file order by the `scatter` module, which uses [`fill_row_from`] and
//! [`Backup`] from here.

use std::borrow::Cow;
use std::ops::Range;

use rayon::prelude::*;
use warmstart_core::CheckpointSource;
use warmstart_planner::remap_plan::{partition_geometry, remap_partition};
use warmstart_planner::{
    BackupInitializer, PartitionGeometry, PartitionRemap, PlanError, RemapParams, RemapPlan, VariablePlan,
};

use crate::rows::{check_len, checked_len};
use crate::ExecError;

/// Rows one parallel task gathers in sequence.
const ROWS_PER_TASK: usize = 64;

/// How many rows ahead the gather prefetches old rows.
const PREFETCH_ROWS: usize = 8;

/// The most bytes of old rows one block reads at once from a source that does not memory-map them.
const MAX_RANGE_BYTES: usize = 64 << 20;

/// Where missing cells come from for one row.
#[derive(Clone, Copy)]
pub(crate) enum Backup<'a> {
    /// A float32 constant, as little-endian bytes.
    Constant([u8; 4]),
    /// The target's own row.
    Initial(&'a [u8]),
}

impl Backup<'_> {
    /// Fills the cells of `dst` (a whole row) from cell `from` on.
    pub(crate) fn fill(&self, dst: &mut [u8], from: usize) {
        let start = (from * 4).min(dst.len());
        match self {
            Backup::Constant([0, 0, 0, 0]) => dst[start..].fill(0),
            Backup::Constant(c) => dst[start..].chunks_exact_mut(4).for_each(|cell| cell.copy_from_slice(c)),
            Backup::Initial(row) => {
                let end = dst.len();
                dst[start..].copy_from_slice(&row[start..end]);
            }
        }
    }

    fn cell(&self, j: usize) -> &[u8] {
        match self {
            Backup::Constant(c) => c,
            Backup::Initial(row) => &row[j * 4..j * 4 + 4],
        }
    }
}

/// How a partition reads its old rows, decided at its first block that needs one.
enum OldAccess<'a> {
    /// Not decided yet.
    Undecided,
    /// The whole old tensor, borrowed from the source, with its row size.
    Whole(&'a [u8], usize),
    /// Read per block; the old row size if the source lists the tensor.
    Blockwise(Option<usize>),
}

impl<'a> OldAccess<'a> {
    /// Decides how to read `from`: probes one row, and borrows the whole tensor if the source lends it.
    fn decide(old: &'a dyn CheckpointSource, from: &str) -> Result<Self, ExecError> {
        let Some(info) = old.tensor(from) else { return Ok(OldAccess::Blockwise(None)) };
        let row_bytes = info.row_bytes().and_then(|b| usize::try_from(b).ok());
        let (Some(row_bytes), rows) = (row_bytes, info.rows()) else { return Ok(OldAccess::Blockwise(None)) };
        if rows == 0 {
            return Ok(OldAccess::Blockwise(Some(row_bytes)));
        }
        let bytes = checked_len(from, rows, row_bytes)?;
        if let Cow::Borrowed(_) = old.read_rows(from, 0..1)? {
            if let Cow::Borrowed(all) = old.read_rows(from, 0..rows)? {
                check_len(from, 0, rows, all.len(), bytes)?;
                return Ok(OldAccess::Whole(all, row_bytes));
            }
        }
        Ok(OldAccess::Blockwise(Some(row_bytes)))
    }
}

/// The old rows one block of one partition reads from.
enum BlockRows<'a, 'b> {
    /// Old rows `first..` of `tensor`, `row_bytes` each, in one slice.
    Range { tensor: &'a str, bytes: &'b [u8], first: u64, row_bytes: usize },
    /// One read per row.
    PerRow(&'a dyn CheckpointSource, &'a str),
}

impl BlockRows<'_, '_> {
    /// Hints the processor to fetch old row `o` (if it is in memory here and not -1).
    #[inline]
    fn prefetch(&self, o: i64) {
        #[cfg(target_arch = "x86_64")]
        if let (BlockRows::Range { bytes, first, row_bytes, .. }, Ok(o)) = (self, u64::try_from(o)) {
            let at =
                o.checked_sub(*first).and_then(|k| usize::try_from(k).ok()).and_then(|k| k.checked_mul(*row_bytes));
            if let Some(row) = at.and_then(|at| bytes.get(at..at.checked_add(*row_bytes)?)) {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                for line in row.chunks(64) {
                    // SAFETY: SSE is part of x86_64; a prefetch only hints the cache and never
                    // dereferences (the address is within `bytes` anyway).
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = o;
    }

    fn row(&self, o: u64) -> Result<Cow<'_, [u8]>, ExecError> {
        match self {
            BlockRows::Range { tensor, bytes, first, row_bytes } => {
                let at =
                    o.checked_sub(*first).and_then(|k| usize::try_from(k).ok()).and_then(|k| k.checked_mul(*row_bytes));
                at.and_then(|at| bytes.get(at..at.checked_add(*row_bytes)?)).map(Cow::Borrowed).ok_or_else(|| {
                    ExecError::ShortRead {
                        tensor: tensor.to_string(),
                        start: o,
                        end: o + 1,
                        got: 0,
                        expected: *row_bytes,
                    }
                })
            }
            BlockRows::PerRow(old, from) => Ok(old.read_rows(from, o..o + 1)?),
        }
    }
}

/// The old row of local row `local` of the partition, or -1.
pub(crate) fn old_row_of(part: &PartitionRemap, local: u64) -> i64 {
    let g = &part.geometry;
    if g.oov_only || local >= g.rows_to_load {
        -1
    } else {
        part.row_remap.get(local as usize).copied().unwrap_or(-1)
    }
}

/// Fills `dst` (one row of `geometry.cols` float32 cells) with local row `local` of the partition.
fn fill_partition_row(
    rows: &BlockRows<'_, '_>,
    part: &PartitionRemap,
    local: u64,
    backup: Backup<'_>,
    dst: &mut [u8],
) -> Result<(), ExecError> {
    let old_row = old_row_of(part, local);
    if old_row < 0 {
        backup.fill(dst, 0);
        return Ok(());
    }
    let src = rows.row(old_row as u64)?;
    fill_row_from(&src, part, backup, dst);
    Ok(())
}

/// Fills `dst` (one row of `geometry.cols` float32 cells) from `src`, its old row: its columns
/// remapped, the cells it has none for from `backup`.
pub(crate) fn fill_row_from(src: &[u8], part: &PartitionRemap, backup: Backup<'_>, dst: &mut [u8]) {
    let g = &part.geometry;
    let old_cols = src.len() / 4;
    let cols = dst.len() / 4;
    if part.col_remap.is_empty() {
        // Columns in place: the first min(new_cols, old_cols) cells are the old row's, whole.
        let n = cols.min(old_cols).min(usize::try_from(g.new_cols).unwrap_or(usize::MAX));
        dst[..n * 4].copy_from_slice(&src[..n * 4]);
        backup.fill(dst, n);
        return;
    }
    for (j, cell) in dst.chunks_exact_mut(4).enumerate() {
        let old_col = if j as u64 >= g.new_cols { -1 } else { part.col_remap[j] };
        if old_col >= 0 && (old_col as usize) < old_cols {
            let c = old_col as usize;
            cell.copy_from_slice(&src[c * 4..c * 4 + 4]);
        } else {
            cell.copy_from_slice(backup.cell(j));
        }
    }
}

/// Fills `dst` with local rows `local` of the partition, in parallel, reading old rows as `access`
/// says (deciding it first if needed); `backup(k)` gives the backup of the block's row `k`.
fn fill_partition_block<'a, 'b>(
    old: &'a dyn CheckpointSource,
    from: &'a str,
    part: &PartitionRemap,
    access: &mut OldAccess<'a>,
    local: Range<u64>,
    backup: &(dyn Fn(usize) -> Backup<'b> + Sync),
    dst: &mut [u8],
) -> Result<(), ExecError> {
    let row_bytes = dst.len() / (local.end - local.start).max(1) as usize;
    if row_bytes == 0 {
        return Ok(());
    }
    let g = &part.geometry;
    let loaded = if g.oov_only { 0..0 } else { local.start.min(g.rows_to_load)..local.end.min(g.rows_to_load) };
    let remap =
        part.row_remap.get(loaded.start as usize..(loaded.end as usize).min(part.row_remap.len())).unwrap_or(&[]);
    let needed = remap
        .iter()
        .filter(|&&o| o >= 0)
        .fold(None, |acc: Option<(i64, i64)>, &o| Some(acc.map_or((o, o), |(lo, hi)| (lo.min(o), hi.max(o)))));
    let mut fill = |rows: &BlockRows<'_, '_>| {
        // Runs of rows per task, each row's old row prefetched a few rows ahead: the gather is bound
        // by the latency of random reads.
        dst.par_chunks_mut(row_bytes * ROWS_PER_TASK).enumerate().try_for_each(|(c, run)| {
            let first = c * ROWS_PER_TASK;
            let n = run.len() / row_bytes;
            for ahead in 0..PREFETCH_ROWS.min(n) {
                rows.prefetch(old_row_of(part, local.start + (first + ahead) as u64));
            }
            for (i, d) in run.chunks_exact_mut(row_bytes).enumerate() {
                if i + PREFETCH_ROWS < n {
                    rows.prefetch(old_row_of(part, local.start + (first + i + PREFETCH_ROWS) as u64));
                }
                fill_partition_row(rows, part, local.start + (first + i) as u64, backup(first + i), d)?;
            }
            Ok(())
        })
    };
    let Some((lo, hi)) = needed else {
        // No old row in this block: only backups.
        return fill(&BlockRows::PerRow(old, from));
    };
    if let OldAccess::Undecided = access {
        *access = OldAccess::decide(old, from)?;
    }
    let (lo, hi) = (lo as u64, hi as u64 + 1);
    match *access {
        OldAccess::Whole(bytes, row_bytes) => fill(&BlockRows::Range { tensor: from, bytes, first: 0, row_bytes }),
        OldAccess::Blockwise(Some(old_row_bytes))
            if ((hi - lo) as usize).saturating_mul(old_row_bytes) <= MAX_RANGE_BYTES =>
        {
            let bytes = old.read_rows(from, lo..hi)?;
            check_len(from, lo, hi, bytes.len(), (hi - lo) as usize * old_row_bytes)?;
            fill(&BlockRows::Range { tensor: from, bytes: &bytes, first: lo, row_bytes: old_row_bytes })
        }
        _ => {
            // The tensor's first read happens here, not in a task (see `first_read_here`).
            first_read_here(old, from, lo)?;
            fill(&BlockRows::PerRow(old, from))
        }
    }
}

/// Reads one row of `from` on the calling thread before parallel tasks read it. What a source does once
/// per tensor, on its first read (a TF bundle verifies the tensor's checksum, itself in parallel), must
/// not run inside a rayon task while other tasks wait for it: they would hold the threads it needs.
pub(crate) fn first_read_here(old: &dyn CheckpointSource, from: &str, row: u64) -> Result<(), ExecError> {
    old.read_rows(from, row..row + 1)?;
    Ok(())
}

/// Per variable: how each partition reads its old tensor, kept across the variable's blocks.
pub(crate) struct RemapState<'a> {
    access: Vec<OldAccess<'a>>,
}

impl RemapState<'_> {
    pub(crate) fn new(remap: &RemapPlan) -> Self {
        RemapState { access: remap.partitions.iter().map(|_| OldAccess::Undecided).collect() }
    }
}

/// Rows `start..end` of a remapped variable's final value, as little-endian float32 bytes, in `out`
/// (an empty buffer, reused for its capacity).
#[allow(clippy::too_many_arguments)]
pub(crate) fn remap_rows<'a>(
    mut out: Vec<u8>,
    state: &mut RemapState<'a>,
    var: &VariablePlan,
    remap: &'a RemapPlan,
    old: &'a dyn CheckpointSource,
    target: &dyn CheckpointSource,
    start: u64,
    end: u64,
    row_bytes: usize,
) -> Result<Vec<u8>, ExecError> {
    // A reused buffer keeps its (already mapped) pages; every byte is overwritten below. A new one comes
    // zeroed from the allocator, which need not write the zeros itself.
    let len = checked_len(&var.name, end - start, row_bytes)?;
    if out.capacity() < len {
        out = vec![0; len];
    } else {
        out.resize(len, 0);
    }
    if row_bytes == 0 {
        return Ok(out);
    }
    let overlap = |p: &PartitionRemap| {
        let (a, b) = (p.geometry.offset, p.geometry.offset.saturating_add(p.geometry.rows));
        start.max(a)..end.min(b).max(start.max(a))
    };
    let covered: u64 = remap.partitions.iter().map(|p| overlap(p).end - overlap(p).start).sum();
    let constant = remap.backup.constant();
    let initial = if constant.is_none() || covered < end - start {
        let rows = target.read_rows(&var.tensor, start..end)?;
        check_len(&var.tensor, start, end, rows.len(), out.len())?;
        Some(rows)
    } else {
        None
    };
    let initial_row =
        |r: u64| initial.as_deref().map(|b| &b[(r - start) as usize * row_bytes..(r - start + 1) as usize * row_bytes]);
    if covered < end - start {
        // Rows of a partition the selection left out keep their initial value.
        out.par_chunks_mut(row_bytes).enumerate().for_each(|(k, dst)| {
            let r = start + k as u64;
            if !remap.partitions.iter().any(|p| overlap(p).contains(&r)) {
                dst.copy_from_slice(initial_row(r).unwrap_or_default());
            }
        });
    }
    for (p, part) in remap.partitions.iter().enumerate() {
        let rows = overlap(part);
        if rows.is_empty() {
            continue;
        }
        let backup = |k: usize| match (constant, initial_row(rows.start + k as u64)) {
            (Some(c), _) => Backup::Constant(c.to_le_bytes()),
            (None, Some(row)) => Backup::Initial(row),
            (None, None) => Backup::Constant([0; 4]),
        };
        let dst = &mut out[(rows.start - start) as usize * row_bytes..(rows.end - start) as usize * row_bytes];
        let local = rows.start - part.geometry.offset..rows.end - part.geometry.offset;
        fill_partition_block(old, &remap.from, part, &mut state.access[p], local, &backup, dst)?;
    }
    if initial.is_some() {
        target.release(&var.tensor, start..end);
    }
    Ok(out)
}

/// The row gather alone, as a vocabulary remap does it for one partition: fills `dst` (the
/// partition's `geometry.rows` rows of `geometry.cols` float32 cells) from `old`, the old tensor's
/// rows (`old_row_bytes` each, row-major, as a memory map lends them), missing cells set to `fill`.
/// For benchmarks and tools that hold the old tensor in memory.
pub fn gather_partition(
    part: &PartitionRemap,
    old: &[u8],
    old_row_bytes: usize,
    fill: f32,
    dst: &mut [u8],
) -> Result<(), ExecError> {
    let g = &part.geometry;
    let expected = checked_len("gather", g.rows, checked_len("gather", g.cols, 4)?)?;
    check_len("gather", 0, g.rows, dst.len(), expected)?;
    let old_rows = old.len().checked_div(old_row_bytes).unwrap_or(0) as u64;
    check_len("gather", 0, old_rows, old.len(), old_rows as usize * old_row_bytes)?;
    if let Some(&max) = part.row_remap.iter().max() {
        if max >= 0 && max as u64 >= old_rows {
            return Err(ExecError::ShortRead {
                tensor: "gather".into(),
                start: 0,
                end: max as u64 + 1,
                got: old.len(),
                expected: (max as usize + 1) * old_row_bytes,
            });
        }
    }
    if expected == 0 {
        return Ok(());
    }
    let mut access = OldAccess::Whole(old, old_row_bytes);
    let backup = Backup::Constant(fill.to_le_bytes());
    let backup = move |_k: usize| backup;
    // `old` outlives the call; the source is never consulted for an already decided access.
    let none: &dyn CheckpointSource = &NoSource;
    fill_partition_block(none, "gather", part, &mut access, 0..g.rows, &backup, dst)
}

/// A source with no tensors, for [`gather_partition`], whose old rows are given in memory.
struct NoSource;

impl CheckpointSource for NoSource {
    fn format(&self) -> warmstart_core::Format {
        warmstart_core::Format::Safetensors
    }
    fn path(&self) -> &std::path::Path {
        std::path::Path::new("memory")
    }
    fn tensors(&self) -> &[warmstart_core::TensorInfo] {
        &[]
    }
    fn read_rows(&self, name: &str, _rows: Range<u64>) -> warmstart_core::Result<Cow<'_, [u8]>> {
        Err(warmstart_core::Error::TensorNotFound { path: "memory".into(), name: name.to_string() })
    }
}

/// TF's `_load_and_remap_matrix_initializer(...)(shape, partition_info)` for one partition of `shape`
/// starting at row `offset`, with a constant initializer `backup`: the partition's values, row-major.
pub fn load_and_remap(
    old: &dyn CheckpointSource,
    params: &RemapParams<'_>,
    shape: &[u64],
    offset: u64,
    backup: BackupInitializer,
) -> Result<Vec<f32>, ExecError> {
    let geometry = partition_geometry(params, shape, offset)?;
    remap_values(old, params, geometry, backup)
}

/// TF's `_load_and_remap_matrix(new_row_vocab_offset, num_rows_to_load, ...)`: `rows_to_load` rows
/// from row `offset` of the new vocabulary, then `params.num_row_oov_buckets` OOV rows and
/// `params.num_col_oov_buckets` OOV columns.
pub fn load_and_remap_matrix(
    old: &dyn CheckpointSource,
    params: &RemapParams<'_>,
    offset: u64,
    rows_to_load: u64,
    backup: BackupInitializer,
) -> Result<Vec<f32>, ExecError> {
    let (row_oov, col_oov) = (params.num_row_oov_buckets, params.num_col_oov_buckets);
    if row_oov < 0 || col_oov < 0 {
        let (which, count) = if row_oov < 0 { ("row", row_oov) } else { ("col", col_oov) };
        return Err(PlanError::NegativeOovBuckets { variable: params.variable.to_string(), which, count }.into());
    }
    let new_cols = params.new_col_vocab_size.max(0) as u64;
    let geometry = PartitionGeometry {
        offset,
        rows: rows_to_load + row_oov as u64,
        cols: new_cols + col_oov as u64,
        new_cols,
        rows_to_load,
        row_oov: row_oov as u64,
        col_oov: col_oov as u64,
        oov_only: false,
    };
    remap_values(old, params, geometry, backup)
}

fn remap_values(
    old: &dyn CheckpointSource,
    params: &RemapParams<'_>,
    geometry: PartitionGeometry,
    backup: BackupInitializer,
) -> Result<Vec<f32>, ExecError> {
    let part = remap_partition(params, None, geometry, old.tensor(params.old_tensor))?;
    let g = &part.geometry;
    let row_bytes = checked_len(params.variable, g.cols, 4)?;
    let mut bytes = vec![0u8; checked_len(params.variable, g.rows, row_bytes)?];
    let constant = Backup::Constant(backup.constant().unwrap_or(0.0).to_le_bytes());
    if row_bytes > 0 {
        let mut access = OldAccess::Undecided;
        let backup = move |_k: usize| constant;
        fill_partition_block(old, params.old_tensor, &part, &mut access, 0..g.rows, &backup, &mut bytes)?;
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}
