//! Every reproducer under `fuzz/regressions/<target>/` runs through its target and must return (each
//! was a panic, hang or huge allocation the driver found, since fixed). Reproducers of findings not yet
//! fixed are named in `IGNORED` and run by `#[ignore]`d tests of their own below. Also runs every seed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use warmstart_fuzz::{target, TARGETS};

/// Reproducers of open findings (`<target>/<file>`), run only by their `#[ignore]`d tests.
const IGNORED: &[&str] = &[];

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// Runs the reproducer `file` of `target`, failing if it is slow (hangs were slow inputs).
fn run_reproducer(target_name: &str, file: &Path) {
    let t = target(target_name).unwrap_or_else(|| panic!("no target {target_name}"));
    let data = fs::read(file).expect("a reproducer");
    let start = Instant::now();
    (t.run)(&data);
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{}: took {elapsed:?}", file.display());
}

#[test]
fn every_reproducer_returns() {
    let mut ran = 0;
    for t in TARGETS {
        let Ok(entries) = fs::read_dir(regressions().join(t.name)) else { continue };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let name = format!("{}/{}", t.name, file.file_name().and_then(|n| n.to_str()).unwrap_or_default());
            if IGNORED.contains(&name.as_str()) || file.extension().is_some_and(|e| e == "md") {
                continue;
            }
            run_reproducer(t.name, &file);
            ran += 1;
        }
    }
    println!("{ran} reproducers ran");
}

#[test]
fn every_seed_returns() {
    for t in TARGETS {
        let seeds = (t.seeds)();
        assert!(!seeds.is_empty(), "{}: no seeds", t.name);
        for seed in seeds {
            (t.run)(&seed);
        }
    }
}

#[test]
fn ignored_reproducers_exist() {
    for name in IGNORED {
        assert!(regressions().join(name).is_file(), "{name}");
    }
}
