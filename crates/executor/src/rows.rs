//! Row access shared by every path that writes a tensor: reading a source's rows with their release
//! ([`Release`]), and the length checks on what a source returned. Below both the copy path and the
//! remap path, and uses neither.

use std::borrow::Cow;
use std::ops::Range;

use warmstart_core::{CheckpointSource, DType, Error as CoreError};

use crate::ExecError;

/// Rows of a source tensor that a block was borrowed from, to release once written.
pub(crate) struct Release<'a> {
    source: &'a dyn CheckpointSource,
    tensor: &'a str,
    rows: Range<u64>,
}

impl<'a> Release<'a> {
    /// Rows `rows` of `tensor`, and their release if they were borrowed from the source (owned bytes
    /// are copies, whose source rows the reader released itself or never mapped).
    pub(crate) fn read(
        source: &'a dyn CheckpointSource,
        tensor: &'a str,
        rows: Range<u64>,
    ) -> Result<(Cow<'a, [u8]>, Option<Self>), CoreError> {
        let bytes = source.read_rows(tensor, rows.clone())?;
        let release = matches!(bytes, Cow::Borrowed(_)).then_some(Release { source, tensor, rows });
        Ok((bytes, release))
    }

    /// Releases the rows from resident memory.
    pub(crate) fn run(self) {
        self.source.release(self.tensor, self.rows);
    }
}

/// The bytes of one element (1 for strings, which are never laid out in rows).
pub(crate) fn elem_size(d: DType) -> usize {
    d.size().unwrap_or(1)
}

/// The bytes of `rows` rows of `row_bytes` each, or [`ExecError::TooLarge`] for `tensor`.
pub(crate) fn checked_len(tensor: &str, rows: u64, row_bytes: usize) -> Result<usize, ExecError> {
    usize::try_from(rows)
        .ok()
        .and_then(|r| r.checked_mul(row_bytes))
        .ok_or_else(|| ExecError::TooLarge { tensor: tensor.to_string() })
}

/// [`ExecError::ShortRead`] unless a read of rows `start..end` of `tensor` returned `expected` bytes.
pub(crate) fn check_len(tensor: &str, start: u64, end: u64, got: usize, expected: usize) -> Result<(), ExecError> {
    if got != expected {
        return Err(ExecError::ShortRead { tensor: tensor.to_string(), start, end, got, expected });
    }
    Ok(())
}
