//! Writing one output tensor of a variable: its rows, block by block (or through the `scatter` module
//! for a remap of a large old tensor), come from the target (initial value), the old tensor (a copy, whole
//! or in some partitions: the `copy` module) or a vocabulary remap (the `remap` module); a partition
//! written on its own is cut out of those rows (the `boxes` module).

use std::borrow::Cow;

use warmstart_core::{CheckpointSource, DType, SinkTensor};
use warmstart_planner::{Action, OutputTensor, VariablePlan};

use crate::rows::{check_len, checked_len, elem_size, Release};
use crate::writer::{Stop, Writer};
use crate::{boxes, copy, remap, scatter, ExecError, ExecOptions, Job};

/// Produces rows of a variable's final (full) value.
struct VariableRows<'a> {
    var: &'a VariablePlan,
    old: &'a dyn CheckpointSource,
    target: &'a dyn CheckpointSource,
    row_bytes: usize,
    /// For a remap: how its old tensor is read, kept across blocks.
    remap: Option<remap::RemapState<'a>>,
}

impl<'a> VariableRows<'a> {
    /// Rows `start..end`, and the source rows to release once they are written (when borrowed); a
    /// block computed here goes into `buf` (empty, possibly with capacity).
    fn rows(
        &mut self,
        start: u64,
        end: u64,
        buf: impl FnOnce() -> Vec<u8>,
    ) -> Result<(Cow<'a, [u8]>, Option<Release<'a>>), ExecError> {
        let expected = checked_len(&self.var.name, end - start, self.row_bytes)?;
        let (bytes, release) = match &self.var.action {
            Action::KeepInitial => Release::read(self.target, &self.var.tensor, start..end)?,
            Action::Copy { from, parts: None } => Release::read(self.old, from, start..end)?,
            Action::Copy { from, parts: Some(parts) } => (
                Cow::Owned(copy::copy_parts_rows(self.var, from, parts, self.old, self.target, start..end, expected)?),
                None,
            ),
            Action::Remap(remap) => {
                let state = self.remap.get_or_insert_with(|| remap::RemapState::new(remap));
                let out = buf();
                (
                    Cow::Owned(remap::remap_rows(
                        out,
                        state,
                        self.var,
                        remap,
                        self.old,
                        self.target,
                        start,
                        end,
                        self.row_bytes,
                    )?),
                    None,
                )
            }
        };
        check_len(&self.var.name, start, end, bytes.len(), expected)?;
        Ok((bytes, release))
    }
}

/// Writes one output tensor of a variable (the whole variable, or one partition of it) in row blocks,
/// or through the `scatter` module when it is remapped from an old tensor larger than a block; returns
/// the bytes written.
pub(crate) fn write_variable<'a>(
    var: &'a VariablePlan,
    out: &'a OutputTensor,
    old: &'a dyn CheckpointSource,
    target: &'a dyn CheckpointSource,
    writer: &Writer<'a>,
    options: &ExecOptions<'_>,
    done: u64,
) -> Result<u64, Stop> {
    if var.dtype == DType::String {
        return write_strings(var, out, old, target, writer);
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
    let whole_rows = !matches!(inner, Some(s) if !boxes::inner_is_full(&var.shape, &s.start, &s.len));
    let n = rows.end - rows.start;
    if let Some(remap) = scatter::applies(var, old, row_bytes, n, whole_rows, options.block_bytes) {
        let block_bytes = options.block_bytes;
        return scatter::write_remapped(var, remap, out, rows, row_bytes, old, target, writer, block_bytes, done);
    }
    // A whole tensor kept or copied as it is stored: file to file.
    let stored = match &var.action {
        Action::KeepInitial => Some((target, var.tensor.as_str())),
        Action::Copy { from, parts: None } => Some((old, from.as_str())),
        _ => None,
    };
    if let (Some((src, name)), None) = (stored, &out.sink.slice) {
        if let Some(written) = copy::copy_stored(src, name, writer, &out.sink, done)? {
            return Ok(written);
        }
    }
    let mut source = VariableRows { var, old, target, row_bytes, remap: None };
    let block_bytes = options.block_bytes;
    let out_row_bytes = match inner {
        Some(slice) if !slice.len.is_empty() => {
            let n: u64 = slice.len[1..].iter().product();
            usize::try_from(n).ok().and_then(|n| n.checked_mul(elem_size(var.dtype))).ok_or_else(too_large)?
        }
        _ => row_bytes,
    };
    let rows_per_block =
        if out_row_bytes == 0 { rows.end - rows.start } else { (block_bytes / out_row_bytes as u64).max(1) };
    writer.send(Job::Begin(&out.sink))?;
    let mut written = 0u64;
    let mut start = rows.start;
    while start < rows.end {
        let end = start.saturating_add(rows_per_block.max(1)).min(rows.end);
        let (block, release) = source.rows(start, end, || writer.buffer())?;
        match inner {
            Some(slice) if !boxes::inner_is_full(&var.shape, &slice.start, &slice.len) => {
                let mut buf = writer.buffer();
                buf.reserve(checked_len(&var.name, end - start, out_row_bytes)?);
                boxes::extract_box(
                    &block,
                    &var.shape,
                    end - start,
                    &slice.start,
                    &slice.len,
                    elem_size(var.dtype),
                    &mut buf,
                );
                written += buf.len() as u64;
                writer.send(Job::Data { bytes: Cow::Owned(buf), done: Some(done + written), release })?;
            }
            _ => {
                written += block.len() as u64;
                writer.send(Job::Data { bytes: block, done: Some(done + written), release })?;
            }
        }
        start = end;
    }
    writer.send(Job::End)?;
    Ok(written)
}

/// Writes a string variable whole (copied, or its initial value); strings are never split in parts.
fn write_strings<'a>(
    var: &VariablePlan,
    out: &OutputTensor,
    old: &dyn CheckpointSource,
    target: &dyn CheckpointSource,
    writer: &Writer<'a>,
) -> Result<u64, Stop> {
    if out.part.is_some() {
        return Err(ExecError::PartitionedStrings { variable: var.name.clone(), what: "written in parts" }.into());
    }
    let values = match &var.action {
        Action::Copy { from, parts: None } => old.read_strings(from)?,
        Action::Copy { parts: Some(_), .. } => {
            return Err(ExecError::PartitionedStrings { variable: var.name.clone(), what: "copied in parts" }.into())
        }
        _ => target.read_strings(&var.tensor)?,
    };
    writer.send(Job::Strings(SinkTensor { info: out.sink.info.clone(), slice: None }, values))?;
    Ok(0)
}
