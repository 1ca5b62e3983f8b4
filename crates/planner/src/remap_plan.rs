//! The plan of a vocabulary remap, TF's `_load_and_remap_matrix_initializer` for one partition: the
//! Python checks on its shape and offset ([`partition_geometry`]: where the partition lies, which of
//! its rows are loaded and which are OOV), then, at "run time", the vocabulary remappings (which old
//! row and column feed each new one) and `LoadAndRemapMatrix`'s checks against the old tensor
//! ([`remap_partition`]); the backup initializer that fills what is missing is recorded in the plan.
//!
//! Nothing here reads a tensor: the executor's `remap` module (`warmstart_executor`) executes these
//! plans, gathering the rows.

use serde::Serialize;
use warmstart_core::{DType, TensorInfo, VariablePart};

use crate::plan::TargetVariable;
use crate::settings::{BackupInitializer, VocabFile, VocabInfo};
use crate::vocab::{check_unique_old_ids, generate_vocab_remapping};
use crate::PlanError;

/// The arguments of `_load_and_remap_matrix_initializer` that do not depend on the partition.
#[derive(Debug, Clone, Copy)]
pub struct RemapParams<'a> {
    /// The variable (for messages).
    pub variable: &'a str,
    /// The old tensor's name.
    pub old_tensor: &'a str,
    /// Rows of the new matrix that the row vocabulary covers.
    pub new_row_vocab_size: i64,
    /// Columns of the new matrix that the column vocabulary covers.
    pub new_col_vocab_size: i64,
    /// Old row vocabulary size (-1: all).
    pub old_row_vocab_size: i64,
    /// Row vocabularies `(old, new)`, or `None` to keep rows in place.
    pub row_vocab: Option<(&'a VocabFile, &'a VocabFile)>,
    /// Column vocabularies `(old, new)`, or `None` to keep columns in place.
    pub col_vocab: Option<(&'a VocabFile, &'a VocabFile)>,
    /// OOV rows after the row vocabulary.
    pub num_row_oov_buckets: i64,
    /// OOV columns after the column vocabulary.
    pub num_col_oov_buckets: i64,
}

/// Where a partition lies and how its rows divide into loaded and OOV rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionGeometry {
    /// First row of the partition in the full variable.
    pub offset: u64,
    /// Rows of the partition.
    pub rows: u64,
    /// Columns of the partition (new columns plus OOV columns).
    pub cols: u64,
    /// Columns covered by the column vocabulary (or all old columns).
    pub new_cols: u64,
    /// Rows loaded from the old tensor (the first `rows_to_load` rows of the partition).
    pub rows_to_load: u64,
    /// OOV rows at the end of the partition.
    pub row_oov: u64,
    /// OOV columns at the right of the partition.
    pub col_oov: u64,
    /// Whether the partition lies wholly past the vocabulary and is just initialised.
    pub oov_only: bool,
}

/// The Python-side checks of `_load_and_remap_matrix_initializer(...)(shape, partition_info)`.
pub fn partition_geometry(
    params: &RemapParams<'_>,
    shape: &[u64],
    offset: u64,
) -> Result<PartitionGeometry, PlanError> {
    let variable = params.variable.to_string();
    if shape.len() != 2 {
        return Err(PlanError::RemapNotMatrix { variable, shape: shape.to_vec() });
    }
    if shape[0] == 0 {
        return Err(PlanError::RemapNoRows { variable, shape: shape.to_vec() });
    }
    let (rows, cols) = (shape[0] as i128, shape[1] as i128);
    if cols != params.new_col_vocab_size as i128 + params.num_col_oov_buckets as i128 {
        return Err(PlanError::RemapColumns {
            variable,
            new_cols: params.new_col_vocab_size,
            col_oov: params.num_col_oov_buckets,
            shape: shape.to_vec(),
        });
    }
    let new_rows = params.new_row_vocab_size as i128;
    if offset as i128 + rows > new_rows + params.num_row_oov_buckets as i128 {
        return Err(PlanError::RemapTooManyRows {
            variable,
            rows: shape[0],
            offset,
            new_rows: params.new_row_vocab_size,
            row_oov: params.num_row_oov_buckets,
        });
    }
    let row_oov = rows.min((offset as i128 + rows - new_rows).max(0));
    let rows_to_load = rows - row_oov;
    let oov_only = offset as i128 > new_rows;
    if oov_only && rows != row_oov {
        return Err(PlanError::RemapNotOovOnly { variable });
    }
    if !oov_only {
        if params.num_row_oov_buckets < 0 {
            return Err(PlanError::NegativeOovBuckets { variable, which: "row", count: params.num_row_oov_buckets });
        }
        if params.num_col_oov_buckets < 0 {
            return Err(PlanError::NegativeOovBuckets { variable, which: "col", count: params.num_col_oov_buckets });
        }
    }
    Ok(PartitionGeometry {
        offset,
        rows: shape[0],
        cols: shape[1],
        new_cols: params.new_col_vocab_size.max(0) as u64,
        rows_to_load: rows_to_load as u64,
        row_oov: row_oov as u64,
        col_oov: params.num_col_oov_buckets.max(0) as u64,
        oov_only,
    })
}

/// How one partition of a remapped variable is filled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionRemap {
    /// The partition's index among the variable's parts, or `None` for an unpartitioned variable.
    pub part: Option<usize>,
    /// Shape and offsets.
    pub geometry: PartitionGeometry,
    /// For each of the `rows_to_load` rows, the old row or -1 (empty for an OOV-only partition).
    #[serde(skip)]
    pub row_remap: Vec<i64>,
    /// For each of the `new_cols` columns, the old column or -1; empty means columns stay in place.
    #[serde(skip)]
    pub col_remap: Vec<i64>,
    /// Rows found in the old tensor.
    pub rows_present: u64,
    /// Columns found in the old tensor (all `new_cols` without a column vocabulary).
    pub cols_present: u64,
}

impl PartitionRemap {
    /// The cells filled by the backup initializer.
    pub fn cells_missing(&self) -> u64 {
        let g = &self.geometry;
        g.rows.saturating_mul(g.cols).saturating_sub(self.rows_present.saturating_mul(self.cols_present))
    }
}

/// The run-time part: `GenerateVocabRemapping` for rows and columns and `LoadAndRemapMatrix`'s checks
/// against the old tensor (`old` is `None` if the checkpoint lacks it).
pub fn remap_partition(
    params: &RemapParams<'_>,
    part: Option<usize>,
    geometry: PartitionGeometry,
    old: Option<&TensorInfo>,
) -> Result<PartitionRemap, PlanError> {
    let variable = params.variable;
    if geometry.oov_only {
        return Ok(PartitionRemap {
            part,
            geometry,
            row_remap: Vec::new(),
            col_remap: Vec::new(),
            rows_present: 0,
            cols_present: 0,
        });
    }
    let (row_remap, rows_present) = match params.row_vocab {
        Some((old_vocab, new_vocab)) => {
            let r = generate_vocab_remapping(
                variable,
                new_vocab,
                old_vocab,
                geometry.offset,
                geometry.rows_to_load,
                params.old_row_vocab_size,
            )?;
            (r.remapping, r.num_present)
        }
        None => {
            let start = geometry.offset as i64;
            ((start..start + geometry.rows_to_load as i64).collect::<Vec<i64>>(), geometry.rows_to_load)
        }
    };
    let (col_remap, cols_present) = match params.col_vocab {
        Some((old_vocab, new_vocab)) => {
            let r = generate_vocab_remapping(variable, new_vocab, old_vocab, 0, geometry.new_cols, -1)?;
            (r.remapping, r.num_present)
        }
        None => (Vec::new(), geometry.new_cols),
    };
    check_unique_old_ids(variable, &row_remap)?;
    check_unique_old_ids(variable, &col_remap)?;
    let tensor = params.old_tensor.to_string();
    let Some(old) = old else {
        return Err(PlanError::RemapOldNotFound { variable: variable.to_string(), tensor });
    };
    if old.dtype != DType::F32 {
        return Err(PlanError::RemapOldNotFloat32 { variable: variable.to_string(), tensor, dtype: old.dtype });
    }
    if old.shape.len() != 2 {
        return Err(PlanError::RemapOldNotMatrix { variable: variable.to_string(), tensor, shape: old.shape.clone() });
    }
    if col_remap.is_empty() && geometry.new_cols != old.shape[1] {
        return Err(PlanError::RemapOldColumns {
            variable: variable.to_string(),
            tensor,
            shape: old.shape.clone(),
            num_cols: geometry.new_cols,
        });
    }
    if let Some(&row) = row_remap.iter().filter(|&&r| r >= 0).max() {
        if row as u64 >= old.shape[0] {
            return Err(PlanError::RemapOldRowOutOfRange {
                variable: variable.to_string(),
                tensor,
                row,
                rows: old.shape[0],
            });
        }
    }
    if let Some(&column) = col_remap.iter().filter(|&&c| c >= 0).max() {
        if column as u64 >= old.shape[1] {
            return Err(PlanError::RemapOldColumnOutOfRange {
                variable: variable.to_string(),
                tensor,
                column,
                columns: old.shape[1],
            });
        }
    }
    Ok(PartitionRemap { part, geometry, row_remap, col_remap, rows_present, cols_present })
}

/// A vocabulary remap of one variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemapPlan {
    /// The old tensor.
    pub from: String,
    /// 0: rows follow the vocabulary; 1: columns.
    pub axis: u8,
    /// What fills missing cells.
    pub backup: BackupInitializer,
    /// Vocabulary entries found in the old vocabulary (over all partitions, for axis 0).
    pub entries_found: u64,
    /// Vocabulary entries not found.
    pub entries_missing: u64,
    /// OOV buckets appended.
    pub oov_buckets: u64,
    /// Per partition (one for an unpartitioned variable), in the order of the variable's parts.
    pub partitions: Vec<PartitionRemap>,
}

/// Row offset of a partition (TF's `_PartitionInfo.single_offset`) or an error for column partitions.
fn part_offset(var: &TargetVariable, part: &VariablePart) -> Result<u64, PlanError> {
    let differing: Vec<usize> = (0..var.shape.len()).filter(|&d| part.slice.len.get(d) != var.shape.get(d)).collect();
    match differing.as_slice() {
        [] => Ok(0),
        [0] => Ok(part.slice.start[0]),
        _ => Err(PlanError::RemapColumnPartitioned { variable: var.name.clone() }),
    }
}

/// The arguments `_warm_start_var_with_vocab` gives `_load_and_remap_matrix_initializer` for `var`,
/// remapped along `vocab.axis` from the old tensor `tensor`; `parts` are the partitions remapped
/// (`None` for an unpartitioned variable), which together give the rows of a column remap.
fn remap_params<'a>(
    var: &'a TargetVariable,
    vocab: &'a VocabInfo,
    tensor: &'a str,
    parts: &[Option<usize>],
) -> RemapParams<'a> {
    let total_rows: u64 = parts
        .iter()
        .map(|part| match part {
            None => var.shape.first().copied().unwrap_or(0),
            Some(p) => var.parts[*p].slice.len.first().copied().unwrap_or(0),
        })
        .sum();
    let files = Some((&vocab.old_vocab, &vocab.new_vocab));
    if vocab.axis == 0 {
        RemapParams {
            variable: &var.name,
            old_tensor: tensor,
            new_row_vocab_size: vocab.new_vocab_size,
            new_col_vocab_size: var.shape.get(1).map(|&c| c as i64).unwrap_or(0),
            old_row_vocab_size: vocab.old_vocab_size,
            row_vocab: files,
            col_vocab: None,
            num_row_oov_buckets: vocab.num_oov_buckets,
            num_col_oov_buckets: 0,
        }
    } else {
        RemapParams {
            variable: &var.name,
            old_tensor: tensor,
            new_row_vocab_size: total_rows as i64,
            new_col_vocab_size: vocab.new_vocab_size,
            old_row_vocab_size: -1,
            row_vocab: None,
            col_vocab: files,
            num_row_oov_buckets: 0,
            num_col_oov_buckets: vocab.num_oov_buckets,
        }
    }
}

/// The shape and offset of a partition (`None`: the whole variable), as `_warm_start_var_with_vocab`
/// hands them to the initializer.
fn member_geometry(var: &TargetVariable, part: Option<usize>) -> Result<(Vec<u64>, u64), PlanError> {
    match part {
        None => Ok((var.shape.clone(), 0)),
        Some(p) => {
            let part = &var.parts[p];
            Ok((part.slice.len.clone(), part_offset(var, part)?))
        }
    }
}

/// The initializer's arguments for partition `part` of `var` (one of `parts`), its shape and its
/// geometry, with the Python-time checks of `partition_geometry`.
fn partition_inputs<'a>(
    var: &'a TargetVariable,
    parts: &[Option<usize>],
    part: Option<usize>,
    vocab: &'a VocabInfo,
    tensor: &'a str,
) -> Result<(RemapParams<'a>, Vec<u64>, PartitionGeometry), PlanError> {
    let params = remap_params(var, vocab, tensor, parts);
    let (shape, offset) = member_geometry(var, part)?;
    let params = RemapParams {
        new_col_vocab_size: if vocab.axis == 0 {
            shape.get(1).map(|&c| c as i64).unwrap_or(0)
        } else {
            params.new_col_vocab_size
        },
        ..params
    };
    let geometry = partition_geometry(&params, &shape, offset)?;
    Ok((params, shape, geometry))
}

/// The Python-time checks of `_warm_start_var_with_vocab` for every partition `parts` of `var`.
pub(crate) fn check_vocab_partitions(
    var: &TargetVariable,
    parts: &[Option<usize>],
    vocab: &VocabInfo,
    tensor: &str,
) -> Result<(), PlanError> {
    for &part in parts {
        if vocab.axis != 0 && vocab.axis != 1 {
            return Err(PlanError::VocabBadAxis { variable: var.name.clone(), axis: vocab.axis });
        }
        let (_, shape, geometry) = partition_inputs(var, parts, part, vocab, tensor)?;
        if !geometry.oov_only && vocab.axis == 0 && vocab.old_vocab_size < -1 {
            return Err(PlanError::OldVocabSizeBelowMinimum { variable: var.name.clone(), size: vocab.old_vocab_size });
        }
        if var.dtype != DType::F32 {
            return Err(PlanError::RemapNotFloat32 { variable: var.name.clone(), dtype: var.dtype, shape });
        }
    }
    Ok(())
}

/// The run-time part of a variable's vocabulary remap: every partition's remap (with the ops' checks
/// against the old tensor `old`, `None` if the checkpoint lacks it), and the entries found. `parts` are
/// the partitions remapped, `listed` the list TF was given (a partition may be listed more than once;
/// a column remap's rows are summed over it).
pub(crate) fn plan_variable_remap(
    var: &TargetVariable,
    parts: &[Option<usize>],
    listed: &[Option<usize>],
    vocab: &VocabInfo,
    tensor: &str,
    old: Option<&TensorInfo>,
) -> Result<RemapPlan, PlanError> {
    let mut partitions = Vec::with_capacity(parts.len());
    for &part in parts {
        let (params, _, geometry) = partition_inputs(var, listed, part, vocab, tensor)?;
        partitions.push(remap_partition(&params, part, geometry, old)?);
    }
    let (found, total) = if vocab.axis == 0 {
        let found: u64 = partitions.iter().map(|p| p.rows_present).sum();
        let total: u64 = partitions.iter().map(|p| p.geometry.rows_to_load).sum();
        (found, total)
    } else {
        partitions
            .iter()
            .find(|p| !p.geometry.oov_only)
            .map(|p| (p.cols_present, p.geometry.new_cols))
            .unwrap_or((0, 0))
    };
    Ok(RemapPlan {
        from: tensor.to_string(),
        axis: vocab.axis as u8,
        backup: vocab.backup_initializer,
        entries_found: found,
        entries_missing: total - found,
        oov_buckets: vocab.num_oov_buckets.max(0) as u64,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(row: Option<(&'a VocabFile, &'a VocabFile)>) -> RemapParams<'a> {
        RemapParams {
            variable: "w",
            old_tensor: "w",
            new_row_vocab_size: 5,
            new_col_vocab_size: 1,
            old_row_vocab_size: -1,
            row_vocab: row,
            col_vocab: None,
            num_row_oov_buckets: 1,
            num_col_oov_buckets: 0,
        }
    }

    #[test]
    fn geometry_follows_tf() {
        let p = params(None);
        let g = partition_geometry(&p, &[3, 1], 3).unwrap();
        assert_eq!((g.rows_to_load, g.row_oov, g.oov_only), (2, 1, false));
        let g = partition_geometry(&p, &[1, 1], 5).unwrap();
        assert_eq!((g.rows_to_load, g.row_oov, g.oov_only), (0, 1, false));
        assert!(matches!(partition_geometry(&p, &[3, 1], 4), Err(PlanError::RemapTooManyRows { .. })));
        assert!(matches!(partition_geometry(&p, &[3], 0), Err(PlanError::RemapNotMatrix { .. })));
        assert!(matches!(partition_geometry(&p, &[3, 2], 0), Err(PlanError::RemapColumns { .. })));
    }

    #[test]
    fn remap_checks_old_tensor() {
        let old_v = VocabFile::new("old", "apple\nbanana\nguava\norange");
        let new_v = VocabFile::new("new", "orange\nguava\nbanana\napple\nraspberry");
        let p = params(Some((&old_v, &new_v)));
        let g = partition_geometry(&p, &[6, 1], 0).unwrap();
        let w = TensorInfo::new("w", DType::F32, vec![4, 1]);
        let r = remap_partition(&p, None, g.clone(), Some(&w)).unwrap();
        assert_eq!(r.row_remap, [3, 2, 1, 0, -1]);
        assert_eq!((r.rows_present, r.cells_missing()), (4, 2));
        let w64 = TensorInfo::new("w", DType::F64, vec![4, 1]);
        let e = remap_partition(&p, None, g, Some(&w64)).unwrap_err();
        assert_eq!(e.to_string(), "Tensor w has invalid type double instead of expected type float");
    }
}
