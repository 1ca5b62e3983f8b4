//! The writer thread and its queue: the producer queues [`Job`]s through a [`Writer`], and
//! [`write_jobs`], on its own thread, applies them to the sink in order, releases the source rows they
//! came from and hands the buffers back for reuse.

use std::borrow::Cow;
use std::sync::mpsc;

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

    /// Queues `job` for the writer thread.
    pub(crate) fn send(&self, job: Job<'a>) -> Result<(), Stop> {
        self.queue.send(job).map_err(|_| Stop::Writer(WriterStopped))
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

/// Applies `jobs` to `sink` in order until the queue closes or a call fails.
pub(crate) fn write_jobs(
    jobs: mpsc::Receiver<Job<'_>>,
    recycle: mpsc::SyncSender<Vec<u8>>,
    sink: &mut dyn CheckpointSink,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<(), CoreError> {
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
                if let (Some(progress), Some(done)) = (progress, done) {
                    progress(done);
                }
            }
            Job::Progress(done) => {
                if let Some(progress) = progress {
                    progress(done);
                }
            }
            Job::End => sink.end_tensor()?,
            Job::BeginAt(tensor, reply) => {
                let region = sink.begin_tensor_at(tensor)?;
                // The producer waits for it; if it stopped, the region is dropped.
                let _ = reply.send(region);
            }
            Job::EndAt(region, crc) => sink.end_tensor_at(region, crc)?,
            Job::Strings(tensor, values) => sink.write_strings(&tensor, &values)?,
        }
    }
    Ok(())
}
