//! `run --worker I/N` then `merge`: N worker processes and a merge give, byte for byte, what a single
//! `run --shards N` writes, on TF-made warm-start cases (partitioned ones among them); a missing part,
//! a duplicate key and parts of different worker counts are refused and leave the destination as it
//! was. The check against TensorFlow's own `MergeV2Checkpoints` is in `tf_merge_matches`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::{fixture, warmstart, Run};

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        files.insert(entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap());
    }
    files
}

fn run_case(case: &str, out: &Path, extra: &[&str]) -> Run {
    let config = fixture("warmstart", case).join("config.toml");
    let mut args: Vec<&std::ffi::OsStr> = vec!["run".as_ref(), "--config".as_ref(), config.as_os_str()];
    args.extend(["--out".as_ref(), out.as_os_str(), "--to".as_ref(), "tf".as_ref()]);
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    warmstart(args)
}

/// Runs the `n` workers of `case` (one process each) into `dir/model.ckpt`.
fn run_workers(case: &str, dir: &Path, workers: impl IntoIterator<Item = usize>, n: usize) -> PathBuf {
    let prefix = dir.join("model.ckpt");
    for i in workers {
        run_case(case, &prefix, &["--worker", &format!("{i}/{n}")]).expect_code(0);
    }
    prefix
}

fn merge(args: &[&Path]) -> Run {
    let mut all: Vec<&std::ffi::OsStr> = vec!["merge".as_ref()];
    all.extend(args.iter().map(|p| p.as_os_str()));
    warmstart(all)
}

#[test]
fn workers_then_merge_equal_a_single_run_byte_for_byte() {
    let cases = [
        "accept_baseline",
        "accept_oov_buckets",
        "list_of_variables_parts",
        "list_of_variables_partitioned_full_name",
        "beyond_backup_initial_partitioned",
        "beyond_repartition_3_to_2",
        "beyond_repartition_vocab_3_to_2",
    ];
    let mut compared = 0;
    for case in cases {
        for n in [1, 2, 3, 5] {
            let tmp = tempfile::tempdir().unwrap();
            let single = tmp.path().join("single");
            run_case(case, &single.join("model.ckpt"), &["--shards", &n.to_string()]).expect_code(0);
            let multi = tmp.path().join("multi");
            // Out of order, as independent tasks finish.
            let prefix = run_workers(case, &multi, (0..n).rev(), n);
            let parts = snapshot(&multi);
            assert_eq!(parts.len(), 2 * n, "{case} {n}: {:?}", parts.keys());
            assert!(parts.keys().all(|k| k.contains(".part-")), "{case} {n}: {:?}", parts.keys());
            let merged = merge(&[&prefix]).expect_code(0);
            assert!(merged.stdout.contains(&format!("merged {n} parts")), "{}", merged.stdout);
            let (want, got) = (snapshot(&single), snapshot(&multi));
            assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "{case} {n}");
            for (name, bytes) in &want {
                assert!(got[name] == *bytes, "{case} with {n} workers: {name} differs from the single run's");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, cases.len() * 4);
}

/// A destination holding an earlier checkpoint, and its snapshot.
fn earlier(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    run_case("accept_baseline", &dir.join("model.ckpt"), &["--shards", "4"]).expect_code(0);
    snapshot(dir)
}

#[test]
fn a_missing_part_is_refused_naming_it_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let before = earlier(tmp.path());
    let prefix = run_workers("beyond_repartition_3_to_2", tmp.path(), [0, 2], 3);
    let with_parts = snapshot(tmp.path());
    let run = merge(&[&prefix]).expect_code(1);
    assert!(run.stderr.contains("the part of worker 1 of 3 is missing"), "{}", run.stderr);
    assert!(run.stderr.contains("model.ckpt.part-00001-of-00003.index"), "{}", run.stderr);
    assert_eq!(snapshot(tmp.path()), with_parts);
    // Nothing of the parts was ever at the destination's names.
    let after: BTreeMap<_, _> = with_parts.into_iter().filter(|(k, _)| !k.contains(".part-")).collect();
    assert_eq!(after, before);
}

#[test]
fn parts_of_different_worker_counts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let before = earlier(tmp.path());
    let prefix = run_workers("beyond_repartition_3_to_2", tmp.path(), [0, 1], 2);
    run_workers("beyond_repartition_3_to_2", tmp.path(), [2], 3);
    let with_parts = snapshot(tmp.path());
    let run = merge(&[&prefix]).expect_code(1);
    assert!(run.stderr.contains("different numbers of workers (2, 3)"), "{}", run.stderr);
    assert_eq!(snapshot(tmp.path()), with_parts);
    assert!(before.iter().all(|(k, v)| with_parts[k] == *v));
    // --worker I/N with another --shards is a usage error, before anything is read.
    let out = tmp.path().join("other/model.ckpt");
    let run = run_case("accept_baseline", &out, &["--worker", "0/2", "--shards", "3"]).expect_code(2);
    assert!(run.stderr.contains("--shards says 3"), "{}", run.stderr);
    run_case("accept_baseline", &out, &["--worker", "2/2"]).expect_code(2);
    assert!(!tmp.path().join("other").exists());
}

#[test]
fn a_key_in_two_parts_is_refused_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dest_dir = tmp.path().join("dest");
    let before = earlier(&dest_dir);
    let part = |dir: &str| {
        run_workers("accept_baseline", &tmp.path().join(dir), [0], 1).with_file_name("model.ckpt.part-00000-of-00001")
    };
    let (a, b) = (part("a"), part("b"));
    let run = merge(&[&dest_dir.join("model.ckpt"), &a, &b]).expect_code(1);
    assert!(run.stderr.contains("is also in an earlier part: duplicate keys are not merged"), "{}", run.stderr);
    assert!(run.stderr.contains("b/model.ckpt.part-00000-of-00001.index"), "{}", run.stderr);
    assert_eq!(snapshot(&dest_dir), before);
    assert_eq!(snapshot(&tmp.path().join("a")).len(), 2);
    assert_eq!(snapshot(&tmp.path().join("b")).len(), 2);
}

/// Our `merge DST PART...` of the bundles TensorFlow's SaveV2 wrote per task gives the files TF's own
/// `MergeV2Checkpoints` made of them (tests/fixtures/gen_merge.py), byte for byte: the index (shard ids
/// renumbered in part order, slices of a partitioned tensor merged into the full entry first seen, the
/// header's shard count summed) and the data files. TF's output is deterministic here (the generator
/// saves every part twice and checks the saves agree), so nothing is excused. The parts are consumed.
#[test]
fn tf_merge_matches() {
    let mut compared = 0;
    for case in ["two_tasks", "three_tasks_out_of_order"] {
        let dir = fixture("merge", case);
        let tmp = tempfile::tempdir().unwrap();
        crate::util::copy_folder(&dir.join("parts"), &tmp.path().join("parts"));
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
        let parts: Vec<PathBuf> = meta["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| tmp.path().join("parts").join(p.as_str().unwrap()))
            .collect();
        let dest = tmp.path().join("merged/model.ckpt");
        let mut args: Vec<&Path> = vec![&dest];
        args.extend(parts.iter().map(PathBuf::as_path));
        merge(&args).expect_code(0);
        let want = snapshot(&dir.join("merged"));
        let mut got = snapshot(&tmp.path().join("merged"));
        // Ours also names the new checkpoint in the folder's `checkpoint` file, as `run` does.
        assert!(got.remove("checkpoint").is_some());
        assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "{case}");
        for (name, bytes) in &want {
            assert!(got[name] == *bytes, "{case}: {name} differs from TensorFlow's MergeV2Checkpoints");
            compared += 1;
        }
        assert!(snapshot(&tmp.path().join("parts")).is_empty(), "{case}: the parts are merged away");
    }
    assert_eq!(compared, 3 + 4);
}

/// A worker computes only its own shard's tensors: the workers' reports add up to the single run's,
/// each writing less than all of it.
#[test]
fn each_worker_computes_only_its_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let report = |out: &Path, extra: &[&str]| {
        let mut args = vec!["--json"];
        args.extend(extra);
        let run = run_case("beyond_repartition_vocab_3_to_2", out, &args).expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        (v["report"]["tensors_written"].as_u64().unwrap(), v["report"]["bytes_written"].as_u64().unwrap())
    };
    let single = report(&tmp.path().join("one/model.ckpt"), &["--shards", "2"]);
    let w: Vec<(u64, u64)> =
        (0..2).map(|i| report(&tmp.path().join("two/model.ckpt"), &["--worker", &format!("{i}/2")])).collect();
    assert_eq!((w[0].0 + w[1].0, w[0].1 + w[1].1), single);
    assert!(w.iter().all(|&(t, b)| t > 0 && t < single.0 && b < single.1), "{w:?} of {single:?}");
}
