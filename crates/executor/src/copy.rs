//! The copy path: a tensor copied through whole from its source ([`copy_tensor`]: the target's tensors
//! that are not variables), and the rows of a variable only some of whose partitions are copied from
//! the old tensor ([`copy_parts_rows`]). A variable copied whole needs neither: its rows are the old
//! tensor's, read as they are (see the `variable` module).

use std::ops::Range;

use warmstart_core::{CheckpointSource, DType, SinkTensor};
use warmstart_planner::VariablePlan;

use crate::boxes;
use crate::rows::{check_len, elem_size, Release};
use crate::writer::{Stop, Writer};
use crate::{ExecError, Job};

/// `warmstart_core::copy::copy_tensor` through the writer: the source tensor `name` in row blocks of
/// about `block_bytes`; returns the bytes written.
pub(crate) fn copy_tensor<'a>(
    src: &'a dyn CheckpointSource,
    name: &'a str,
    writer: &Writer<'a>,
    tensor: &'a SinkTensor,
    block_bytes: u64,
    done: u64,
) -> Result<u64, Stop> {
    let info = warmstart_core::copy::copyable_source(src, name, tensor)?;
    let written = tensor.byte_len().unwrap_or(0);
    if info.dtype == DType::String {
        let values = src.read_strings(name)?;
        writer.send(Job::Strings(tensor.clone(), values))?;
        writer.send(Job::Progress(done + written))?;
        return Ok(written);
    }
    if let Some(written) = copy_stored(src, name, writer, tensor, done)? {
        return Ok(written);
    }
    writer.send(Job::Begin(tensor))?;
    for rows in warmstart_core::copy::row_blocks(src.path(), info, block_bytes)? {
        let (bytes, release) = Release::read(src, name, rows)?;
        writer.send(Job::Data { bytes, done: None, release })?;
    }
    writer.send(Job::End)?;
    // Progress is reported once the whole tensor is written.
    writer.send(Job::Progress(done + written))?;
    Ok(written)
}

/// The source tensor `name` copied whole into `tensor` file to file by the writer thread, if the
/// source stores it whole and the sink writes at offsets (see `warmstart_core::copy`); returns the bytes
/// written, or `None` to copy it in blocks. The tensor is checked here first (a TF bundle verifies its
/// CRC32C, whose result the writer reuses for a TF output), so the writer copies one tensor while the
/// next is checked.
pub(crate) fn copy_stored<'a>(
    src: &'a dyn CheckpointSource,
    name: &'a str,
    writer: &Writer<'a>,
    tensor: &'a SinkTensor,
    done: u64,
) -> Result<Option<u64>, Stop> {
    let Some(stored) = warmstart_core::copy::stored_whole(src, name, writer.offsets(), tensor) else {
        return Ok(None);
    };
    let crc = warmstart_core::copy::checked_crc32c(src, name)?;
    writer.send(Job::CopyAt { tensor, stored, crc, source: src, name })?;
    writer.send(Job::Progress(done + stored.len))?;
    Ok(Some(stored.len))
}

/// Rows `rows` of a variable whose partitions `parts` are copied from the old tensor `from` and the
/// others keep their initial value: the target's rows, each listed partition's box overwritten with the
/// old tensor's. `expected` is the byte length of the rows.
pub(crate) fn copy_parts_rows(
    var: &VariablePlan,
    from: &str,
    parts: &[usize],
    old: &dyn CheckpointSource,
    target: &dyn CheckpointSource,
    rows: Range<u64>,
    expected: usize,
) -> Result<Vec<u8>, ExecError> {
    let (start, end) = (rows.start, rows.end);
    let mut buf = target.read_rows(&var.tensor, start..end)?.into_owned();
    target.release(&var.tensor, start..end);
    check_len(&var.name, start, end, buf.len(), expected)?;
    let old_rows = old.read_rows(from, start..end)?;
    check_len(from, start, end, old_rows.len(), expected)?;
    let elem = elem_size(var.dtype);
    for &p in parts {
        let part = &var.parts[p];
        boxes::copy_box(&old_rows, &mut buf, &var.shape, start..end, &part.start, &part.shape, elem);
    }
    old.release(from, start..end);
    Ok(buf)
}
