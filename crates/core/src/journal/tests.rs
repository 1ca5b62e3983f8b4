use super::*;

/// The files of a small "checkpoint" `m`: two data files, the state file and the index (the key, last).
const NAMES: [&str; 4] = ["m.data-0", "m.data-1", "checkpoint", "m.index"];

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A folder holding the old checkpoint (if `old`) and the new one's temporary files, and the plan.
fn setup(old: bool) -> (tempfile::TempDir, Plan) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let dest = dir.path().join(name);
        if old {
            std::fs::write(&dest, format!("old {name}")).unwrap();
        }
        let temp = dir.path().join(format!(".{name}.abc{i}XY.tmp"));
        std::fs::write(&temp, format!("new {name}!")).unwrap();
        files.push((dest, temp, format!("new {name}!").len() as u64));
    }
    let plan = Plan::new(&dir.path().join("m"), &files, &[]);
    (dir, plan)
}

/// Which checkpoint the destinations hold: "old", "new", "none" (no index, the journal present), or
/// a panic for a mix.
fn state(dir: &Path) -> &'static str {
    let index = std::fs::read_to_string(dir.join("m.index")).ok();
    let data: Vec<Option<String>> = NAMES[..2].iter().map(|n| std::fs::read_to_string(dir.join(n)).ok()).collect();
    match index.as_deref() {
        None => {
            assert!(dir.join("m.warmstart-commit").exists(), "no index and no journal: {:?}", names(dir));
            "none"
        }
        Some("old m.index") => {
            assert!(data.iter().all(|d| d.as_deref().is_some_and(|d| d.starts_with("old "))), "{data:?}");
            "old"
        }
        Some(_) => {
            assert!(data.iter().all(|d| d.as_deref().is_some_and(|d| d.starts_with("new "))), "{data:?}");
            "new"
        }
    }
}

/// Runs the commit's renames (journal included), stopping before rename `k` as a kill would.
fn commit_until(plan: &Plan, k: usize) -> bool {
    let mut count = 0;
    let mut hook = || {
        count += 1;
        if count > k {
            Err(io::Error::other("stopped"))
        } else {
            Ok(())
        }
    };
    let mut rename = Renamer::with_hook(&mut hook);
    if plan.write(&mut rename).is_err() {
        return false;
    }
    plan.roll_forward(&mut rename).is_ok() && plan.done().is_ok()
}

fn sorted_names() -> Vec<String> {
    let mut all: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    all.sort();
    all
}

/// After recovery: the old checkpoint or the new one (or nothing, for a first write), nothing else.
fn recovered(dir: &Path, old: bool, expect: &str) {
    drop(claim(&dir.join("m"), &["checkpoint"]).unwrap());
    if expect == "empty" {
        assert!(names(dir).is_empty(), "{:?}", names(dir));
        return;
    }
    assert_eq!(state(dir), expect);
    assert_eq!(names(dir), sorted_names(), "old {old}");
    let want = if expect == "old" { "old checkpoint" } else { "new checkpoint!" };
    assert_eq!(std::fs::read_to_string(dir.join("checkpoint")).unwrap(), want);
}

#[test]
fn a_crash_after_any_step_rolls_forward_once_the_journal_is_written() {
    for old in [true, false] {
        let mut k = 0;
        loop {
            let (dir, plan) = setup(old);
            let finished = commit_until(&plan, k);
            if old || k > 0 {
                let seen = state(dir.path());
                assert!(old || seen != "old");
            }
            let expect = match (k, old) {
                (0, true) => "old",
                (0, false) => "empty",
                _ => "new",
            };
            recovered(dir.path(), old, expect);
            k += 1;
            if finished {
                break;
            }
        }
        // The journal, the old index aside, 3 x (aside, place), the index placed.
        assert_eq!(k, if old { 10 } else { 6 });
    }
}

#[test]
fn a_crash_with_a_damaged_new_file_rolls_back_after_any_step() {
    for old in [true, false] {
        for k in 1..10 {
            let (dir, plan) = setup(old);
            if commit_until(&plan, k) {
                break;
            }
            // A staged file not yet placed lost its tail (as after a crash of the machine without --sync).
            let Some(e) = plan.entries.iter().find(|e| !e.placed()) else { continue };
            std::fs::write(&e.temp, b"new").unwrap();
            recovered(dir.path(), old, if old { "old" } else { "empty" });
        }
    }
}

#[test]
fn a_failure_in_process_after_any_step_rolls_back() {
    for old in [true, false] {
        for k in 1..10 {
            let (dir, plan) = setup(old);
            if commit_until(&plan, k) {
                break;
            }
            plan.roll_back(&mut Renamer::new()).unwrap();
            if old {
                assert_eq!(state(dir.path()), "old");
                assert_eq!(names(dir.path()), sorted_names());
            } else {
                assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
            }
        }
    }
}

#[test]
fn journals_read_back_and_names_are_escaped() {
    let (_dir, mut plan) = setup(true);
    plan.entries[0].dest = plan.entries[0].dest.with_file_name("a b%c\nd");
    let mut rename = Renamer::new();
    plan.write(&mut rename).unwrap();
    assert_eq!(Plan::read(&plan.journal).unwrap(), plan);
    std::fs::write(&plan.journal, "something else\n").unwrap();
    assert!(Plan::read(&plan.journal).unwrap_err().to_string().contains("not a warmstart commit journal"));
}

#[test]
fn leftovers_are_recognised_by_name() {
    assert!(is_leftover(".m.index.aB3dE9.tmp", "m"));
    assert!(is_leftover(".m.warmstart-commit.aB3dE9.tmp", "m"));
    assert!(is_leftover(".m.data-00000-of-00002.warmstart-old", "m"));
    assert!(is_leftover(".checkpoint.warmstart-old", "checkpoint"));
    assert!(!is_leftover(".mx.index.aB3dE9.tmp", "m"));
    assert!(!is_leftover("m.index", "m"));
    assert!(!is_leftover(".m.index.long-random.tmp", "m"));
    assert!(is_leftover(".anything.aB3dE9.tmp", ""));
}

#[cfg(unix)]
#[test]
fn a_second_writer_to_a_folder_fails_and_outputs_of_one_process_share_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let first = lock_folder(dir.path()).unwrap();
    let same_process = lock_folder(dir.path()).unwrap();
    assert!(same_process.shared && !first.shared);
    let err = flock(dir.path()).unwrap_err();
    assert!(err.to_string().contains("another warmstart is writing"), "{err}");
    drop((first, same_process));
    flock(dir.path()).unwrap();
}

/// The step each stop of `commit_until` leaves (the old checkpoint present): the journal, the old index
/// aside, each of three files aside and placed, then the index.
#[test]
fn step_lines_say_where_a_commit_stopped_and_the_files_confirm_them() {
    let placed = |name: &str| Stopped { step: 3, placed: Some(name.to_string()) };
    let plain = |step| Stopped { step, placed: None };
    let with_old = [plain(1), plain(2), plain(2), placed("m.data-0"), placed("m.data-0"), placed("m.data-1")];
    let with_old = with_old.into_iter().chain([placed("m.data-1"), placed("checkpoint")]);
    // Without an old index, step 2 moves nothing: only the step line tells it from step 1.
    let fresh = [plain(2), placed("m.data-0"), placed("m.data-1"), placed("checkpoint")];
    for (old, expected) in [(true, with_old.collect::<Vec<_>>()), (false, fresh.to_vec())] {
        for (k, want) in expected.iter().enumerate() {
            let (dir, plan) = setup(old);
            assert!(!commit_until(&plan, k + 1));
            let read = Plan::read(&plan.journal).unwrap();
            assert_eq!(read.stopped(), *want, "old {old}, stopped before rename {}", k + 2);
            if k > 0 || !old {
                assert_eq!(read.steps.last(), Some(want), "old {old}, k {k}");
            }
            let said = recover(dir.path()).unwrap().0;
            assert_eq!(said.len(), 1);
            assert_eq!(said[0].stopped, *want);
        }
    }
    assert_eq!(placed("m.data-1").to_string(), "it had stopped after step 3 of 5, m.data-1 placed");
}

#[test]
fn the_next_write_says_where_the_interrupted_one_stopped() {
    let (dir, plan) = setup(true);
    assert!(!commit_until(&plan, 6));
    drop(claim(&dir.path().join("m"), &["checkpoint"]).unwrap());
    // Other tests' writes note their recoveries in the same list.
    let here = dir.path().display().to_string();
    let notes: Vec<String> = take_notes().into_iter().filter(|n| n.contains(&here)).collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("rolled forward"), "{notes:?}");
    assert!(notes[0].ends_with("it had stopped after step 3 of 5, m.data-1 placed"), "{notes:?}");
}

#[test]
fn version_1_journals_are_still_read_and_step_lines_are_hints() {
    let (dir, plan) = setup(true);
    plan.write(&mut Renamer::new()).unwrap();
    let v2 = std::fs::read_to_string(&plan.journal).unwrap();
    let v1 = v2.replacen("warmstart-commit 2", "warmstart-commit 1", 1);
    std::fs::write(&plan.journal, &v1).unwrap();
    assert_eq!(Plan::read(&plan.journal).unwrap(), plan);
    std::fs::write(&plan.journal, format!("{v1}step 2\n")).unwrap();
    assert!(Plan::read(&plan.journal).is_err());
    // A half-written step line (a crash of the machine) ends the hints; a step line the files deny
    // gives way to them.
    std::fs::write(&plan.journal, format!("{v2}step 4\nstep 3 m.da")).unwrap();
    let read = Plan::read(&plan.journal).unwrap();
    assert_eq!(read.steps, [Stopped { step: 4, placed: None }, Stopped { step: 3, placed: Some("m.da".into()) }]);
    assert_eq!(read.stopped(), Stopped { step: 1, placed: None });
    std::fs::write(&plan.journal, format!("{v2}step 2\n\0\0\0")).unwrap();
    assert_eq!(Plan::read(&plan.journal).unwrap().steps.len(), 1);
    // Every new file is staged whole: the commit is finished.
    recovered(dir.path(), true, "new");

    // A version-1 journal of a write killed after its second file was placed is recovered too, the
    // step read off the files.
    let (dir, plan) = setup(true);
    assert!(!commit_until(&plan, 6));
    let v1 = std::fs::read_to_string(&plan.journal).unwrap().replacen("warmstart-commit 2", "warmstart-commit 1", 1);
    let v1: String = v1.lines().filter(|l| !l.starts_with("step ")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&plan.journal, v1).unwrap();
    let said = recover(dir.path()).unwrap().0;
    assert_eq!(said[0].stopped, Stopped { step: 3, placed: Some("m.data-1".into()) });
    assert_eq!(said[0].outcome, Outcome::RolledForward);
    assert_eq!(state(dir.path()), "new");
}

/// The old checkpoint's files that the new one does not replace (another shard count's data files).
const RETIRED: [&str; 2] = ["m.data-0-of-3", "m.data-2-of-3"];

fn setup_retiring() -> (tempfile::TempDir, Plan) {
    let (dir, mut plan) = setup(true);
    for name in RETIRED {
        std::fs::write(dir.path().join(name), format!("old {name}")).unwrap();
    }
    // Only the files that exist are retired, and never a destination of the commit.
    let listed = [RETIRED[0], RETIRED[1], "m.data-9-of-3", "m.index"].map(|n| dir.path().join(n));
    plan.retired = Plan::new(&dir.path().join("m"), &[(listed[3].clone(), listed[3].clone(), 0)], &listed).retired;
    (dir, plan)
}

#[test]
fn retired_files_leave_with_the_old_key_and_come_back_on_a_rollback() {
    let mut k = 0;
    loop {
        let (dir, plan) = setup_retiring();
        assert_eq!(plan.retired.len(), 2);
        let finished = commit_until(&plan, k);
        if !finished {
            // The same stop, rolled back in process, has every retired file back.
            let (copy, copied_plan) = setup_retiring();
            assert!(!commit_until(&copied_plan, k));
            copied_plan.roll_back(&mut Renamer::new()).unwrap();
            for name in RETIRED {
                assert_eq!(std::fs::read_to_string(copy.path().join(name)).unwrap(), format!("old {name}"));
            }
            assert_eq!(state(copy.path()), "old");
        }
        drop(claim(&dir.path().join("m"), &["checkpoint"]).unwrap());
        let retired_left = RETIRED.iter().filter(|n| dir.path().join(n).exists()).count();
        if k == 0 {
            assert_eq!(state(dir.path()), "old");
            assert_eq!(retired_left, 2);
        } else {
            assert_eq!(state(dir.path()), "new");
            assert_eq!(names(dir.path()), sorted_names(), "k {k}");
        }
        k += 1;
        if finished {
            break;
        }
    }
    // The journal, the old index and the two retired files aside, 3 x (aside, place), the index.
    assert_eq!(k, 12);
}
