//! [`TorchSource`]: a `torch.save` archive, a sharded checkpoint named by its
//! `pytorch_model.bin.index.json`, or a folder holding either, memory-mapped (guarded: see
//! [`InputMap`]). Contiguous little-endian tensors are served as borrowed slices of the map; other
//! views and big-endian storages are gathered on read ([`View`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use warmstart_core::mapped::InputMap;
use warmstart_core::shard_index::{ShardIndex, ShardIndexError, MAX_INDEX_LEN};
use warmstart_core::{CheckpointSource, Error, Format, Result, TensorInfo, TorchError};

use crate::archive::{self, Archive};
use crate::layout::View;
use crate::pickle::{self, PickleError, TensorRef};

/// The index file name Hugging Face writes for a sharded PyTorch checkpoint.
pub(crate) const INDEX_FILE_NAME: &str = "pytorch_model.bin.index.json";

/// A PyTorch checkpoint opened for reading.
#[derive(Debug)]
pub struct TorchSource {
    path: PathBuf,
    maps: Vec<InputMap>,
    tensors: Vec<TensorInfo>,
    entries: HashMap<String, Entry>,
}

/// Where a tensor's elements are: which map, which bytes of it hold its storage, and the view.
#[derive(Debug)]
struct Entry {
    map: usize,
    storage: Range<usize>,
    view: View,
}

impl TorchSource {
    /// Opens a `torch.save` archive, a `pytorch_model.bin.index.json` index (and the shards it names),
    /// or a folder holding an index or exactly one archive.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let file = if meta.is_dir() { find_in_folder(path)? } else { path.to_path_buf() };
        let mut source =
            TorchSource { path: path.to_path_buf(), maps: Vec::new(), tensors: Vec::new(), entries: HashMap::new() };
        if starts_like_json(&file)? {
            source.add_index(&file)?;
        } else {
            let map = InputMap::open(&file).map_err(|source| TorchError::Io { path: file.clone(), source })?;
            source.add_archive(map, |_| Ok(()))?;
        }
        Ok(source)
    }

    /// Adds the tensors of the archive `map`, each checked by `check` first.
    fn add_archive(&mut self, map: InputMap, check: impl Fn(&str) -> Result<()>) -> Result<()> {
        let path = map.path().to_path_buf();
        let archive = archive::read(&path, &map)?;
        let root = pickle::load(&map[archive.pickle.clone()]).map_err(|e| pickle_error(&path, e))?;
        let named = crate::names::tensors(&path, &root)?;
        drop(root);
        for (name, tensor) in named {
            check(&name)?;
            if self.entries.contains_key(&name) {
                return Err(TorchError::DuplicateTensor { path, tensor: name }.into());
            }
            let entry = entry(&path, &map, &archive, &name, &tensor)?;
            entry.storage_check(&map)?;
            self.tensors.push(TensorInfo::new(name.clone(), tensor.dtype, tensor.shape.clone()));
            self.entries.insert(name, Entry { map: self.maps.len(), ..entry });
        }
        self.maps.push(map);
        Ok(())
    }

    /// Adds every shard the index at `index` names, checking that the index and the shards agree.
    fn add_index(&mut self, index: &Path) -> Result<()> {
        let parsed = ShardIndex::read(index).map_err(|e| match e {
            ShardIndexError::Io(source) => TorchError::Io { path: index.to_path_buf(), source },
            ShardIndexError::TooLarge { len } => {
                TorchError::IndexTooLarge { path: index.to_path_buf(), len, max: MAX_INDEX_LEN }
            }
            ShardIndexError::Bad(source) => TorchError::BadIndex { path: index.to_path_buf(), source },
        })?;
        for shard in parsed.shards() {
            let map =
                InputMap::open(&ShardIndex::shard_path(index, shard)).map_err(|source| TorchError::MissingShard {
                    index: index.to_path_buf(),
                    shard: shard.to_string(),
                    tensor: parsed.first_tensor_in(shard),
                    source,
                })?;
            self.add_archive(map, |tensor| {
                if parsed.weight_map.get(tensor).map(String::as_str) == Some(shard) {
                    return Ok(());
                }
                let (index, shard, tensor) = (index.to_path_buf(), shard.to_string(), tensor.to_string());
                Err(TorchError::TensorNotInIndex { index, shard, tensor }.into())
            })?;
        }
        if let Some((tensor, shard)) = parsed.first_missing(|t| self.entries.contains_key(t)) {
            let (index, shard, tensor) = (index.to_path_buf(), shard.to_string(), tensor.to_string());
            return Err(TorchError::TensorNotInShard { index, shard, tensor }.into());
        }
        Ok(())
    }

    fn entry(&self, name: &str) -> Result<(&TensorInfo, &Entry)> {
        let not_found = || Error::TensorNotFound { path: self.path.clone(), name: name.to_string() };
        Ok((self.tensor(name).ok_or_else(not_found)?, self.entries.get(name).ok_or_else(not_found)?))
    }
}

/// The entry of tensor `name` of `archive` (map index 0 until added), with its view checked
/// against its storage and the file.
fn entry(path: &Path, map: &InputMap, archive: &Archive, name: &str, t: &TensorRef) -> Result<Entry> {
    let storage = archive.storage(path, name, &t.key)?;
    let has = storage.len() as u64;
    if has < t.storage_bytes {
        let (tensor, key) = (name.to_string(), t.key.clone());
        return Err(TorchError::StorageTooShort {
            path: path.to_path_buf(),
            tensor,
            key,
            needed: t.storage_bytes,
            has,
        }
        .into());
    }
    // The dtype has a size: the unpickler refuses those without.
    let elem = t.dtype.size().unwrap_or(1);
    let view =
        View { elem, offset: t.offset, shape: t.shape.clone(), strides: t.strides.clone(), swap: archive.big_endian };
    let numel = t.storage_bytes / elem as u64;
    let extent = view.extent();
    if extent.is_none_or(|e| e > numel) {
        return Err(TorchError::ViewOutOfStorage {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            offset: t.offset,
            shape: t.shape.clone(),
            strides: t.strides.clone(),
            extent,
            numel,
        }
        .into());
    }
    let bytes = TensorInfo::new(name, t.dtype, t.shape.clone()).byte_len();
    let file_len = map.len() as u64;
    if bytes.is_none_or(|b| b > file_len) {
        return Err(
            TorchError::ViewTooLarge { path: path.to_path_buf(), tensor: name.to_string(), bytes, file_len }.into()
        );
    }
    Ok(Entry { map: 0, storage, view })
}

impl Entry {
    /// Checks that the storage lies in the map (the archive reader made it so).
    fn storage_check(&self, map: &InputMap) -> Result<()> {
        if self.storage.end > map.len() {
            return Err(TorchError::MemberOutOfFile {
                path: map.path().to_path_buf(),
                member: String::from("data"),
                start: self.storage.start as u64,
                end: self.storage.end as u64,
                file_len: map.len() as u64,
            }
            .into());
        }
        Ok(())
    }
}

fn pickle_error(path: &Path, e: PickleError) -> TorchError {
    match e {
        PickleError::Disallowed { module, name } => {
            TorchError::DisallowedGlobal { path: path.to_path_buf(), module, name }
        }
        PickleError::At { offset, problem } => TorchError::Pickle { path: path.to_path_buf(), offset, problem },
    }
}

/// Whether the file's first non-blank byte is `{` (a JSON index rather than an archive).
fn starts_like_json(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = Vec::new();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.take(256).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'))
}

/// The file to open in a folder: its `pytorch_model.bin.index.json`, else its only `*.bin.index.json`,
/// else its only zip or legacy pickle file.
fn find_in_folder(dir: &Path) -> Result<PathBuf> {
    let preferred = dir.join(INDEX_FILE_NAME);
    if preferred.is_file() {
        return Ok(preferred);
    }
    let (mut indexes, mut files) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".bin.index.json") {
            indexes.push(name);
        } else if looks_like_archive(&path) {
            files.push(name);
        }
    }
    indexes.sort();
    files.sort();
    let candidates = if indexes.is_empty() { files } else { indexes };
    match candidates.as_slice() {
        [] => Err(TorchError::NoCheckpointInFolder { path: dir.to_path_buf() }.into()),
        [one] => Ok(dir.join(one)),
        _ => Err(TorchError::AmbiguousFolder { path: dir.to_path_buf(), candidates }.into()),
    }
}

/// Whether the file starts like a zip archive or the legacy format.
fn looks_like_archive(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 14];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    read.is_ok() && (head.starts_with(b"PK\x03\x04") || archive::is_legacy(&head))
}

impl CheckpointSource for TorchSource {
    fn format(&self) -> Format {
        Format::Torch
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        let (info, entry) = self.entry(name)?;
        let total = info.rows();
        if rows.start > rows.end || rows.end > total {
            let (path, name, start, end) = (self.path.clone(), name.to_string(), rows.start, rows.end);
            return Err(Error::RowsOutOfRange { path, name, start, end, rows: total });
        }
        if rows.start == rows.end {
            return Ok(Cow::Borrowed(&[]));
        }
        let map = &self.maps[entry.map];
        map.check_read()?;
        let storage = &map[entry.storage.clone()];
        let too_large = || Error::TooLarge { path: self.path.clone(), name: name.to_string() };
        if let Some(bytes) = entry.view.in_place(rows.clone()) {
            return storage.get(bytes).map(Cow::Borrowed).ok_or_else(too_large);
        }
        let out = entry.view.gather(storage, rows).ok_or_else(too_large)?;
        // Bytes gathered from pages that vanished meanwhile read as zeros: say so.
        map.check_read()?;
        Ok(Cow::Owned(out))
    }

    fn release(&self, name: &str, rows: Range<u64>) {
        let Ok((info, entry)) = self.entry(name) else { return };
        if rows.start >= rows.end || rows.end > info.rows() {
            return;
        }
        if let Some(bytes) = entry.view.in_place(rows) {
            let start = entry.storage.start.saturating_add(bytes.start);
            let end = entry.storage.start.saturating_add(bytes.end).min(entry.storage.end);
            self.maps[entry.map].release(start..end);
        }
    }

    fn check_unchanged(&self) -> Result<()> {
        self.maps.iter().try_for_each(InputMap::check_unchanged)
    }
}
