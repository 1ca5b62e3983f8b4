//! The commit journal of multi-file (TF) outputs (issue 14): a write killed at each of its renames
//! (strace's fault injection) and then recovered leaves the old checkpoint or the new one and nothing
//! else; two writers to one folder; a `checkpoint` state file that is a folder keeps the old checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{files_in, fixture, warmstart};

/// The old and the new checkpoint's sources.
pub(crate) fn sources() -> (PathBuf, PathBuf) {
    (fixture("tf", "tf1_sharded").join("model"), fixture("tf", "tf1_single").join("model.ckpt-12"))
}

/// Every file of a folder and its bytes.
pub(crate) type Snapshot = BTreeMap<String, Vec<u8>>;

/// Every file of a folder and its bytes (a folder in it as its list of names).
pub(crate) fn snapshot(dir: &Path) -> Snapshot {
    let bytes = |p: &Path| if p.is_dir() { files_in(p).join("/").into_bytes() } else { std::fs::read(p).unwrap() };
    files_in(dir).into_iter().map(|n| (n.clone(), bytes(&dir.join(&n)))).collect()
}

fn convert(src: &Path, dst: &Path, extra: &[&str]) -> crate::util::Run {
    convert_shards(src, dst, "2", extra)
}

pub(crate) fn convert_shards(src: &Path, dst: &Path, shards: &str, extra: &[&str]) -> crate::util::Run {
    let mut args = vec!["convert".as_ref(), src.as_os_str(), dst.as_os_str()];
    args.extend(["--to", "tf", "--shards", shards].map(std::ffi::OsStr::new));
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    warmstart(args)
}

pub(crate) fn have_strace() -> bool {
    let found = Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: strace is not installed; skipping (cargo xtask test installs it as root)");
    }
    found
}

/// The rename system calls.
const RENAMES: &str = "rename,renameat,renameat2";

/// Runs `convert src dst` under strace with `inject` on the rename system calls; gives the exit code.
fn convert_under_strace(src: &Path, dst: &Path, inject: &str) -> Option<i32> {
    strace_convert(src, dst, "2", &format!("inject={RENAMES}:{inject}")).0
}

/// Runs `convert src dst --to tf --shards N` under `strace -f -y` with `filter` (an `-e` expression);
/// gives the exit code (128 + n for a signal n) and the standard error.
pub(crate) fn strace_convert(src: &Path, dst: &Path, shards: &str, filter: &str) -> (Option<i32>, String) {
    let output = Command::new("strace")
        .args(["-f", "-y", "-o", "/dev/null", "-e", filter])
        .arg(env!("CARGO_BIN_EXE_warmstart"))
        .args(["convert".as_ref(), src.as_os_str(), dst.as_os_str()])
        .args(["--to", "tf", "--shards", shards])
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    let code = output.status.code().or(output.status.signal().map(|s| 128 + s));
    (code, String::from_utf8_lossy(&output.stderr).into_owned())
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

/// Which of two snapshots a folder holds.
fn which(
    now: &BTreeMap<String, Vec<u8>>,
    old: &BTreeMap<String, Vec<u8>>,
    new: &BTreeMap<String, Vec<u8>>,
) -> &'static str {
    if now == old {
        "old"
    } else if now == new {
        "new"
    } else {
        panic!("neither old nor new: {:?}", now.keys().collect::<Vec<_>>())
    }
}

/// A folder holding the old checkpoint (3 shards), and the snapshots of it and of the new one (1 shard)
/// written over it.
fn three_to_one() -> (tempfile::TempDir, Snapshot, Snapshot) {
    let (old_src, new_src) = sources();
    let reference = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (reference.path().join("old"), reference.path().join("new"));
    convert_shards(&old_src, &old_dir.join("model.ckpt"), "3", &[]).expect_code(0);
    crate::util::copy_folder(&old_dir, &new_dir);
    convert_shards(&new_src, &new_dir.join("model.ckpt"), "1", &[]).expect_code(0);
    let (old, new) = (snapshot(&old_dir), snapshot(&new_dir));
    assert!(old.keys().filter(|n| n.contains("-of-00003")).count() == 3, "{:?}", old.keys());
    assert!(!new.keys().any(|n| n.contains("-of-00003")), "{:?}", new.keys());
    (reference, old, new)
}

/// A rewrite of a 3-shard checkpoint with 1 shard, killed at each of its renames and at each of its
/// unlinks, then recovered: the old checkpoint or the new one, never an `-of-00003` shard beside the
/// new index (the old shards are part of the journaled commit).
#[test]
fn a_shard_count_change_killed_anywhere_keeps_no_stale_shards() {
    if !have_strace() {
        return;
    }
    let (reference, old, new) = three_to_one();
    let new_src = sources().1;
    let mut seen = Vec::new();
    for syscalls in [RENAMES, "unlink,unlinkat"] {
        let (mut olds, mut news) = (0, 0);
        for k in 1..40 {
            let work = tempfile::tempdir().unwrap();
            let dir = work.path().join("d");
            crate::util::copy_folder(&reference.path().join("old"), &dir);
            let inject = format!("inject={syscalls}:signal=SIGKILL:when={k}");
            let (code, stderr) = strace_convert(&new_src, &dir.join("model.ckpt"), "1", &inject);
            if code == Some(0) {
                assert_eq!(snapshot(&dir), new);
                break;
            }
            assert_eq!(code, Some(137), "{syscalls} {k}: {stderr}");
            let said = warmstart(["recover".as_ref(), dir.join("model.ckpt").as_os_str()]).expect_code(0).stdout;
            match which(&snapshot(&dir), &old, &new) {
                "old" => olds += 1,
                _ => news += 1,
            }
            if said.contains("rolled") {
                assert!(said.contains("it had stopped after step "), "{said}");
            }
        }
        eprintln!("3 -> 1 shards, SIGKILL at each of {syscalls}: {olds} old, {news} new");
        seen.push((olds, news));
    }
    // Renames: the journal, the old index and 3 old shards aside, the new shard, the `checkpoint`
    // aside and placed, the new index. Unlinks: the journal, then the 5 files moved aside.
    assert_eq!(seen, [(1, 8), (0, 6)]);
}

/// A kill after the new shard is placed: `recover` says where the write had stopped.
#[test]
fn recover_says_where_the_write_had_stopped() {
    if !have_strace() {
        return;
    }
    let (reference, _, new) = three_to_one();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("d");
    crate::util::copy_folder(&reference.path().join("old"), &dir);
    // Rename 7 is the `checkpoint` moved aside, after the new shard was placed.
    let inject = format!("inject={RENAMES}:signal=SIGKILL:when=7");
    assert_eq!(strace_convert(&sources().1, &dir.join("model.ckpt"), "1", &inject).0, Some(137));
    let said = warmstart(["recover".as_ref(), dir.join("model.ckpt").as_os_str()]).expect_code(0).stdout;
    let want = "rolled forward (the new output is in place); it had stopped after step 3 of 5, \
                model.ckpt.data-00000-of-00001 placed";
    assert!(said.contains(want), "{said}");
    assert_eq!(snapshot(&dir), new);
}

/// A relative destination (the temporary files are made under the folder's absolute path).
#[test]
fn a_relative_destination_commits() {
    let (old_src, new_src) = sources();
    let work = tempfile::tempdir().unwrap();
    for (src, shards) in [(&old_src, "3"), (&new_src, "1")] {
        let output = Command::new(env!("CARGO_BIN_EXE_warmstart"))
            .current_dir(work.path())
            .args(["convert".as_ref(), src.as_os_str(), "d/model.ckpt".as_ref(), "--shards".as_ref(), shards.as_ref()])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    assert_eq!(files_in(&work.path().join("d")), ["checkpoint", "model.ckpt.data-00000-of-00001", "model.ckpt.index"]);
}

/// The writes of a TF conversion from the first write of its `checkpoint` state file on, as (thread,
/// that thread's write number, file): strace counts injections per thread.
fn writes_from_the_state_file(src: &Path, dir: &Path) -> Vec<(String, usize, String)> {
    let log = dir.with_extension("strace");
    let status = Command::new("strace")
        .args(["-f", "-y", "-e", "trace=write", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_warmstart"))
        .args(["convert".as_ref(), src.as_os_str(), dir.join("model.ckpt").as_os_str()])
        .args(["--to", "tf", "--shards", "2"])
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    let mut per_thread: BTreeMap<String, usize> = BTreeMap::new();
    let mut writes = Vec::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let Some((pid, call)) = line.split_once(' ') else { continue };
        let Some(rest) = call.trim_start().strip_prefix("write(") else { continue };
        let n = per_thread.entry(pid.to_string()).or_default();
        *n += 1;
        let file = rest.split_once('<').and_then(|(_, f)| f.split_once('>')).map(|(f, _)| f).unwrap_or_default();
        writes.push((pid.to_string(), *n, file.to_string()));
    }
    let first = writes.iter().position(|(_, _, f)| f.contains("/.checkpoint.")).expect("a write of `checkpoint`");
    writes.split_off(first)
}

/// ENOSPC at the write of the `checkpoint` state file and at every later write (strace's injection):
/// either a clean failure (exit 1, "No space left on device", the old checkpoint untouched and nothing
/// left) or the new checkpoint whole (a lost step line or report costs nothing).
#[test]
fn a_full_disk_at_the_state_file_or_any_later_write_keeps_old_or_new() {
    if !have_strace() {
        return;
    }
    let (old_src, new_src) = sources();
    let reference = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (reference.path().join("old"), reference.path().join("new"));
    convert(&old_src, &old_dir.join("model.ckpt"), &[]).expect_code(0);
    crate::util::copy_folder(&old_dir, &new_dir);
    convert(&new_src, &new_dir.join("model.ckpt"), &[]).expect_code(0);
    let (old, new) = (snapshot(&old_dir), snapshot(&new_dir));
    let listed = tempfile::tempdir().unwrap();
    crate::util::copy_folder(&old_dir, &listed.path().join("d"));
    let writes = writes_from_the_state_file(&new_src, &listed.path().join("d"));
    assert!(writes.iter().all(|(pid, _, _)| *pid == writes[0].0), "{writes:?}");
    let (mut failed, mut completed) = (0, 0);
    for (_, k, file) in &writes {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("d");
        crate::util::copy_folder(&old_dir, &dir);
        let (code, stderr) =
            strace_convert(&new_src, &dir.join("model.ckpt"), "2", &format!("inject=write:error=ENOSPC:when={k}"));
        match which(&snapshot(&dir), &old, &new) {
            "old" => {
                assert_eq!(code, Some(1), "write {k} ({file}): {stderr}");
                assert!(stderr.contains("No space left on device"), "write {k} ({file}): {stderr}");
                failed += 1;
            }
            _ => {
                assert_eq!(code, Some(0), "write {k} ({file}): {stderr}");
                completed += 1;
            }
        }
        if file.contains("/.checkpoint.") {
            assert!(stderr.contains("checkpoint: No space left on device"), "{stderr}");
        }
    }
    eprintln!(
        "ENOSPC at each of {} writes from `checkpoint` on: {failed} failed cleanly, {completed} completed",
        writes.len()
    );
    // `checkpoint`, the index and the journal fail the write; the step lines and the report do not.
    assert_eq!((failed, completed), (3, writes.len() - 3));
}

/// Whether this process is root (needed to act as another user).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A sticky folder (mode 1777) holding a checkpoint of another user: the writer (uid 65534) may not
/// move that user's files aside, so the commit fails with "Operation not permitted" and is rolled
/// back, the folder byte-identical. Twice: the old index the other user's, and only the data files.
#[test]
fn a_sticky_folder_with_another_users_checkpoint_is_rolled_back() {
    use std::os::unix::fs::{chown, PermissionsExt};
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("a_sticky_folder_with_another_users_checkpoint_is_rolled_back: needs root and setpriv: skipped");
        return;
    }
    let (old_src, new_src) = sources();
    for index_is_the_writers in [false, true] {
        let work = tempfile::tempdir().unwrap();
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = work.path().join("shared");
        let dst = dir.join("model.ckpt");
        convert(&old_src, &dst, &[]).expect_code(0);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        if index_is_the_writers {
            chown(dir.join("model.ckpt.index"), Some(65534), Some(65534)).unwrap();
        }
        let before = snapshot(&dir);
        let output = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_warmstart"))
            .args(["convert".as_ref(), new_src.as_os_str(), dst.as_os_str()])
            .args(["--to", "tf", "--shards", "2"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("Operation not permitted") && stderr.contains("rolled back"), "{stderr}");
        assert_eq!(snapshot(&dir), before, "index the writer's: {index_is_the_writers}");
        warmstart(["inspect".as_ref(), dst.as_os_str()]).expect_code(0);
    }
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
