//! The W1 workload: what it holds and where it is cached. A TF checkpoint with a `rows x dim` float32
//! embedding (the vocabulary shuffled, 5% of it new tokens) and a tower of `layers` dense `width x width`
//! layers with biases, each with two Adam slots, plus `global_step`; the new model's initial checkpoint
//! of the same variables; both vocabularies; and the `warmstart.toml` that remaps the embedding and
//! copies every other trainable variable (the Adam slots and `global_step` are non-trainable and keep
//! their initial values, as in TF).
//!
//! At full size (1,000,000 x 128 and 8 layers of 1024) the old data file is 612.8 MB.

#![cfg_attr(not(feature = "bench-worker"), allow(dead_code))]

use std::path::{Path, PathBuf};

/// The share of the new vocabulary that is new tokens, in percent.
pub const NEW_TOKEN_PERCENT: u64 = 5;

/// The sizes of one W1 workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Embedding rows (vocabulary size, old and new).
    pub rows: u64,
    /// Embedding columns.
    pub dim: u64,
    /// Dense layers in the tower.
    pub layers: u64,
    /// Width of every dense layer.
    pub width: u64,
    /// Seed of the generator.
    pub seed: u64,
}

/// One variable of the workload: name, shape, and whether it is an Adam slot (non-trainable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Checkpoint name.
    pub name: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// float32 (false: int64 `global_step`).
    pub float: bool,
}

impl Workload {
    /// Full-size W1 scaled by `scale`: the embedding's rows and the number of layers scale (at least one
    /// layer), so bytes grow linearly with `scale`.
    pub fn scaled(scale: f64, seed: u64) -> Workload {
        Workload {
            rows: ((1_000_000.0 * scale).round() as u64).max(20),
            dim: 128,
            layers: ((8.0 * scale).round() as u64).max(1),
            width: 1024,
            seed,
        }
    }

    /// The cache folder's name, unique per size.
    pub fn key(&self) -> String {
        format!("w1-r{}-d{}-l{}-w{}-s{}", self.rows, self.dim, self.layers, self.width, self.seed)
    }

    /// Where this workload is cached under `cache` (normally `target/bench-cache`).
    pub fn dir(&self, cache: &Path) -> PathBuf {
        cache.join(self.key())
    }

    /// The old checkpoint's prefix under the workload folder.
    pub fn old_prefix(dir: &Path) -> PathBuf {
        dir.join("old").join("model.ckpt")
    }

    /// The new model's initial checkpoint prefix under the workload folder.
    pub fn new_prefix(dir: &Path) -> PathBuf {
        dir.join("new").join("model.ckpt")
    }

    /// The old checkpoint's (only) data file.
    pub fn old_data(dir: &Path) -> PathBuf {
        dir.join("old").join("model.ckpt.data-00000-of-00001")
    }

    /// Every variable, in the order they are written: the embedding, `global_step`, then per layer the
    /// kernel and bias, each followed by its `Adam` and `Adam_1` slots.
    pub fn variables(&self) -> Vec<Variable> {
        let float = |name: String, shape: Vec<u64>| Variable { name, shape, float: true };
        let mut vars = vec![
            float("embedding".into(), vec![self.rows, self.dim]),
            Variable { name: "global_step".into(), shape: vec![], float: false },
        ];
        for l in 0..self.layers {
            for (part, shape) in [("kernel", vec![self.width, self.width]), ("bias", vec![self.width])] {
                let name = format!("dense_{l}/{part}");
                for suffix in ["", "/Adam", "/Adam_1"] {
                    vars.push(float(format!("{name}{suffix}"), shape.clone()));
                }
            }
        }
        vars
    }

    /// Bytes of tensor data in each checkpoint (the old data file's size).
    pub fn data_bytes(&self) -> u64 {
        self.variables().iter().map(|v| v.shape.iter().product::<u64>() * if v.float { 4 } else { 8 }).sum()
    }

    /// The `warmstart.toml` of the workload (paths relative to its folder).
    pub fn config(&self) -> String {
        format!(
            r#"# W1 of `cargo xtask bench`: remap the embedding, copy the tower; Adam slots keep their initial values.
ckpt_to_initialize_from = "old/model.ckpt"
target = "new/model.ckpt"
vars_to_warm_start = ".*"
non_trainable = [".*/Adam(_1)?", "global_step"]

[var_name_to_vocab_info.embedding]
new_vocab = "new_vocab.txt"
new_vocab_size = {rows}
num_oov_buckets = 0
old_vocab = "old_vocab.txt"
old_vocab_size = -1
backup_initializer = "zeros"
axis = 0
"#,
            rows = self.rows
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_size_is_about_614_megabytes() {
        let w = Workload::scaled(1.0, 1);
        assert_eq!((w.rows, w.dim, w.layers, w.width), (1_000_000, 128, 8, 1024));
        // 512,000,000 embedding bytes + 8 layers x 3 copies x (1024^2 + 1024) x 4 + 8 (global_step).
        assert_eq!(w.data_bytes(), 512_000_000 + 8 * 3 * (1024 * 1024 + 1024) * 4 + 8);
    }

    #[test]
    fn bytes_scale_linearly() {
        let full = Workload::scaled(1.0, 1).data_bytes() as f64;
        let quarter = Workload::scaled(0.25, 1).data_bytes() as f64;
        assert!((quarter / full - 0.25).abs() < 0.001);
        assert_ne!(Workload::scaled(0.25, 1).key(), Workload::scaled(0.5, 1).key());
    }
}
