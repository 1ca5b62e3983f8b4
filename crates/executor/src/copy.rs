//! Copying one whole tensor from a source into the sink in row blocks.
//!
//! TODO(fold): `warmstart_core::copy::copy_tensor` (branch `st`) does the same; switch to it once it is
//! on main.

use warmstart_core::{CheckpointSink, CheckpointSource, DType, SinkTensor};

use crate::{check_len, checked_len, ExecError, ExecOptions};

/// Streams tensor `name` of `src` into `sink` as `tensor`; returns the bytes written.
pub(crate) fn copy_whole(
    src: &dyn CheckpointSource,
    name: &str,
    sink: &mut dyn CheckpointSink,
    tensor: &SinkTensor,
    options: &ExecOptions<'_>,
    done: u64,
) -> Result<u64, ExecError> {
    let info = src.require(name)?;
    if info.dtype == DType::String {
        let values = src.read_strings(name)?;
        sink.write_strings(tensor, &values)?;
        return Ok(0);
    }
    let too_large = || ExecError::TooLarge { tensor: name.to_string() };
    let row_bytes = usize::try_from(info.row_bytes().ok_or_else(too_large)?).map_err(|_| too_large())?;
    let rows = info.rows();
    let per_block = if row_bytes == 0 { rows.max(1) } else { (options.block_bytes / row_bytes as u64).max(1) };
    sink.begin_tensor(tensor)?;
    let mut written = 0u64;
    let mut start = 0;
    while start < rows {
        let end = start.saturating_add(per_block).min(rows);
        let bytes = src.read_rows(name, start..end)?;
        check_len(name, start, end, bytes.len(), checked_len(name, end - start, row_bytes)?)?;
        sink.write_data(&bytes)?;
        written += bytes.len() as u64;
        if let Some(progress) = options.progress {
            progress(done + written);
        }
        start = end;
    }
    sink.end_tensor()?;
    Ok(written)
}
