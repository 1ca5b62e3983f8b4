//! [`KerasShardedSource`]: sharded Keras weights (`model.save_weights("m.weights.json",
//! max_shard_size=...)`) read as one checkpoint. The index's `weight_map` maps each layer's `vars`
//! group to the shard or shards (`m_00000.weights.h5`, ... beside the index) holding its variables;
//! every shard is an HDF5 file opened by the HDF5 reader, and the tensors of all of them are listed
//! together, in the order one unsharded `.weights.h5` of the same model lists them (by path).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use warmstart_core::{CheckpointSource, Error, Format, KerasError, Result, TensorInfo};
use warmstart_hdf5::Hdf5Source;

use crate::archive::MAX_JSON_BYTES;

/// Sharded Keras weights opened for reading.
pub struct KerasShardedSource {
    path: PathBuf,
    shards: Vec<Hdf5Source>,
    tensors: Vec<TensorInfo>,
    /// For each tensor's name, its index in `tensors` and the shard holding it.
    index: HashMap<String, (usize, usize)>,
}

impl std::fmt::Debug for KerasShardedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerasShardedSource")
            .field("path", &self.path)
            .field("shards", &self.shards.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// The shard file names the index at `path` (its text `text`) names, each once, in the order they
/// first appear.
pub fn shard_names(path: &Path, text: &[u8]) -> Result<Vec<String>, KerasError> {
    let bad = |reason: String| KerasError::Index { path: path.to_path_buf(), reason };
    let json: serde_json::Value = serde_json::from_slice(text).map_err(|e| KerasError::Json {
        path: path.to_path_buf(),
        member: "the index".into(),
        source: e.into(),
    })?;
    let map =
        json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("no \"weight_map\" object".into()))?;
    let mut names: Vec<String> = Vec::new();
    for (group, value) in map {
        let files: Vec<&serde_json::Value> = match value {
            serde_json::Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        for file in files {
            let name = file.as_str().ok_or_else(|| bad(format!("{group:?} maps to {file}, not a file name")))?;
            let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
            if !plain {
                return Err(bad(format!("{group:?} maps to {name:?}, which is not a file name beside the index")));
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

impl KerasShardedSource {
    /// Opens the index at `path` and every shard it names.
    pub fn open(path: &Path) -> Result<KerasShardedSource> {
        let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        if len > MAX_JSON_BYTES {
            let member = "the index".into();
            return Err(KerasError::JsonTooLarge {
                path: path.to_path_buf(),
                member,
                size: len,
                limit: MAX_JSON_BYTES,
            }
            .into());
        }
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let names = shard_names(path, &text)?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let shards = names.iter().map(|n| Hdf5Source::open(&dir.join(n))).collect::<Result<Vec<_>, _>>()?;
        let mut all: Vec<(Vec<&str>, usize, &TensorInfo)> = Vec::new();
        for (s, shard) in shards.iter().enumerate() {
            all.extend(shard.tensors().iter().map(|t| (t.name.split('/').collect(), s, t)));
        }
        // Depth-first in name order, as the HDF5 reader lists one file.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tensors = Vec::with_capacity(all.len());
        let mut index: HashMap<String, (usize, usize)> = HashMap::with_capacity(all.len());
        for (_, s, info) in all {
            if let Some(&(_, first)) = index.get(&info.name) {
                return Err(KerasError::DuplicateTensor {
                    path: path.to_path_buf(),
                    name: info.name.clone(),
                    first: shards[first].path().to_path_buf(),
                    second: shards[s].path().to_path_buf(),
                }
                .into());
            }
            index.insert(info.name.clone(), (tensors.len(), s));
            tensors.push(info.clone());
        }
        Ok(KerasShardedSource { path: path.to_path_buf(), shards, tensors, index })
    }

    /// The shards, in the order the index first names them.
    pub fn shards(&self) -> &[Hdf5Source] {
        &self.shards
    }

    fn shard_of(&self, name: &str) -> Result<&Hdf5Source> {
        let &(_, s) = self
            .index
            .get(name)
            .ok_or_else(|| Error::TensorNotFound { path: self.path.clone(), name: name.to_string() })?;
        Ok(&self.shards[s])
    }
}

impl CheckpointSource for KerasShardedSource {
    fn format(&self) -> Format {
        Format::Keras
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&(i, _)| &self.tensors[i])
    }

    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        self.shard_of(name)?.read_rows(name, rows)
    }

    fn read_strings(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        self.shard_of(name)?.read_strings(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Result<Vec<String>, KerasError> {
        shard_names(Path::new("m.weights.json"), text.as_bytes())
    }

    #[test]
    fn shard_names_come_once_in_first_use_order() {
        let index = r#"{"metadata": {"total_size": 8}, "weight_map": {
            "/layers/dense/vars": ["m_00000.weights.h5", "m_00001.weights.h5"],
            "/layers/dense_1/vars": "m_00001.weights.h5",
            "/optimizer/vars": ["m_00002.weights.h5"]}}"#;
        assert_eq!(names(index).unwrap(), ["m_00000.weights.h5", "m_00001.weights.h5", "m_00002.weights.h5"]);
        assert_eq!(names(r#"{"weight_map": {}}"#).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn names_that_leave_the_folder_or_are_no_strings_are_refused() {
        for bad in ["../x.weights.h5", "/abs.weights.h5", "a\\\\b", "", ".", ".."] {
            let text = format!(r#"{{"weight_map": {{"/vars": "{bad}"}}}}"#);
            let err = names(&text).unwrap_err();
            assert!(matches!(err, KerasError::Index { .. }), "{bad:?}: {err}");
        }
        assert!(matches!(names(r#"{"weight_map": {"/vars": [1]}}"#), Err(KerasError::Index { .. })));
        assert!(matches!(names(r#"{"weight_map": []}"#), Err(KerasError::Index { .. })));
        assert!(matches!(names("[1"), Err(KerasError::Json { .. })));
    }
}
