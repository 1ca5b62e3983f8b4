//! The fuzz targets: each a `fn(&[u8])` a libfuzzer `fuzz_target!` could call, which must return (not
//! panic, hang or allocate without bound) whatever the bytes, and its seeds from `tests/fixtures`.
//! Readers that need a path get the bytes written to a folder of the calling thread's own.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use warmstart_config::WarmStartSettings;
use warmstart_core::test_support::{fixtures, read_everything, MemorySource};
use warmstart_core::{CheckpointSource, DType, TensorInfo};
use warmstart_hdf5::Hdf5Source;
use warmstart_keras::{KerasShardedSource, KerasSource};
use warmstart_numpy::NumpySource;
use warmstart_planner::vocab::generate_vocab_remapping;
use warmstart_planner::VocabFile;
use warmstart_rules::{Rules, RulesSource};
use warmstart_safetensors::SafetensorsSource;
use warmstart_tf::TfSource;
use warmstart_torch::TorchSource;

/// A fuzz target: its name, its entry point, its seed inputs, and whether a crash that kills the
/// process is a C library's (HDF5) rather than a Rust failure.
pub struct Target {
    /// The name `cargo xtask fuzz TARGET` and `fuzz/regressions/<name>` use.
    pub name: &'static str,
    /// The entry point.
    pub run: fn(&[u8]),
    /// The seed inputs (from the fixtures).
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Whether the target calls into a C library, whose crashes are known issues, not Rust failures.
    pub calls_c: bool,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "safetensors", run: target_safetensors, seeds: seeds_safetensors, calls_c: false },
    Target { name: "safetensors_index", run: target_safetensors_index, seeds: seeds_safetensors_index, calls_c: false },
    Target { name: "tf_index", run: target_tf_index, seeds: seeds_tf_index, calls_c: false },
    Target { name: "tf_data", run: target_tf_data, seeds: seeds_tf_data, calls_c: false },
    Target { name: "tf_meta", run: target_tf_meta, seeds: seeds_tf_meta, calls_c: false },
    Target { name: "hdf5", run: target_hdf5, seeds: seeds_hdf5, calls_c: true },
    Target { name: "keras", run: target_keras, seeds: seeds_keras, calls_c: true },
    Target { name: "keras_index", run: target_keras_index, seeds: seeds_keras_index, calls_c: true },
    Target { name: "config", run: target_config, seeds: seeds_config, calls_c: false },
    Target { name: "vocab", run: target_vocab, seeds: seeds_vocab, calls_c: false },
    Target { name: "torch", run: target_torch, seeds: seeds_torch, calls_c: false },
    Target { name: "torch_pickle", run: target_torch_pickle, seeds: seeds_torch_pickle, calls_c: false },
    Target { name: "torch_index", run: target_torch_index, seeds: seeds_torch_index, calls_c: false },
    Target { name: "numpy", run: target_numpy, seeds: seeds_numpy, calls_c: false },
    Target { name: "npy_header", run: target_npy_header, seeds: seeds_npy_header, calls_c: false },
    Target { name: "rules", run: target_rules, seeds: seeds_rules, calls_c: false },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

thread_local! {
    /// The calling thread's folder (removed when the thread ends).
    static WORK: RefCell<Option<TempDir>> = const { RefCell::new(None) };
}

/// Calls `f` with the calling thread's folder.
fn with_work<R>(f: impl FnOnce(&Path) -> R) -> R {
    WORK.with(|work| {
        let mut work = work.borrow_mut();
        let dir = work.get_or_insert_with(|| {
            tempfile::Builder::new().prefix("warmstart-fuzz-").tempdir().expect("a temporary folder")
        });
        f(dir.path())
    })
}

/// Writes `bytes` to `path` (a failure to write is the harness's, so it panics).
fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("harness: cannot write {}: {e}", path.display()));
}

/// Copies the fixture folder `from` into `to` unless done already.
fn copy_once(from: &Path, to: &Path) {
    if to.exists() {
        return;
    }
    fs::create_dir_all(to).expect("harness: a folder");
    for entry in fs::read_dir(from).expect("harness: the fixture folder") {
        let entry = entry.expect("harness: a fixture entry");
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            fs::copy(entry.path(), to.join(entry.file_name())).expect("harness: a fixture copy");
        }
    }
}

/// The bytes of the files under `fixtures()/area` (recursively) whose names satisfy `keep`, sorted by path.
fn fixture_files(area: &str, keep: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    let mut dirs = vec![fixtures().join(area)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().and_then(|n| n.to_str()).is_some_and(&keep) {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths.iter().map(|p| fs::read(p).expect("harness: a fixture")).collect()
}

/// A single safetensors file: its header, its offsets, and every tensor read.
pub fn target_safetensors(data: &[u8]) {
    with_work(|dir| {
        let path = dir.join("model.safetensors");
        write(&path, data);
        if let Ok(source) = SafetensorsSource::open(&path) {
            let _ = read_everything(&source);
        }
    });
}

fn seeds_safetensors() -> Vec<Vec<u8>> {
    fixture_files("safetensors", |n| n.ends_with(".safetensors"))
}

/// A `model.safetensors.index.json` beside the two shards of the `sharded` fixture, opened as a folder.
pub fn target_safetensors_index(data: &[u8]) {
    with_work(|dir| {
        let folder = dir.join("sharded");
        copy_once(&fixtures().join("safetensors/sharded"), &folder);
        write(&folder.join("model.safetensors.index.json"), data);
        if let Ok(source) = SafetensorsSource::open(&folder) {
            let _ = read_everything(&source);
        }
    });
}

fn seeds_safetensors_index() -> Vec<Vec<u8>> {
    fixture_files("safetensors", |n| n.ends_with(".index.json"))
}

/// The TF checkpoints of the fixtures: their folder under `tests/fixtures/tf` and prefix.
const TF_CASES: [(&str, &str); 6] = [
    ("dtypes", "all"),
    ("slice_keys", "slices"),
    ("tf1_single", "model.ckpt-12"),
    ("tf2_keras", "ckpt-1"),
    ("tf1_sharded", "model"),
    ("tf1_partitioned", "model-0"),
];

/// The file of a TF checkpoint a target replaces.
#[derive(Clone, Copy)]
enum TfFile {
    Index,
    Data,
    Meta,
}

impl TfFile {
    /// The file's name for `prefix` (the first data shard).
    fn name(self, case: &str, prefix: &str) -> String {
        match self {
            TfFile::Index => format!("{prefix}.index"),
            TfFile::Data => {
                let shards = if case == "tf1_sharded" { 2 } else { 1 };
                format!("{prefix}.data-00000-of-{shards:05}")
            }
            TfFile::Meta => format!("{prefix}.meta"),
        }
    }
}

/// The TF cases that have `file`.
fn tf_cases(file: TfFile) -> Vec<(&'static str, &'static str)> {
    let has = |(case, prefix): &(&str, &str)| fixtures().join("tf").join(case).join(file.name(case, prefix)).is_file();
    TF_CASES.iter().copied().filter(has).collect()
}

/// Replaces `file` of the TF case the first byte chooses with the rest of `data`, opens the prefix and
/// reads everything, then puts the fixture's file back.
fn target_tf(data: &[u8], file: TfFile) {
    let Some((&choice, bytes)) = data.split_first() else { return };
    let cases = tf_cases(file);
    let (case, prefix) = cases[choice as usize % cases.len()];
    with_work(|dir| {
        let folder = dir.join("tf").join(case);
        copy_once(&fixtures().join("tf").join(case), &folder);
        let path = folder.join(file.name(case, prefix));
        let original = fs::read(fixtures().join("tf").join(case).join(file.name(case, prefix))).expect("a fixture");
        write(&path, bytes);
        if let Ok(source) = TfSource::open(&folder.join(prefix)) {
            let _ = read_everything(&source);
        }
        write(&path, &original);
    });
}

/// The seeds of a TF target: each case's file, after the byte that chooses the case.
fn seeds_tf(file: TfFile) -> Vec<Vec<u8>> {
    let cases = tf_cases(file);
    let seed = |(i, (case, prefix)): (usize, &(&str, &str))| {
        let bytes = fs::read(fixtures().join("tf").join(case).join(file.name(case, prefix))).expect("a fixture");
        [vec![i as u8], bytes].concat()
    };
    cases.iter().enumerate().map(seed).collect()
}

/// A TF `.index` file (its table, header, BundleEntryProtos and slice keys) with the fixture's data.
/// The first byte chooses the fixture.
pub fn target_tf_index(data: &[u8]) {
    target_tf(data, TfFile::Index);
}

fn seeds_tf_index() -> Vec<Vec<u8>> {
    seeds_tf(TfFile::Index)
}

/// A TF data shard (the first) with the fixture's index; the first byte chooses the fixture.
pub fn target_tf_data(data: &[u8]) {
    target_tf(data, TfFile::Data);
}

fn seeds_tf_data() -> Vec<Vec<u8>> {
    seeds_tf(TfFile::Data)
}

/// A TF1 `.meta` file (the MetaGraphDef) beside the fixture's bundle; the first byte chooses it.
pub fn target_tf_meta(data: &[u8]) {
    target_tf(data, TfFile::Meta);
}

fn seeds_tf_meta() -> Vec<Vec<u8>> {
    seeds_tf(TfFile::Meta)
}

/// An HDF5 file, opened and read by the HDF5 C library: run it in a child process.
pub fn target_hdf5(data: &[u8]) {
    with_work(|dir| {
        let path = dir.join("input.h5");
        write(&path, data);
        if let Ok(source) = Hdf5Source::open(&path) {
            let _ = read_everything(&source);
        }
    });
}

fn seeds_hdf5() -> Vec<Vec<u8>> {
    fixture_files("hdf5", |n| n.ends_with(".h5"))
}

/// A Keras archive: its zip directory and members, checked against the file, and its weights, read in
/// place by the HDF5 C library (a child process, as for `hdf5`).
pub fn target_keras(data: &[u8]) {
    with_work(|dir| {
        let path = dir.join("input.keras");
        write(&path, data);
        if let Ok(source) = KerasSource::open(&path) {
            let _ = read_everything(&source);
        }
    });
}

fn seeds_keras() -> Vec<Vec<u8>> {
    fixture_files("keras", |n| n.ends_with(".keras"))
}

/// A sharded Keras index (`model.weights.json`) beside the shards of the `sharded` fixture.
pub fn target_keras_index(data: &[u8]) {
    with_work(|dir| {
        let folder = dir.join("keras_sharded");
        copy_once(&fixtures().join("keras/sharded"), &folder);
        write(&folder.join("model.weights.json"), data);
        if let Ok(source) = KerasShardedSource::open(&folder.join("model.weights.json")) {
            let _ = read_everything(&source);
        }
    });
}

fn seeds_keras_index() -> Vec<Vec<u8>> {
    fixture_files("keras", |n| n.ends_with(".weights.json"))
}

/// An `.npz` archive or `.npy` file: the zip structure, each member's header, inflating, converting.
pub fn target_numpy(data: &[u8]) {
    with_work(|dir| {
        let path = dir.join("input.npz");
        write(&path, data);
        if let Ok(source) = NumpySource::open(&path) {
            let _ = read_everything(&source);
        }
    });
}

fn seeds_numpy() -> Vec<Vec<u8>> {
    fixture_files("numpy", |n| n.ends_with(".npz") || n.ends_with(".npy"))
}

/// The `.npy` header parser alone, on the bytes as a header (no data needed).
pub fn target_npy_header(data: &[u8]) {
    let ctx = warmstart_numpy::header::Ctx { path: Path::new("input.npy"), member: "input" };
    let _ = warmstart_numpy::header::parse(data, ctx);
}

fn seeds_npy_header() -> Vec<Vec<u8>> {
    fixture_files("numpy", |n| n.ends_with(".npy"))
}

/// The TOML configuration (invalid UTF-8 replaced, as the bytes reach `from_toml` as text).
pub fn target_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = WarmStartSettings::from_toml(&text, Path::new("/nonexistent/base"));
}

fn seeds_config() -> Vec<Vec<u8>> {
    let mut seeds = fixture_files("warmstart", |n| n.ends_with(".toml"));
    seeds.dedup();
    seeds
}

/// A porting rules file (invalid UTF-8 replaced): parsed, and if accepted applied to a small checkpoint
/// of every kind of tensor, each read whole and row by row through the rules.
pub fn target_rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(rules) = Rules::from_toml(&text, Path::new("rules.toml")) else { return };
    let mut src = MemorySource::new();
    for (name, dtype, shape) in [
        ("bert/encoder/layer_0/kernel", DType::F32, vec![3, 4]),
        ("bert/encoder/layer_0/kernel/adam_m", DType::F32, vec![3, 4]),
        ("conv/kernel", DType::BF16, vec![2, 1, 3, 2]),
        ("global_step", DType::I64, vec![]),
        ("ids", DType::I32, vec![5]),
        ("empty", DType::F16, vec![0, 3]),
    ] {
        let info = TensorInfo::new(name, dtype, shape);
        let len = info.byte_len().unwrap_or(0) as usize;
        src = src.with_bytes(info, (0..len).map(|i| (i * 37 % 251) as u8).collect());
    }
    let src = src.with_strings("vocab", &[2], vec![b"a".to_vec(), b"b".to_vec()]);
    let Ok(ported) = RulesSource::new(&src, &rules, false) else { return };
    for t in ported.tensors() {
        if t.dtype == DType::String {
            let _ = ported.read_strings(&t.name);
            continue;
        }
        let whole = ported.read(&t.name).map(|b| b.len() as u64);
        assert_eq!(whole.ok(), t.byte_len(), "{}: bytes read", t.name);
        for row in 0..t.rows() {
            assert!(ported.read_rows(&t.name, row..row + 1).is_ok(), "{}: row {row}", t.name);
        }
    }
}

fn seeds_rules() -> Vec<Vec<u8>> {
    let mut seeds = fixture_files("port", |n| n.ends_with(".toml"));
    seeds.extend(fs::read(fixtures().join("../../examples/port/bert-tf-to-hf.toml")));
    seeds
}

/// The vocabulary files through `GenerateVocabRemapping`: the first three bytes are the new vocabulary
/// offset (mod 8), how many new entries (mod 16) and the old vocabulary size (as an i8: -1 is all);
/// the rest is the new vocabulary, a NUL byte, and the old one. Checks the remapping's invariants.
pub fn target_vocab(data: &[u8]) {
    let [offset, count, old_size, rest @ ..] = data else { return };
    let (new, old) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let (offset, count, old_size) = (u64::from(offset % 8), u64::from(count % 16), i64::from(*old_size as i8));
    let (new, old) = (VocabFile::new("new_vocab", new), VocabFile::new("old_vocab", old));
    if let Ok(remap) = generate_vocab_remapping("v", &new, &old, offset, count, old_size) {
        assert_eq!(remap.remapping.len() as u64, count, "one old id per new entry");
        let present = remap.remapping.iter().filter(|&&id| id != -1).count() as u64;
        assert_eq!(remap.num_present, present, "num_present counts the ids found");
        let old_lines = old.contents.split(|&b| b == b'\n').count() as i64;
        assert!(remap.remapping.iter().all(|&id| (-1..old_lines).contains(&id)), "old ids are old lines");
    }
}

/// The vocabulary pairs of the fixtures (new and old files of one case), with their parameters.
fn seeds_vocab() -> Vec<Vec<u8>> {
    let mut pairs: Vec<(PathBuf, PathBuf)> = Vec::new();
    for area in ["warmstart", "checkpoint_ops"] {
        let Ok(entries) = fs::read_dir(fixtures().join(area)) else { continue };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            for (new, old) in [("new_vocab", "old_vocab"), ("new_feature_vocab.txt", "old_feature_vocab.txt")] {
                if dir.join(new).is_file() && dir.join(old).is_file() {
                    pairs.push((dir.join(new), dir.join(old)));
                }
            }
        }
    }
    let seed = |(new, old): &(PathBuf, PathBuf)| {
        let (new, old) = (fs::read(new).expect("a fixture"), fs::read(old).expect("a fixture"));
        let lines = new.iter().filter(|&&b| b == b'\n').count().min(15) as u8;
        [vec![0, lines, 0xff], new, vec![0], old].concat()
    };
    let mut seeds: Vec<Vec<u8>> = pairs.iter().map(seed).collect();
    seeds.sort();
    seeds.dedup();
    seeds
}

/// A `torch.save` archive: its zip directory, its `data.pkl` through the restricted unpickler, its
/// storages and views, and every tensor read.
pub fn target_torch(data: &[u8]) {
    with_work(|dir| {
        let path = dir.join("model.pt");
        write(&path, data);
        if let Ok(source) = TorchSource::open(&path) {
            let _ = read_everything(&source);
        }
    });
}

fn seeds_torch() -> Vec<Vec<u8>> {
    fixture_files("torch", |n| n.ends_with(".pt") || n.ends_with(".bin"))
}

/// A `data.pkl` alone, through the restricted unpickler and the naming of its tensors.
pub fn target_torch_pickle(data: &[u8]) {
    let _ = warmstart_torch::fuzz_unpickle(data);
}

/// The `data.pkl` of every torch fixture archive.
fn seeds_torch_pickle() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for archive in seeds_torch() {
        let Ok(mut zip) = zip::ZipArchive::new(std::io::Cursor::new(archive)) else { continue };
        for i in 0..zip.len() {
            let Ok(mut file) = zip.by_index(i) else { continue };
            if file.name().is_ok_and(|n| n.ends_with("/data.pkl")) {
                let mut pickle = Vec::new();
                if std::io::Read::read_to_end(&mut file, &mut pickle).is_ok() {
                    seeds.push(pickle);
                }
            }
        }
    }
    seeds
}

/// A `pytorch_model.bin.index.json` beside the two shards of the `sharded` fixture, opened as a folder.
pub fn target_torch_index(data: &[u8]) {
    with_work(|dir| {
        let folder = dir.join("torch_sharded");
        copy_once(&fixtures().join("torch/sharded"), &folder);
        write(&folder.join("pytorch_model.bin.index.json"), data);
        if let Ok(source) = TorchSource::open(&folder) {
            let _ = read_everything(&source);
        }
    });
}

fn seeds_torch_index() -> Vec<Vec<u8>> {
    fixture_files("torch", |n| n.ends_with(".index.json"))
}
