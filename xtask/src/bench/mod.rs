//! `cargo xtask bench`: the performance benchmark of issue 7. It builds the release `warmstart` binary
//! and the benchmark worker (this crate in release with the `bench-worker` feature), generates the W1
//! workload once per size (cached under `target/bench-cache/`), then measures in the same run, each as
//! a child process timed alone (median of `--runs`):
//! - `warmstart run` on W1 against `cp` of the old data file into the same output folder (the floor);
//! - each reader's full read of W1's data (TF bundle, safetensors, HDF5, NumPy `.npz`; the latter three converted once
//!   from the TF checkpoint) against plain sequential reads of the same file;
//! - optionally TensorFlow's own `warm_start` + save (`--with-tf PYTHON`, script `tf_warm_start.py`),
//!   and every W1 tensor read from Python through `warmstart.load_checkpoint` (the Python package,
//!   built in release into `target/python-bench-venv`), `tf.train.load_checkpoint` (PYTHON) and
//!   `safetensors.numpy.load_file` (script `py_read.py`).
//! - optionally (`--with-torch PYTHON`) the torch reader's full read of W1 as a `.bin` that PYTHON's
//!   `torch.save` wrote from the safetensors copy (script `torch_save.py`, once per workload), against
//!   plain reads of the same file;
//! - optionally `warmstart plan` alone on a vocabulary of `--plan-tokens N` tokens (warm), whose peak
//!   memory is the vocabulary tables' (issue 13 asks for it at 10M tokens).
//!
//! It reports wall time, throughput, the ratio to the floor and peak memory as a table, or as JSON with
//! `--json`; warm cache, cold cache (page cache dropped before every run) or both.

mod measure;
mod options;
mod prng;
mod report;
#[cfg(feature = "bench-worker")]
mod worker;
mod workload;

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use measure::Sample;
use options::{CacheMode, Options};
use report::Measurement;
use workload::Workload;

/// The TensorFlow side of `--with-tf`, run with the given python.
const TF_SCRIPT: &str = include_str!("tf_warm_start.py");

/// The Python readers of `--with-tf` (warmstart's, TensorFlow's and safetensors' numpy loader).
const PY_READ_SCRIPT: &str = include_str!("py_read.py");

/// `--with-torch`'s conversion of the safetensors copy to a `torch.save` `.bin`.
const TORCH_SAVE_SCRIPT: &str = include_str!("torch_save.py");

/// The sizes `--scaling` measures, relative to the asked size: W1 at 1/4, 1/2, 1, 2 and 4 x (about 2.4 GB).
const SCALING: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// Entry point of `cargo xtask bench ARGS`; `--worker ...` runs the worker (release build only).
pub fn bench(args: &[String]) -> Result<(), String> {
    if args.first().map(String::as_str) == Some("--worker") {
        #[cfg(feature = "bench-worker")]
        return worker::main(&args[1..]);
        #[cfg(not(feature = "bench-worker"))]
        return Err("the bench worker is only in xtask built with --features bench-worker".into());
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", options::USAGE);
        return Ok(());
    }
    let options = Options::parse(args)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    let target = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let bench = Bench::new(&root, &target, &options)?;
    let scales: Vec<f64> = if options.scaling { SCALING.to_vec() } else { vec![1.0] };
    let mut results = Vec::new();
    for s in scales {
        let w = bench.workload(s);
        let dir = bench.prepare(&w, !options.no_readers)?;
        if !options.no_readers {
            bench.prepare_torch(&dir)?;
        }
        results.extend(bench.measure_workload(&w, &dir, s * options.scale)?);
    }
    if let Some(tokens) = options.plan_tokens {
        results.extend(bench.measure_plan(tokens)?);
    }
    let table = report::table(&results);
    if options.json {
        eprintln!("{table}");
        println!("{}", report::json(&results, &bench.environment()));
    } else {
        println!("{table}");
        println!("{}", bench.environment_text());
    }
    Ok(())
}

/// One benchmark session: where things are and what was asked.
struct Bench<'a> {
    options: &'a Options,
    cache: PathBuf,
    warmstart: PathBuf,
    worker: PathBuf,
    /// With `--with-tf` (and the readers): the python of a venv with the warmstart package (release).
    python: Option<PathBuf>,
    modes: Vec<&'static str>,
}

/// The runs of one case so far.
#[derive(Default)]
struct CaseRuns {
    samples: Vec<Sample>,
    /// The child's own times (`seconds=S` on its stdout), for TensorFlow without its import.
    inner_samples: Vec<Sample>,
    error: Option<String>,
}

/// One thing to measure: a name, the case it is compared with, and how to run it.
struct Case {
    name: String,
    floor: Option<String>,
    bytes: u64,
    command: Command,
    /// The child prints `seconds=S`, its own time without start-up (TensorFlow's import): reported as
    /// a second row with this name.
    inner: Option<String>,
}

impl<'a> Bench<'a> {
    /// Builds the binaries and decides the cache modes.
    fn new(root: &Path, target: &Path, options: &'a Options) -> Result<Bench<'a>, String> {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        eprintln!("bench: building the release warmstart binary and the bench worker");
        let status = Command::new(cargo)
            .current_dir(root)
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "warmstart",
                "-p",
                "xtask",
                "--features",
                "xtask/bench-worker",
            ])
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build --release failed ({status})"));
        }
        let release = target.join("release");
        let can_drop = measure::drop_page_cache().is_ok();
        let modes = match (options.cache, can_drop) {
            (CacheMode::Warm, _) | (CacheMode::Both, false) => vec!["warm"],
            (CacheMode::Cold, true) => vec!["cold"],
            (CacheMode::Both, true) => vec!["warm", "cold"],
            (CacheMode::Cold, false) => return Err(measure::drop_page_cache().unwrap_err()),
        };
        if options.cache == CacheMode::Both && !can_drop {
            eprintln!("bench: the page cache cannot be dropped (not root?): warm cache only");
        }
        let python = match (&options.with_tf, options.no_readers) {
            (Some(_), false) => Some(crate::python::install(&target.join("python-bench-venv"), true)?),
            _ => None,
        };
        Ok(Bench {
            options,
            cache: target.join("bench-cache"),
            warmstart: release.join("warmstart"),
            worker: release.join("xtask"),
            python,
            modes,
        })
    }

    /// The workload at `factor` x the asked size.
    fn workload(&self, factor: f64) -> Workload {
        let o = self.options;
        let mut w = Workload::scaled(o.scale * factor, o.seed);
        let scaled = |n: u64| ((n as f64 * factor).round() as u64).max(1);
        if let Some(rows) = o.rows {
            w.rows = scaled(rows).max(20);
        }
        if let Some(layers) = o.layers {
            w.layers = scaled(layers);
        }
        w.dim = o.dim.unwrap_or(w.dim);
        w.width = o.width.unwrap_or(w.width);
        w
    }

    fn worker(&self) -> Command {
        let mut c = Command::new(&self.worker);
        c.args(["bench", "--worker"]);
        c
    }

    /// Generates (once) the workload and, if `convert`, its safetensors and HDF5 copies; returns its
    /// folder.
    fn prepare(&self, w: &Workload, convert: bool) -> Result<PathBuf, String> {
        let dir = w.dir(&self.cache);
        let logs = self.cache.join("logs");
        fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let generated = dir.join("generated");
        if !generated.exists() {
            eprintln!(
                "bench: generating {} ({:.1} MB of tensors per checkpoint)",
                w.key(),
                w.data_bytes() as f64 / 1e6
            );
            let _ = fs::remove_dir_all(&dir);
            let mut c = self.worker();
            c.arg("gen").arg(&dir);
            c.args([w.rows, w.dim, w.layers, w.width, w.seed].map(|n| n.to_string()));
            let (s, _) = measure::run(&mut c, &logs.join("gen"))?;
            eprintln!("bench: generated in {:.1} s", s.seconds);
            fs::write(&generated, "").map_err(|e| format!("{}: {e}", generated.display()))?;
        }
        // (Named for what it holds: a cache converted before the `.npz` was added is converted again.)
        let converted = dir.join("converted-st-h5-npz");
        if convert && !converted.exists() {
            eprintln!("bench: converting {} to safetensors, HDF5 and NumPy", w.key());
            let mut c = self.worker();
            c.arg("convert").arg(&dir);
            let (s, _) = measure::run(&mut c, &logs.join("convert"))?;
            eprintln!("bench: converted in {:.1} s", s.seconds);
            fs::write(&converted, "").map_err(|e| format!("{}: {e}", converted.display()))?;
        }
        Ok(dir)
    }

    /// With `--with-torch`: writes (once) the safetensors copy in `dir` again as `old.bin` with
    /// `torch.save`, through `torch_save.py` (which writes it whole or not at all).
    fn prepare_torch(&self, dir: &Path) -> Result<(), String> {
        let (Some(python), bin) = (&self.options.with_torch, dir.join("old.bin")) else {
            return Ok(());
        };
        if bin.exists() {
            return Ok(());
        }
        let script = self.cache.join("torch_save.py");
        fs::write(&script, TORCH_SAVE_SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
        eprintln!("bench: writing {} with torch.save", bin.display());
        let mut c = Command::new(python);
        c.arg(&script).arg(dir.join("old.safetensors")).arg(&bin);
        let (s, _) = measure::run(&mut c, &self.cache.join("logs").join("torch_save"))?;
        eprintln!("bench: written in {:.1} s", s.seconds);
        Ok(())
    }

    /// The cases of one workload, output going to `out`.
    fn cases(&self, w: &Workload, dir: &Path, out: &Path) -> Vec<Case> {
        let bytes = w.data_bytes();
        let mut cases = Vec::new();
        let mut cp = Command::new("cp");
        cp.arg(Workload::old_data(dir)).arg(out.join("model.ckpt.data-00000-of-00001"));
        cases.push(Case { name: "cp (floor)".into(), floor: None, bytes, command: cp, inner: None });
        let mut run = Command::new(&self.warmstart);
        run.arg("run").arg("--config").arg(dir.join("warmstart.toml")).arg("--out").arg(out.join("model.ckpt"));
        cases.push(Case {
            name: "warmstart run".into(),
            floor: Some("cp (floor)".into()),
            bytes,
            command: run,
            inner: None,
        });
        if let Some(python) = &self.options.with_tf {
            let mut tf = Command::new(python);
            tf.arg(self.cache.join("tf_warm_start.py")).arg(dir).arg(out.join("model.ckpt"));
            tf.env("TF_CPP_MIN_LOG_LEVEL", "2");
            cases.push(Case {
                name: "tensorflow warm_start".into(),
                floor: Some("cp (floor)".into()),
                bytes,
                command: tf,
                inner: Some("tensorflow warm_start (no import)".into()),
            });
        }
        if !self.options.no_readers {
            cases.extend(self.convert_cases(dir, out, bytes));
            cases.extend(self.reader_cases(dir, bytes));
            cases.extend(self.python_read_cases(dir, bytes));
        }
        cases
    }

    /// Each reader's full read of W1 (through the worker's `read`) and a plain read of the same file:
    /// the TF bundle, the safetensors, HDF5 and `.npz` copies, and with `--with-torch` the `.bin`.
    fn reader_cases(&self, dir: &Path, bytes: u64) -> Vec<Case> {
        let mut readers = vec![
            ("tf", Workload::old_prefix(dir), Workload::old_data(dir)),
            ("safetensors", dir.join("old.safetensors"), dir.join("old.safetensors")),
            ("hdf5", dir.join("old.h5"), dir.join("old.h5")),
            ("numpy", dir.join("old.npz"), dir.join("old.npz")),
        ];
        if self.options.with_torch.is_some() {
            readers.push(("torch", dir.join("old.bin"), dir.join("old.bin")));
        }
        let mut cases = Vec::new();
        for (format, path, file) in readers {
            let plain_name = format!("plain read ({format} file)");
            let mut plain = self.worker();
            plain.arg("plainread").arg(&file);
            let file_bytes = fs::metadata(&file).map(|m| m.len()).unwrap_or(bytes);
            cases.push(Case { name: plain_name.clone(), floor: None, bytes: file_bytes, command: plain, inner: None });
            let mut read = self.worker();
            read.arg("read").arg(format).arg(&path);
            cases.push(Case {
                name: format!("read {format}"),
                floor: Some(plain_name),
                bytes,
                command: read,
                inner: None,
            });
        }
        cases
    }

    /// With `--with-tf`: every W1 tensor read from Python one at a time (touched, then dropped) through
    /// `warmstart.load_checkpoint` (the TF bundle and the safetensors file), `tf.train.load_checkpoint`
    /// and `safetensors.numpy.load_file`, each against the plain read of its file.
    fn python_read_cases(&self, dir: &Path, bytes: u64) -> Vec<Case> {
        let (Some(tf_python), Some(python)) = (&self.options.with_tf, &self.python) else {
            return Vec::new();
        };
        let (tf, st) = (Workload::old_prefix(dir), dir.join("old.safetensors"));
        let (tf_floor, st_floor) = ("plain read (tf file)", "plain read (safetensors file)");
        [
            ("python warmstart.load_checkpoint (tf)", python, "warmstart", &tf, tf_floor),
            ("python warmstart.load_checkpoint (safetensors)", python, "warmstart", &st, st_floor),
            ("python tf.train.load_checkpoint", tf_python, "tensorflow", &tf, tf_floor),
            ("python safetensors.numpy.load_file", python, "safetensors", &st, st_floor),
        ]
        .into_iter()
        .map(|(name, python, reader, path, floor)| {
            let mut command = Command::new(python);
            command.arg(self.cache.join("py_read.py")).arg(reader).arg(path);
            command.env("TF_CPP_MIN_LOG_LEVEL", "2");
            Case {
                name: name.into(),
                floor: Some(floor.into()),
                bytes,
                command,
                inner: Some(format!("{name} (no import)")),
            }
        })
        .collect()
    }

    /// `warmstart convert` from TF to safetensors (against the TF floor) and from safetensors to TF
    /// (against `cp` of the safetensors file, its own floor).
    fn convert_cases(&self, dir: &Path, out: &Path, bytes: u64) -> Vec<Case> {
        let safetensors = dir.join("old.safetensors");
        let convert = |from: &Path, to: PathBuf| {
            let mut c = Command::new(&self.warmstart);
            c.arg("convert").arg(from).arg(to);
            c
        };
        let mut cp = Command::new("cp");
        cp.arg(&safetensors).arg(out.join("copy.safetensors"));
        let st_floor = "cp safetensors (floor)";
        vec![
            Case {
                name: "convert tf -> safetensors".into(),
                floor: Some("cp (floor)".into()),
                bytes,
                command: convert(&Workload::old_prefix(dir), out.join("o.safetensors")),
                inner: None,
            },
            Case { name: st_floor.into(), floor: None, bytes, command: cp, inner: None },
            Case {
                name: "convert safetensors -> tf".into(),
                floor: Some(st_floor.into()),
                bytes,
                command: convert(&safetensors, out.join("model.ckpt")),
                inner: None,
            },
        ]
    }

    /// Measures every case of one workload in every cache mode. The cases are interleaved: each round
    /// runs every case once, so that the machine's drift (its +-30% noise comes and goes) falls on all of
    /// them alike. In warm mode a first, untimed round fills the page cache.
    fn measure_workload(&self, w: &Workload, dir: &Path, scale: f64) -> Result<Vec<Measurement>, String> {
        let out = self.cache.join("out");
        if self.options.with_tf.is_some() {
            for (name, text) in [("tf_warm_start.py", TF_SCRIPT), ("py_read.py", PY_READ_SCRIPT)] {
                let script = self.cache.join(name);
                fs::write(&script, text).map_err(|e| format!("{}: {e}", script.display()))?;
            }
        }
        let mut results = Vec::new();
        for &mode in &self.modes {
            let mut cases = self.cases(w, dir, &out);
            let mut runs: Vec<CaseRuns> = cases.iter().map(|_| CaseRuns::default()).collect();
            let rounds = self.options.runs + usize::from(mode == "warm");
            for round in 0..rounds {
                eprintln!("bench: {} {mode}: round {} of {rounds}", w.key(), round + 1);
                for (case, acc) in cases.iter_mut().zip(runs.iter_mut()) {
                    let timed = !(mode == "warm" && round == 0);
                    self.run_once(case, mode, timed, acc, &out)?;
                }
            }
            for (case, acc) in cases.into_iter().zip(runs) {
                let measurement = |name: String, samples: Vec<Sample>| Measurement {
                    workload: w.key(),
                    scale,
                    data_bytes: w.data_bytes(),
                    cache: mode,
                    case: name,
                    floor: case.floor.clone(),
                    bytes: case.bytes,
                    samples,
                    error: acc.error.clone(),
                    output_check: None,
                };
                results.push(measurement(case.name.clone(), acc.samples));
                if let Some(inner) = &case.inner {
                    results.push(measurement(inner.clone(), acc.inner_samples));
                }
            }
        }
        if self.options.with_tf.is_some() {
            let check = self.check_against_tf(w, dir, &out)?;
            eprintln!("bench: {}: warmstart run's output against TensorFlow's: {check}", w.key());
            for m in results.iter_mut().filter(|m| m.case == "tensorflow warm_start") {
                m.output_check = Some(check.clone());
            }
        }
        let _ = fs::remove_dir_all(&out);
        Ok(results)
    }

    /// `warmstart plan` alone on a W1 of `tokens` rows of one column (its vocabulary files are what it
    /// reads), warm: one untimed run, then `--runs` timed ones.
    fn measure_plan(&self, tokens: u64) -> Result<Vec<Measurement>, String> {
        let w = Workload { rows: tokens, dim: 1, layers: 1, width: 1, seed: self.options.seed };
        let dir = self.prepare(&w, false)?;
        let out = self.cache.join("out");
        let mut plan = Command::new(&self.warmstart);
        plan.arg("plan").arg("--config").arg(dir.join("warmstart.toml"));
        let vocab = |name: &str| fs::metadata(dir.join(name)).map(|m| m.len()).unwrap_or(0);
        let bytes = vocab("old_vocab.txt") + vocab("new_vocab.txt");
        let mut case = Case { name: "warmstart plan".into(), floor: None, bytes, command: plan, inner: None };
        let mut acc = CaseRuns::default();
        for round in 0..=self.options.runs {
            eprintln!("bench: {} plan: round {} of {}", w.key(), round + 1, self.options.runs + 1);
            self.run_once(&mut case, "warm", round > 0, &mut acc, &out)?;
        }
        let _ = fs::remove_dir_all(&out);
        Ok(vec![Measurement {
            workload: w.key(),
            scale: tokens as f64 / 1e6,
            data_bytes: w.data_bytes(),
            cache: "warm",
            case: case.name,
            floor: None,
            bytes,
            samples: acc.samples,
            error: acc.error,
            output_check: None,
        }])
    }

    /// Runs `case` once into a fresh, empty output folder (as `run` writes a fresh output, so does the
    /// floor's `cp`), after earlier runs' output is written back and, cold, the page cache dropped. A
    /// failure is kept in `acc` and the case is not run again.
    fn run_once(&self, case: &mut Case, mode: &str, timed: bool, acc: &mut CaseRuns, out: &Path) -> Result<(), String> {
        if acc.error.is_some() {
            return Ok(());
        }
        let log = self.cache.join("logs").join(case.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        let _ = fs::remove_dir_all(out);
        fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        measure::sync();
        if mode == "cold" {
            measure::drop_page_cache()?;
        }
        match measure::run(&mut case.command, &log) {
            Ok(_) if !timed => {}
            Ok((sample, stdout)) => {
                acc.samples.push(sample);
                let inner = stdout.lines().find_map(|l| l.strip_prefix("seconds=")?.trim().parse().ok());
                if let Some(seconds) = inner {
                    acc.inner_samples.push(Sample { seconds, ..sample });
                }
            }
            Err(e) => {
                eprintln!("bench: {e}");
                // The child's first stderr line, else the command line.
                let line = e.lines().skip(1).find(|l| !l.trim().is_empty()).or_else(|| e.lines().next());
                acc.error = Some(line.unwrap_or_default().to_string());
            }
        }
        Ok(())
    }

    /// Runs `warmstart run` and TensorFlow once more into separate folders and compares their outputs.
    fn check_against_tf(&self, w: &Workload, dir: &Path, out: &Path) -> Result<String, String> {
        let _ = fs::remove_dir_all(out);
        let (ours, theirs) = (out.join("warmstart"), out.join("tensorflow"));
        let find = |out: &Path, name: &str| {
            self.cases(w, dir, out).into_iter().find(|c| c.name == name).ok_or(format!("no {name} case"))
        };
        let mut run = find(&ours, "warmstart run")?;
        let mut tf = find(&theirs, "tensorflow warm_start")?;
        let logs = self.cache.join("logs");
        for (folder, case) in [(&ours, &mut run), (&theirs, &mut tf)] {
            fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
            measure::run(&mut case.command, &logs.join("check"))?;
        }
        let mut compare = self.worker();
        compare.arg("compare").arg(ours.join("model.ckpt")).arg(theirs.join("model.ckpt"));
        let (_, stdout) = measure::run(&mut compare, &logs.join("compare"))?;
        Ok(stdout.trim().to_string())
    }

    /// The machine and load, for the JSON.
    fn environment(&self) -> serde_json::Value {
        serde_json::json!({
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "loadavg": fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
            "runs": self.options.runs,
            "cache_modes": self.modes,
        })
    }

    fn environment_text(&self) -> String {
        format!(
            "{} CPUs, load average {}; median of {} runs; warm = after one untimed run, cold = page cache dropped before each run",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
            self.options.runs
        )
    }
}
