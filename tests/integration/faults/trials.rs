//! Randomized fault trials (issue 14), `#[ignore]`d: `cargo xtask faults [N]` runs N trials of each
//! fault class against a TF checkpoint rewritten in place, and prints a table. Each trial asserts that
//! the folder ends holding the old checkpoint or the new one, byte for byte and nothing else (after
//! `warmstart recover` where the writer was killed), and the exit code. The seed is printed; set
//! `WARMSTART_FAULT_SEED` to replay a run, `WARMSTART_FAULT_TRIALS` for N (default 10).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{binary, SmallDisk};
use crate::journal::{convert_shards, have_strace, is_root, snapshot, sources, strace_convert, Snapshot};
use crate::util::{copy_folder, warmstart};

/// The new checkpoint's input for the classes that need a write long enough to be hit: this many
/// bytes of one tensor (about half a second to convert in a debug build; the trials time it).
const BIG: u64 = 32 << 20;

/// A xorshift generator: trials differ from run to run, and a seed replays them.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// How a trial ended: the old checkpoint or the new one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    Old,
    New,
}

type Trial = Result<End, String>;

/// The inputs and the reference folders, made once.
struct Fixture {
    work: tempfile::TempDir,
    /// The old checkpoint (2 shards of the `tf1_sharded` fixture), and its snapshot.
    old_dir: PathBuf,
    old: Snapshot,
    /// The small new input (`tf1_single`) and the folder after it is written over the old one.
    small: PathBuf,
    new_small: Snapshot,
    /// The big new input (a patterned safetensors file, see [`patterned`]) and the same.
    big: PathBuf,
    new_big: Snapshot,
    /// How many `write` calls the small rewrite makes.
    small_writes: u64,
    /// How long the big rewrite took, in milliseconds: signals and cuts come within 1.2 times that.
    big_ms: u64,
}

/// A safetensors file of one U8 tensor of `bytes` bytes, patterned (not zeros: a cut input read as a
/// zero page would otherwise pass for the original).
fn patterned(path: &Path, bytes: u64) {
    let header = format!("{{\"w\":{{\"dtype\":\"U8\",\"shape\":[{bytes}],\"data_offsets\":[0,{bytes}]}}}}");
    let header = format!("{header:<width$}", width = header.len().next_multiple_of(8));
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    file.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    file.write_all(header.as_bytes()).unwrap();
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64);
        file.write_all(&block[..n as usize]).unwrap();
        left -= n;
    }
}

/// The folder's snapshot after `src` is written over the old checkpoint.
fn written_over_old(fx_work: &Path, old_dir: &Path, src: &Path, name: &str) -> Snapshot {
    let dir = fx_work.join(name);
    copy_folder(old_dir, &dir);
    convert_shards(src, &dir.join("model.ckpt"), "2", &[]).expect_code(0);
    snapshot(&dir)
}

impl Fixture {
    fn new() -> Fixture {
        let work = tempfile::tempdir().unwrap();
        let (old_src, small) = sources();
        let old_dir = work.path().join("old");
        convert_shards(&old_src, &old_dir.join("model.ckpt"), "2", &[]).expect_code(0);
        let big = work.path().join("big.safetensors");
        patterned(&big, BIG);
        let new_small = written_over_old(work.path(), &old_dir, &small, "new_small");
        // The quickest of three (the first reads a cold cache).
        let mut big_ms = u64::MAX;
        let mut new_big = Snapshot::new();
        for i in 0..3 {
            let start = std::time::Instant::now();
            new_big = written_over_old(work.path(), &old_dir, &big, &format!("new_big{i}"));
            big_ms = big_ms.min(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
        }
        let old = snapshot(&old_dir);
        let mut fx = Fixture { old, work, old_dir, small, new_small, big, new_big, small_writes: 0, big_ms };
        fx.small_writes = fx.count_writes();
        fx
    }

    /// The `write` calls of the small rewrite (one thread: strace counts injections per thread).
    fn count_writes(&self) -> u64 {
        let dir = self.fresh().0;
        let log = dir.path().join("strace.log");
        let status = Command::new("strace")
            .args(["-f", "-e", "trace=write", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_warmstart"))
            .args(["convert".as_ref(), self.small.as_os_str(), dir.path().join("d/model.ckpt").as_os_str()])
            .args(["--to", "tf", "--shards", "2"])
            .output()
            .map(|o| o.status.success());
        if status.is_err() {
            return 0;
        }
        std::fs::read_to_string(&log).unwrap_or_default().lines().filter(|l| l.contains(" write(")).count() as u64
    }

    /// A scratch folder holding a copy of the old checkpoint in `d/`.
    fn fresh(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir_in(self.work.path()).unwrap();
        let d = dir.path().join("d");
        copy_folder(&self.old_dir, &d);
        (dir, d)
    }

    /// Which checkpoint `dir` holds, against the new one `new`.
    fn end(&self, dir: &Path, new: &Snapshot) -> Trial {
        let now = snapshot(dir);
        if now == self.old {
            Ok(End::Old)
        } else if now == *new {
            Ok(End::New)
        } else {
            Err(format!("neither old nor new: {:?}", now.keys().collect::<Vec<_>>()))
        }
    }
}

fn code_of(status: std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.code().or(status.signal().map(|s| 128 + s))
}

/// `warmstart recover` after a killed write.
fn recover(dir: &Path) -> Result<(), String> {
    let run = warmstart(["recover".as_ref(), dir.join("model.ckpt").as_os_str()]);
    if run.code == Some(0) {
        Ok(())
    } else {
        Err(format!("recover exited {:?}: {}", run.code, run.stderr))
    }
}

/// SIGKILL at a random rename of the small rewrite (there are 9; 10 lets it finish).
fn kill_at_rename(rng: &mut Rng, fx: &Fixture) -> Trial {
    let (_keep, d) = fx.fresh();
    let k = 1 + rng.below(10);
    let inject = format!("inject=rename,renameat,renameat2:signal=SIGKILL:when={k}");
    let (code, stderr) = strace_convert(&fx.small, &d.join("model.ckpt"), "2", &inject);
    match code {
        Some(137) => recover(&d)?,
        Some(0) if k == 10 => {}
        other => return Err(format!("rename {k}: exit {other:?}: {stderr}")),
    }
    fx.end(&d, &fx.new_small)
}

/// SIGKILL at a random `write` of the small rewrite (or one past the last, letting it finish).
fn kill_at_write(rng: &mut Rng, fx: &Fixture) -> Trial {
    let (_keep, d) = fx.fresh();
    let k = 1 + rng.below(fx.small_writes + 1);
    let inject = format!("inject=write:signal=SIGKILL:when={k}");
    let (code, stderr) = strace_convert(&fx.small, &d.join("model.ckpt"), "2", &inject);
    match code {
        Some(137) => recover(&d)?,
        Some(0) if k > fx.small_writes => {}
        other => return Err(format!("write {k}: exit {other:?}: {stderr}")),
    }
    fx.end(&d, &fx.new_small)
}

/// Starts `convert src dst --to tf --shards 2` with its output captured.
fn start_convert(src: &Path, dst: &Path, extra: &[&str]) -> Child {
    binary()
        .arg("convert")
        .arg(src)
        .arg(dst)
        .args(["--to", "tf", "--shards", "2"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (Option<i32>, String) {
    let output = child.wait_with_output().unwrap();
    (code_of(output.status), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// SIGTERM at a random moment of the big rewrite: exit 143 (the old checkpoint, or the new one if
/// the commit was done) or 0 (finished first).
fn sigterm(rng: &mut Rng, fx: &Fixture) -> Trial {
    let (_keep, d) = fx.fresh();
    let child = start_convert(&fx.big, &d.join("model.ckpt"), &[]);
    std::thread::sleep(Duration::from_millis(rng.below(fx.big_ms * 6 / 5)));
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill() only sends a signal to the child started above, not yet waited for.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let (code, stderr) = finish(child);
    let end = fx.end(&d, &fx.new_big)?;
    match (code, end) {
        (Some(143), _) | (Some(0), End::New) => Ok(end),
        _ => Err(format!("exit {code:?} with the {end:?} checkpoint: {stderr}")),
    }
}

/// The big input cut to a random size at a random moment of the rewrite: exit 1 naming the input
/// (old checkpoint), or 0 with the new checkpoint of the whole input (the input's data is patterned,
/// so bytes read after the cut would differ); never a signal.
fn truncated_input(rng: &mut Rng, fx: &Fixture) -> Trial {
    let (keep, d) = fx.fresh();
    let input = keep.path().join("in.safetensors");
    std::fs::copy(&fx.big, &input).unwrap();
    let child = start_convert(&input, &d.join("model.ckpt"), &[]);
    std::thread::sleep(Duration::from_millis(rng.below(fx.big_ms * 6 / 5)));
    std::fs::File::options().write(true).open(&input).unwrap().set_len(rng.below(BIG)).unwrap();
    let (code, stderr) = finish(child);
    let end = fx.end(&d, &fx.new_big)?;
    match (code, end) {
        (Some(1), End::Old) if stderr.contains("in.safetensors") => Ok(end),
        // Byte for byte the whole input's: it was read and checked whole before the cut (which may
        // still come before the commit's last rename).
        (Some(0), End::New) => Ok(end),
        _ => Err(format!("exit {code:?} with the {end:?} checkpoint: {stderr}")),
    }
}

/// The small and the big rewrite started together (in a random order, a random delay apart): each
/// succeeds or is refused for the other's lock, and the folder holds whole the output of one that
/// succeeded (the last).
fn two_writers(rng: &mut Rng, fx: &Fixture) -> Trial {
    let (_keep, d) = fx.fresh();
    let dst = d.join("model.ckpt");
    let big_first = rng.below(2) == 0;
    let (first, second) = if big_first { (&fx.big, &fx.small) } else { (&fx.small, &fx.big) };
    let a = start_convert(first, &dst, &[]);
    std::thread::sleep(Duration::from_millis(rng.below(fx.big_ms / 2)));
    let b = start_convert(second, &dst, &[]);
    let (ra, rb) = (finish(a), finish(b));
    let refused = |r: &(Option<i32>, String)| r.0 == Some(1) && r.1.contains("another warmstart is writing");
    for r in [&ra, &rb] {
        if r.0 != Some(0) && !refused(r) {
            return Err(format!("a writer exited {:?}: {}", r.0, r.1));
        }
    }
    let now = snapshot(&d);
    let (big_ok, small_ok) =
        if big_first { (ra.0 == Some(0), rb.0 == Some(0)) } else { (rb.0 == Some(0), ra.0 == Some(0)) };
    let matches =
        (big_ok && now == fx.new_big) || (small_ok && now == fx.new_small) || (!big_ok && !small_ok && now == fx.old);
    if !matches {
        return Err(format!(
            "big ok {big_ok}, small ok {small_ok}: the folder holds {:?}",
            now.keys().collect::<Vec<_>>()
        ));
    }
    Ok(if now == fx.old { End::Old } else { End::New })
}

/// `ulimit -f` of a random size (512-byte blocks, up to a little more than the data shard holding the
/// one big tensor needs): exit 1 "File too large" with the old checkpoint, or 0 with the new one.
fn file_size_limit(rng: &mut Rng, fx: &Fixture) -> Trial {
    let (_keep, d) = fx.fresh();
    let blocks = 1 + rng.below(BIG / 512 * 6 / 5);
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -f {blocks} && exec \"$0\" convert \"$1\" \"$2\" --to tf --shards 2"))
        .arg(env!("CARGO_BIN_EXE_warmstart"))
        .arg(&fx.big)
        .arg(d.join("model.ckpt"))
        .output()
        .unwrap();
    let (code, stderr) = (code_of(output.status), String::from_utf8_lossy(&output.stderr).into_owned());
    let end = fx.end(&d, &fx.new_big)?;
    match (code, end) {
        (Some(1), End::Old) if stderr.contains("too large") => Ok(end),
        (Some(0), End::New) => Ok(end),
        _ => Err(format!("ulimit -f {blocks}: exit {code:?} with the {end:?} checkpoint: {stderr}")),
    }
}

/// A tmpfs of a random size (from a little more than the old checkpoint to a little more than the new
/// one needs beside it) holding the old checkpoint: exit 1 "No space left on device" with the old
/// checkpoint, or 0 with the new one.
fn full_disk(rng: &mut Rng, fx: &Fixture) -> Trial {
    let keep = tempfile::tempdir_in(fx.work.path()).unwrap();
    let bytes = (256 << 10) + rng.below(BIG * 5 / 4);
    let Some(disk) = SmallDisk::mount(&keep.path().join("disk"), bytes) else {
        return Err("cannot mount a tmpfs".into());
    };
    copy_folder(&fx.old_dir, &disk.0);
    let output = binary()
        .arg("convert")
        .arg(&fx.big)
        .arg(disk.0.join("model.ckpt"))
        .args(["--to", "tf", "--shards", "2"])
        .output()
        .unwrap();
    let (code, stderr) = (code_of(output.status), String::from_utf8_lossy(&output.stderr).into_owned());
    let end = fx.end(&disk.0, &fx.new_big)?;
    match (code, end) {
        (Some(1), End::Old) if stderr.contains("No space left on device") => Ok(end),
        (Some(0), End::New) => Ok(end),
        _ => Err(format!("tmpfs of {bytes} B: exit {code:?} with the {end:?} checkpoint: {stderr}")),
    }
}

/// A fault class: its name, what it needs, its trial.
struct Class {
    name: &'static str,
    strace: bool,
    root: bool,
    trial: fn(&mut Rng, &Fixture) -> Trial,
}

const CLASSES: [Class; 7] = [
    Class { name: "SIGKILL at each rename (strace)", strace: true, root: false, trial: kill_at_rename },
    Class { name: "SIGKILL at each write (strace)", strace: true, root: false, trial: kill_at_write },
    Class { name: "SIGTERM at a random moment", strace: false, root: false, trial: sigterm },
    Class { name: "input truncated during the read", strace: false, root: false, trial: truncated_input },
    Class { name: "two writers at once", strace: false, root: false, trial: two_writers },
    Class { name: "`ulimit -f` at a random size", strace: false, root: false, trial: file_size_limit },
    Class { name: "ENOSPC (tmpfs of random size)", strace: false, root: true, trial: full_disk },
];

#[test]
#[ignore = "randomized and long: cargo xtask faults [N]"]
fn randomized_fault_trials() {
    let trials: usize = std::env::var("WARMSTART_FAULT_TRIALS").ok().and_then(|n| n.parse().ok()).unwrap_or(10);
    let seed = std::env::var("WARMSTART_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    println!("fault trials: {trials} per class, WARMSTART_FAULT_SEED={seed}");
    let (strace, root) = (have_strace(), is_root());
    let fx = Fixture::new();
    println!("the big rewrite takes {} ms; {} writes in the small one", fx.big_ms, fx.small_writes);
    let mut rng = Rng(seed);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for class in &CLASSES {
        if (class.strace && !strace) || (class.root && !root) {
            println!("{}: skipped (needs {})", class.name, if class.root { "root" } else { "strace" });
            continue;
        }
        let (mut clean, mut olds, mut news) = (0, 0, 0);
        for i in 0..trials {
            match (class.trial)(&mut rng, &fx) {
                Ok(End::Old) => (clean, olds) = (clean + 1, olds + 1),
                Ok(End::New) => (clean, news) = (clean + 1, news + 1),
                Err(e) => failures.push(format!("{} #{i}: {e}", class.name)),
            }
        }
        rows.push(format!("| {} | {trials} | {clean} | {olds} / {news} |", class.name));
    }
    println!("\n| class | trials | clean | old / new |\n|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    assert!(failures.is_empty(), "{} trials failed:\n{}", failures.len(), failures.join("\n"));
}
