//! TF2 object-based checkpoints under their variables' names (`--names variables`): each tensor whose
//! checkpoint key the object graph records for a variable is named by that variable's original full
//! name (`dense/kernel`); any other key loses its `/.ATTRIBUTES/VARIABLE_VALUE` suffix
//! (`model/layer_with_weights-0/kernel`). Checkpoints without an object graph keep their names.

use std::collections::HashMap;

use warmstart_core::{CheckpointSource, Result};

use crate::{Inner, RulesError, RulesSource};

/// What ends the checkpoint key of a variable's value in an object-based checkpoint.
pub const VARIABLE_VALUE_SUFFIX: &str = "/.ATTRIBUTES/VARIABLE_VALUE";

/// The variable name of each tensor of `src` (by checkpoint key), or `None` if `src` has no object
/// graph.
pub fn variable_names(src: &dyn CheckpointSource) -> Result<Option<HashMap<String, String>>> {
    let Some(by_variable) = src.object_graph_keys()? else { return Ok(None) };
    let mut by_key: HashMap<String, String> = HashMap::new();
    // Attributes without a full name (some TF2 objects record none) are named by their key.
    for (variable, key) in by_variable.into_iter().filter(|(v, _)| !v.is_empty()) {
        // Two variables recorded for one key (never seen from TF): the smaller name, so it repeats.
        let name = by_key.entry(key).or_insert_with(|| variable.clone());
        if variable < *name {
            *name = variable;
        }
    }
    let names = src
        .tensors()
        .iter()
        .map(|t| {
            let name = by_key
                .get(&t.name)
                .cloned()
                .unwrap_or_else(|| t.name.strip_suffix(VARIABLE_VALUE_SUFFIX).unwrap_or(&t.name).to_string());
            (t.name.clone(), name)
        })
        .collect();
    Ok(Some(names))
}

/// `src` (a `&dyn CheckpointSource` or an `Arc` of one) under its variables' names (`--names
/// variables`, the Python package's `names="variables"`), or `None` if it has no object graph (it then
/// keeps its names); two tensors given one name are refused.
pub fn named<'a>(src: impl Into<Inner<'a>>) -> std::result::Result<Option<RulesSource<'a>>, RulesError> {
    let src = src.into();
    match variable_names(&*src)? {
        Some(names) => Ok(Some(RulesSource::renamed(src, &names)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::path::Path;
    use warmstart_core::test_support::MemorySource;
    use warmstart_core::{DType, Format, TensorInfo};

    /// A memory source with an object graph.
    struct ObjectBased(MemorySource, HashMap<String, String>);

    impl CheckpointSource for ObjectBased {
        fn format(&self) -> Format {
            Format::Tf
        }
        fn path(&self) -> &Path {
            self.0.path()
        }
        fn tensors(&self) -> &[TensorInfo] {
            self.0.tensors()
        }
        fn read_rows(&self, name: &str, rows: std::ops::Range<u64>) -> Result<Cow<'_, [u8]>> {
            self.0.read_rows(name, rows)
        }
        fn object_graph_keys(&self) -> Result<Option<HashMap<String, String>>> {
            Ok(Some(self.1.clone()))
        }
    }

    #[test]
    fn recorded_names_else_the_key_without_its_suffix() {
        let key = |k: &str| format!("{k}{VARIABLE_VALUE_SUFFIX}");
        let mut src = MemorySource::new();
        for k in ["model/layer_with_weights-0/kernel", "model/dense/bias", "save_counter"] {
            src = src.with_bytes(TensorInfo::new(key(k), DType::F32, vec![]), vec![0; 4]);
        }
        let src = src.with_strings("_CHECKPOINTABLE_OBJECT_GRAPH", &[], vec![vec![]]);
        let graph =
            HashMap::from([("dense/bias".to_string(), key("model/dense/bias")), (String::new(), key("save_counter"))]);
        let names = variable_names(&ObjectBased(src, graph)).unwrap().unwrap();
        assert_eq!(names[&key("model/layer_with_weights-0/kernel")], "model/layer_with_weights-0/kernel");
        assert_eq!(names[&key("model/dense/bias")], "dense/bias");
        assert_eq!(names[&key("save_counter")], "save_counter", "no full name recorded");
        assert_eq!(names["_CHECKPOINTABLE_OBJECT_GRAPH"], "_CHECKPOINTABLE_OBJECT_GRAPH");
        assert_eq!(variable_names(&MemorySource::new()).unwrap(), None);
    }

    #[test]
    fn named_reads_a_shared_source_under_its_variables_names() {
        let key = "model/dense/bias/.ATTRIBUTES/VARIABLE_VALUE".to_string();
        let src = MemorySource::new().with_bytes(TensorInfo::new(key.clone(), DType::F32, vec![1]), vec![1, 2, 3, 4]);
        let graph = HashMap::from([("dense/bias".to_string(), key.clone())]);
        let shared: std::sync::Arc<dyn CheckpointSource> = std::sync::Arc::new(ObjectBased(src, graph));
        let renamed = named(shared.clone()).unwrap().unwrap();
        assert_eq!(renamed.tensors().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["dense/bias"]);
        assert_eq!(&*renamed.read_rows("dense/bias", 0..1).unwrap(), &[1, 2, 3, 4]);
        assert!(renamed.read_rows(&key, 0..1).is_err(), "the key is no longer a name");
        let plain: &dyn CheckpointSource = &MemorySource::new();
        assert!(named(plain).unwrap().is_none());
    }
}
