//! The SIGBUS guard of input maps. A file truncated while it is mapped makes every access to its
//! pages past the new end raise SIGBUS, which would kill the process. While an [`InputMap`] lives,
//! its address range is in a fixed registry that a SIGBUS handler reads: a fault inside a registered
//! map gets anonymous zero pages mapped over the rest of the map (so the access, and every later one,
//! reads zeros) and the map's "changed under us" flag set; the readers check the flag and report the
//! input as changed, naming it. A fault anywhere else gets the previous disposition back (Rust's own
//! stack overflow handler, or the default action) and happens again, as if there were no guard.
//!
//! The handler is installed by the library, once, when the first input is mapped: the binary and
//! every library caller are guarded alike. The registry is a fixed array of atomics, so the handler
//! is async-signal-safe (it takes no lock and allocates nothing).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Maps registered at once; a map opened while every slot is taken is simply not guarded.
const SLOTS: usize = 4096;

/// One registered map: `start` is 0 while the slot is free.
struct Slot {
    taken: AtomicBool,
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    taken: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};

static REGISTRY: [Slot; SLOTS] = [FREE; SLOTS];

/// The page size, read once when the handler is installed (sysconf is not async-signal-safe).
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The disposition SIGBUS had before [`install`], put back for faults outside the registry.
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();
static INSTALLED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Installs the SIGBUS handler, once per process.
fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf only reads a system constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if let Ok(page) = usize::try_from(page) {
            if page.is_power_of_two() {
                PAGE.store(page, Ordering::Relaxed);
            }
        }
        let mut action = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: `action` is a zeroed sigaction, a valid value of this plain C struct; its mask is
        // initialised by sigemptyset before use.
        let mut action = unsafe {
            libc::sigemptyset(&mut (*action.as_mut_ptr()).sa_mask);
            action.assume_init()
        };
        action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: PREVIOUS is written only here, once (inside call_once), before the handler that
        // reads it is installed; `action` is a valid sigaction whose handler has the SA_SIGINFO
        // signature.
        let rc = unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::addr_of_mut!(PREVIOUS).cast()) };
        INSTALLED.store(rc == 0, Ordering::Release);
    });
}

/// The SIGBUS handler (async-signal-safe: atomics, mmap, sigaction and raise only).
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; for SIGBUS si_addr is the
    // faulting address.
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    // A fault (si_code > 0) in a registered map: zeros over the rest of it, and the flag set.
    if code > 0 && zero_from(addr) {
        return;
    }
    // SAFETY: PREVIOUS was filled in before this handler was installed and is never written again.
    unsafe {
        libc::sigaction(sig, std::ptr::addr_of!(PREVIOUS).cast(), std::ptr::null_mut());
        // A signal sent by a process is sent again; a fault happens again when the handler returns.
        if code <= 0 {
            libc::raise(sig);
        }
    }
}

/// If `addr` is inside a registered map, maps zero pages from its page to the end of that map and
/// flags the map; whether it did.
fn zero_from(addr: usize) -> bool {
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &REGISTRY {
        let start = slot.start.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Acquire);
        if start == 0 || addr < start || addr - start >= len {
            continue;
        }
        let from = addr & !(page - 1);
        let end = (start + len).next_multiple_of(page);
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
        // SAFETY: [from, end) lies within the registered read-only file map (its pages, rounded to
        // whole pages, all owned by that map), which is alive: a map leaves the registry before it
        // is unmapped. The pages replaced were unreadable (past the file's end), and the map is only
        // ever read, so no reference sees its contents change other than from "fault" to zeros.
        let mapped = unsafe { libc::mmap(from as *mut libc::c_void, end - from, libc::PROT_READ, flags, -1, 0) };
        if mapped == libc::MAP_FAILED {
            return false;
        }
        slot.faulted.store(true, Ordering::Release);
        return true;
    }
    false
}

/// A registered map's place in the registry; unregisters on drop.
#[derive(Debug)]
pub(super) struct Registration {
    slot: usize,
}

impl Registration {
    /// Registers `len` bytes at `start` (installing the handler first); `None` if the handler could
    /// not be installed or every slot is taken.
    pub(super) fn new(start: *const u8, len: usize) -> Option<Registration> {
        install();
        if !INSTALLED.load(Ordering::Acquire) || start.is_null() || len == 0 {
            return None;
        }
        let slot = REGISTRY
            .iter()
            .position(|s| s.taken.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok())?;
        let entry = &REGISTRY[slot];
        entry.faulted.store(false, Ordering::Relaxed);
        entry.len.store(len, Ordering::Release);
        entry.start.store(start as usize, Ordering::Release);
        Some(Registration { slot })
    }

    /// Whether a fault in the map was turned into zeros: the file shrank under it.
    pub(super) fn faulted(&self) -> bool {
        REGISTRY[self.slot].faulted.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let entry = &REGISTRY[self.slot];
        entry.start.store(0, Ordering::Release);
        entry.len.store(0, Ordering::Release);
        entry.faulted.store(false, Ordering::Relaxed);
        entry.taken.store(false, Ordering::Release);
    }
}
