//! The driver: a parent that runs each target in a child process (this binary again, with `--child`)
//! until its time is up, restarting the child after it dies, and a child that runs inputs
//! `from, from + 1, ...` of the target in-process.
//!
//! Before each input the child writes it to `<out>/<target>/current.bin` (and its number to
//! `current.iter`), so that when the child dies (an abort such as a failed allocation under the
//! child's address-space limit, a stack overflow, a crash inside the HDF5 C library, or the watchdog's
//! exit after [`HARD_TIMEOUT`]) the parent keeps that file as the reproducer and restarts at the next
//! input. Panics are caught in the child (`catch_unwind`); inputs slower than the hang limit and
//! requests for more than [`LARGE_ALLOC`] bytes at once are reported with their reproducers too.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::mutate;
use crate::targets::{target, Target};

/// An input still running after this is a hang the child cannot recover from: the watchdog exits.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A single allocation request above this is reported (the fixtures need kilobytes).
pub const LARGE_ALLOC: usize = 256 << 20;

/// The child's exit code when its watchdog stopped a hung input.
const TIMEOUT_EXIT: i32 = 3;

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds per target.
    pub seconds: u64,
    /// The run's seed: with the same seed, input `i` of a target is the same.
    pub seed: u64,
    /// Where each target's findings, reproducers and logs go (`<out>/<target>/`).
    pub out: PathBuf,
    /// Inputs slower than this are reported as hangs.
    pub hang: Duration,
    /// The child's address-space limit in MiB (0: none).
    pub mem_mb: u64,
}

/// What one target's run found: executions, and findings as `(kind, reproducer, message)`.
#[derive(Debug, Default)]
pub struct Report {
    /// Inputs run.
    pub execs: u64,
    /// Rust-side failures: panics, hangs, large allocations, aborts.
    pub failures: Vec<String>,
    /// Crashes inside a C library (known issues, not failures).
    pub c_crashes: Vec<String>,
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Runs `target` for `options.seconds` in child processes of `exe`, restarting after each crash.
pub fn supervise(exe: &Path, target: &Target, options: &Options) -> Result<Report, String> {
    let dir = options.out.join(target.name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let until = now_ms() + options.seconds * 1000;
    let mut report = Report::default();
    let mut from = 0u64;
    loop {
        let log = OpenOptions::new().create(true).append(true).open(dir.join("stderr.log"));
        let log = log.map_err(|e| format!("cannot open the child's log: {e}"))?;
        let status = Command::new(exe)
            .args(["--child", target.name, "--from", &from.to_string(), "--until-ms", &until.to_string()])
            .args(["--seed", &options.seed.to_string(), "--hang-ms", &options.hang.as_millis().to_string()])
            .args(["--mem-mb", &options.mem_mb.to_string()])
            .arg("--out")
            .arg(&options.out)
            .stdin(Stdio::null())
            .stderr(log)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if status.success() {
            let next = read_number(&dir.join("status"))?;
            report.execs += next.saturating_sub(from);
            break;
        }
        let iteration = read_number(&dir.join("current.iter"))?;
        report.execs += iteration + 1 - from;
        record_death(target, &dir, iteration, status.code(), &mut report)?;
        from = iteration + 1;
        if now_ms() >= until {
            break;
        }
    }
    collect_findings(&dir, &mut report);
    Ok(report)
}

/// Keeps the input a child died on as `<kind>-<iteration>.bin` and files it by its cause.
fn record_death(
    target: &Target,
    dir: &Path,
    iteration: u64,
    code: Option<i32>,
    report: &mut Report,
) -> Result<(), String> {
    let log = fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
    let rust_abort = ["memory allocation of", "overflowed its stack", "panicked"].iter().any(|m| tail.contains(m));
    let kind = match code {
        Some(TIMEOUT_EXIT) => "timeout",
        _ if rust_abort => "abort",
        _ if target.calls_c => "c-crash",
        _ => "crash",
    };
    let file = dir.join(format!("{kind}-{iteration}.bin"));
    fs::copy(dir.join("current.bin"), &file).map_err(|e| format!("cannot keep {}: {e}", file.display()))?;
    let line = format!("{kind} input {iteration} ({}, exit {code:?}): {tail}", file.display());
    if kind == "c-crash" {
        report.c_crashes.push(line);
    } else {
        report.failures.push(line);
    }
    Ok(())
}

/// Adds the findings the children wrote (`findings.txt`) to `report`.
fn collect_findings(dir: &Path, report: &mut Report) {
    let text = fs::read_to_string(dir.join("findings.txt")).unwrap_or_default();
    report.failures.extend(text.lines().map(str::to_string));
}

/// A number in a file the child wrote.
fn read_number(path: &Path) -> Result<u64, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.trim().parse().map_err(|_| format!("{}: not a number: {text:?}", path.display()))
}

/// What a child is asked to do.
#[derive(Debug, Clone)]
pub struct ChildArgs {
    /// The target's name.
    pub target: String,
    /// The first input to run.
    pub from: u64,
    /// When to stop (ms since the Unix epoch).
    pub until_ms: u64,
    /// The run's options.
    pub options: Options,
}

/// When the input running started (ms since the epoch), or 0 between inputs.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// The last panic's message and place, as the panic hook saw it.
static PANIC: Mutex<String> = Mutex::new(String::new());

/// The child: runs the inputs from `args.from` until `args.until_ms`, then writes the next input's
/// number to `status` and returns 0. A watchdog exits with [`TIMEOUT_EXIT`] when an input runs for
/// longer than [`HARD_TIMEOUT`].
pub fn child(args: &ChildArgs) -> i32 {
    let Some(target) = target(&args.target) else {
        eprintln!("warmstart-fuzz: no target {:?}", args.target);
        return 2;
    };
    limit_memory(args.options.mem_mb);
    panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload.downcast_ref::<&str>().copied();
        let message =
            message.or_else(|| payload.downcast_ref::<String>().map(String::as_str)).unwrap_or("(not a string)");
        let place = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
        *PANIC.lock().unwrap_or_else(|e| e.into_inner()) = format!("{message}{place}");
    }));
    let args = args.clone();
    // The inputs run on a thread of their own, whose temporary folder goes when it ends.
    let worker = std::thread::spawn(move || run_inputs(target, &args));
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let started = STARTED.load(Ordering::Relaxed);
        if started != 0 && now_ms().saturating_sub(started) > HARD_TIMEOUT.as_millis() as u64 {
            eprintln!("warmstart-fuzz: an input ran for more than {HARD_TIMEOUT:?}");
            std::process::exit(TIMEOUT_EXIT);
        }
    }
    match worker.join() {
        Ok(Ok(())) => 0,
        Ok(Err(message)) => {
            eprintln!("warmstart-fuzz: {message}");
            1
        }
        Err(_) => 1,
    }
}

/// Runs the inputs of `target` from `args.from` until the time is up, writing each to `current.bin`
/// first and the findings to `findings.txt`.
fn run_inputs(target: &Target, args: &ChildArgs) -> Result<(), String> {
    let dir = args.options.out.join(target.name);
    let seeds = (target.seeds)();
    let mut iteration = args.from;
    while now_ms() < args.until_ms {
        let input = mutate::input(&seeds, &mut mutate::rng_for(args.options.seed, target.name, iteration), iteration);
        write_file(&dir.join("current.bin"), &input)?;
        write_file(&dir.join("current.iter"), iteration.to_string().as_bytes())?;
        crate::alloc::take_largest();
        let start = Instant::now();
        STARTED.store(now_ms().max(1), Ordering::Relaxed);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        STARTED.store(0, Ordering::Relaxed);
        let elapsed = start.elapsed();
        let largest = crate::alloc::take_largest();
        if outcome.is_err() {
            let message = PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone();
            finding(&dir, "panic", iteration, &input, &message)?;
        }
        if elapsed > args.options.hang {
            finding(&dir, "hang", iteration, &input, &format!("took {elapsed:?}"))?;
        }
        if largest > LARGE_ALLOC {
            finding(&dir, "large-alloc", iteration, &input, &format!("asked for {largest} bytes at once"))?;
        }
        iteration += 1;
    }
    write_file(&dir.join("status"), iteration.to_string().as_bytes())
}

/// Keeps `input` as `<kind>-<iteration>.bin` and adds a line to `findings.txt`.
fn finding(dir: &Path, kind: &str, iteration: u64, input: &[u8], message: &str) -> Result<(), String> {
    let file = dir.join(format!("{kind}-{iteration}.bin"));
    write_file(&file, input)?;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("findings.txt"))
        .map_err(|e| format!("cannot open findings.txt: {e}"))?;
    writeln!(log, "{kind} input {iteration} ({}): {message}", file.display()).map_err(|e| e.to_string())
}

/// Writes `bytes` to `path`.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Limits this process's address space to `mb` MiB (0: no limit), so that a runaway allocation fails
/// (and aborts the child, which the parent reports) instead of swapping the machine.
fn limit_memory(mb: u64) {
    if mb == 0 {
        return;
    }
    let bytes = mb.saturating_mul(1 << 20) as libc::rlim_t;
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
    // SAFETY: `limit` is a valid, initialised rlimit that setrlimit only reads.
    let result = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    if result != 0 {
        eprintln!("warmstart-fuzz: setrlimit(RLIMIT_AS) failed: {}", std::io::Error::last_os_error());
    }
}
