//! What a TF1 checkpoint says about the model beyond its tensors: its `.meta` file (a `MetaGraphDef`:
//! the global and trainable variable collections and each variable's partitioning). TF2's object graph
//! is read by the reader's `object_graph` module.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use prost::Message;
use warmstart_core::{GraphInfo, GraphVariable, Slice, VariablePart};

use crate::proto::{MetaGraphDef, VariableDef};
use crate::TfError;

/// A variable's name without the `:N` output suffix (`w:0` gives `w`).
fn strip_output(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((op, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => op,
        _ => name,
    }
}

/// Decodes the variables of a `.meta` file. A variable whose shape the graph does not give (no node
/// with a `shape` attribute) gets `fallback_shape(name)`, the checkpoint's shape for it.
pub(crate) fn read_graph(
    path: &Path,
    bytes: &[u8],
    fallback_shape: &dyn Fn(&str) -> Option<Vec<u64>>,
) -> Result<GraphInfo, TfError> {
    let meta = MetaGraphDef::decode(bytes).map_err(|source| TfError::BadProto {
        path: path.to_path_buf(),
        what: "MetaGraphDef".into(),
        source: source.into(),
    })?;
    let trainable: HashSet<String> = collection(path, &meta, "trainable_variables")?
        .iter()
        .map(|v| strip_output(&v.variable_name).to_string())
        .collect();
    let node_shapes = node_shapes(&meta);
    let mut graph = Graph { path, variables: Vec::new(), by_full_name: HashMap::new() };
    for def in collection(path, &meta, "variables")? {
        let name = strip_output(&def.variable_name).to_string();
        let is_trainable = trainable.contains(&name);
        match def.save_slice_info_def.as_ref().filter(|s| !s.full_name.is_empty()) {
            Some(info) => graph.add_partition(name, info, is_trainable)?,
            None => {
                let shape = match node_shapes.get(name.as_str()) {
                    Some(proto) if !proto.unknown_rank && proto.dim.iter().all(|d| d.size >= 0) => {
                        proto.dim.iter().map(|d| d.size as u64).collect()
                    }
                    _ => fallback_shape(&name).ok_or_else(|| {
                        graph.bad(format!("variable {name:?}: neither the graph nor the checkpoint gives its shape"))
                    })?,
                };
                graph.variables.push(GraphVariable { name, shape, trainable: is_trainable, parts: Vec::new() });
            }
        }
    }
    Ok(GraphInfo { variables: graph.variables })
}

/// The `VariableDef`s of the graph's collection `key` (none if it has no such collection).
fn collection(path: &Path, meta: &MetaGraphDef, key: &str) -> Result<Vec<VariableDef>, TfError> {
    let Some(values) = meta
        .collection_def
        .get(key)
        .and_then(|c| c.kind.as_ref())
        .map(|crate::proto::collection_def::Kind::BytesList(b)| &b.value)
    else {
        return Ok(Vec::new());
    };
    values
        .iter()
        .map(|raw| {
            VariableDef::decode(raw.as_slice()).map_err(|source| TfError::BadProto {
                path: path.to_path_buf(),
                what: format!("VariableDef in collection {key:?}"),
                source: source.into(),
            })
        })
        .collect()
}

/// The `shape` attribute of each node of the graph that has one, by node name.
fn node_shapes(meta: &MetaGraphDef) -> HashMap<&str, &crate::proto::TensorShapeProto> {
    let mut node_shapes = HashMap::new();
    if let Some(graph) = &meta.graph_def {
        for node in &graph.node {
            if let Some(crate::proto::attr_value::Value::Shape(shape)) =
                node.attr.get("shape").and_then(|a| a.value.as_ref())
            {
                node_shapes.insert(node.name.as_str(), shape);
            }
        }
    }
    node_shapes
}

/// The variables read so far, the partitioned ones by their full name.
struct Graph<'a> {
    path: &'a Path,
    variables: Vec<GraphVariable>,
    by_full_name: HashMap<String, usize>,
}

impl Graph<'_> {
    fn bad(&self, reason: String) -> TfError {
        TfError::BadMeta { path: self.path.to_path_buf(), reason }
    }

    fn dims(&self, what: &str, values: &[i64]) -> Result<Vec<u64>, TfError> {
        values
            .iter()
            .map(|&d| u64::try_from(d).map_err(|_| self.bad(format!("{what} has a negative dimension {d}"))))
            .collect()
    }

    /// Adds the partition `name` of the variable `info.full_name`: the variable's first partition
    /// adds the variable, later ones must agree on its shape.
    fn add_partition(
        &mut self,
        name: String,
        info: &crate::proto::SaveSliceInfoDef,
        is_trainable: bool,
    ) -> Result<(), TfError> {
        let full_shape = self.dims(&format!("full_shape of {name}"), &info.full_shape)?;
        let start = self.dims(&format!("var_offset of {name}"), &info.var_offset)?;
        let len = self.dims(&format!("var_shape of {name}"), &info.var_shape)?;
        let rank = full_shape.len();
        let fits = start.len() == rank
            && len.len() == rank
            && (0..rank).all(|d| start[d].checked_add(len[d]).is_some_and(|e| e <= full_shape[d]));
        if !fits {
            return Err(self.bad(format!(
                "partition {name} (offset {start:?}, shape {len:?}) does not fit in {:?} {full_shape:?}",
                info.full_name
            )));
        }
        let part = VariablePart { name, slice: Slice { start, len } };
        match self.by_full_name.get(&info.full_name) {
            Some(&i) => {
                let var = &mut self.variables[i];
                if var.shape != full_shape {
                    let shape = var.shape.clone();
                    return Err(self.bad(format!(
                        "partitions of {:?} disagree on its shape: {:?} and {full_shape:?}",
                        info.full_name, shape
                    )));
                }
                var.trainable |= is_trainable;
                var.parts.push(part);
            }
            None => {
                self.by_full_name.insert(info.full_name.clone(), self.variables.len());
                self.variables.push(GraphVariable {
                    name: info.full_name.clone(),
                    shape: full_shape,
                    trainable: is_trainable,
                    parts: vec![part],
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_suffix() {
        assert_eq!(strip_output("w:0"), "w");
        assert_eq!(strip_output("a/part_1:12"), "a/part_1");
        assert_eq!(strip_output("odd:name"), "odd:name");
        assert_eq!(strip_output("plain"), "plain");
    }

    #[test]
    fn bad_bytes_are_errors() {
        let p = Path::new("m.meta");
        assert!(matches!(read_graph(p, &[0xff, 0xff], &|_| None), Err(TfError::BadProto { .. })));
        assert_eq!(read_graph(p, &[], &|_| None).unwrap(), GraphInfo::default());
    }
}
