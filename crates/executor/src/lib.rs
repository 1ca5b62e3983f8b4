//! The executor of warmstart: carries out a [`Plan`] from the planner, tensor by tensor, into a
//! [`CheckpointSink`], streaming row blocks of a few MiB so that no large tensor is ever held whole.
//!
//! Copies and initial values are written straight from the sources' (memory-mapped) rows. Vocabulary
//! remaps gather their rows in parallel (rayon) within each block, then blocks are written in order.
//! Writing runs on its own thread, fed through a short bounded queue, so that computing (or reading)
//! the next block overlaps writing the current one while memory stays bounded. Rows read from a memory
//! map are released from resident memory once written. A remap whose old tensor is larger than the
//! window is computed in windows of new rows, each in one pass over the old tensor in file order (see
//! the `remap` module), at most [`WINDOWS_IN_FLIGHT`] windows at a time.
//! [`load_and_remap`] reproduces TF's `_load_and_remap_matrix_initializer` for one partition.
#![deny(missing_docs)]

mod boxes;
mod copy;
mod remap;
mod rows;
mod writer;

use std::borrow::Cow;
use std::sync::mpsc;

use warmstart_core::{CheckpointSink, CheckpointSource, DType, Error as CoreError, SinkTensor};
use warmstart_planner::{Action, OutputTensor, Plan, PlanError, VariablePlan};

pub use remap::{gather_partition, load_and_remap, load_and_remap_matrix};
use rows::{check_len, checked_len, elem_size, Release};
use writer::{write_jobs, Stop, Writer, WriterStopped};

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
    /// An old tensor of a vocabulary remap larger than this many bytes is never resident whole: the
    /// new variable is computed in windows of about this many bytes, each in one pass over the old
    /// tensor in file order. Peak memory is about [`WINDOWS_IN_FLIGHT`] windows; a smaller window
    /// means more passes.
    pub window_bytes: u64,
    /// Called after each block with the bytes written so far.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

/// The default [`ExecOptions::window_bytes`].
pub const DEFAULT_WINDOW_BYTES: u64 = 64 << 20;

/// Remap windows alive at once: one being written while the next is computed.
pub const WINDOWS_IN_FLIGHT: usize = 2;

impl Default for ExecOptions<'_> {
    fn default() -> Self {
        ExecOptions { block_bytes: warmstart_core::copy::DEFAULT_BLOCK_BYTES, window_bytes: DEFAULT_WINDOW_BYTES, progress: None }
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

/// Blocks queued for the writer thread beyond the one it is writing.
const QUEUE_BLOCKS: usize = 2;

/// One step for the writer thread, in the order the sink must see them.
enum Job<'a> {
    /// `begin_tensor`.
    Begin(&'a SinkTensor),
    /// `write_data`, then releasing the rows the bytes came from, if given, and the progress callback
    /// with `done` bytes, if given. A `window` buffer goes back to the producer's window pool.
    Data { bytes: Cow<'a, [u8]>, done: Option<u64>, release: Option<Release<'a>>, window: bool },
    /// The progress callback with this many bytes.
    Progress(u64),
    /// `end_tensor`.
    End,
    /// `write_strings`.
    Strings(SinkTensor, Vec<Vec<u8>>),
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
    let progress = options.progress;
    let (queue, jobs) = mpsc::sync_channel(QUEUE_BLOCKS);
    let (recycle, recycled) = mpsc::sync_channel(QUEUE_BLOCKS + 2);
    let (windows_return, windows_back) = mpsc::sync_channel(WINDOWS_IN_FLIGHT);
    let (produced, written) = std::thread::scope(|scope| {
        let mut ahead = Some(scope.spawn(|| read_remap_sources_ahead(plan, old)));
        let writer_thread = scope.spawn(move || write_jobs(jobs, recycle, windows_return, sink, progress));
        let writer = Writer::new(queue, recycled, windows_back);
        let produced = produce(plan, old, target, &writer, options, &mut report, &mut ahead);
        drop(writer);
        let written = writer_thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (produced, written)
    });
    // The writer is always behind the producer: its error came first.
    written?;
    match produced {
        Ok(()) => Ok(report),
        Err(Stop::Failed(e)) => Err(e),
        // Unreachable: the writer stops early only on an error, returned above.
        Err(Stop::Writer(WriterStopped)) => Ok(report),
    }
}

/// Reads the first row of every remap's old tensor, so that what a source does once, on a tensor's
/// first read (a TF bundle verifies the whole tensor's checksum), runs in the background while the
/// tensors before it are copied. Errors are left for the real reads to report. It is waited for before
/// the first remap: its checks run rayon tasks, which parallel tasks of a remap must not wait on.
fn read_remap_sources_ahead(plan: &Plan, old: &dyn CheckpointSource) {
    for v in &plan.variables {
        if let Action::Remap(remap) = &v.action {
            if old.tensor(&remap.from).is_some_and(|t| t.rows() > 0) {
                let _ = old.read_rows(&remap.from, 0..1);
            }
        }
    }
}

/// Reads and computes every output tensor in order, queueing its blocks for the writer; waits for the
/// read-ahead (`ahead`) before the first remap.
fn produce<'a>(
    plan: &'a Plan,
    old: &'a dyn CheckpointSource,
    target: &'a dyn CheckpointSource,
    writer: &Writer<'a>,
    options: &ExecOptions<'_>,
    report: &mut Report,
    ahead: &mut Option<std::thread::ScopedJoinHandle<'_, ()>>,
) -> Result<(), Stop> {
    for out in &plan.outputs {
        let remap = out.variable.is_some_and(|vi| matches!(plan.variables[vi].action, Action::Remap(_)));
        if let (true, Some(read_ahead)) = (remap, ahead.take()) {
            read_ahead.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
        let written = match out.variable {
            None => copy::copy_tensor(target, &out.name, writer, &out.sink, options.block_bytes, report.bytes_written)?,
            Some(vi) => write_variable(&plan.variables[vi], out, old, target, writer, options, report.bytes_written)?,
        };
        report.bytes_written += written;
        report.tensors_written += 1;
    }
    Ok(())
}

/// Produces rows of a variable's final (full) value.
struct VariableRows<'a> {
    var: &'a VariablePlan,
    old: &'a dyn CheckpointSource,
    target: &'a dyn CheckpointSource,
    row_bytes: usize,
    /// See [`ExecOptions::window_bytes`].
    window_bytes: u64,
    /// For a remap: how its old tensor is read, kept across blocks.
    remap: Option<remap::RemapState<'a>>,
}

impl<'a> VariableRows<'a> {
    /// Rows `start..end`, and the source rows to release once they are written (when borrowed); a
    /// block computed here goes into `buf` (empty, possibly with capacity).
    fn rows(&mut self, start: u64, end: u64, buf: impl FnOnce() -> Vec<u8>) -> Result<(Cow<'a, [u8]>, Option<Release<'a>>), ExecError> {
        let expected = checked_len(&self.var.name, end - start, self.row_bytes)?;
        let (bytes, release) = match &self.var.action {
            Action::KeepInitial => Release::read(self.target, &self.var.tensor, start..end)?,
            Action::Copy { from, parts: None } => Release::read(self.old, from, start..end)?,
            Action::Copy { from, parts: Some(parts) } => {
                (Cow::Owned(copy::copy_parts_rows(self.var, from, parts, self.old, self.target, start..end, expected)?), None)
            }
            Action::Remap(remap) => {
                let state = self.remap.get_or_insert_with(|| remap::RemapState::new(remap, self.window_bytes));
                let out = buf();
                (Cow::Owned(remap::remap_rows(out, state, self.var, remap, self.old, self.target, start, end, self.row_bytes)?), None)
            }
        };
        check_len(&self.var.name, start, end, bytes.len(), expected)?;
        Ok((bytes, release))
    }

    /// Whether the variable is computed in windows: a remap whose old tensor is streamed.
    fn windowed(&self) -> bool {
        let Action::Remap(remap) = &self.var.action else { return false };
        remap::streams(self.old, &remap.from, self.window_bytes)
    }
}

/// Writes one output tensor of a variable (the whole variable, or one partition of it) in row blocks,
/// or in windows when it is remapped from an old tensor larger than the window; returns the bytes
/// written.
fn write_variable<'a>(
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
    let mut source = VariableRows { var, old, target, row_bytes, window_bytes: options.window_bytes, remap: None };
    let windowed = source.windowed();
    let block_bytes = if windowed { options.window_bytes } else { options.block_bytes };
    let out_row_bytes = match inner {
        Some(slice) if !slice.len.is_empty() => {
            let n: u64 = slice.len[1..].iter().product();
            usize::try_from(n).ok().and_then(|n| n.checked_mul(elem_size(var.dtype))).ok_or_else(too_large)?
        }
        _ => row_bytes,
    };
    let rows_per_block = if out_row_bytes == 0 { rows.end - rows.start } else { (block_bytes / out_row_bytes as u64).max(1) };
    writer.send(Job::Begin(&out.sink))?;
    let mut written = 0u64;
    let mut start = rows.start;
    while start < rows.end {
        let end = start.saturating_add(rows_per_block.max(1)).min(rows.end);
        let (block, release) = source.rows(start, end, || if windowed { writer.window_buffer() } else { writer.buffer() })?;
        match inner {
            Some(slice) if !boxes::inner_is_full(&var.shape, &slice.start, &slice.len) => {
                let mut buf = writer.buffer();
                buf.reserve(checked_len(&var.name, end - start, out_row_bytes)?);
                boxes::extract_box(&block, &var.shape, end - start, &slice.start, &slice.len, elem_size(var.dtype), &mut buf);
                written += buf.len() as u64;
                writer.send(Job::Data { bytes: Cow::Owned(buf), done: Some(done + written), release, window: false })?;
                if let (true, Cow::Owned(window)) = (windowed, block) {
                    // Back to the pool at once: only the extract goes to the writer.
                    writer.give_back_window(window);
                }
            }
            _ => {
                written += block.len() as u64;
                let window = windowed && matches!(block, Cow::Owned(_));
                writer.send(Job::Data { bytes: block, done: Some(done + written), release, window })?;
            }
        }
        start = end;
    }
    writer.send(Job::End)?;
    Ok(written)
}

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

#[cfg(test)]
mod mem;
