//! `run --worker I/N` (one worker's part of a TF bundle) and `warmstart merge` (the parts joined into
//! one checkpoint, as TensorFlow's `MergeV2Checkpoints` does); see [`warmstart_tf::merge`].

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::failure::Failure;

/// `--worker I/N`: worker `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    /// This worker, from 0.
    pub index: usize,
    /// How many workers (and data shards).
    pub count: usize,
}

/// Parses `I/N` with `0 <= I < N <= 99999`.
pub fn parse_worker(text: &str) -> Result<Worker, String> {
    let bad = || format!("{text:?}: expected I/N, worker I of N (0 <= I < N <= 99999), e.g. 0/4");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (index, count): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if index >= count || count > 99_999 {
        return Err(bad());
    }
    Ok(Worker { index, count })
}

/// The shard count of a `run --worker I/N`: `--shards` must be N, if given.
pub fn worker_shards(worker: Option<Worker>, shards: Option<u32>) -> Result<Option<usize>, Failure> {
    match (worker, shards) {
        (None, s) => Ok(s.map(|n| n as usize)),
        (Some(w), Some(s)) if s as usize != w.count => Err(Failure::usage(format!(
            "--worker {}/{} writes one of {} shards, but --shards says {s}",
            w.index, w.count, w.count
        ))),
        (Some(w), _) => Ok(Some(w.count)),
    }
}

#[derive(Args)]
pub struct MergeArgs {
    /// The checkpoint prefix to write. With no PART, its worker parts (PREFIX.part-0000I-of-0000N,
    /// written by `run --worker I/N`) are merged, all N of them.
    prefix: PathBuf,
    /// Bundle prefixes to merge, in this order (as tf.raw_ops.MergeV2Checkpoints takes them).
    parts: Vec<PathBuf>,
    /// Flush the written files to the disk (fsync) before moving them into place.
    #[arg(long)]
    sync: bool,
    /// If another warmstart is writing to the destination's folder, wait for it rather than fail.
    #[arg(long)]
    wait: bool,
}

/// `warmstart merge PREFIX [PART...]`.
#[cfg(not(feature = "tf"))]
pub fn merge(_: MergeArgs) -> Result<(), Failure> {
    Err(Failure::failed("this warmstart was built without TF bundle support (feature `tf`)"))
}

/// `warmstart merge PREFIX [PART...]`.
#[cfg(feature = "tf")]
pub fn merge(args: MergeArgs) -> Result<(), Failure> {
    warmstart_core::journal::set_wait_for_lock(args.wait);
    let parts = match args.parts.is_empty() {
        true => warmstart_tf::merge::worker_parts(&args.prefix).map_err(Failure::failed)?,
        false => args.parts.clone(),
    };
    let merged = warmstart_tf::merge::merge(&args.prefix, &parts, args.sync).map_err(Failure::failed)?;
    let mut out = std::io::stdout().lock();
    let line = format!(
        "{}: merged {} parts, {} entries in {} data shards",
        args.prefix.display(),
        parts.len(),
        merged.entries,
        merged.shards
    );
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(Failure::stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_is_i_of_n() {
        assert_eq!(parse_worker("2/4"), Ok(Worker { index: 2, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0", "0/100000", "-1/2"] {
            assert!(parse_worker(bad).is_err(), "{bad}");
        }
    }
}
