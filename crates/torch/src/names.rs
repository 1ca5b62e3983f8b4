//! Naming the tensors of an unpickled checkpoint: a state dict's keys as they are, and nested dicts
//! (`{"model": {...}, "optimizer": {"state": {0: {...}}}}`) joined with dots (`model.fc.weight`,
//! `optimizer.state.0.exp_avg`). Lists and tuples that hold tensors name them by index. Values that
//! are not tensors (epochs, learning rates, `param_groups`) are left out.

use std::collections::HashSet;
use std::path::Path;
use std::rc::Rc;

use warmstart_core::{Result, TorchError};

use crate::pickle::{TensorRef, Value};

/// How deep dicts may nest (a dict that holds itself stops here).
pub(crate) const MAX_DEPTH: usize = 64;

/// The most values visited (a value shared many times is visited each time it appears).
const MAX_VISITS: u64 = 1 << 22;

/// Every tensor under the top-level dict `root`, with its dotted name, in the pickle's order.
pub(crate) fn tensors(path: &Path, root: &Value) -> Result<Vec<(String, Rc<TensorRef>)>> {
    if !matches!(root, Value::Dict(_)) {
        return Err(TorchError::NotAStateDict { path: path.to_path_buf(), found: root.kind() }.into());
    }
    let mut walk = Walk { path, out: Vec::new(), seen: HashSet::new(), visits: 0 };
    walk.value("", root, 0)?;
    Ok(walk.out)
}

struct Walk<'a> {
    path: &'a Path,
    out: Vec<(String, Rc<TensorRef>)>,
    seen: HashSet<String>,
    visits: u64,
}

impl Walk<'_> {
    fn value(&mut self, name: &str, value: &Value, depth: usize) -> Result<()> {
        self.visits += 1;
        if depth > MAX_DEPTH || self.visits > MAX_VISITS {
            return Err(TorchError::TooDeep {
                path: self.path.to_path_buf(),
                parent: name.to_string(),
                max: MAX_DEPTH,
            }
            .into());
        }
        match value {
            Value::Tensor(t) => {
                if !self.seen.insert(name.to_string()) {
                    return Err(TorchError::DuplicateTensor {
                        path: self.path.to_path_buf(),
                        tensor: name.to_string(),
                    }
                    .into());
                }
                self.out.push((name.to_string(), t.clone()));
            }
            Value::Dict(items) => {
                for (key, item) in items.borrow().iter() {
                    let key = match key {
                        Value::Str(s) => s.to_string(),
                        Value::Int(i) => i.to_string(),
                        other if holds_tensors(item, depth) => {
                            let parent = name.to_string();
                            return Err(TorchError::BadKey {
                                path: self.path.to_path_buf(),
                                parent,
                                found: other.kind(),
                            }
                            .into());
                        }
                        _ => continue,
                    };
                    self.value(&join(name, &key), item, depth + 1)?;
                }
            }
            Value::List(items) => {
                for (i, item) in items.borrow().iter().enumerate() {
                    self.value(&join(name, &i.to_string()), item, depth + 1)?;
                }
            }
            Value::Tuple(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(&join(name, &i.to_string()), item, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Whether `value` holds a tensor (looking at most `MAX_DEPTH - depth` deep).
fn holds_tensors(value: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match value {
        Value::Tensor(_) => true,
        Value::Dict(items) => items.borrow().iter().any(|(_, v)| holds_tensors(v, depth + 1)),
        Value::List(items) => items.borrow().iter().any(|v| holds_tensors(v, depth + 1)),
        Value::Tuple(items) => items.iter().any(|v| holds_tensors(v, depth + 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use warmstart_core::DType;

    use super::*;

    fn tensor() -> Value {
        let t = TensorRef {
            key: "0".into(),
            dtype: DType::U8,
            storage_bytes: 1,
            offset: 0,
            shape: vec![],
            strides: vec![],
        };
        Value::Tensor(Rc::new(t))
    }

    fn dict(items: Vec<(Value, Value)>) -> Value {
        Value::Dict(Rc::new(RefCell::new(items)))
    }

    fn s(text: &str) -> Value {
        Value::Str(Rc::from(text))
    }

    fn names(root: &Value) -> std::result::Result<Vec<String>, Box<TorchError>> {
        match tensors(Path::new("m.pt"), root) {
            Ok(named) => Ok(named.into_iter().map(|(n, _)| n).collect()),
            Err(warmstart_core::Error::Torch(e)) => Err(e),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn nested_dicts_give_dotted_names_and_other_values_are_left_out() {
        let state = dict(vec![(Value::Int(0), dict(vec![(s("exp_avg"), tensor())]))]);
        let groups = Value::List(Rc::new(RefCell::new(vec![dict(vec![(s("lr"), Value::Float(0.1))])])));
        let optimizer = dict(vec![(s("state"), state), (s("param_groups"), groups)]);
        let model = dict(vec![(s("fc.weight"), tensor()), (s("fc.bias"), tensor())]);
        let pair = Value::Tuple(Rc::from(vec![tensor(), Value::None]));
        let root =
            dict(vec![(s("model"), model), (s("optimizer"), optimizer), (s("epoch"), Value::Int(3)), (s("p"), pair)]);
        assert_eq!(names(&root).unwrap(), ["model.fc.weight", "model.fc.bias", "optimizer.state.0.exp_avg", "p.0"]);
    }

    #[test]
    fn duplicates_bad_keys_deep_nesting_and_non_dicts_are_refused() {
        let root = dict(vec![(s("a.b"), tensor()), (s("a"), dict(vec![(s("b"), tensor())]))]);
        assert!(
            matches!(names(&root).map_err(|e| *e), Err(TorchError::DuplicateTensor { tensor, .. }) if tensor == "a.b")
        );
        let root = dict(vec![(Value::Float(1.0), tensor())]);
        assert!(matches!(names(&root).map_err(|e| *e), Err(TorchError::BadKey { found: "float", .. })));
        // A float key over no tensors is left out.
        assert!(names(&dict(vec![(Value::Float(1.0), Value::Int(1))])).unwrap().is_empty());
        let Value::Dict(inner) = dict(vec![]) else { unreachable!() };
        let cyclic = Value::Dict(inner.clone());
        inner.borrow_mut().push((s("self"), cyclic.clone()));
        assert!(matches!(names(&cyclic).map_err(|e| *e), Err(TorchError::TooDeep { .. })));
        inner.borrow_mut().clear();
        assert!(matches!(names(&tensor()).map_err(|e| *e), Err(TorchError::NotAStateDict { found: "tensor", .. })));
    }
}
