//! The executor of warmstart: carries out a [`Plan`] from the planner, tensor by tensor, into a
//! [`CheckpointSink`], streaming row blocks of a few MiB so that no large tensor is ever held whole.
//!
//! Copies and initial values are written straight from the sources' (memory-mapped) rows. Vocabulary
//! remaps gather their rows in parallel (rayon) within each block, then blocks are written in order.
//! Writing runs on its own thread, fed through a short bounded queue, so that computing (or reading)
//! the next block overlaps writing the current one while memory stays bounded. Rows read from a memory
//! map are released from resident memory once written. A remap whose old tensor is larger than a block
//! is done in one pass over the old tensor in file order, its rows scattered to their places in the
//! output, written at offsets when the sink can (the `scatter` module, whose doc says why).
//! A tensor copied whole as its source stores it (a passthrough tensor, a variable copied or kept at its
//! initial value) into a sink that writes at offsets is checked on the producing thread and copied file
//! to file by the writer (`copy_file_range`; `Job::CopyAt`, see `warmstart_core::copy`), with the TF
//! source's verified CRC32C reused for a TF output: the kernel copies page cache to page cache, and
//! the source's pages are faulted in once, by the check, not again by the write. Measured at W1
//! (medians of 5, busy machine): `convert` TF -> safetensors 366-493 -> 337-348 ms of CPU, page faults
//! 11.8k -> 6.7k; `run` unchanged within the noise (the copies are a sixth of W1's bytes); safetensors
//! -> TF keeps hashing and writing each block in one pass (copying file to file and hashing apart
//! measured 0.32 s of CPU against 0.21 s).
//!
//! Where the time goes at 4 x W1 (2.4 GB, a 4,000,000 x 128 embedding; `perf record`, shares of
//! CPU samples, 2026-12-08, busy machine): moving rows in memory (staging, ordering) 16%; the kernel's
//! copy into the page cache 13%, and its accounting of the pages written (ext4, dirty buffers, page
//! cache lookups) about 9%; CRC32C 11%; reading step 1's slots back 7%; vocabulary lookups 8-9%;
//! page faults 1%; locks and wake-ups 2%. Before this session's changes the same run also spent
//! 1-7% spinning on the output's inode lock (`rwsem_spin_on_owner`) and 2% in `crc32c_combine`.
//!
//! [`load_and_remap`] reproduces TF's `_load_and_remap_matrix_initializer` for one partition.
//!
//! A run goes one way through the modules. [`execute`] (here) starts the writer thread (`writer`) and
//! walks the plan's output tensors, queueing `Job`s: a tensor that is not a variable is copied
//! through whole (`copy`); a variable's output tensor is written block by block (`variable`), its rows
//! taken from the target (initial value), from the old tensor (a copy; `copy` when only some
//! partitions are copied) or computed by a vocabulary remap (`remap`, executing the planner's
//! `remap_plan`; `scatter` for a large old tensor). Every path reads source rows through `rows`, which uses none of them; `boxes` does
//! the row-major arithmetic of partition boxes.
#![deny(missing_docs)]

mod boxes;
mod copy;
mod error;
mod remap;
mod rows;
mod scatter;
mod variable;
mod writer;

use std::borrow::Cow;
use std::sync::{mpsc, Arc};

use warmstart_core::{CheckpointSink, CheckpointSource, SinkTensor};
use warmstart_planner::{Action, Plan};

pub use error::ExecError;
pub use remap::{gather_partition, load_and_remap, load_and_remap_matrix};
use rows::Release;
use writer::{write_jobs, Stop, Writer, WriterStopped};

/// How to execute.
pub struct ExecOptions<'a> {
    /// About how many bytes one row block holds (at least one row). A vocabulary remap whose old
    /// tensor is larger than a block is done in one pass over it in file order (the `scatter` module),
    /// in regions of two blocks, reading the old tensor in chunks of a block.
    pub block_bytes: u64,
    /// Called after each block with the bytes written so far.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

impl Default for ExecOptions<'_> {
    fn default() -> Self {
        ExecOptions { block_bytes: warmstart_core::copy::DEFAULT_BLOCK_BYTES, progress: None }
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
    /// with `done` bytes, if given.
    Data { bytes: Cow<'a, [u8]>, done: Option<u64>, release: Option<Release<'a>> },
    /// `begin_tensor_at`, its region sent back to the producer.
    BeginAt(&'a SinkTensor, mpsc::SyncSender<warmstart_core::TensorRegion>),
    /// `bytes` written at `at` in `region` (a tensor begun with `BeginAt`, or a scratch file), after
    /// being appended to the tensor's CRC32C if `hash` (the hashed writes of a tensor come in order);
    /// then the buffer is given back on `back` (or to the writer's pool) and the progress callback
    /// called with `done` bytes, if given.
    WriteAt {
        region: Arc<warmstart_core::TensorRegion>,
        at: u64,
        bytes: Vec<u8>,
        hash: bool,
        done: Option<u64>,
        back: Option<mpsc::SyncSender<Vec<u8>>>,
    },
    /// `begin_tensor_at`, the tensor `name` of `source` (stored as `stored`, already checked, its
    /// verified CRC32C `crc` if the source stores one) written into its region
    /// (`warmstart_core::copy::fill_region`: file to file unless a CRC32C must be computed), and
    /// `end_tensor_at`.
    CopyAt {
        tensor: &'a SinkTensor,
        stored: warmstart_core::StoredBytes<'a>,
        crc: Option<u32>,
        source: &'a dyn CheckpointSource,
        name: &'a str,
    },
    /// Each of `writes` (an offset in `region` and its bytes) written, unhashed, then its buffer given
    /// back on `back`: step 1's staging buffers, sent a few at a time so that the writer is woken less.
    WriteMany {
        region: Arc<warmstart_core::TensorRegion>,
        writes: Vec<(u64, Vec<u8>)>,
        back: mpsc::SyncSender<Vec<u8>>,
    },
    /// Replies once every job before it is done.
    Fence(mpsc::SyncSender<()>),
    /// `end_tensor_at` with the tensor's region (no other handle on it is left) and, if the region
    /// wants it, the CRC32C of its hashed writes.
    EndAt(Arc<warmstart_core::TensorRegion>),
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
    let offsets = sink.writes_at_offsets();
    // A worker's part (`run --worker I/N`): the other workers' tensors are not computed at all.
    let kept: Vec<bool> = plan.outputs.iter().map(|o| sink.keeps(&o.sink)).collect();
    let (produced, written) = std::thread::scope(|scope| {
        let mut ahead = Some(scope.spawn(|| read_remap_sources_ahead(plan, old)));
        let writer_thread = scope.spawn(move || write_jobs(jobs, recycle, sink, progress));
        let writer = Writer::new(queue, recycled, offsets);
        let produced = produce(plan, &kept, (old, target), &writer, options, &mut report, &mut ahead);
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
            // A tensor whose checksum the one-pass remap verifies as it reads is left to it.
            let verified_in_pass = old.stores_crc32c(&remap.from);
            if !verified_in_pass && old.tensor(&remap.from).is_some_and(|t| t.rows() > 0) {
                let _ = old.read_rows(&remap.from, 0..1);
            }
        }
    }
}

/// Reads and computes every output tensor the sink keeps (`kept`), in order, queueing its blocks for the
/// writer; waits for the read-ahead (`ahead`) before the first remap.
fn produce<'a>(
    plan: &'a Plan,
    kept: &[bool],
    (old, target): (&'a dyn CheckpointSource, &'a dyn CheckpointSource),
    writer: &Writer<'a>,
    options: &ExecOptions<'_>,
    report: &mut Report,
    ahead: &mut Option<std::thread::ScopedJoinHandle<'_, ()>>,
) -> Result<(), Stop> {
    for (out, _) in plan.outputs.iter().zip(kept).filter(|(_, &kept)| kept) {
        let remap = out.variable.is_some_and(|vi| matches!(plan.variables[vi].action, Action::Remap(_)));
        if let (true, Some(read_ahead)) = (remap, ahead.take()) {
            read_ahead.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
        let written = match out.variable {
            None => copy::copy_tensor(target, &out.name, writer, &out.sink, options.block_bytes, report.bytes_written)?,
            Some(vi) => {
                variable::write_variable(&plan.variables[vi], out, old, target, writer, options, report.bytes_written)?
            }
        };
        report.bytes_written += written;
        report.tensors_written += 1;
    }
    Ok(())
}

#[cfg(test)]
mod mem;
