//! Faults around a write (issue 14): signals during `run` and `convert`, a file size limit, standard
//! output closed or full, a destination folder that does not exist, an HDF5 output that cannot hold
//! its names, and a TF prefix rewritten with fewer shards. Each leaves no temporary file behind.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{files_in, warmstart};

// Randomized trials of every fault class, run by `cargo xtask faults [N]`.
#[cfg(feature = "tf")]
mod trials;

/// Writes a safetensors file of F32 tensors of the given byte sizes (multiples of 4), all zeros: the
/// data is a hole in a sparse file, so that a large input costs nothing to make.
pub(crate) fn safetensors_of_zeros(path: &Path, tensors: &[(&str, u64)]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, bytes) in tensors {
        let entry = serde_json::json!({"dtype": "F32", "shape": [bytes / 4], "data_offsets": [offset, offset + bytes]});
        header.insert(name.to_string(), entry);
        offset += bytes;
    }
    let mut json = serde_json::to_vec(&header).unwrap();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut file = std::fs::File::create(path).unwrap();
    std::io::Write::write_all(&mut file, &(json.len() as u64).to_le_bytes()).unwrap();
    std::io::Write::write_all(&mut file, &json).unwrap();
    file.set_len(8 + json.len() as u64 + offset).unwrap();
}

/// The built binary, its signal dispositions reset to the default (a test run in the background
/// of a script inherits SIGINT ignored, which the binary respects).
pub(crate) fn binary() -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_warmstart"));
    // SAFETY: between fork and exec, only signal(), which is async-signal-safe, is called.
    unsafe {
        command.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    command
}

/// Every file under `dir`, recursively, as paths relative to it.
pub(crate) fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Waits until a staged temporary file under `dir` has data in it, then sends `sig` to `child`.
fn signal_mid_write(child: &mut Child, dir: &Path, sig: libc::c_int) {
    let start = Instant::now();
    loop {
        let writing = tree(dir).iter().any(|f| {
            f.ends_with(".tmp") && std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0 || m.blocks() > 0)
        });
        if writing {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "ended before writing: {:?}", tree(dir));
        assert!(start.elapsed() < Duration::from_secs(20), "no temporary file appeared: {:?}", tree(dir));
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill() only sends a signal to the child this test started and has not waited for.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// The formats this build writes, with a destination name of each.
pub(crate) fn outputs() -> Vec<&'static str> {
    let mut outputs = vec!["out.safetensors"];
    if cfg!(feature = "tf") {
        outputs.push("out.ckpt");
    }
    if cfg!(feature = "hdf5") {
        outputs.push("out.h5");
    }
    if cfg!(feature = "numpy") {
        outputs.push("out.npz");
    }
    outputs
}

/// SIGTERM, SIGINT and SIGHUP in the middle of a 1 GiB conversion into a folder that did not exist:
/// exit 128 + n with a message, and neither a temporary file nor the folders made are left.
#[test]
fn a_signal_mid_convert_removes_the_staged_output_and_exits_128_plus_n() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.safetensors");
    safetensors_of_zeros(&src, &[("big", 1 << 30)]);
    let signals = [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT"), (libc::SIGHUP, "SIGHUP")];
    for (i, dst) in outputs().into_iter().enumerate() {
        let (sig, name) = signals[i % signals.len()];
        assert_signal_mid_convert_leaves_nothing(dir.path(), &src, dst, (sig, name));
    }
}

/// Sends `sig` to `convert SRC made/deeper/DST` (in `dir`, which holds only `src`) once it writes:
/// exit 128 + n with a message, and nothing left but `src`.
fn assert_signal_mid_convert_leaves_nothing(dir: &Path, src: &Path, dst: &str, (sig, name): (libc::c_int, &str)) {
    let dst = dir.join("made/deeper").join(dst);
    let mut child =
        binary().arg("convert").arg(src).arg(&dst).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    signal_mid_write(&mut child, dir, sig);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(128 + sig), "{dst:?}: {stderr}");
    assert!(stderr.contains(&format!("interrupted by {name}; nothing was written")), "{stderr}");
    let src = src.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(files_in(dir), [src], "{dst:?}");
}

/// SIGINT (the loop above sends the `.npz` output SIGTERM) in the middle of a 1 GiB `.npz` output.
#[cfg(feature = "numpy")]
#[test]
fn sigint_mid_convert_into_an_npz_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.safetensors");
    safetensors_of_zeros(&src, &[("big", 1 << 30)]);
    assert_signal_mid_convert_leaves_nothing(dir.path(), &src, "out.npz", (libc::SIGINT, "SIGINT"));
}

/// The same for `run`: its output and the folders made for it go.
#[test]
fn a_signal_mid_run_removes_the_staged_output() {
    let dir = tempfile::tempdir().unwrap();
    safetensors_of_zeros(&dir.path().join("big.safetensors"), &[("w", 1 << 30), ("b", 4)]);
    let config = dir.path().join("w.toml");
    std::fs::write(&config, "ckpt_to_initialize_from = \"big.safetensors\"\ntarget = \"big.safetensors\"\n").unwrap();
    let out = dir.path().join("new/model.safetensors");
    let mut child = binary()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    signal_mid_write(&mut child, dir.path(), libc::SIGINT);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT; nothing was written"), "{stderr}");
    assert_eq!(files_in(dir.path()), ["big.safetensors", "w.toml"]);
}

/// `run --rules` warm-starts into a hidden scratch folder beside the output, then ports that into the
/// output: a signal while the second step writes removes the scratch folder's committed warm-start too.
#[test]
fn a_signal_mid_run_with_rules_removes_the_scratch_folder() {
    let dir = tempfile::tempdir().unwrap();
    safetensors_of_zeros(&dir.path().join("big.safetensors"), &[("w", 1 << 30), ("b", 4)]);
    let config = dir.path().join("w.toml");
    std::fs::write(&config, "ckpt_to_initialize_from = \"big.safetensors\"\ntarget = \"big.safetensors\"\n").unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rename]]\npattern = \"^w$\"\nreplace = \"weight\"\n").unwrap();
    let out = dir.path().join("new/model.safetensors");
    let mut child = binary()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--rules")
        .arg(&rules)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The second step's staged file is beside the output; the first step's are inside the scratch folder.
    let start = Instant::now();
    while !files_in_if_any(&dir.path().join("new")).iter().any(|f| f.ends_with(".tmp")) {
        assert!(child.try_wait().unwrap().is_none(), "ended before the second step: {:?}", tree(dir.path()));
        assert!(start.elapsed() < Duration::from_secs(60), "no second step: {:?}", tree(dir.path()));
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill() only sends a signal to the child this test started and has not waited for.
    assert_eq!(unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert_eq!(files_in(dir.path()), ["big.safetensors", "rules.toml", "w.toml"], "{:?}", tree(dir.path()));
}

/// The entries of `dir`, none if it does not exist (yet).
fn files_in_if_any(dir: &Path) -> Vec<String> {
    if dir.is_dir() {
        files_in(dir)
    } else {
        Vec::new()
    }
}

/// Past `ulimit -f`, the write fails with "File too large" (SIGXFSZ is ignored), exit 1, and nothing
/// is left, not even the folder made for the output.
#[test]
fn a_file_size_limit_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.safetensors");
    safetensors_of_zeros(&src, &[("w", 4 << 20)]);
    for dst in outputs() {
        let dst = dir.path().join("made").join(dst);
        let output = Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 1000 && exec \"$0\" convert \"$1\" \"$2\"")
            .arg(env!("CARGO_BIN_EXE_warmstart"))
            .arg(&src)
            .arg(&dst)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{dst:?}: {stderr}");
        assert!(stderr.contains("File too large") || stderr.contains("too large"), "{dst:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(files_in(dir.path()), ["in.safetensors"], "{dst:?}");
    }
}

/// `warmstart inspect X | head -1`: standard output closed early ends the command quietly with 0.
#[test]
fn standard_output_closed_early_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("many.safetensors");
    // Far more listing than a pipe holds, so that the binary is still writing when the pipe closes.
    let names: Vec<String> = (0..4000).map(|i| format!("layer_{i:05}/a_long_enough_weight_name")).collect();
    let tensors: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 4)).collect();
    safetensors_of_zeros(&src, &tensors);
    for json in [false, true] {
        let mut command = binary();
        command.arg("inspect").arg(&src).stdout(Stdio::piped()).stderr(Stdio::piped());
        if json {
            command.arg("--json");
        }
        let mut child = command.spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(!first.is_empty());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert_eq!(stderr, "");
    }
}

/// Standard output that cannot be written: `inspect` fails (its output is what was asked for), while
/// `convert` and `run`, whose output is in place, warn and exit 0.
#[cfg(target_os = "linux")]
#[test]
fn a_full_standard_output_fails_inspect_and_warns_after_convert() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.safetensors");
    safetensors_of_zeros(&src, &[("w", 16)]);
    let full = || std::fs::File::options().write(true).open("/dev/full").unwrap();
    let output = binary().arg("inspect").arg(&src).stdout(full()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("writing to standard output"), "{stderr}");

    let dst = dir.path().join("out.safetensors");
    let output = binary().arg("convert").arg(&src).arg(&dst).stdout(full()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.starts_with("warning: ") && stderr.contains("was written, but its report could not"), "{stderr}");
    assert!(dst.is_file());

    let config = dir.path().join("w.toml");
    std::fs::write(&config, "ckpt_to_initialize_from = \"in.safetensors\"\ntarget = \"in.safetensors\"\n").unwrap();
    let out = dir.path().join("run.safetensors");
    let output =
        binary().args(["run", "--config"]).arg(&config).arg("--out").arg(&out).stdout(full()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("was written, but its report could not"), "{stderr}");
    assert!(out.is_file());
}

/// `convert` makes a destination's missing folders, as `run` does, in every format; a failed one
/// removes them again.
#[test]
fn convert_makes_missing_folders() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.safetensors");
    safetensors_of_zeros(&src, &[("w", 16)]);
    for dst in outputs() {
        let dst: PathBuf = dir.path().join("a/b").join(dst);
        warmstart(["convert".as_ref(), src.as_os_str(), dst.as_os_str()]).expect_code(0);
        warmstart(["inspect".as_ref(), dst.as_os_str()]).expect_code(0);
    }
    let missing = dir.path().join("missing.safetensors");
    let dst = dir.path().join("c/d/out.safetensors");
    warmstart(["convert".as_ref(), missing.as_os_str(), dst.as_os_str()]).expect_code(1);
    assert_eq!(files_in(dir.path()), ["a", "in.safetensors"]);
}

/// A TF checkpoint holding `k` and its slot `k/Adam` cannot be HDF5 (a dataset and a group of one
/// name): refused up front, naming both, leaving nothing.
#[cfg(all(feature = "tf", feature = "hdf5"))]
#[test]
fn hdf5_refuses_a_tensor_that_would_be_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.safetensors");
    safetensors_of_zeros(&src, &[("k", 16), ("k/Adam", 16), ("other", 4)]);
    let ckpt = dir.path().join("tf/model.ckpt");
    warmstart(["convert".as_ref(), src.as_os_str(), ckpt.as_os_str()]).expect_code(0);
    let dst = dir.path().join("made/out.h5");
    let run = warmstart(["convert".as_ref(), ckpt.as_os_str(), dst.as_os_str()]).expect_code(1);
    assert!(run.stderr.contains("tensors \"k\" and \"k/Adam\" cannot both be written"), "{}", run.stderr);
    assert!(run.stderr.contains("map one of the names"), "{}", run.stderr);
    assert!(!run.stderr.contains("unknown library error"), "{}", run.stderr);
    assert_eq!(files_in(dir.path()), ["in.safetensors", "tf"]);
}

/// Rewriting a TF prefix with fewer shards removes the earlier checkpoint's other shards.
#[cfg(feature = "tf")]
#[test]
fn a_tf_prefix_rewritten_with_fewer_shards_keeps_no_stale_shards() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.safetensors");
    safetensors_of_zeros(&src, &[("a", 16), ("b", 16), ("c", 16)]);
    let prefix = dir.path().join("ckpt/model.ckpt");
    let convert = |shards: &str| {
        warmstart(["convert".as_ref(), src.as_os_str(), prefix.as_os_str(), "--shards".as_ref(), shards.as_ref()])
            .expect_code(0)
    };
    convert("3");
    let three = ["checkpoint", "model.ckpt.data-00000-of-00003", "model.ckpt.data-00001-of-00003"];
    assert_eq!(files_in(&dir.path().join("ckpt"))[..3], three);
    convert("1");
    assert_eq!(
        files_in(&dir.path().join("ckpt")),
        ["checkpoint", "model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    );
    let run = warmstart(["inspect".as_ref(), prefix.as_os_str()]).expect_code(0);
    assert!(run.stdout.contains("\nc "), "{}", run.stdout);
}

/// A tmpfs of `bytes` mounted at `dir` (root only), unmounted on drop; `None` where mounting is not
/// allowed.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, bytes: u64) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let size = format!("size={bytes}");
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(dir).output();
        mounted.is_ok_and(|o| o.status.success()).then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk (ENOSPC on a 2 MiB tmpfs) in the middle of every output format: exit 1 naming the
/// destination, the checkpoint already there untouched, and no temporary file left. Needs root to
/// mount the tmpfs (CI runs as root); elsewhere it says so and passes.
#[test]
fn a_full_disk_is_a_clean_error_and_keeps_the_old_output() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk"), 2 << 20) else {
        eprintln!("a_full_disk_is_a_clean_error_and_keeps_the_old_output: cannot mount a tmpfs (not root?): skipped");
        return;
    };
    let (small, large) = (dir.path().join("small.safetensors"), dir.path().join("large.safetensors"));
    safetensors_of_zeros(&small, &[("w", 64 << 10)]);
    safetensors_of_zeros(&large, &[("w", 8 << 20)]);
    for dst in outputs() {
        let dst = disk.0.join(dst);
        let before = binary().arg("convert").arg(&small).arg(&dst).output().unwrap();
        assert_eq!(before.status.code(), Some(0), "{}", String::from_utf8_lossy(&before.stderr));
        let old = tree(&disk.0).into_iter().map(|f| (std::fs::read(disk.0.join(&f)).ok(), f)).collect::<Vec<_>>();
        let output = binary().arg("convert").arg(&large).arg(&dst).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{dst:?}: {stderr}");
        assert!(stderr.contains("No space left on device"), "{dst:?}: {stderr}");
        assert!(stderr.contains(&dst.file_name().unwrap().to_string_lossy().into_owned()), "{dst:?}: {stderr}");
        let after = tree(&disk.0).into_iter().map(|f| (std::fs::read(disk.0.join(&f)).ok(), f)).collect::<Vec<_>>();
        assert_eq!(after, old, "{dst:?}: the old output changed or something was left");
        for f in tree(&disk.0) {
            let _ = std::fs::remove_file(disk.0.join(f));
        }
    }
}

/// The same for a `.keras` output (which needs a `.keras` template, so is not in [`outputs`]): the old
/// archive untouched, and neither its staged weights nor the staged archive left.
///
/// Ignored: in the debug build the HDF5 library's own assertions abort on closing the staged weights
/// after the failed write (`H5F__dest: Assertion H5AC_cache_is_clean(f, H5AC_RING_MDFSM)`), so the run
/// ends with SIGABRT and its staged files stay; the release binary exits 1 with nothing left. Run it
/// with `--ignored` once that is fixed.
#[cfg(feature = "keras")]
#[test]
#[ignore = "the HDF5 library aborts on closing the staged weights after ENOSPC (see the doc comment)"]
fn a_full_disk_mid_archive_is_a_clean_error_and_keeps_the_old_archive() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk"), 2 << 20) else {
        eprintln!("a_full_disk_mid_archive_is_a_clean_error_and_keeps_the_old_archive: cannot mount a tmpfs: skipped");
        return;
    };
    let (small, large) = (dir.path().join("small.keras"), dir.path().join("large.keras"));
    crate::keras::big_archive(&small, 16);
    crate::keras::big_archive(&large, 2048);
    let dst = disk.0.join("out.keras");
    let before = binary().arg("convert").arg(&small).arg(&dst).output().unwrap();
    assert_eq!(before.status.code(), Some(0), "{}", String::from_utf8_lossy(&before.stderr));
    let old = std::fs::read(&dst).unwrap();
    let output = binary().arg("convert").arg(&large).arg(&dst).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device") && stderr.contains("out.keras"), "{stderr}");
    assert_eq!(tree(&disk.0), ["out.keras"]);
    assert!(std::fs::read(&dst).unwrap() == old, "the old archive changed");
}

/// SIGTERM in the middle of `convert` writing a large `.keras` archive into a folder that did not
/// exist: exit 143, and nothing left but the input.
#[cfg(feature = "keras")]
#[test]
fn a_signal_mid_convert_into_an_archive_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.keras");
    crate::keras::big_archive(&src, 1 << 16);
    assert_signal_mid_convert_leaves_nothing(dir.path(), &src, "out.keras", (libc::SIGTERM, "SIGTERM"));
}
