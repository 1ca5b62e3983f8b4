//! Object-graph keys of TF2 object-based checkpoints: the `_CHECKPOINTABLE_OBJECT_GRAPH` tensor holds a
//! serialized `TrackableObjectGraph`, which maps each variable's original full name to the checkpoint
//! key its value is stored under.

use std::collections::HashMap;

use warmstart_core::CheckpointSource;

use super::TfSource;
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
            }.into());
        };
        Ok(Some(crate::meta::object_graph_keys(&self.index_path, bytes)?))
    }
}
