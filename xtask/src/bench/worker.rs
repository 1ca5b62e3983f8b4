//! The benchmark's worker, the release build of xtask with the `bench-worker` feature, run by
//! `cargo xtask bench` as a child process so that its time and peak memory are measured alone:
//! - `gen DIR ROWS DIM LAYERS WIDTH SEED`: writes the W1 workload (see [`super::workload`]) with
//!   `warmstart_tf::TfSink`;
//! - `convert DIR`: writes the old checkpoint again as `old.safetensors`, `old.h5` and `old.npz` (our
//!   writers: the `.npz` as `np.savez` writes it);
//! - `read FORMAT PATH`: reads every tensor of a checkpoint through `warmstart_formats::open`, in row
//!   blocks, touching every byte;
//! - `plainread FILE...`: reads the same files with plain sequential `read` calls (the floor);
//! - `compare PREFIX PREFIX`: whether two TF checkpoints hold the same tensors, byte for byte (ours
//!   against TensorFlow's output, with `--with-tf`).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use warmstart_core::{copy::copy_tensor, CheckpointSink, CheckpointSource, DType, SinkTensor, TensorInfo};

use super::prng::SplitMix64;
use super::workload::{Workload, NEW_TOKEN_PERCENT};

/// About how many bytes one row block holds, as the executor's default.
const BLOCK_BYTES: u64 = 4 << 20;

/// Runs one worker command.
pub fn main(args: &[String]) -> Result<(), String> {
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or_else(|| format!("worker: argument {i} missing"));
    let num = |i: usize| -> Result<u64, String> { arg(i)?.parse().map_err(|e| format!("worker: argument {i}: {e}")) };
    match arg(0)? {
        "gen" => {
            let w = Workload { rows: num(2)?, dim: num(3)?, layers: num(4)?, width: num(5)?, seed: num(6)? };
            generate(&w, Path::new(arg(1)?))
        }
        "convert" => convert(Path::new(arg(1)?)),
        "read" => {
            let (bytes, sum) = read_checkpoint(arg(1)?, Path::new(arg(2)?))?;
            println!("{bytes} {sum:016x}");
            Ok(())
        }
        "plainread" => {
            let (mut bytes, mut sum) = (0u64, 0u64);
            for file in &args[1..] {
                let (b, s) = plain_read(Path::new(file))?;
                bytes += b;
                sum = sum.wrapping_add(s);
            }
            println!("{bytes} {sum:016x}");
            Ok(())
        }
        "compare" => {
            let differences = compare(Path::new(arg(1)?), Path::new(arg(2)?))?;
            if differences.is_empty() {
                println!("identical");
            } else {
                println!("different: {}", differences.join(", "));
            }
            Ok(())
        }
        other => Err(format!("worker: unknown command {other:?}")),
    }
}

fn describe(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The sink tensors of a workload.
fn sink_tensors(w: &Workload) -> Vec<SinkTensor> {
    w.variables()
        .into_iter()
        .map(|v| SinkTensor::whole(TensorInfo::new(v.name, if v.float { DType::F32 } else { DType::I64 }, v.shape)))
        .collect()
}

/// What a generated variable holds.
#[derive(Clone, Copy)]
enum Fill {
    /// Uniform random float32 in `[-scale, scale)`.
    Random(f32),
    /// float32 zeros.
    Zeros,
    /// One int64.
    Step(i64),
}

/// Writes one checkpoint of the workload, each variable's values from `fill(name)`.
fn write_checkpoint(
    w: &Workload,
    prefix: &Path,
    rng: &mut SplitMix64,
    fill: impl Fn(&str) -> Fill,
) -> Result<(), String> {
    if let Some(dir) = prefix.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tensors = sink_tensors(w);
    let mut sink = warmstart_tf::TfSink::create(prefix, &tensors, 1).map_err(describe)?;
    let mut block = Vec::with_capacity(BLOCK_BYTES as usize);
    for t in &tensors {
        sink.begin_tensor(t).map_err(describe)?;
        let mut remaining = t.byte_len().ok_or("tensor too large")?;
        let fill = fill(&t.info.name);
        while remaining > 0 {
            let n = remaining.min(BLOCK_BYTES) as usize;
            block.clear();
            match fill {
                Fill::Random(scale) => {
                    while block.len() + 8 <= n {
                        let [a, b] = rng.next_f32_pair(scale);
                        block.extend_from_slice(&a.to_le_bytes());
                        block.extend_from_slice(&b.to_le_bytes());
                    }
                    if block.len() < n {
                        block.extend_from_slice(&rng.next_f32_pair(scale)[0].to_le_bytes());
                    }
                }
                Fill::Zeros => block.resize(n, 0),
                Fill::Step(step) => block.extend_from_slice(&step.to_le_bytes()),
            }
            sink.write_data(&block).map_err(describe)?;
            remaining -= n as u64;
        }
        sink.end_tensor().map_err(describe)?;
    }
    Box::new(sink).finish().map_err(describe)
}

/// Writes the vocabulary files: old `tok0..tokN`; new the old tokens shuffled with 5% replaced by new ones.
fn write_vocabs(w: &Workload, dir: &Path, rng: &mut SplitMix64) -> Result<(), String> {
    let write = |name: &str, lines: &mut dyn Iterator<Item = String>| -> Result<(), String> {
        let path = dir.join(name);
        let mut out = std::io::BufWriter::new(fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        for line in lines {
            writeln!(out, "{line}").map_err(|e| format!("{}: {e}", path.display()))?;
        }
        out.flush().map_err(|e| format!("{}: {e}", path.display()))
    };
    write("old_vocab.txt", &mut (0..w.rows).map(|i| format!("tok{i}")))?;
    let mut ids: Vec<u64> = (0..w.rows).collect();
    rng.shuffle(&mut ids);
    let new_tokens = w.rows * NEW_TOKEN_PERCENT / 100;
    let mut lines: Vec<String> = ids[new_tokens as usize..].iter().map(|i| format!("tok{i}")).collect();
    lines.extend((0..new_tokens).map(|j| format!("new{j}")));
    rng.shuffle(&mut lines);
    write("new_vocab.txt", &mut lines.into_iter())
}

/// Generates the whole workload into `dir`, then marks it complete.
fn generate(w: &Workload, dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut rng = SplitMix64::new(w.seed);
    write_vocabs(w, dir, &mut rng)?;
    write_checkpoint(w, &Workload::old_prefix(dir), &mut rng, |name| match name {
        "global_step" => Fill::Step(100_000),
        n if n.ends_with("/Adam_1") => Fill::Random(0.001),
        _ => Fill::Random(0.05),
    })?;
    write_checkpoint(w, &Workload::new_prefix(dir), &mut rng, |name| match name {
        "global_step" => Fill::Step(0),
        n if n.contains("/Adam") => Fill::Zeros,
        _ => Fill::Random(0.05),
    })?;
    let config = dir.join("warmstart.toml");
    fs::write(&config, w.config()).map_err(|e| format!("{}: {e}", config.display()))
}

/// Writes the old checkpoint again as `old.safetensors`, `old.h5` and `old.npz` in `dir`.
fn convert(dir: &Path) -> Result<(), String> {
    let old = warmstart_tf::TfSource::open(&Workload::old_prefix(dir)).map_err(describe)?;
    let tensors: Vec<SinkTensor> = old.tensors().iter().cloned().map(SinkTensor::whole).collect();
    let st: Box<dyn CheckpointSink> = Box::new(
        warmstart_safetensors::SafetensorsSink::create(dir.join("old.safetensors"), &tensors, None)
            .map_err(describe)?,
    );
    // In HDF5 a dataset cannot have children, so `k/Adam` cannot sit under the dataset `k`: `k_Adam`.
    let h5_tensors: Vec<SinkTensor> = tensors
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.info.name = t.info.name.replace("/Adam", "_Adam");
            t
        })
        .collect();
    let h5: Box<dyn CheckpointSink> =
        Box::new(warmstart_hdf5::Hdf5Sink::create(&dir.join("old.h5"), &h5_tensors, None).map_err(describe)?);
    let npz: Box<dyn CheckpointSink> =
        Box::new(warmstart_numpy::NumpySink::create(dir.join("old.npz"), &tensors).map_err(describe)?);
    for (mut sink, declared) in [(st, &tensors), (h5, &h5_tensors), (npz, &tensors)] {
        for (t, as_declared) in tensors.iter().zip(declared) {
            copy_tensor(&old, &t.info.name, sink.as_mut(), as_declared, BLOCK_BYTES).map_err(describe)?;
        }
        sink.finish().map_err(describe)?;
    }
    Ok(())
}

/// Opens a checkpoint as the `warmstart` binary does (`warmstart_formats::open`, format told from the
/// content), checking that it is in `format` (`tf`, `safetensors`, `hdf5`, `numpy` or `torch`).
fn open(format: &str, path: &Path) -> Result<Box<dyn CheckpointSource>, String> {
    let format: warmstart_formats::Format = format.parse().map_err(describe)?;
    let source = warmstart_formats::open(path).map_err(describe)?;
    if source.format() != format {
        return Err(format!("{}: opened as {}, expected {format}", path.display(), source.format()));
    }
    Ok(source)
}

/// The tensors that differ between two TF checkpoints (missing on one side, other dtype or shape, other
/// bytes); empty if they hold the same tensors.
fn compare(a: &Path, b: &Path) -> Result<Vec<String>, String> {
    let a = warmstart_tf::TfSource::open(a).map_err(describe)?;
    let b = warmstart_tf::TfSource::open(b).map_err(describe)?;
    let mut differences = Vec::new();
    for info in a.tensors() {
        let same = match b.tensor(&info.name) {
            None => false,
            Some(other) if other != info => false,
            Some(_) if info.dtype == DType::String => {
                a.read_strings(&info.name).map_err(describe)? == b.read_strings(&info.name).map_err(describe)?
            }
            Some(_) => a.read(&info.name).map_err(describe)? == b.read(&info.name).map_err(describe)?,
        };
        if !same {
            differences.push(info.name.clone());
        }
    }
    differences.extend(b.tensors().iter().filter(|t| a.tensor(&t.name).is_none()).map(|t| t.name.clone()));
    Ok(differences)
}

/// Adds up `bytes` as little-endian u64 words (and the tail bytes), so every byte is really read.
fn checksum(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut sum = words
        .by_ref()
        .fold(0u64, |s, w| s.wrapping_add(u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])));
    for &b in words.remainder() {
        sum = sum.wrapping_add(u64::from(b));
    }
    sum
}

/// Reads every numeric tensor of the checkpoint in row blocks: (bytes, checksum).
fn read_checkpoint(format: &str, path: &Path) -> Result<(u64, u64), String> {
    let source = open(format, path)?;
    let (mut bytes, mut sum) = (0u64, 0u64);
    for info in source.tensors() {
        if info.dtype == DType::String {
            continue;
        }
        // Streamed as the executor streams: a block at a time, released once read.
        for rows in warmstart_core::copy::row_blocks(source.path(), info, BLOCK_BYTES).map_err(describe)? {
            let block = source.read_rows(&info.name, rows.clone()).map_err(describe)?;
            bytes += block.len() as u64;
            sum = sum.wrapping_add(checksum(&block));
            source.release(&info.name, rows);
        }
    }
    Ok((bytes, sum))
}

/// Reads `path` with plain 4 MiB `read` calls: (bytes, checksum).
fn plain_read(path: &Path) -> Result<(u64, u64), String> {
    let mut file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; BLOCK_BYTES as usize];
    let (mut bytes, mut sum) = (0u64, 0u64);
    loop {
        let n = file.read(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            return Ok((bytes, sum));
        }
        bytes += n as u64;
        sum = sum.wrapping_add(checksum(&buf[..n]));
    }
}

/// The files a plain read of the checkpoint `path` in `format` covers.
#[allow(dead_code)]
pub fn data_files(format: &str, path: &Path) -> Vec<PathBuf> {
    match format {
        "tf" => vec![path.with_file_name(format!(
            "{}.data-00000-of-00001",
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ))],
        _ => vec![path.to_path_buf()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_workload_reads_back_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let w = Workload { rows: 200, dim: 8, layers: 1, width: 16, seed: 5 };
        generate(&w, dir.path()).unwrap();
        convert(dir.path()).unwrap();
        let old = Workload::old_data(dir.path());
        let plain_tf = plain_read(&old).unwrap();
        assert_eq!(plain_tf.0, w.data_bytes());
        let tf = read_checkpoint("tf", &Workload::old_prefix(dir.path())).unwrap();
        assert_eq!(tf, plain_tf, "the TF reader returns exactly the data file's bytes");
        let st = read_checkpoint("safetensors", &dir.path().join("old.safetensors")).unwrap();
        let h5 = read_checkpoint("hdf5", &dir.path().join("old.h5")).unwrap();
        let npz = read_checkpoint("numpy", &dir.path().join("old.npz")).unwrap();
        assert_eq!(st, tf);
        assert_eq!(h5, tf);
        assert_eq!(npz, tf);
        let old_vocab = fs::read_to_string(dir.path().join("old_vocab.txt")).unwrap();
        let new_vocab = fs::read_to_string(dir.path().join("new_vocab.txt")).unwrap();
        assert_eq!(old_vocab.lines().count(), 200);
        assert_eq!(new_vocab.lines().count(), 200);
        assert_eq!(new_vocab.lines().filter(|l| l.starts_with("new")).count(), 10);
        assert!(compare(&Workload::old_prefix(dir.path()), &Workload::old_prefix(dir.path())).unwrap().is_empty());
        let differences = compare(&Workload::old_prefix(dir.path()), &Workload::new_prefix(dir.path())).unwrap();
        assert_eq!(differences.len(), 8, "old and new values differ everywhere: {differences:?}");
        let mut unique: Vec<&str> = new_vocab.lines().collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 200);
    }
}
