//! Long work (a warm-start, a conversion) with the GIL released and Ctrl-C honoured.
//!
//! The work runs on a thread of its own while the calling thread, without the GIL, waits for it and,
//! every few tens of milliseconds, takes the GIL to run Python's signal handlers
//! (`PyErr_CheckSignals`, which runs them only on the main thread). When a handler raises (Ctrl-C's
//! `KeyboardInterrupt`), the work's [`CancelToken`] is cancelled: its reads fail within one row block,
//! nothing is put in place, and the exception is raised once the work has stopped.

use std::thread;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use warmstart_core::cancel::CancelToken;

/// How often the waiting thread looks for signals.
const POLL: Duration = Duration::from_millis(20);

/// Runs `work` with a cancel token on a thread of its own, the GIL released, until it ends or a signal
/// handler raises; then the handler's exception is the result, whatever the work returned.
pub fn cancellable<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&CancelToken) -> T + Send,
{
    let token = CancelToken::new();
    thread::scope(|scope| {
        let handle = scope.spawn(|| work(&token));
        let mut interrupted = None;
        while !handle.is_finished() {
            py.detach(|| {
                let mut waited = Duration::ZERO;
                while !handle.is_finished() && waited < 5 * POLL {
                    thread::sleep(POLL / 4);
                    waited += POLL / 4;
                }
            });
            if interrupted.is_none() {
                if let Err(e) = py.check_signals() {
                    token.cancel();
                    interrupted = Some(e);
                }
            }
        }
        let result = py.detach(|| handle.join());
        match (interrupted, result) {
            (Some(e), _) => Err(e),
            (None, Ok(value)) => Ok(value),
            (None, Err(_)) => Err(PyRuntimeError::new_err("warmstart failed internally (a bug: please report it)")),
        }
    })
}
