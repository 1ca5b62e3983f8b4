//! The executor of warmstart: carries out a [`Plan`] from the planner, tensor by tensor, into a
//! [`CheckpointSink`], streaming row blocks of a few MiB so that no large tensor is ever held whole.
//!
//! Copies and initial values are written straight from the sources' (memory-mapped) rows. Vocabulary
//! remaps gather their rows in parallel (rayon) within each block, then blocks are written in order.
//! [`load_and_remap`] reproduces TF's `_load_and_remap_matrix_initializer` for one partition.
#![deny(missing_docs)]

mod boxes;
mod remap;

use std::borrow::Cow;

use warmstart_core::{CheckpointSink, CheckpointSource, DType, Error as CoreError, SinkTensor};
use warmstart_planner::{Action, OutputTensor, Plan, PlanError, VariablePlan};

pub use remap::{load_and_remap, load_and_remap_matrix};

/// Why executing a plan failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// Reading a source or writing the sink failed.
    #[error(transparent)]
    Checkpoint(#[from] CoreError),
    /// A planning refusal (from [`load_and_remap`]).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A source returned a number of bytes that does not match the tensor.
    #[error("tensor {tensor:?}: the source returned {got} bytes for rows {start}..{end}, expected {expected}")]
    ShortRead {
        /// The tensor.
        tensor: String,
        /// First row.
        start: u64,
        /// One past the last row.
        end: u64,
        /// Bytes returned.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A string variable whose partitions would have to be split or merged.
    #[error("variable {variable:?}: partitioned string variables cannot be {what}")]
    PartitionedStrings {
        /// The variable.
        variable: String,
        /// What was asked.
        what: &'static str,
    },
    /// A size that does not fit this machine.
    #[error("tensor {tensor:?} is too large to address")]
    TooLarge {
        /// The tensor.
        tensor: String,
    },
}

/// How to execute.
pub struct ExecOptions<'a> {
    /// About how many bytes one row block holds (at least one row).
    pub block_bytes: u64,
    /// Called after each block with the bytes written so far.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

impl Default for ExecOptions<'_> {
    fn default() -> Self {
        ExecOptions { block_bytes: 4 << 20, progress: None }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Variables copied from an old tensor.
    pub copied: usize,
    /// Variables remapped through a vocabulary.
    pub remapped: usize,
    /// Variables that kept their initial value.
    pub kept_initial: usize,
    /// Other tensors copied through.
    pub passthrough: usize,
    /// Output tensors (a partitioned variable written in parts counts once per part).
    pub tensors_written: usize,
    /// Bytes of numeric data written.
    pub bytes_written: u64,
}

/// The total bytes of numeric data the plan writes (for a progress bar).
pub fn total_bytes(plan: &Plan) -> u64 {
    plan.outputs.iter().filter_map(|o| o.sink.byte_len()).fold(0u64, |a, b| a.saturating_add(b))
}

/// Executes `plan`: writes every output tensor into `sink` (created with [`Plan::sink_tensors`]). The
/// caller calls `finish` on the sink; on error, dropping it leaves nothing behind.
pub fn execute(
    plan: &Plan,
    old: &dyn CheckpointSource,
    target: &dyn CheckpointSource,
    sink: &mut dyn CheckpointSink,
    options: &ExecOptions<'_>,
) -> Result<Report, ExecError> {
    let mut report = Report::default();
    for v in &plan.variables {
        match v.action {
            Action::KeepInitial => report.kept_initial += 1,
            Action::Copy { .. } => report.copied += 1,
            Action::Remap(_) => report.remapped += 1,
        }
    }
    report.passthrough = plan.passthrough.len();
    for out in &plan.outputs {
        let written = match out.variable {
            None => {
                warmstart_core::copy::copy_tensor(target, &out.name, sink, &out.sink, options.block_bytes)?;
                let written = out.sink.byte_len().unwrap_or(0);
                if let Some(progress) = options.progress {
                    progress(report.bytes_written + written);
                }
                written
            }
            Some(vi) => write_variable(&plan.variables[vi], out, old, target, sink, options, report.bytes_written)?,
        };
        report.bytes_written += written;
        report.tensors_written += 1;
    }
    Ok(report)
}

/// Produces rows of a variable's final (full) value.
struct VariableRows<'a> {
    var: &'a VariablePlan,
    old: &'a dyn CheckpointSource,
    target: &'a dyn CheckpointSource,
    row_bytes: usize,
}

impl<'a> VariableRows<'a> {
    fn rows(&self, start: u64, end: u64) -> Result<Cow<'a, [u8]>, ExecError> {
        let expected = checked_len(&self.var.name, end - start, self.row_bytes)?;
        let bytes = match &self.var.action {
            Action::KeepInitial => self.target.read_rows(&self.var.tensor, start..end)?,
            Action::Copy { from, parts: None } => self.old.read_rows(from, start..end)?,
            Action::Copy { from, parts: Some(parts) } => {
                let mut buf = self.target.read_rows(&self.var.tensor, start..end)?.into_owned();
                check_len(&self.var.name, start, end, buf.len(), expected)?;
                let old_rows = self.old.read_rows(from, start..end)?;
                check_len(from, start, end, old_rows.len(), expected)?;
                let elem = elem_size(self.var.dtype);
                for &p in parts {
                    let part = &self.var.parts[p];
                    boxes::copy_box(&old_rows, &mut buf, &self.var.shape, start..end, &part.start, &part.shape, elem);
                }
                Cow::Owned(buf)
            }
            Action::Remap(remap) => {
                Cow::Owned(remap::remap_rows(self.var, remap, self.old, self.target, start, end, self.row_bytes)?)
            }
        };
        check_len(&self.var.name, start, end, bytes.len(), expected)?;
        Ok(bytes)
    }
}

fn elem_size(d: DType) -> usize {
    d.size().unwrap_or(1)
}

fn checked_len(tensor: &str, rows: u64, row_bytes: usize) -> Result<usize, ExecError> {
    usize::try_from(rows)
        .ok()
        .and_then(|r| r.checked_mul(row_bytes))
        .ok_or_else(|| ExecError::TooLarge { tensor: tensor.to_string() })
}

fn check_len(tensor: &str, start: u64, end: u64, got: usize, expected: usize) -> Result<(), ExecError> {
    if got != expected {
        return Err(ExecError::ShortRead { tensor: tensor.to_string(), start, end, got, expected });
    }
    Ok(())
}

fn write_variable(
    var: &VariablePlan,
    out: &OutputTensor,
    old: &dyn CheckpointSource,
    target: &dyn CheckpointSource,
    sink: &mut dyn CheckpointSink,
    options: &ExecOptions<'_>,
    done: u64,
) -> Result<u64, ExecError> {
    if var.dtype == DType::String {
        return write_strings(var, out, old, target, sink);
    }
    let too_large = || ExecError::TooLarge { tensor: var.name.clone() };
    let info = &out.sink.info;
    let row_bytes = usize::try_from(info.row_bytes().ok_or_else(too_large)?).map_err(|_| too_large())?;
    let rows_all = info.rows();
    let (rows, inner) = match (&out.sink.slice, out.part) {
        (Some(slice), Some(_)) => {
            let rows = if slice.start.is_empty() { 0..1 } else { slice.start[0]..slice.start[0] + slice.len[0] };
            (rows, Some(slice))
        }
        _ => (0..rows_all, None),
    };
    let source = VariableRows { var, old, target, row_bytes };
    let out_row_bytes = match inner {
        Some(slice) if !slice.len.is_empty() => {
            let n: u64 = slice.len[1..].iter().product();
            usize::try_from(n).ok().and_then(|n| n.checked_mul(elem_size(var.dtype))).ok_or_else(too_large)?
        }
        _ => row_bytes,
    };
    let rows_per_block = if out_row_bytes == 0 { rows.end - rows.start } else { (options.block_bytes / out_row_bytes as u64).max(1) };
    sink.begin_tensor(&out.sink)?;
    let mut written = 0u64;
    let mut start = rows.start;
    while start < rows.end {
        let end = start.saturating_add(rows_per_block.max(1)).min(rows.end);
        let block = source.rows(start, end)?;
        match inner {
            Some(slice) if !boxes::inner_is_full(&var.shape, &slice.start, &slice.len) => {
                let mut buf = Vec::with_capacity(checked_len(&var.name, end - start, out_row_bytes)?);
                boxes::extract_box(&block, &var.shape, end - start, &slice.start, &slice.len, elem_size(var.dtype), &mut buf);
                sink.write_data(&buf)?;
                written += buf.len() as u64;
            }
            _ => {
                sink.write_data(&block)?;
                written += block.len() as u64;
            }
        }
        if let Some(progress) = options.progress {
            progress(done + written);
        }
        start = end;
    }
    sink.end_tensor()?;
    Ok(written)
}

fn write_strings(
    var: &VariablePlan,
    out: &OutputTensor,
    old: &dyn CheckpointSource,
    target: &dyn CheckpointSource,
    sink: &mut dyn CheckpointSink,
) -> Result<u64, ExecError> {
    if out.part.is_some() {
        return Err(ExecError::PartitionedStrings { variable: var.name.clone(), what: "written in parts" });
    }
    let values = match &var.action {
        Action::Copy { from, parts: None } => old.read_strings(from)?,
        Action::Copy { parts: Some(_), .. } => {
            return Err(ExecError::PartitionedStrings { variable: var.name.clone(), what: "copied in parts" })
        }
        _ => target.read_strings(&var.tensor)?,
    };
    sink.write_strings(&SinkTensor { info: out.sink.info.clone(), slice: None }, &values)?;
    Ok(0)
}

#[cfg(test)]
mod mem;
