//! The executor's error: what can go wrong carrying out a plan.

use warmstart_core::Error as CoreError;
use warmstart_planner::PlanError;

/// Why executing a plan failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// Reading a source or writing the sink failed.
    #[error(transparent)]
    Checkpoint(#[from] CoreError),
    /// A planning refusal (from [`load_and_remap`](crate::load_and_remap)); boxed, so that `Result`s
    /// stay small.
    #[error(transparent)]
    Plan(Box<PlanError>),
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

impl From<PlanError> for ExecError {
    fn from(e: PlanError) -> Self {
        ExecError::Plan(Box::new(e))
    }
}
