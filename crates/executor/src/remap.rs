//! Vocabulary remapping at execution time: each new row is gathered from its old row (columns
//! remapped), missing cells taken from the backup initializer, rows computed in parallel with rayon.

use rayon::prelude::*;
use warmstart_core::CheckpointSource;
use warmstart_planner::remap::{partition_geometry, remap_partition};
use warmstart_planner::{BackupInitializer, PartitionGeometry, PartitionRemap, PlanError, RemapParams, RemapPlan, VariablePlan};

use crate::{check_len, checked_len, ExecError};

/// Where missing cells come from for one row.
enum Backup<'a> {
    /// A float32 constant, as little-endian bytes.
    Constant([u8; 4]),
    /// The target's own row.
    Initial(&'a [u8]),
}

impl Backup<'_> {
    fn cell(&self, j: usize) -> &[u8] {
        match self {
            Backup::Constant(c) => c,
            Backup::Initial(row) => &row[j * 4..j * 4 + 4],
        }
    }
}

/// Fills `dst` (one row of `geometry.cols` float32 cells) with local row `local` of the partition.
fn fill_partition_row(
    old: &dyn CheckpointSource,
    from: &str,
    part: &PartitionRemap,
    local: u64,
    backup: &Backup<'_>,
    dst: &mut [u8],
) -> Result<(), ExecError> {
    let g = &part.geometry;
    let cols = g.cols as usize;
    let old_row = if g.oov_only || local >= g.rows_to_load {
        -1
    } else {
        part.row_remap.get(local as usize).copied().unwrap_or(-1)
    };
    if old_row < 0 {
        for j in 0..cols {
            dst[j * 4..j * 4 + 4].copy_from_slice(backup.cell(j));
        }
        return Ok(());
    }
    let o = old_row as u64;
    let src = old.read_rows(from, o..o + 1)?;
    let old_cols = src.len() / 4;
    for j in 0..cols {
        let cell = &mut dst[j * 4..j * 4 + 4];
        let old_col = if j as u64 >= g.new_cols {
            -1
        } else if part.col_remap.is_empty() {
            j as i64
        } else {
            part.col_remap[j]
        };
        if old_col >= 0 && (old_col as usize) < old_cols {
            let c = old_col as usize;
            cell.copy_from_slice(&src[c * 4..c * 4 + 4]);
        } else {
            cell.copy_from_slice(backup.cell(j));
        }
    }
    Ok(())
}

/// Rows `start..end` of a remapped variable's final value, as little-endian float32 bytes.
pub(crate) fn remap_rows(
    var: &VariablePlan,
    remap: &RemapPlan,
    old: &dyn CheckpointSource,
    target: &dyn CheckpointSource,
    start: u64,
    end: u64,
    row_bytes: usize,
) -> Result<Vec<u8>, ExecError> {
    let mut out = vec![0u8; checked_len(&var.name, end - start, row_bytes)?];
    if row_bytes == 0 {
        return Ok(out);
    }
    let constant = remap.backup.constant();
    out.par_chunks_mut(row_bytes).enumerate().try_for_each(|(k, dst)| -> Result<(), ExecError> {
        let r = start + k as u64;
        let part = remap
            .partitions
            .iter()
            .find(|p| r >= p.geometry.offset && r < p.geometry.offset + p.geometry.rows);
        let initial = match (part, constant) {
            (Some(_), Some(_)) => None,
            _ => {
                let row = target.read_rows(&var.tensor, r..r + 1)?;
                check_len(&var.tensor, r, r + 1, row.len(), row_bytes)?;
                Some(row)
            }
        };
        let Some(part) = part else {
            // A partition the selection left out keeps its initial value.
            dst.copy_from_slice(initial.as_deref().unwrap_or_default());
            return Ok(());
        };
        let backup = match (constant, initial.as_deref()) {
            (Some(c), _) => Backup::Constant(c.to_le_bytes()),
            (None, Some(row)) => Backup::Initial(row),
            (None, None) => Backup::Constant([0; 4]),
        };
        fill_partition_row(old, &remap.from, part, r - part.geometry.offset, &backup, dst)
    })?;
    Ok(out)
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
        bytes.par_chunks_mut(row_bytes).enumerate().try_for_each(|(k, dst)| {
            fill_partition_row(old, params.old_tensor, &part, k as u64, &constant, dst)
        })?;
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}
