//! Object-graph keys of TF2 object-based checkpoints: the `_CHECKPOINTABLE_OBJECT_GRAPH` tensor holds a
//! serialized `TrackableObjectGraph`, which maps each variable's original full name to the checkpoint
//! key its value is stored under.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;
use warmstart_core::CheckpointSource;

use super::TfSource;
use crate::proto::TrackableObjectGraph;
use crate::TfError;

/// The key of the tensor holding a TF2 checkpoint's object graph.
pub const OBJECT_GRAPH_KEY: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";

impl TfSource {
    /// The map from each variable's original full name to its checkpoint key (TF2 checkpoints), or
    /// `None` if there is no object graph.
    pub(super) fn object_graph(&self) -> warmstart_core::Result<Option<HashMap<String, String>>> {
        if !self.by_name.contains_key(OBJECT_GRAPH_KEY) {
            return Ok(None);
        }
        let values = self.read_strings(OBJECT_GRAPH_KEY)?;
        let [bytes] = values.as_slice() else {
            return Err(TfError::BadStrings {
                path: self.index_path.clone(),
                tensor: OBJECT_GRAPH_KEY.to_string(),
                reason: format!("holds {} strings, expected one", values.len()),
            }
            .into());
        };
        Ok(Some(keys(&self.index_path, bytes)?))
    }
}

/// The map from each attribute's `full_name` to its `checkpoint_key` in a serialized
/// `TrackableObjectGraph`.
fn keys(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>, TfError> {
    let graph = TrackableObjectGraph::decode(bytes).map_err(|source| TfError::BadProto {
        path: path.to_path_buf(),
        what: "TrackableObjectGraph in _CHECKPOINTABLE_OBJECT_GRAPH".into(),
        source: source.into(),
    })?;
    Ok(graph.nodes.into_iter().flat_map(|n| n.attributes).map(|a| (a.full_name, a.checkpoint_key)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bytes_are_errors() {
        assert!(matches!(keys(Path::new("m.index"), &[0x0a, 0x05]), Err(TfError::BadProto { .. })));
        assert_eq!(keys(Path::new("m.index"), &[]).unwrap(), HashMap::new());
    }
}
