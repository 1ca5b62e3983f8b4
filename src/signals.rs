//! How the binary meets signals. SIGINT, SIGTERM and SIGHUP during `run` and `convert` remove the
//! temporary files of the output being written and the folders made for it (see
//! [`warmstart_core::output::abandon_uncommitted`]), say so, and end the process with 128 + the
//! signal's number. SIGXFSZ is ignored, so that writing past `ulimit -f` fails with "File too large"
//! (and the usual clean-up) instead of killing the process. The library installs one handler of its
//! own, for SIGBUS in its input maps (a file truncated while being read reads as zeros and becomes an
//! error naming it, see `warmstart_core::mapped::InputMap`), in this binary and for every library
//! caller alike; every other SIGBUS keeps its usual effect. Only this binary decides the rest.

use std::io::{IsTerminal, Write};

/// The signals that end a `run` or `convert` cleanly, with their names.
const INTERRUPTS: [(libc::c_int, &str); 3] =
    [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")];

/// Ignores SIGXFSZ: a write past the file size limit then fails with EFBIG, reported as any write
/// error, and the output's temporary files are removed.
pub fn ignore_file_size_limit() {
    // SAFETY: setting a signal's disposition to SIG_IGN touches no memory of this program.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Whether `sig` is ignored (as `nohup` leaves SIGHUP, or a shell SIGINT for a background job).
fn ignored(sig: libc::c_int) -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, sigaction only writes the current one into `old`, a valid
    // (zeroed) sigaction.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: `old` was zeroed, a valid value of this plain C struct, and sigaction filled it in.
    rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Makes SIGINT, SIGTERM and SIGHUP (those not ignored already) end the process cleanly: they are
/// blocked in this thread, whose signal mask every thread started later inherits, and a thread of
/// their own waits for them. Call it before any other thread is started.
pub fn clean_up_on_interrupt() {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: initialised by sigemptyset just above.
    let mut set = unsafe { set.assume_init() };
    for (sig, _) in INTERRUPTS.iter().filter(|(sig, _)| !ignored(*sig)) {
        // SAFETY: `set` is an initialised signal set and `sig` a valid signal number.
        unsafe { libc::sigaddset(&mut set, *sig) };
    }
    // SAFETY: `set` is an initialised signal set; the old mask is not asked for.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return;
    }
    let waiter = std::thread::Builder::new().name("signals".into()).spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is an initialised signal set, blocked in every thread; `sig` receives one.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            interrupted(sig);
        }
    });
    if waiter.is_err() {
        // SAFETY: as above; the signals get their default action back.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// Removes what the output being written left, says so and ends the process with 128 + `sig`.
fn interrupted(sig: libc::c_int) -> ! {
    let abandoned = warmstart_core::output::abandon_uncommitted();
    let name = INTERRUPTS.iter().find(|(s, _)| *s == sig).map_or("a signal", |(_, name)| name);
    let what = if abandoned.committed == 0 { "nothing was written" } else { "the output was already in place" };
    let mut err = std::io::stderr().lock();
    // Below a progress bar, on a line of its own.
    let newline = if err.is_terminal() { "\n" } else { "" };
    let _ = writeln!(err, "{newline}error: interrupted by {name}; {what}");
    // SAFETY: _exit ends the process at once, running no atexit handler (the HDF5 library's would
    // close files that another thread may be writing at this moment).
    unsafe { libc::_exit(128 + sig) }
}
