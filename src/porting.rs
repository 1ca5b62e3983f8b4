//! Output of the porting commands: `convert --rules --plan` (what each source tensor becomes, as text
//! or JSON) and the warnings for rules that matched nothing.

use std::io::{self, Write};

use serde_json::{json, Value};
use warmstart_core::TensorInfo;
use warmstart_rules::{Fate, Mapping, RuleRef};

fn shape(t: &TensorInfo) -> String {
    format!("{}[{}]", t.dtype, t.shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
}

/// One line on stderr per rule that matched no tensor.
pub fn warn_unmatched(mapping: &Mapping, of: &std::path::Path) {
    for rule in &mapping.unmatched {
        eprintln!("warning: {rule} matched no tensor of {}", of.display());
    }
}

/// The plan as text: a line per source tensor, then the totals.
pub fn write_plan(out: &mut dyn Write, mapping: &Mapping) -> io::Result<()> {
    for e in &mapping.entries {
        match &e.fate {
            Fate::Skipped(rule) => writeln!(out, "{} {}: skipped by {rule}", e.source.name, shape(&e.source))?,
            Fate::Kept(k) => {
                let mut line = format!("{} {} -> {} {}", e.source.name, shape(&e.source), k.dest.name, shape(&k.dest));
                if let Some((rule, perm)) = &k.transpose {
                    line += &format!("; transposed {perm:?} by {rule}");
                }
                if let Some(rule) = &k.cast {
                    line += &format!("; cast {} -> {} by {rule}", e.source.dtype, k.dest.dtype);
                }
                writeln!(out, "{line}")?;
            }
        }
    }
    let skipped = mapping.entries.iter().filter(|e| matches!(e.fate, Fate::Skipped(_))).count();
    writeln!(out, "{} tensors: {} written, {skipped} skipped", mapping.entries.len(), mapping.entries.len() - skipped)
}

fn rule_json(rule: &RuleRef) -> Value {
    json!({ "rule": rule.kind.spelling(), "pattern": rule.pattern, "line": rule.line })
}

/// The plan as JSON: `{"tensors": [...], "unmatched": [...]}`, a tensor as `{"source", "dtype",
/// "shape"}` with `"skipped_by"`, or with `"name"`, `"to_dtype"`, `"to_shape"`, `"transpose"` and
/// `"cast"` (null when not applied).
pub fn mapping_json(mapping: &Mapping) -> Value {
    let tensors: Vec<Value> = mapping
        .entries
        .iter()
        .map(|e| {
            let mut v = json!({ "source": e.source.name, "dtype": e.source.dtype.name(), "shape": e.source.shape });
            match &e.fate {
                Fate::Skipped(rule) => v["skipped_by"] = rule_json(rule),
                Fate::Kept(k) => {
                    v["name"] = json!(k.dest.name);
                    v["to_dtype"] = json!(k.dest.dtype.name());
                    v["to_shape"] = json!(k.dest.shape);
                    v["transpose"] = k
                        .transpose
                        .as_ref()
                        .map_or(Value::Null, |(rule, perm)| json!({ "perm": perm, "by": rule_json(rule) }));
                    v["cast"] = k.cast.as_ref().map_or(Value::Null, |rule| {
                        json!({ "from": e.source.dtype.name(), "to": k.dest.dtype.name(), "by": rule_json(rule) })
                    });
                }
            }
            v
        })
        .collect();
    json!({ "tensors": tensors, "unmatched": mapping.unmatched.iter().map(rule_json).collect::<Vec<_>>() })
}

/// [`mapping_json`], pretty-printed.
pub fn write_plan_json(out: &mut dyn Write, mapping: &Mapping) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &mapping_json(mapping))?;
    writeln!(out)
}
