//! The commit journal of multi-file (TF) outputs (issue 14): a write killed at each of its renames
//! (strace's fault injection) and then recovered leaves the old checkpoint or the new one and nothing
//! else; two writers to one folder; a `checkpoint` state file that is a folder keeps the old checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{files_in, fixture, warmstart};

/// The old and the new checkpoint's sources.
fn sources() -> (PathBuf, PathBuf) {
    (fixture("tf", "tf1_sharded").join("model"), fixture("tf", "tf1_single").join("model.ckpt-12"))
}

/// Every file of a folder and its bytes (a folder in it as its list of names).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = |p: &Path| if p.is_dir() { files_in(p).join("/").into_bytes() } else { std::fs::read(p).unwrap() };
    files_in(dir).into_iter().map(|n| (n.clone(), bytes(&dir.join(&n)))).collect()
}

fn convert(src: &Path, dst: &Path, extra: &[&str]) -> crate::util::Run {
    let mut args = vec!["convert".as_ref(), src.as_os_str(), dst.as_os_str()];
    args.extend(["--to", "tf", "--shards", "2"].map(std::ffi::OsStr::new));
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    warmstart(args)
}

fn have_strace() -> bool {
    let found = Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: strace is not installed; skipping (cargo xtask test installs it as root)");
    }
    found
}

/// Runs `convert src dst` under strace with `inject` on the rename system calls; gives the exit code.
fn convert_under_strace(src: &Path, dst: &Path, inject: &str) -> Option<i32> {
    let status = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-e", &format!("inject=rename,renameat,renameat2:{inject}")])
        .arg(env!("CARGO_BIN_EXE_warmstart"))
        .args(["convert".as_ref(), src.as_os_str(), dst.as_os_str()])
        .args(["--to", "tf", "--shards", "2"])
        .output()
        .unwrap()
        .status;
    use std::os::unix::process::ExitStatusExt;
    status.code().or(status.signal().map(|s| 128 + s))
}

/// Kills the write at rename k = 1, 2, ... until it completes; after each kill, `recover` must leave
/// exactly the old checkpoint or the new one. Gives (trials, old, new, empty).
fn kill_at_each_rename(with_old: bool) -> (usize, usize, usize, usize) {
    let (old_src, new_src) = sources();
    let reference = tempfile::tempdir().unwrap();
    let old_dir = reference.path().join("old");
    let new_dir = reference.path().join("new");
    std::fs::create_dir_all(&old_dir).unwrap();
    if with_old {
        convert(&old_src, &old_dir.join("model.ckpt"), &[]).expect_code(0);
    }
    crate::util::copy_folder(&old_dir, &new_dir);
    convert(&new_src, &new_dir.join("model.ckpt"), &[]).expect_code(0);
    let (old, new) = (snapshot(&old_dir), snapshot(&new_dir));
    assert_ne!(old, new);
    let (mut trials, mut olds, mut news, mut empties) = (0, 0, 0, 0);
    for k in 1..40 {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("d");
        crate::util::copy_folder(&old_dir, &dir);
        let code = convert_under_strace(&new_src, &dir.join("model.ckpt"), &format!("signal=SIGKILL:when={k}"));
        if code == Some(0) {
            assert_eq!(snapshot(&dir), new);
            break;
        }
        assert_eq!(code, Some(137), "rename {k}");
        trials += 1;
        let said = warmstart(["recover".as_ref(), dir.join("model.ckpt").as_os_str()]).expect_code(0).stdout;
        let now = snapshot(&dir);
        if now == old && old.is_empty() {
            empties += 1;
        } else if now == old {
            olds += 1;
        } else if now == new {
            news += 1;
            assert!(k == 1 || said.contains("rolled forward"), "{said}");
        } else {
            panic!("rename {k}: neither old nor new: {:?}", now.keys().collect::<Vec<_>>());
        }
    }
    eprintln!("kill at each rename (old checkpoint present: {with_old}): {trials} trials: {olds} old, {news} new, {empties} empty");
    (trials, olds, news, empties)
}

#[test]
fn a_write_killed_at_any_rename_recovers_to_the_old_or_the_new_checkpoint() {
    if !have_strace() {
        return;
    }
    let (trials, olds, news, _) = kill_at_each_rename(true);
    // The journal, the old index aside, 3 x (aside, place), the new index.
    assert_eq!(trials, 9);
    assert_eq!((olds, news), (1, 8));
    let (trials, olds, news, empties) = kill_at_each_rename(false);
    assert_eq!((trials, olds, news, empties), (5, 0, 4, 1));
}

#[test]
fn the_next_write_recovers_and_a_reader_names_the_interrupted_write() {
    if !have_strace() {
        return;
    }
    let (old_src, new_src) = sources();
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("model.ckpt");
    convert(&old_src, &dst, &[]).expect_code(0);
    assert_eq!(convert_under_strace(&new_src, &dst, "signal=SIGKILL:when=4"), Some(137));
    let err = warmstart(["inspect".as_ref(), dst.as_os_str()]).expect_code(1).stderr;
    assert!(err.contains("interrupted write; run `warmstart recover"), "{err}");
    let run = convert(&old_src, &dst, &[]).expect_code(0);
    assert!(run.stderr.contains("an interrupted write was rolled forward"), "{}", run.stderr);
    assert_eq!(
        files_in(work.path()),
        ["checkpoint", "model.ckpt.data-00000-of-00002", "model.ckpt.data-00001-of-00002", "model.ckpt.index"]
    );
    warmstart(["inspect".as_ref(), dst.as_os_str()]).expect_code(0);
}

#[test]
fn a_second_writer_to_the_folder_fails_at_once_or_waits() {
    if !have_strace() {
        return;
    }
    let (old_src, new_src) = sources();
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("model.ckpt");
    convert(&old_src, &dst, &[]).expect_code(0);
    // The first writer is held for 2 s at its first rename, the lock taken.
    let first = std::thread::spawn({
        let (src, dst) = (new_src.clone(), dst.clone());
        move || convert_under_strace(&src, &dst, "delay_enter=2000000:when=1")
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    let second = convert(&old_src, &dst, &[]).expect_code(1);
    assert!(second.stderr.contains("another warmstart is writing to this folder"), "{}", second.stderr);
    let waited = convert(&old_src, &dst, &["--wait"]).expect_code(0);
    assert!(waited.stderr.is_empty(), "{}", waited.stderr);
    assert_eq!(first.join().unwrap(), Some(0));
    // The waiting writer came last: the old source's checkpoint is in place, whole.
    let reference = tempfile::tempdir().unwrap();
    convert(&old_src, &reference.path().join("model.ckpt"), &[]).expect_code(0);
    assert_eq!(snapshot(work.path()), snapshot(reference.path()));
}

#[test]
fn a_state_file_that_is_a_folder_keeps_the_old_checkpoint() {
    let (old_src, new_src) = sources();
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("model.ckpt");
    convert(&old_src, &dst, &[]).expect_code(0);
    std::fs::remove_file(work.path().join("checkpoint")).unwrap();
    std::fs::create_dir(work.path().join("checkpoint")).unwrap();
    std::fs::write(work.path().join("checkpoint/inside"), b"").unwrap();
    let before = snapshot(work.path());
    let run = convert(&new_src, &dst, &[]).expect_code(1);
    assert!(run.stderr.contains("checkpoint"), "{}", run.stderr);
    assert_eq!(snapshot(work.path()), before);
    warmstart(["inspect".as_ref(), dst.as_os_str()]).expect_code(0);
}

/// Sharded safetensors output commits through the same journal: killed at each rename of a write of
/// 5 shards over a folder holding 3, then recovered, the folder holds the old set or the new one
/// (whose index names only its own shards; the old shards are removed by a write that completes), and
/// no temporary or moved-aside file.
#[cfg(feature = "safetensors")]
#[test]
fn a_sharded_safetensors_write_killed_at_any_rename_recovers_to_the_old_or_the_new_set() {
    if !have_strace() {
        return;
    }
    let area = warmstart_core::test_support::fixtures().join("safetensors_shards");
    let src = area.join("input/model.safetensors");
    let (old, new) = (snapshot(&area.join("kb5")), snapshot(&area.join("kib3")));
    let index = "model.safetensors.index.json";
    let (mut olds, mut news) = (0, 0);
    for k in 1..40 {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("d");
        crate::util::copy_folder(&area.join("kb5"), &dir);
        std::fs::remove_file(dir.join("case.json")).unwrap();
        let status = Command::new("strace")
            .args(["-f", "-o", "/dev/null", "-e", &format!("inject=rename,renameat,renameat2:signal=SIGKILL:when={k}")])
            .arg(env!("CARGO_BIN_EXE_warmstart"))
            .args(["convert".as_ref(), src.as_os_str(), dir.as_os_str(), "--max-shard-size".as_ref(), "3KiB".as_ref()])
            .output()
            .unwrap()
            .status;
        if status.success() {
            let mut want = new.clone();
            want.remove("case.json");
            assert_eq!(snapshot(&dir), want, "completed at rename {k}");
            break;
        }
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "rename {k}: {status}");
        warmstart(["recover".as_ref(), dir.as_os_str()]).expect_code(0);
        let now = snapshot(&dir);
        for (name, bytes) in &now {
            assert!(old.get(name) == Some(bytes) || new.get(name) == Some(bytes), "rename {k}: {name} is neither's");
        }
        if now.get(index) == old.get(index) {
            olds += 1;
            assert!(old.keys().filter(|n| *n != "case.json").all(|n| now.get(n) == old.get(n)), "rename {k}");
        } else {
            news += 1;
            assert!(new.keys().filter(|n| *n != "case.json").all(|n| now.get(n) == new.get(n)), "rename {k}");
        }
    }
    assert!(olds >= 1 && news >= 1, "{olds} old, {news} new");
}
