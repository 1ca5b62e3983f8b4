//! Merging the indexes of several bundles into one checkpoint, as TensorFlow's `MergeBundles`
//! (`tensor_bundle.cc`, behind `tf.raw_ops.MergeV2Checkpoints`) does, for `warmstart merge`:
//! - the parts are read in the order given; each part's data files get new shard ids in the order
//!   their first entry comes in the part's key order (as TF), then any data file no entry names;
//! - the header's shard count is the sum of the parts', its endianness and version the first part's
//!   (the others must agree);
//! - a key in two parts is refused, except the full-name entry of a partitioned tensor, whose slices
//!   are merged (each slice listed once, in the order first seen; dtype and shape must agree);
//! - then (our check, not TF's) every slice a partitioned tensor lists must be in some part.
//!
//! The result commits as a single run's does: through the journaled [`AtomicOutput`] with the folder
//! lock, the data files (hard links to the parts' ones), the `checkpoint` state file and the index
//! last, stale shards of another count retired; then the parts' files are removed.
//!
//! `run --worker I/N` writes part `I` as the one-shard bundle [`part_prefix`] names, so that the parts
//! of all workers, merged in worker order, are byte for byte what a single `run --shards N` writes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use prost::Message;
use warmstart_core::output::AtomicOutput;
use warmstart_core::Result;

use crate::proto::{tensor_slice_proto, BundleEntryProto, BundleHeaderProto, TensorSliceProto};
use crate::slice_key::{self, Extent};
use crate::state::{data_path, index_path, stale_shards, state_text, STATE_FILE};
use crate::table::{build_table, read_index_file};
use crate::TfError;

/// The prefix of worker `worker`'s part of the checkpoint `prefix` in `workers` shards:
/// `prefix.part-0000I-of-0000N` (files `.index` and `.data-00000-of-00001`), which TensorFlow does not
/// take for the checkpoint `prefix` nor for one of its data files.
pub fn part_prefix(prefix: &Path, worker: usize, workers: usize) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!(".part-{worker:05}-of-{workers:05}"));
    PathBuf::from(s)
}

/// The parts that `run --worker I/N` wrote for the checkpoint `prefix`, in worker order: all `N` of
/// them, written for one `N`.
pub fn worker_parts(prefix: &Path) -> Result<Vec<PathBuf>, TfError> {
    let name = prefix.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = match prefix.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let listing = std::fs::read_dir(dir).map_err(|e| TfError::io(dir, e))?;
    let mut found: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for entry in listing.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&name).and_then(|r| r.strip_prefix(".part-")) else { continue };
        let Some(rest) = rest.strip_suffix(".index") else { continue };
        let Some((i, n)) = rest.split_once("-of-") else { continue };
        let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
        if let (true, true, Ok(i), Ok(n)) = (digits(i), digits(n), i.parse(), n.parse()) {
            found.entry(n).or_default().push(i);
        }
    }
    let Some((&workers, seen)) = found.iter().next() else {
        return Err(TfError::MergeNoParts { path: prefix.to_path_buf() });
    };
    if found.len() > 1 {
        let counts = found.keys().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
        return Err(TfError::MergeWorkerCounts { path: prefix.to_path_buf(), counts });
    }
    if let Some(worker) = (0..workers).find(|w| !seen.contains(w)) {
        let path = index_path(&part_prefix(prefix, worker, workers));
        return Err(TfError::MergeMissingPart { path, worker, workers });
    }
    Ok((0..workers).map(|w| part_prefix(prefix, w, workers)).collect())
}

/// What [`merge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// Entries in the merged index (besides the header).
    pub entries: usize,
    /// Data shards of the merged checkpoint.
    pub shards: usize,
}

/// The merge so far (TF's `MergeState`).
#[derive(Default)]
struct State {
    header: Option<BundleHeaderProto>,
    num_shards: usize,
    entries: BTreeMap<Vec<u8>, BundleEntryProto>,
    /// (part, its shard) -> new shard id, and the other way.
    ids: HashMap<(usize, u32), u32>,
    shards: Vec<(usize, u32, u32)>,
}

impl State {
    fn shard_id(&mut self, part: usize, shard: u32) -> u32 {
        let next = self.ids.len() as u32;
        let id = *self.ids.entry((part, shard)).or_insert(next);
        if id == next {
            self.shards.push((part, shard, 0));
        }
        id
    }
}

fn mismatch(path: &Path, reason: impl Into<String>) -> TfError {
    TfError::MergeMismatch { path: path.to_path_buf(), reason: reason.into() }
}

/// Checks a part's header against the first part's, counting its shards.
fn merge_header(state: &mut State, path: &Path, header: BundleHeaderProto) -> Result<u32, TfError> {
    let n = u32::try_from(header.num_shards).ok().filter(|&n| (1..=99_999).contains(&n));
    let n = n.ok_or_else(|| mismatch(path, format!("its header says {} shards", header.num_shards)))?;
    match &state.header {
        None => state.header = Some(header),
        Some(first) if first.endianness != header.endianness => {
            return Err(mismatch(path, "its endianness differs from the first part's"))
        }
        Some(first) if first.version != header.version => {
            return Err(mismatch(path, "its format version differs from the first part's"))
        }
        Some(_) => {}
    }
    state.num_shards += n as usize;
    Ok(n)
}

/// Merges one part's index into `state` (TF's `MergeOneBundle`).
fn merge_part(state: &mut State, part_no: usize, part: &Path) -> Result<u32, TfError> {
    let (path, entries) = read_index_file(&index_path(part))?;
    let mut entries = entries.into_iter();
    let header = match entries.next() {
        Some((key, value)) if key.is_empty() => BundleHeaderProto::decode(value.as_slice()),
        _ => return Err(mismatch(&path, "it has no bundle header")),
    };
    let header = header.map_err(|e| mismatch(&path, format!("unreadable header: {e}")))?;
    let num_shards = merge_header(state, &path, header)?;
    for (key, value) in entries {
        let shown = || String::from_utf8_lossy(&key).into_owned();
        let mut entry = BundleEntryProto::decode(value.as_slice())
            .map_err(|e| mismatch(&path, format!("unreadable entry {:?}: {e}", shown())))?;
        if let Some(existing) = state.entries.get_mut(&key) {
            if existing.slices.is_empty() || entry.slices.is_empty() {
                return Err(TfError::MergeDuplicate { path, key: shown() });
            }
            if existing.dtype != entry.dtype || existing.shape != entry.shape {
                return Err(mismatch(&path, format!("tensor {:?} has another dtype or shape here", shown())));
            }
            for slice in entry.slices {
                if !existing.slices.contains(&slice) {
                    existing.slices.push(slice);
                }
            }
            continue;
        }
        let shard = u32::try_from(entry.shard_id).ok().filter(|&s| s < num_shards);
        let shard = shard.ok_or_else(|| mismatch(&path, format!("{:?} is in shard {}", shown(), entry.shard_id)))?;
        entry.shard_id = state.shard_id(part_no, shard) as i32;
        state.entries.insert(key, entry);
    }
    Ok(num_shards)
}

fn extent(e: &tensor_slice_proto::Extent) -> Extent {
    let length = e.has_length.map(|tensor_slice_proto::extent::HasLength::Length(l)| l);
    Extent { start: e.start, length }
}

fn shown_slice(slice: &TensorSliceProto) -> String {
    let dims: Vec<String> = slice
        .extent
        .iter()
        .map(|e| match extent(e).length {
            Some(l) => format!("{}:{l}", e.start),
            None => "-".into(),
        })
        .collect();
    dims.join(",")
}

/// Every slice a partitioned tensor lists is in the merged index.
fn check_slices(state: &State, dest: &Path) -> Result<(), TfError> {
    for (key, entry) in &state.entries {
        let Ok(name) = std::str::from_utf8(key) else { continue };
        for slice in &entry.slices {
            let extents: Vec<Extent> = slice.extent.iter().map(extent).collect();
            if !state.entries.contains_key(&slice_key::encode(name, &extents)) {
                let (tensor, slice) = (name.to_string(), shown_slice(slice));
                return Err(TfError::MergeMissingSlice { path: dest.to_path_buf(), tensor, slice });
            }
        }
    }
    Ok(())
}

/// Reads and merges the parts' indexes: the state, and each part's shard count.
fn merge_indexes(dest: &Path, parts: &[PathBuf]) -> Result<(State, Vec<u32>), TfError> {
    let mut state = State::default();
    let mut counts = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        if part == dest {
            return Err(mismatch(&index_path(part), "a part may not be the merged checkpoint itself"));
        }
        counts.push(merge_part(&mut state, i, part)?);
    }
    // Data files no entry names still get a shard, so that the count in the header holds.
    for (i, &n) in counts.iter().enumerate() {
        for shard in 0..n {
            state.shard_id(i, shard);
        }
    }
    for (new, slot) in state.shards.iter_mut().enumerate() {
        slot.2 = new as u32;
    }
    check_slices(&state, dest)?;
    Ok((state, counts))
}

/// Merges the bundles `parts` (prefixes, in order) into the checkpoint `dest`, committing it as a
/// single run commits its output, then removes the parts' files. Nothing at `dest` changes on a
/// refusal or a failure, and the parts stay.
pub fn merge(dest: &Path, parts: &[PathBuf], sync: bool) -> Result<Merged> {
    let (state, counts) = merge_indexes(dest, parts)?;
    let header = BundleHeaderProto { num_shards: state.num_shards as i32, ..state.header.clone().unwrap_or_default() };
    let mut table: Vec<(Vec<u8>, Vec<u8>)> = vec![(Vec::new(), header.encode_to_vec())];
    table.extend(state.entries.iter().map(|(k, e)| (k.clone(), e.encode_to_vec())));
    let total = state.num_shards as u32;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut output = AtomicOutput::new(sync);
    output.create_folder(&dir)?;
    output.claim(dest, &[STATE_FILE])?;
    let mut used = Vec::with_capacity(state.shards.len());
    for &(part, shard, new) in &state.shards {
        let from = data_path(&parts[part], shard, counts[part]);
        output.stage_existing(&data_path(dest, new, total), &from)?;
        used.push(from);
    }
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let s = output.stage(&dir.join(STATE_FILE))?;
    output.file(s).write_all(state_text(&name).as_bytes())?;
    let i = output.stage(&index_path(dest))?;
    output.file(i).write_all(&build_table(&table))?;
    for stale in stale_shards(dest, total) {
        output.retire(&stale);
    }
    output.commit()?;
    // Best effort, as TF's: the merged checkpoint is in place.
    for file in used.into_iter().chain(parts.iter().map(|p| index_path(p))) {
        let _ = std::fs::remove_file(file);
    }
    Ok(Merged { entries: state.entries.len(), shards: state.shards.len() })
}
