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
    let bad = |reason: String| TfError::BadMeta {
        path: path.to_path_buf(),
        reason,
    };
    let meta = MetaGraphDef::decode(bytes).map_err(|source| TfError::BadProto {
        path: path.to_path_buf(),
        what: "MetaGraphDef".into(),
        source: source.into(),
    })?;
    let collection = |key: &str| -> Result<Vec<VariableDef>, TfError> {
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
    };
    let trainable: HashSet<String> = collection("trainable_variables")?
        .iter()
        .map(|v| strip_output(&v.variable_name).to_string())
        .collect();
    let mut node_shapes: HashMap<&str, &crate::proto::TensorShapeProto> = HashMap::new();
    if let Some(graph) = &meta.graph_def {
        for node in &graph.node {
            if let Some(crate::proto::attr_value::Value::Shape(shape)) =
                node.attr.get("shape").and_then(|a| a.value.as_ref())
            {
                node_shapes.insert(node.name.as_str(), shape);
            }
        }
    }
    let dims = |what: &str, values: &[i64]| -> Result<Vec<u64>, TfError> {
        values
            .iter()
            .map(|&d| {
                u64::try_from(d).map_err(|_| bad(format!("{what} has a negative dimension {d}")))
            })
            .collect()
    };

    let mut variables: Vec<GraphVariable> = Vec::new();
    let mut by_full_name: HashMap<String, usize> = HashMap::new();
    for def in collection("variables")? {
        let name = strip_output(&def.variable_name).to_string();
        let is_trainable = trainable.contains(&name);
        match def
            .save_slice_info_def
            .as_ref()
            .filter(|s| !s.full_name.is_empty())
        {
            Some(info) => {
                let full_shape = dims(&format!("full_shape of {name}"), &info.full_shape)?;
                let start = dims(&format!("var_offset of {name}"), &info.var_offset)?;
                let len = dims(&format!("var_shape of {name}"), &info.var_shape)?;
                let rank = full_shape.len();
                let fits = start.len() == rank
                    && len.len() == rank
                    && (0..rank).all(|d| {
                        start[d]
                            .checked_add(len[d])
                            .is_some_and(|e| e <= full_shape[d])
                    });
                if !fits {
                    return Err(bad(format!(
                        "partition {name} (offset {start:?}, shape {len:?}) does not fit in {:?} {full_shape:?}",
                        info.full_name
                    )));
                }
                let part = VariablePart {
                    name,
                    slice: Slice { start, len },
                };
                match by_full_name.get(&info.full_name) {
                    Some(&i) => {
                        let var = &mut variables[i];
                        if var.shape != full_shape {
                            return Err(bad(format!(
                                "partitions of {:?} disagree on its shape: {:?} and {full_shape:?}",
                                info.full_name, var.shape
                            )));
                        }
                        var.trainable |= is_trainable;
                        var.parts.push(part);
                    }
                    None => {
                        by_full_name.insert(info.full_name.clone(), variables.len());
                        variables.push(GraphVariable {
                            name: info.full_name.clone(),
                            shape: full_shape,
                            trainable: is_trainable,
                            parts: vec![part],
                        });
                    }
                }
            }
            None => {
                let shape = match node_shapes.get(name.as_str()) {
                    Some(proto) if !proto.unknown_rank && proto.dim.iter().all(|d| d.size >= 0) => {
                        proto.dim.iter().map(|d| d.size as u64).collect()
                    }
                    _ => fallback_shape(&name).ok_or_else(|| {
                        bad(format!("variable {name:?}: neither the graph nor the checkpoint gives its shape"))
                    })?,
                };
                variables.push(GraphVariable {
                    name,
                    shape,
                    trainable: is_trainable,
                    parts: Vec::new(),
                });
            }
        }
    }
    Ok(GraphInfo { variables })
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
        assert!(matches!(
            read_graph(p, &[0xff, 0xff], &|_| None),
            Err(TfError::BadProto { .. })
        ));
        assert_eq!(read_graph(p, &[], &|_| None).unwrap(), GraphInfo::default());
    }
}
