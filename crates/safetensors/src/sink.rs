//! [`SafetensorsSink`]: writes one safetensors file. The header is built from the declared tensors
//! before any data arrives, the data is streamed into place, and the file is staged beside the
//! destination through [`AtomicOutput`] and moved into place only when complete.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use warmstart_core::output::{AtomicOutput, StagedFile};
use warmstart_core::{CheckpointSink, Error, Format, Result, SinkTensor};

use crate::header::{LEN_PREFIX, MAX_HEADER_LEN};
use crate::{dtype, SafetensorsError};

/// A safetensors file, or the shards and index of a sharded checkpoint, being written.
///
/// Tensors are laid out as the official writer lays them out (by decreasing alignment, then by name),
/// so a file converted from one the official writer made keeps its order; they may be written in any
/// order.
pub struct SafetensorsSink {
    path: PathBuf,
    /// The staged files (the shards, then the index), committed together by `finish`.
    output: AtomicOutput,
    /// Each tensor, the staged file it goes to, and where in it.
    declared: Vec<(SinkTensor, usize, u64)>,
    by_name: HashMap<String, usize>,
    written: Vec<bool>,
    open: Option<OpenTensor>,
    /// For sharded output: the folder and the files the checkpoint is made of, so that what an earlier
    /// save left there is removed once this one is in place.
    sharded: Option<(PathBuf, Vec<String>)>,
}

/// The tensor being written: its declared index, its size and the bytes still due.
struct OpenTensor {
    index: usize,
    len: u64,
    remaining: u64,
    /// Written at offsets through a region (`begin_tensor_at`), not through `write_data`.
    at: bool,
}

/// A tensor checked for safetensors: its dtype, its shape, its bytes.
type Laid<'a> = (safetensors::Dtype, Vec<usize>, u64, &'a SinkTensor);

impl SafetensorsSink {
    /// Makes `finish` flush the file to the disk (fsync) before moving it into place, for a checkpoint
    /// that must survive a crash of the machine.
    pub fn sync_on_finish(mut self, sync: bool) -> Self {
        self.output.set_sync(sync);
        self
    }

    /// Starts writing `tensors` (and `metadata` as `__metadata__`) to `path`.
    ///
    /// Fails with [`Error::Unsupported`] for tensors safetensors cannot store (strings, complex128,
    /// slices of partitioned tensors).
    pub fn create(
        path: impl AsRef<Path>,
        tensors: &[SinkTensor],
        metadata: Option<BTreeMap<String, String>>,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let laid = check(&path, tensors)?;
        let mut sink = SafetensorsSink::empty(path.clone(), AtomicOutput::new(false));
        sink.stage_file(&path, laid, metadata.as_ref())?;
        Ok(sink)
    }

    /// Starts writing `tensors` into the folder `dir` (made if missing) as Hugging Face shards them for
    /// `max_shard_size` bytes ([`shards`](crate::shards)): `model-0000K-of-0000N.safetensors`, each
    /// with `metadata`, and `model.safetensors.index.json`; or `model.safetensors` alone if they fit
    /// in one shard. The files are put in place together (through the commit journal) by `finish`.
    pub fn create_sharded(
        dir: impl AsRef<Path>,
        tensors: &[SinkTensor],
        metadata: Option<BTreeMap<String, String>>,
        max_shard_size: u64,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let laid = check(&dir, tensors)?;
        let sizes: Vec<u64> = laid.iter().map(|l| l.2).collect();
        let split = crate::shards::split(&sizes, max_shard_size);
        let names = crate::shards::shard_names(split.len());
        let mut output = AtomicOutput::new(false);
        output.create_folder(&dir)?;
        if names.len() == 1 {
            let path = dir.join(&names[0]);
            let mut sink = SafetensorsSink::empty(path.clone(), output);
            sink.stage_file(&path, laid, metadata.as_ref())?;
            sink.sharded = Some((dir, names));
            return Ok(sink);
        }
        let index = dir.join(crate::shards::INDEX_FILE);
        let extra: Vec<&str> = names.iter().map(String::as_str).collect();
        output.claim(&index, &extra)?;
        let mut sink = SafetensorsSink::empty(index.clone(), output);
        let mut weight_map = BTreeMap::new();
        for (shard, name) in split.iter().zip(&names) {
            let part: Vec<Laid<'_>> = shard.iter().map(|&i| laid[i].clone()).collect();
            weight_map.extend(part.iter().map(|l| (l.3.info.name.clone(), name.clone())));
            sink.stage_file(&dir.join(name), part, metadata.as_ref())?;
        }
        // Staged last: the key file of the journaled commit, which arrives last.
        let json = crate::shards::index_json(sizes.iter().sum(), &weight_map);
        let staged = sink.output.stage(&index)?;
        sink.output.file(staged).write_all(&json)?;
        let mut files = names;
        files.push(crate::shards::INDEX_FILE.to_string());
        sink.sharded = Some((dir, files));
        Ok(sink)
    }

    fn empty(path: PathBuf, output: AtomicOutput) -> Self {
        let (declared, by_name, written) = (Vec::new(), HashMap::new(), Vec::new());
        SafetensorsSink { path, output, declared, by_name, written, open: None, sharded: None }
    }

    /// Lays out `laid` in a new staged file at `dest`: its header written, its data to come.
    fn stage_file(
        &mut self,
        dest: &Path,
        mut laid: Vec<Laid<'_>>,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<()> {
        laid.sort_by(|a, b| (Reverse(a.0), &a.3.info.name).cmp(&(Reverse(b.0), &b.3.info.name)));
        let mut header_entries = Vec::with_capacity(laid.len());
        let mut offsets = Vec::with_capacity(laid.len());
        let mut offset = 0u64;
        for (st_dtype, shape, len, t) in laid {
            let name = t.info.name.clone();
            if self.by_name.insert(name.clone(), self.declared.len() + offsets.len()).is_some() {
                return Err(SafetensorsError::SinkDuplicateTensor { path: self.path.clone(), tensor: name }.into());
            }
            let too_large = || Error::TooLarge { path: dest.to_path_buf(), name: name.clone() };
            let end = offset.checked_add(len).ok_or_else(too_large)?;
            let range =
                (usize::try_from(offset).map_err(|_| too_large())?, usize::try_from(end).map_err(|_| too_large())?);
            header_entries
                .push((name.clone(), safetensors::tensor::TensorInfo { dtype: st_dtype, shape, data_offsets: range }));
            offsets.push((t.clone(), offset));
            offset = end;
        }
        let header = build_header(dest, header_entries, metadata.cloned())?;
        let data_start = (LEN_PREFIX + header.len()) as u64;
        let total = data_start
            .checked_add(offset)
            .ok_or_else(|| Error::TooLarge { path: dest.to_path_buf(), name: String::new() })?;
        let file = self.output.stage(dest)?;
        let staged = self.output.file(file);
        staged.set_len(total)?;
        staged.write_all(&(header.len() as u64).to_le_bytes())?;
        staged.write_all(&header)?;
        self.written.extend(offsets.iter().map(|_| false));
        self.declared.extend(offsets.into_iter().map(|(t, offset)| (t, file, offset + data_start)));
        Ok(())
    }

    /// The file the tensor `index` goes to.
    fn file(&mut self, index: usize) -> &mut StagedFile {
        self.output.file(self.declared[index].1)
    }
}

/// Every tensor of `tensors` with its safetensors dtype, shape and size, in order; an error for those
/// safetensors cannot store.
fn check<'a>(path: &Path, tensors: &'a [SinkTensor]) -> Result<Vec<Laid<'a>>> {
    let unsupported = |t: &SinkTensor, reason: &str| Error::Unsupported {
        path: path.to_path_buf(),
        format: Format::Safetensors,
        name: t.info.name.clone(),
        reason: reason.to_string(),
    };
    let mut laid = Vec::with_capacity(tensors.len());
    for t in tensors {
        let Some(st_dtype) = dtype::from_core(t.info.dtype) else {
            return Err(unsupported(t, &format!("it has no {} type", t.info.dtype)));
        };
        if t.slice.as_ref().is_some_and(|s| !s.is_full(&t.info.shape)) {
            return Err(unsupported(t, "it is a slice of a partitioned tensor"));
        }
        let too_large = || Error::TooLarge { path: path.to_path_buf(), name: t.info.name.clone() };
        let len = t.byte_len().ok_or_else(too_large)?;
        let shape = t.info.shape.iter().map(|&d| usize::try_from(d)).collect::<Result<Vec<_>, _>>();
        laid.push((st_dtype, shape.map_err(|_| too_large())?, len, t));
    }
    Ok(laid)
}

/// The header JSON, as the safetensors library serialises it, padded with spaces to a multiple of 8.
fn build_header(
    path: &Path,
    entries: Vec<(String, safetensors::tensor::TensorInfo)>,
    metadata: Option<BTreeMap<String, String>>,
) -> Result<Vec<u8>> {
    let header_err = |source: safetensors::SafeTensorError| SafetensorsError::SinkHeader {
        path: path.to_path_buf(),
        source: source.into(),
    };
    let metadata =
        safetensors::tensor::Metadata::new(metadata.map(|m| m.into_iter().collect()), entries).map_err(header_err)?;
    let mut header = serde_json::to_vec(&metadata).map_err(|e| header_err(e.into()))?;
    header.resize(header.len().next_multiple_of(LEN_PREFIX), b' ');
    if header.len() as u64 > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge {
            path: path.to_path_buf(),
            header_len: header.len() as u64,
            max: MAX_HEADER_LEN,
        }
        .into());
    }
    Ok(header)
}

impl CheckpointSink for SafetensorsSink {
    fn path(&self) -> &Path {
        &self.path
    }

    fn begin_tensor(&mut self, tensor: &SinkTensor) -> Result<()> {
        if let Some(open) = &self.open {
            let tensor = self.declared[open.index].0.info.name.clone();
            return Err(SafetensorsError::SinkTensorOpen { path: self.path.clone(), tensor }.into());
        }
        let name = &tensor.info.name;
        let index = match self.by_name.get(name) {
            Some(&i) if self.declared[i].0.info == tensor.info => i,
            _ => {
                return Err(
                    SafetensorsError::SinkUndeclaredTensor { path: self.path.clone(), tensor: name.clone() }.into()
                )
            }
        };
        if self.written[index] {
            return Err(SafetensorsError::SinkTensorRepeated { path: self.path.clone(), tensor: name.clone() }.into());
        }
        let offset = self.declared[index].2;
        self.file(index).seek(offset)?;
        let len = self.declared[index].0.byte_len().unwrap_or(0);
        self.open = Some(OpenTensor { index, len, remaining: len, at: false });
        Ok(())
    }

    fn write_data(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(open) = self.open.as_mut().filter(|o| !o.at) else {
            return Err(SafetensorsError::SinkNoTensorOpen { path: self.path.clone() }.into());
        };
        let given = bytes.len() as u64;
        if given > open.remaining {
            return Err(Error::SizeMismatch {
                path: self.path.clone(),
                name: self.declared[open.index].0.info.name.clone(),
                given: open.len - open.remaining + given,
                expected: open.len,
            });
        }
        open.remaining -= given;
        let index = open.index;
        self.file(index).write_all(bytes)
    }

    fn end_tensor(&mut self) -> Result<()> {
        let Some(open) = self.open.take_if(|o| !o.at) else {
            return Err(SafetensorsError::SinkNoTensorOpen { path: self.path.clone() }.into());
        };
        if open.remaining != 0 {
            return Err(Error::SizeMismatch {
                path: self.path.clone(),
                name: self.declared[open.index].0.info.name.clone(),
                given: open.len - open.remaining,
                expected: open.len,
            });
        }
        self.written[open.index] = true;
        Ok(())
    }

    fn writes_at_offsets(&self) -> bool {
        true
    }

    fn begin_tensor_at(&mut self, tensor: &SinkTensor) -> Result<warmstart_core::TensorRegion> {
        self.begin_tensor(tensor)?;
        let Some(open) = self.open.as_mut() else {
            return Err(SafetensorsError::SinkNoTensorOpen { path: self.path.clone() }.into());
        };
        open.at = true;
        let (index, len) = (open.index, open.len);
        let offset = self.declared[index].2;
        self.file(index).region(offset, len, false)
    }

    fn end_tensor_at(&mut self, region: warmstart_core::TensorRegion, _crc32c: Option<u32>) -> Result<()> {
        let Some(open) = self.open.take_if(|o| o.at) else {
            return Err(SafetensorsError::SinkNoTensorOpen { path: self.path.clone() }.into());
        };
        if region.start() != self.declared[open.index].2 || region.len() != open.len {
            let tensor = self.declared[open.index].0.info.name.clone();
            return Err(SafetensorsError::SinkTensorOpen { path: self.path.clone(), tensor }.into());
        }
        self.file(open.index).end_region(region)?;
        self.written[open.index] = true;
        Ok(())
    }

    fn write_strings(&mut self, tensor: &SinkTensor, _values: &[Vec<u8>]) -> Result<()> {
        Err(Error::Unsupported {
            path: self.path.clone(),
            format: Format::Safetensors,
            name: tensor.info.name.clone(),
            reason: "safetensors has no string type".to_string(),
        })
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let path = self.path.clone();
        if let Some(open) = &self.open {
            let tensor = self.declared[open.index].0.info.name.clone();
            return Err(SafetensorsError::SinkTensorOpen { path, tensor }.into());
        }
        if let Some(i) = self.written.iter().position(|w| !w) {
            let tensor = self.declared[i].0.info.name.clone();
            return Err(SafetensorsError::SinkTensorMissing { path, tensor }.into());
        }
        let SafetensorsSink { output, sharded, .. } = *self;
        output.commit()?;
        if let Some((dir, names)) = sharded {
            crate::shards::remove_stale(&dir, &names);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SafetensorsSource;
    use warmstart_core::{CheckpointSource, DType, Slice, TensorInfo};

    fn t(name: &str, dtype: DType, shape: &[u64]) -> SinkTensor {
        SinkTensor::whole(TensorInfo::new(name, dtype, shape.to_vec()))
    }

    fn format_err(err: Error) -> SafetensorsError {
        match err {
            Error::Safetensors(e) => *e,
            other => panic!("not a format error: {other}"),
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn writes_a_file_the_reader_and_the_library_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.safetensors");
        let tensors = [
            t("w", DType::U8, &[2, 3]),
            t("b", DType::F32, &[2]),
            t("s", DType::BF16, &[]),
            t("e", DType::F64, &[0, 2]),
        ];
        let metadata = BTreeMap::from([("format".to_string(), "np".to_string())]);
        let mut sink: Box<dyn CheckpointSink> =
            Box::new(SafetensorsSink::create(&path, &tensors, Some(metadata.clone())).unwrap());
        // Any order, data in pieces.
        sink.begin_tensor(&tensors[0]).unwrap();
        sink.write_data(&[1, 2]).unwrap();
        sink.write_data(&[3, 4, 5, 6]).unwrap();
        sink.end_tensor().unwrap();
        sink.begin_tensor(&tensors[3]).unwrap();
        sink.end_tensor().unwrap();
        sink.begin_tensor(&tensors[2]).unwrap();
        sink.write_data(&[7, 8]).unwrap();
        sink.end_tensor().unwrap();
        sink.begin_tensor(&tensors[1]).unwrap();
        sink.write_data(&[9; 8]).unwrap();
        sink.end_tensor().unwrap();
        assert_eq!(entries(dir.path()).len(), 1);
        assert!(!path.exists());
        sink.finish().unwrap();
        assert_eq!(entries(dir.path()), ["out.safetensors"]);

        let bytes = std::fs::read(&path).unwrap();
        let lib = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(lib.tensor("w").unwrap().data(), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(lib.tensor("s").unwrap().dtype(), safetensors::Dtype::BF16);
        // The official writer's layout: decreasing alignment, then name.
        assert_eq!(safetensors::SafeTensors::read_metadata(&bytes).unwrap().1.offset_keys(), ["e", "b", "s", "w"]);
        let src = SafetensorsSource::open(&path).unwrap();
        assert_eq!(&*src.read("b").unwrap(), &[9; 8]);
        assert_eq!(src.tensor("w").unwrap(), &tensors[0].info);
        assert_eq!(src.metadata(), Some(&metadata));
    }

    #[test]
    fn strings_complex128_and_partial_slices_are_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.safetensors");
        for tensor in [t("vocab", DType::String, &[2]), t("z", DType::C128, &[1])] {
            let err = SafetensorsSink::create(&path, &[tensor], None).err().unwrap();
            assert!(matches!(err, Error::Unsupported { format: Format::Safetensors, .. }), "{err}");
        }
        let mut part = t("p", DType::F32, &[4]);
        part.slice = Some(Slice { start: vec![2], len: vec![2] });
        assert!(matches!(SafetensorsSink::create(&path, &[part], None), Err(Error::Unsupported { .. })));
        let mut sink = SafetensorsSink::create(&path, &[], None).unwrap();
        assert!(matches!(sink.write_strings(&t("vocab", DType::String, &[1]), &[]), Err(Error::Unsupported { .. })));
        assert_eq!(entries(dir.path()).len(), 1);
    }

    #[test]
    fn sink_duplicate_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = [t("w", DType::U8, &[1]), t("w", DType::U8, &[1])];
        let err = format_err(SafetensorsSink::create(dir.path().join("o.safetensors"), &tensors, None).err().unwrap());
        assert!(matches!(err, SafetensorsError::SinkDuplicateTensor { .. }));
        assert!(entries(dir.path()).is_empty());
    }

    /// A sink declared with `w` (U8, 2 bytes) and `v` (U8, 1 byte), in `dir`.
    fn two_tensor_sink(dir: &Path) -> (SafetensorsSink, [SinkTensor; 2]) {
        let tensors = [t("w", DType::U8, &[2]), t("v", DType::U8, &[1])];
        (SafetensorsSink::create(dir.join("o.safetensors"), &tensors, None).unwrap(), tensors)
    }

    #[test]
    fn sink_undeclared_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, _) = two_tensor_sink(dir.path());
        let err = format_err(sink.begin_tensor(&t("x", DType::U8, &[2])).unwrap_err());
        assert!(matches!(err, SafetensorsError::SinkUndeclaredTensor { .. }));
        let err = format_err(sink.begin_tensor(&t("w", DType::I8, &[2])).unwrap_err());
        assert!(matches!(&err, SafetensorsError::SinkUndeclaredTensor { tensor, .. } if tensor == "w"));
    }

    #[test]
    fn sink_tensor_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, tensors) = two_tensor_sink(dir.path());
        sink.begin_tensor(&tensors[1]).unwrap();
        sink.write_data(&[1]).unwrap();
        sink.end_tensor().unwrap();
        let err = format_err(sink.begin_tensor(&tensors[1]).unwrap_err());
        assert!(matches!(&err, SafetensorsError::SinkTensorRepeated { tensor, .. } if tensor == "v"));
    }

    #[test]
    fn sink_no_tensor_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, _) = two_tensor_sink(dir.path());
        assert!(matches!(format_err(sink.write_data(&[1]).unwrap_err()), SafetensorsError::SinkNoTensorOpen { .. }));
        assert!(matches!(format_err(sink.end_tensor().unwrap_err()), SafetensorsError::SinkNoTensorOpen { .. }));
    }

    #[test]
    fn sink_tensor_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, tensors) = two_tensor_sink(dir.path());
        sink.begin_tensor(&tensors[0]).unwrap();
        let err = format_err(sink.begin_tensor(&tensors[1]).unwrap_err());
        assert!(matches!(&err, SafetensorsError::SinkTensorOpen { tensor, .. } if tensor == "w"));
        let err = format_err(Box::new(sink).finish().unwrap_err());
        assert!(matches!(err, SafetensorsError::SinkTensorOpen { .. }));
        assert!(entries(dir.path()).is_empty(), "the temporary file is removed");
    }

    #[test]
    fn sink_tensor_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, tensors) = two_tensor_sink(dir.path());
        sink.begin_tensor(&tensors[0]).unwrap();
        sink.write_data(&[1, 2]).unwrap();
        sink.end_tensor().unwrap();
        let err = format_err(Box::new(sink).finish().unwrap_err());
        assert!(matches!(&err, SafetensorsError::SinkTensorMissing { tensor, .. } if tensor == "v"));
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn too_many_or_too_few_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, tensors) = two_tensor_sink(dir.path());
        sink.begin_tensor(&tensors[0]).unwrap();
        sink.write_data(&[1]).unwrap();
        assert!(matches!(sink.write_data(&[2, 3]), Err(Error::SizeMismatch { given: 3, expected: 2, .. })));
        assert!(matches!(sink.end_tensor(), Err(Error::SizeMismatch { given: 1, expected: 2, .. })));
    }

    #[test]
    fn sink_header_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = BTreeMap::from([("big".to_string(), "x".repeat(MAX_HEADER_LEN as usize))]);
        let err =
            format_err(SafetensorsSink::create(dir.path().join("o.safetensors"), &[], Some(metadata)).err().unwrap());
        assert!(matches!(err, SafetensorsError::HeaderTooLarge { .. }));
    }

    #[test]
    fn dropping_an_unfinished_sink_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, _) = two_tensor_sink(dir.path());
        assert_eq!(entries(dir.path()).len(), 1);
        drop(sink);
        assert!(entries(dir.path()).is_empty());
    }

    /// With `sync`, the file is committed with the same bytes as without; either way it gets an
    /// ordinary new file's permissions.
    #[test]
    fn synced_output_has_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let mut files = Vec::new();
        for (name, sync) in [("synced.safetensors", true), ("unsynced.safetensors", false)] {
            let (sink, tensors) = two_tensor_sink(dir.path());
            let mut sink: Box<dyn CheckpointSink> = Box::new(sink.sync_on_finish(sync));
            for (t, data) in tensors.iter().zip([&[1u8, 2][..], &[3]]) {
                sink.begin_tensor(t).unwrap();
                sink.write_data(data).unwrap();
                sink.end_tensor().unwrap();
            }
            sink.finish().unwrap();
            std::fs::rename(dir.path().join("o.safetensors"), dir.path().join(name)).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode(&dir.path().join(name)), mode(&plain), "{name}");
            }
            files.push(std::fs::read(dir.path().join(name)).unwrap());
        }
        assert_eq!(files[0], files[1]);
        assert_eq!(entries(dir.path()), ["plain", "synced.safetensors", "unsynced.safetensors"]);
    }

    #[test]
    fn missing_destination_folder_is_an_io_error() {
        let err = SafetensorsSink::create("/nonexistent/dir/o.safetensors", &[], None).err().unwrap();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
}
