//! Running one measured child process: wall time, peak resident memory (the kernel's `ru_maxrss` from
//! `wait4`, which counts the touched pages of memory-mapped files too) and peak anonymous memory
//! (`RssAnon` of `/proc/<pid>/status`, sampled every 2 ms: the memory the process allocates, which is
//! what must stay flat as the model grows), plus dropping the page cache for cold-cache runs.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What one run of a child cost.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Wall time, seconds.
    pub seconds: f64,
    /// Peak resident set (`ru_maxrss`), bytes.
    pub max_rss: u64,
    /// Peak sampled anonymous resident memory, bytes.
    pub max_anon: u64,
}

/// `RssAnon` of `/proc/<pid>/status`, bytes, if readable.
fn rss_anon(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs `command` to completion with its output in `log` (`.out` and `.err`), measuring it. Fails if it
/// cannot start or exits non-zero (the message shows the end of its stderr). Returns the sample and
/// its stdout.
pub fn run(command: &mut Command, log: &Path) -> Result<(Sample, String), String> {
    let shown = format!("{command:?}");
    let out_path = log.with_extension("out");
    let err_path = log.with_extension("err");
    let file = |p: &Path| fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    command.stdin(Stdio::null()).stdout(file(&out_path)?).stderr(file(&err_path)?);
    let start = Instant::now();
    let child = command.spawn().map_err(|e| format!("cannot run {shown}: {e}"))?;
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let peak_anon = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak_anon) = (done.clone(), peak_anon.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(anon) = rss_anon(pid) {
                    peak_anon.fetch_max(anon, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut status = 0i32;
    // SAFETY: `rusage` is plain old data that wait4 fills in; the pid is our own child, waited for once
    // (the `Child` handle is dropped without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = loop {
        // SAFETY: valid pointers to locals, as wait4(2) requires.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    let seconds = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    drop(child);
    if waited == -1 {
        return Err(format!("waiting for {shown}: {}", std::io::Error::last_os_error()));
    }
    let stderr_tail = || {
        let text = fs::read_to_string(&err_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{shown} failed (wait status {status}):\n{}", stderr_tail()));
    }
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    // ru_maxrss is in kilobytes on Linux.
    let max_rss = (usage.ru_maxrss.max(0) as u64) * 1024;
    Ok((Sample { seconds, max_rss, max_anon: peak_anon.load(Ordering::Relaxed) }, stdout))
}

/// Writes every dirty page back to disk.
pub fn sync() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Writes dirty pages back and drops the page cache (needs root); an error says why it cannot.
pub fn drop_page_cache() -> Result<(), String> {
    sync();
    fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(|e| format!("cannot drop the page cache: {e}"))
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn measures_a_child_that_allocates() {
        let dir = tempfile::tempdir().unwrap();
        // python3 is not guaranteed; `head -c` into a shell variable is: allocate ~64 MiB in the shell.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}"]);
        let (sample, out) = run(&mut cmd, &dir.path().join("alloc")).unwrap();
        assert_eq!(out.trim(), "67108864");
        assert!(sample.max_rss >= 64 << 20, "ru_maxrss {} below the 64 MiB the shell held", sample.max_rss);
        assert!(sample.seconds > 0.0);
    }

    #[test]
    fn a_failing_child_is_an_error_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom >&2; exit 3"]);
        let err = run(&mut cmd, &dir.path().join("fail")).unwrap_err();
        assert!(err.contains("boom"), "{err}");
    }
}
