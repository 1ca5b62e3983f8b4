//! [`TfSink`]: writes a V2 checkpoint TensorFlow reads. Tensors stream into the data shards, staged as
//! temporary files beside their destinations by [`warmstart_core::output::AtomicOutput`]; `finish`
//! stages the index (header, entries sorted by key, slices under their OrderedCode keys plus a full-name
//! entry listing them) and the directory's `checkpoint` state file, then commits the output through the
//! commit journal `<prefix>.warmstart-commit` (see [`warmstart_core::journal`]): the old index is moved
//! aside first, the shards and the state file replace theirs, the new index arrives last; a failure
//! puts the older checkpoint back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;
use warmstart_core::output::AtomicOutput;
use warmstart_core::{CheckpointSink, DType, Result, SinkTensor, Slice};

use crate::proto::{
    tensor_shape_proto, tensor_slice_proto, BundleEntryProto, BundleHeaderProto, TensorShapeProto, TensorSliceProto,
    VersionDef,
};
use crate::slice_key::{self, Extent};
use crate::state::{data_path, index_path, stale_shards, state_text, STATE_FILE};
use crate::table::{build_table, mask_crc};
use crate::TfError;

/// A V2 checkpoint being written.
pub struct TfSink {
    prefix: PathBuf,
    dir: PathBuf,
    declared: Vec<Declared>,
    by_key: ByKey,
    /// How many data shards there are: the output's first staged files, shard `i` at index `i`.
    num_shards: usize,
    /// The files being written (data shards; at `finish`, the index and the state file), moved into
    /// place together by `finish`; dropped unfinished, it removes them and the folders made for them.
    output: AtomicOutput,
    current: Option<Current>,
    /// `--worker I/N`: only shard `I` is written, as the part [`crate::merge::part_prefix`] names.
    worker: Option<usize>,
}

/// Table key of each declared tensor -> its index.
type ByKey = HashMap<Vec<u8>, usize>;

struct Declared {
    tensor: SinkTensor,
    tf_dtype: i32,
    key: Vec<u8>,
    shard: usize,
    /// Where the data went, once written.
    written: Option<(u64, u64, u32)>,
}

struct Current {
    index: usize,
    offset: u64,
    given: u64,
    expected: u64,
    crc: u32,
    /// Written at offsets through a region (`begin_tensor_at`), not through `write_data`.
    at: bool,
}

fn shape_proto(shape: &[u64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: shape.iter().map(|&d| tensor_shape_proto::Dim { size: d as i64, name: String::new() }).collect(),
        unknown_rank: false,
    }
}

fn slice_proto(slice: &Slice) -> TensorSliceProto {
    TensorSliceProto {
        extent: slice
            .start
            .iter()
            .zip(&slice.len)
            .map(|(&s, &l)| tensor_slice_proto::Extent {
                start: s as i64,
                has_length: Some(tensor_slice_proto::extent::HasLength::Length(l as i64)),
            })
            .collect(),
    }
}

fn extents(slice: &Slice) -> Vec<Extent> {
    slice.start.iter().zip(&slice.len).map(|(&s, &l)| Extent { start: s as i64, length: Some(l as i64) }).collect()
}

/// The piece of a data block that is hashed, then written, at a time.
const WRITE_PIECE_BYTES: usize = 1 << 20;

/// The folder of the checkpoint `prefix` to write in `shards` data files, if both are usable.
fn destination_folder(prefix: &Path, shards: usize) -> Result<PathBuf, TfError> {
    let misuse = |reason: String| TfError::SinkMisuse { path: prefix.to_path_buf(), reason };
    if shards == 0 || u32::try_from(shards).is_err() || shards > 99_999 {
        return Err(misuse(format!("{shards} data shards asked for")));
    }
    let name_ok = prefix.file_name().is_some_and(|n| !n.is_empty());
    if !name_ok {
        return Err(misuse("the prefix has no file name".into()));
    }
    Ok(match prefix.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

/// Checks one declared tensor on its own (name, dtype, shape, slice), giving its TensorFlow dtype
/// number and its table key.
fn dtype_and_key(prefix: &Path, t: &SinkTensor) -> Result<(i32, Vec<u8>), TfError> {
    let bad =
        |reason: String| TfError::BadSinkTensor { path: prefix.to_path_buf(), tensor: t.info.name.clone(), reason };
    let name = t.info.name.as_str();
    if name.is_empty() || name.as_bytes()[0] == 0 {
        return Err(bad("a tensor name may not be empty or start with a NUL byte".into()));
    }
    let tf_dtype =
        crate::dtype::to_tf(t.info.dtype).ok_or_else(|| bad(format!("TensorFlow has no dtype {}", t.info.dtype)))?;
    if t.info.num_elements().is_none() || t.info.shape.iter().any(|&d| d > i64::MAX as u64) {
        return Err(bad(format!("shape {:?} is too large", t.info.shape)));
    }
    let Some(s) = &t.slice else {
        return Ok((tf_dtype, name.as_bytes().to_vec()));
    };
    let rank = t.info.shape.len();
    let fits = s.start.len() == rank
        && s.len.len() == rank
        && (0..rank).all(|d| s.start[d].checked_add(s.len[d]).is_some_and(|e| e <= t.info.shape[d]));
    if !fits {
        return Err(bad(format!("slice {:?}+{:?} does not fit in {:?}", s.start, s.len, t.info.shape)));
    }
    if t.info.dtype == DType::String {
        return Err(bad("TensorFlow does not read string tensors from slices".into()));
    }
    Ok((tf_dtype, slice_key::encode(name, &extents(s))))
}

/// The tensors to write, checked alone and against each other (each whole tensor or slice once, the
/// slices of a tensor agreeing on it), each given a shard so that the shards balance by bytes in
/// declaration order; and the index of each by its table key.
fn declare(prefix: &Path, tensors: &[SinkTensor], shards: usize) -> Result<(Vec<Declared>, ByKey), TfError> {
    let mut declared: Vec<Declared> = Vec::with_capacity(tensors.len());
    let mut by_key = HashMap::with_capacity(tensors.len());
    let mut full_names: HashMap<&str, (&SinkTensor, bool)> = HashMap::new();
    let mut shard_bytes = vec![0u64; shards];
    for t in tensors {
        let bad = |reason: &str| TfError::BadSinkTensor {
            path: prefix.to_path_buf(),
            tensor: t.info.name.clone(),
            reason: reason.into(),
        };
        let (tf_dtype, key) = dtype_and_key(prefix, t)?;
        let name = t.info.name.as_str();
        match full_names.get(name) {
            Some((other, sliced)) => {
                if !*sliced || t.slice.is_none() || other.info != t.info {
                    return Err(bad("declared twice, or as whole and as slices, or with different shapes"));
                }
            }
            None => {
                full_names.insert(name, (t, t.slice.is_some()));
            }
        }
        if by_key.insert(key.clone(), declared.len()).is_some() {
            return Err(bad("the same slice is declared twice"));
        }
        // Balance the shards by bytes, in declaration order.
        let shard = (0..shards).min_by_key(|&i| (shard_bytes[i], i)).unwrap_or(0);
        shard_bytes[shard] = shard_bytes[shard].saturating_add(t.byte_len().unwrap_or(0));
        declared.push(Declared { tensor: t.clone(), tf_dtype, key, shard, written: None });
    }
    Ok((declared, by_key))
}

impl TfSink {
    /// Prepares to write `tensors` to the checkpoint `prefix` (files `prefix.index` and
    /// `prefix.data-*-of-*` in `shards` data files), creating the temporary files in its directory.
    pub fn create(prefix: &Path, tensors: &[SinkTensor], shards: usize) -> Result<TfSink> {
        let dir = destination_folder(prefix, shards)?;
        let (declared, by_key) = declare(prefix, tensors, shards)?;
        // As TensorFlow's savers do, create the destination folder.
        let mut output = AtomicOutput::new(false);
        output.create_folder(&dir)?;
        // One writer per folder; an interrupted commit there is finished or rolled back first.
        output.claim(prefix, &[STATE_FILE])?;
        for i in 0..shards {
            output.stage(&data_path(prefix, i as u32, shards as u32))?;
        }
        Ok(TfSink {
            prefix: prefix.to_path_buf(),
            dir,
            declared,
            by_key,
            num_shards: shards,
            output,
            current: None,
            worker: None,
        })
    }

    /// Prepares worker `worker`'s part of the checkpoint `prefix` in `shards` data shards: the data shard
    /// `worker` exactly as [`create`](TfSink::create) would write it (the same tensors at the same
    /// offsets), as the one-shard bundle [`crate::merge::part_prefix`] names, whose index lists that
    /// shard's tensors and every partitioned tensor with all its slices (so that `merge` restores their
    /// order and tells a missing part). It takes no lock; each file is renamed into place on its own.
    pub fn create_worker(prefix: &Path, tensors: &[SinkTensor], shards: usize, worker: usize) -> Result<TfSink> {
        let dir = destination_folder(prefix, shards)?;
        if worker >= shards {
            let reason = format!("worker {worker} of {shards}: workers are numbered 0 to {}", shards - 1);
            return Err(TfError::SinkMisuse { path: prefix.to_path_buf(), reason }.into());
        }
        let (declared, by_key) = declare(prefix, tensors, shards)?;
        let part = crate::merge::part_prefix(prefix, worker, shards);
        let mut output = AtomicOutput::unlocked(false);
        output.create_folder(&dir)?;
        output.stage(&data_path(&part, 0, 1))?;
        let worker = Some(worker);
        Ok(TfSink {
            prefix: prefix.to_path_buf(),
            dir,
            declared,
            by_key,
            num_shards: shards,
            output,
            current: None,
            worker,
        })
    }

    /// The staged file of data shard `shard`, if this sink writes it.
    fn file_of(&self, shard: usize) -> Option<usize> {
        match self.worker {
            None => Some(shard),
            Some(w) => (w == shard).then_some(0),
        }
    }

    /// Makes `finish` flush every file to the disk (fsync) before moving it into place, for a
    /// checkpoint that must survive a crash of the machine. TF's own writer does not.
    pub fn sync_on_finish(mut self, sync: bool) -> Self {
        self.output.set_sync(sync);
        self
    }

    fn misuse(&self, reason: String) -> TfError {
        TfError::SinkMisuse { path: self.prefix.clone(), reason }
    }

    fn key_of(tensor: &SinkTensor) -> Vec<u8> {
        match &tensor.slice {
            None => tensor.info.name.as_bytes().to_vec(),
            Some(s) => slice_key::encode(&tensor.info.name, &extents(s)),
        }
    }

    /// The declared tensor `tensor` is, if it is declared, matches and is not written yet.
    fn find(&self, tensor: &SinkTensor) -> Result<usize, TfError> {
        if let Some(cur) = &self.current {
            return Err(self.misuse(format!(
                "tensor {:?} started before tensor {:?} ended",
                tensor.info.name, self.declared[cur.index].tensor.info.name
            )));
        }
        let index = *self
            .by_key
            .get(&Self::key_of(tensor))
            .ok_or_else(|| self.misuse(format!("tensor {:?} was not declared", tensor.info.name)))?;
        let d = &self.declared[index];
        if d.tensor != *tensor {
            return Err(self.misuse(format!("tensor {:?} differs from its declaration", tensor.info.name)));
        }
        if d.written.is_some() {
            return Err(self.misuse(format!("tensor {:?} written twice", tensor.info.name)));
        }
        Ok(index)
    }

    /// Bytes written to data shard `shard` so far: where the next tensor in it starts.
    fn shard_len(&self, shard: usize) -> u64 {
        self.file_of(shard).map_or(0, |f| self.output.files()[f].written())
    }

    /// Appends to data shard `shard` (nothing, for a worker's sink and another worker's shard).
    fn write_shard(&mut self, shard: usize, bytes: &[u8]) -> Result<()> {
        match self.file_of(shard) {
            Some(f) => self.output.file(f).write_all(bytes),
            None => Ok(()),
        }
    }

    /// The index table's bytes.
    fn index_bytes(&self) -> Result<Vec<u8>, TfError> {
        let header = BundleHeaderProto {
            num_shards: if self.worker.is_some() { 1 } else { self.num_shards as i32 },
            endianness: 0,
            version: Some(VersionDef { producer: 1, min_consumer: 0, bad_consumers: Vec::new() }),
        };
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = vec![(Vec::new(), header.encode_to_vec())];
        let mut full_entries: Vec<(String, BundleEntryProto)> = Vec::new();
        let mut full_index: HashMap<String, usize> = HashMap::new();
        for d in &self.declared {
            let kept = self.file_of(d.shard).is_some();
            let Some((offset, size, crc)) = d.written.or((!kept).then_some((0, 0, 0))) else {
                return Err(self.misuse(format!("tensor {:?} was declared but never written", d.tensor.info.name)));
            };
            let entry = BundleEntryProto {
                dtype: d.tf_dtype,
                shape: Some(shape_proto(d.tensor.data_shape())),
                shard_id: if self.worker.is_some() { 0 } else { d.shard as i32 },
                offset: offset as i64,
                size: size as i64,
                crc32c: crc,
                slices: Vec::new(),
            };
            if kept {
                entries.push((d.key.clone(), entry.encode_to_vec()));
            }
            if let Some(slice) = &d.tensor.slice {
                let name = &d.tensor.info.name;
                let i = *full_index.entry(name.clone()).or_insert_with(|| {
                    full_entries.push((
                        name.clone(),
                        BundleEntryProto {
                            dtype: d.tf_dtype,
                            shape: Some(shape_proto(&d.tensor.info.shape)),
                            ..Default::default()
                        },
                    ));
                    full_entries.len() - 1
                });
                full_entries[i].1.slices.push(slice_proto(slice));
            }
        }
        for (name, entry) in full_entries {
            entries.push((name.into_bytes(), entry.encode_to_vec()));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(build_table(&entries))
    }
}

impl CheckpointSink for TfSink {
    fn path(&self) -> &Path {
        &self.prefix
    }

    /// Starts a numeric tensor.
    fn begin_tensor(&mut self, tensor: &SinkTensor) -> Result<()> {
        let index = self.find(tensor)?;
        let expected = tensor.byte_len().ok_or_else(|| TfError::BadSinkTensor {
            path: self.prefix.clone(),
            tensor: tensor.info.name.clone(),
            reason: "string tensors are written with write_strings".into(),
        })?;
        let offset = self.shard_len(self.declared[index].shard);
        self.current = Some(Current { index, offset, given: 0, expected, crc: 0, at: false });
        Ok(())
    }

    /// Appends bytes of the current tensor.
    fn write_data(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(cur) = self.current.as_mut().filter(|c| !c.at) else {
            return Err(self.misuse("write_data outside a tensor written in order".into()).into());
        };
        let given = cur.given.saturating_add(bytes.len() as u64);
        if given > cur.expected {
            let d = &self.declared[cur.index];
            return Err(TfError::SinkSize {
                path: self.prefix.clone(),
                tensor: d.tensor.info.name.clone(),
                given,
                expected: cur.expected,
            }
            .into());
        }
        cur.given = given;
        let mut crc = cur.crc;
        let shard = self.declared[cur.index].shard;
        // A piece at a time, hashed then written while it is in the processor's cache, so that a
        // large block is read from memory once rather than twice.
        for piece in bytes.chunks(WRITE_PIECE_BYTES) {
            crc = crc32c::crc32c_append(crc, piece);
            self.write_shard(shard, piece)?;
        }
        if let Some(cur) = self.current.as_mut() {
            cur.crc = crc;
        }
        Ok(())
    }

    /// Ends the current tensor.
    fn end_tensor(&mut self) -> Result<()> {
        let Some(cur) = self.current.take_if(|c| !c.at) else {
            return Err(self.misuse("end_tensor outside a tensor written in order".into()).into());
        };
        let d = &mut self.declared[cur.index];
        if cur.given != cur.expected {
            return Err(TfError::SinkSize {
                path: self.prefix.clone(),
                tensor: d.tensor.info.name.clone(),
                given: cur.given,
                expected: cur.expected,
            }
            .into());
        }
        d.written = Some((cur.offset, cur.given, mask_crc(cur.crc)));
        Ok(())
    }

    fn writes_at_offsets(&self) -> bool {
        true
    }

    /// All tensors, or (a worker's part) those of its shard.
    fn keeps(&self, tensor: &SinkTensor) -> bool {
        self.by_key.get(&Self::key_of(tensor)).is_none_or(|&i| self.file_of(self.declared[i].shard).is_some())
    }

    /// Starts a numeric tensor written at offsets: its place in its shard is reserved at once.
    fn begin_tensor_at(&mut self, tensor: &SinkTensor) -> Result<warmstart_core::TensorRegion> {
        self.begin_tensor(tensor)?;
        let Some(cur) = self.current.as_mut() else {
            return Err(self.misuse("begin_tensor_at without a tensor".into()).into());
        };
        cur.at = true;
        let (offset, len, shard) = (cur.offset, cur.expected, self.declared[cur.index].shard);
        match self.file_of(shard) {
            Some(f) => self.output.file(f).region(offset, len, true),
            // Another worker's tensor: computed, then dropped.
            None => warmstart_core::TensorRegion::scratch(len),
        }
    }

    /// Ends a tensor written at offsets, with the CRC32C of its bytes.
    fn end_tensor_at(&mut self, region: warmstart_core::TensorRegion, crc32c: Option<u32>) -> Result<()> {
        let Some(cur) = self.current.take_if(|c| c.at) else {
            return Err(self.misuse("end_tensor_at outside a tensor written at offsets".into()).into());
        };
        let shard = self.declared[cur.index].shard;
        let Some(f) = self.file_of(shard) else {
            self.declared[cur.index].written = Some((0, cur.expected, 0));
            return Ok(());
        };
        let Some(crc) = crc32c else {
            return Err(self.misuse("end_tensor_at without the tensor's CRC32C".into()).into());
        };
        if region.start() != cur.offset || region.len() != cur.expected {
            return Err(self.misuse("end_tensor_at with another tensor's region".into()).into());
        }
        self.output.file(f).end_region(region)?;
        self.declared[cur.index].written = Some((cur.offset, cur.expected, mask_crc(crc)));
        Ok(())
    }

    /// Writes a whole string tensor.
    fn write_strings(&mut self, tensor: &SinkTensor, values: &[Vec<u8>]) -> Result<()> {
        let index = self.find(tensor)?;
        if tensor.info.dtype != DType::String {
            return Err(TfError::WrongDType {
                path: self.prefix.clone(),
                tensor: tensor.info.name.clone(),
                dtype: tensor.info.dtype,
            }
            .into());
        }
        let count = tensor.info.num_elements().unwrap_or(u64::MAX);
        if values.len() as u64 != count {
            return Err(TfError::BadSinkTensor {
                path: self.prefix.clone(),
                tensor: tensor.info.name.clone(),
                reason: format!("{} strings given for {count} elements", values.len()),
            }
            .into());
        }
        let (bytes, crc) = crate::strings::encode(values);
        let shard = self.declared[index].shard;
        let offset = self.shard_len(shard);
        self.write_shard(shard, &bytes)?;
        self.declared[index].written = Some((offset, bytes.len() as u64, crc));
        Ok(())
    }

    /// Completes the files and moves them into place through the commit journal: the old index aside,
    /// the data shards and the `checkpoint` state file, the new index last. If any of them cannot be,
    /// what was in place before is put back. The data files of an earlier checkpoint at the prefix with
    /// another number of shards are part of the commit: moved aside with the old index, removed once
    /// the new checkpoint is in place (or put back with the old one).
    fn finish(self: Box<Self>) -> Result<()> {
        if self.current.is_some() {
            return Err(self.misuse("finish with a tensor still open".into()).into());
        }
        let index = self.index_bytes()?;
        if let Some(worker) = self.worker {
            let TfSink { prefix, mut output, num_shards, .. } = *self;
            let i = output.stage(&index_path(&crate::merge::part_prefix(&prefix, worker, num_shards)))?;
            output.file(i).write_all(&index)?;
            return output.commit();
        }
        let TfSink { prefix, dir, mut output, num_shards, .. } = *self;
        let name = prefix.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let state = output.stage(&dir.join(STATE_FILE))?;
        output.file(state).write_all(state_text(&name).as_bytes())?;
        // Staged last: the index is the commit's key, moved aside first and put in place last.
        let i = output.stage(&index_path(&prefix))?;
        output.file(i).write_all(&index)?;
        for stale in stale_shards(&prefix, num_shards as u32) {
            output.retire(&stale);
        }
        output.commit()
    }
}
