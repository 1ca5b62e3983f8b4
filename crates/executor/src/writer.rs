//! The writer thread and its queue: the producer queues [`Job`]s through a [`Writer`], and
//! [`write_jobs`], on its own thread, applies them to the sink in order, releases the source rows they
//! came from and hands the buffers back for reuse.

use std::borrow::Cow;
use std::sync::{mpsc, Arc};

use warmstart_core::{CheckpointSink, Error as CoreError, SinkTensor, TensorRegion};

use crate::{ExecError, Job};

/// The producing side of the writer thread's queue.
pub(crate) struct Writer<'a> {
    queue: mpsc::SyncSender<Job<'a>>,
    /// Block buffers the writer is done with, for reuse: their pages stay mapped and warm.
    recycled: mpsc::Receiver<Vec<u8>>,
    /// Whether the sink writes tensors at offsets ([`CheckpointSink::writes_at_offsets`]).
    offsets: bool,
}

/// The writer thread has stopped on an error, which `execute` reports instead.
pub(crate) struct WriterStopped;

impl<'a> Writer<'a> {
    /// The producing side of `queue`, with the channel the writer gives block buffers back on, for a
    /// sink that writes at `offsets` or not.
    pub(crate) fn new(queue: mpsc::SyncSender<Job<'a>>, recycled: mpsc::Receiver<Vec<u8>>, offsets: bool) -> Self {
        Writer { queue, recycled, offsets }
    }

    /// Whether the sink writes tensors at offsets.
    pub(crate) fn offsets(&self) -> bool {
        self.offsets
    }

    /// Starts `tensor` written at offsets (once the writer has written everything queued before it),
    /// returning its region.
    pub(crate) fn begin_at(&self, tensor: &'a SinkTensor) -> Result<TensorRegion, Stop> {
        let (reply, region) = mpsc::sync_channel(1);
        self.send(Job::BeginAt(tensor, reply))?;
        // A writer that failed drops the reply channel; its error is reported.
        region.recv().map_err(|_| Stop::Writer(WriterStopped))
    }

    /// Waits until the writer has done every job queued so far (and so written every byte queued at
    /// offsets).
    pub(crate) fn fence(&self) -> Result<(), Stop> {
        let (reply, done) = mpsc::sync_channel(1);
        self.send(Job::Fence(reply))?;
        done.recv().map_err(|_| Stop::Writer(WriterStopped))
    }

    /// Another handle on the queue, for a thread of its own (a [`Writer`] is not shared between
    /// threads).
    pub(crate) fn sender(&self) -> mpsc::SyncSender<Job<'a>> {
        self.queue.clone()
    }

    /// Queues `job` for the writer thread.
    pub(crate) fn send(&self, job: Job<'a>) -> Result<(), Stop> {
        self.queue.send(job).map_err(|_| Stop::Writer(WriterStopped))
    }

    /// A buffer the writer is done with, its bytes as they were (for a caller that overwrites every
    /// byte it uses): waiting for one if `wait` (the caller knows one is coming: it has queued buffers
    /// the writer gives back), else one if there is one; or a new, empty one (also if the writer has
    /// stopped).
    pub(crate) fn buffer_as_is(&self, wait: bool) -> Vec<u8> {
        let given = if wait { self.recycled.recv().ok() } else { self.recycled.try_recv().ok() };
        given.unwrap_or_default()
    }

    /// An empty buffer, reusing one the writer is done with if there is one.
    pub(crate) fn buffer(&self) -> Vec<u8> {
        let mut buf = self.recycled.try_recv().unwrap_or_default();
        buf.clear();
        buf
    }
}

/// Why producing stopped early.
pub(crate) enum Stop {
    /// Producing failed.
    Failed(ExecError),
    /// The writer failed (its error is reported).
    Writer(WriterStopped),
}

impl<E: Into<ExecError>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Failed(e.into())
    }
}

/// The bytes one CRC32C append covers before they are written, while still in the processor's cache.
const HASH_PIECE_BYTES: usize = 1 << 20;

/// Applies `jobs` to `sink` in order until the queue closes or a call fails.
pub(crate) fn write_jobs(
    jobs: mpsc::Receiver<Job<'_>>,
    recycle: mpsc::SyncSender<Vec<u8>>,
    sink: &mut dyn CheckpointSink,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<(), CoreError> {
    // The CRC32C of the hashed writes of the tensor begun at offsets.
    let mut crc = 0u32;
    for job in jobs {
        match job {
            Job::Begin(tensor) => sink.begin_tensor(tensor)?,
            Job::Data { bytes, done, release } => {
                sink.write_data(&bytes)?;
                if let Some(release) = release {
                    release.run();
                }
                // A full pool just drops it.
                if let Cow::Owned(buf) = bytes {
                    let _ = recycle.try_send(buf);
                }
                report(progress, done);
            }
            Job::WriteAt { region, at, bytes, hash, done, back } => {
                write_at(&region, at, &bytes, hash.then_some(&mut crc))?;
                // A full pool just drops it.
                let _ = back.as_ref().unwrap_or(&recycle).try_send(bytes);
                report(progress, done);
            }
            Job::WriteMany { region, writes, back } => {
                for (at, bytes) in writes {
                    region.write_at(at, &bytes)?;
                    // A full pool just drops it.
                    let _ = back.try_send(bytes);
                }
            }
            Job::Fence(reply) => {
                let _ = reply.send(());
            }
            Job::Progress(done) => report(progress, Some(done)),
            Job::End => sink.end_tensor()?,
            Job::BeginAt(tensor, reply) => {
                let region = sink.begin_tensor_at(tensor)?;
                crc = 0;
                // The producer waits for it; if it stopped, the region is dropped.
                let _ = reply.send(region);
            }
            Job::EndAt(region) => {
                let region = Arc::try_unwrap(region).map_err(|_| {
                    let reason = "a tensor ended while its region was still in use";
                    CoreError::io(sink.path(), std::io::Error::other(reason))
                })?;
                let crc = region.wants_crc32c().then_some(crc);
                sink.end_tensor_at(region, crc)?;
            }
            Job::Strings(tensor, values) => sink.write_strings(&tensor, &values)?,
            Job::CopyAt { tensor, stored, crc, source, name } => {
                let region = sink.begin_tensor_at(tensor)?;
                let crc = warmstart_core::copy::fill_region(source, name, &region, stored, crc)?;
                sink.end_tensor_at(region, crc)?;
            }
        }
    }
    Ok(())
}

/// Writes `bytes` at `at` in `region`, a piece at a time, each appended to `crc` (if given) just before
/// it is written.
fn write_at(region: &TensorRegion, at: u64, bytes: &[u8], crc: Option<&mut u32>) -> Result<(), CoreError> {
    let Some(crc) = crc else { return region.write_at(at, bytes) };
    for (i, piece) in bytes.chunks(HASH_PIECE_BYTES).enumerate() {
        *crc = crc32c::crc32c_append(*crc, piece);
        region.write_at(at + (i * HASH_PIECE_BYTES) as u64, piece)?;
    }
    Ok(())
}

/// The progress callback with `done` bytes, if both are given.
fn report(progress: Option<&(dyn Fn(u64) + Sync)>, done: Option<u64>) {
    if let (Some(progress), Some(done)) = (progress, done) {
        progress(done);
    }
}
