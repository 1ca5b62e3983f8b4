//! The writer thread and its queue: the producer queues [`Job`]s through a [`Writer`], and
//! [`write_jobs`], on its own thread, applies them to the sink in order, releases the source rows they
//! came from and hands the buffers back for reuse.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::mpsc;

use warmstart_core::{CheckpointSink, Error as CoreError};

use crate::{ExecError, Job, WINDOWS_IN_FLIGHT};

/// The producing side of the writer thread's queue.
pub(crate) struct Writer<'a> {
    queue: mpsc::SyncSender<Job<'a>>,
    /// Block buffers the writer is done with, for reuse: their pages stay mapped and warm.
    recycled: mpsc::Receiver<Vec<u8>>,
    /// Window buffers the writer is done with.
    windows_back: mpsc::Receiver<Vec<u8>>,
    /// Window buffers made and not given back by the writer (including `spare_window`).
    windows_out: Cell<usize>,
    /// A window buffer that never went to the writer, for the next window.
    spare_window: Cell<Option<Vec<u8>>>,
}

/// The writer thread has stopped on an error, which `execute` reports instead.
pub(crate) struct WriterStopped;

impl<'a> Writer<'a> {
    /// The producing side of `queue`, with the channels the writer gives block and window buffers back on.
    pub(crate) fn new(
        queue: mpsc::SyncSender<Job<'a>>,
        recycled: mpsc::Receiver<Vec<u8>>,
        windows_back: mpsc::Receiver<Vec<u8>>,
    ) -> Self {
        Writer { queue, recycled, windows_back, windows_out: Cell::new(0), spare_window: Cell::new(None) }
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

    /// Keeps a window buffer that never went to the writer for the next window.
    pub(crate) fn give_back_window(&self, window: Vec<u8>) {
        self.spare_window.set(Some(window));
    }

    /// A buffer for a remap window: the spare one, else a new one while fewer than
    /// [`WINDOWS_IN_FLIGHT`] exist, else the next one the writer gives back (waiting for it).
    pub(crate) fn window_buffer(&self) -> Vec<u8> {
        let buf = if let Some(spare) = self.spare_window.take() {
            spare
        } else if self.windows_out.get() < WINDOWS_IN_FLIGHT {
            self.windows_out.set(self.windows_out.get() + 1);
            Vec::new()
        } else {
            // A stopped writer gives nothing back; the next send reports it.
            self.windows_back.recv().unwrap_or_default()
        };
        // Not cleared: a window is overwritten whole, so keeping its length saves zeroing it again.
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
    windows_back: mpsc::SyncSender<Vec<u8>>,
    sink: &mut dyn CheckpointSink,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<(), CoreError> {
    for job in jobs {
        match job {
            Job::Begin(tensor) => sink.begin_tensor(tensor)?,
            Job::Data { bytes, done, release, window } => {
                sink.write_data(&bytes)?;
                if let Some(release) = release {
                    release.run();
                }
                match bytes {
                    // Never full: at most WINDOWS_IN_FLIGHT windows exist.
                    Cow::Owned(buf) if window => {
                        let _ = windows_back.try_send(buf);
                    }
                    // A full pool just drops it.
                    Cow::Owned(buf) => {
                        let _ = recycle.try_send(buf);
                    }
                    Cow::Borrowed(_) => {}
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
            Job::Strings(tensor, values) => sink.write_strings(&tensor, &values)?,
        }
    }
    Ok(())
}
