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

/// `x` for a table: 6 significant digits, or `-` for none.
fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| if v == 0.0 || v.is_infinite() { v.to_string() } else { format!("{v:.5e}") })
}

/// `warmstart diff` as text: what is only in one, each common tensor that is not equal, the totals.
pub fn write_diff(out: &mut dyn Write, report: &warmstart_compare::DiffReport, rtol: f64, atol: f64) -> io::Result<()> {
    for name in &report.only_in_a {
        writeln!(out, "only in A: {name}")?;
    }
    for name in &report.only_in_b {
        writeln!(out, "only in B: {name}")?;
    }
    let dims = |s: &[u64]| format!("[{}]", s.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
    for t in report.tensors.iter().filter(|t| !t.equal()) {
        let mut line = t.name.clone();
        if t.dtype_a != t.dtype_b {
            line += &format!(": dtype {} -> {}", t.dtype_a, t.dtype_b);
        }
        if t.shape_a != t.shape_b {
            line += &format!(": shape {} -> {}", dims(&t.shape_a), dims(&t.shape_b));
        }
        match &t.values {
            Some(v) if v.differing > 0 => {
                line += &format!(": {} of {} elements differ", v.differing, v.elements);
                if v.max_abs.is_some() {
                    line += &format!(", max abs {}, max rel {}", num(v.max_abs), num(v.max_rel));
                }
                if let Some(i) = &v.first_differing {
                    line += &format!(", first at {}", dims(i));
                }
            }
            Some(_) => line += ": values equal",
            None if t.shape_a == t.shape_b => line += ": values not compared",
            None => {}
        }
        writeln!(out, "{line}")?;
    }
    let differ = report.tensors.iter().filter(|t| !t.equal()).count();
    let verdict = if report.equal() { "equal" } else { "differ" };
    writeln!(
        out,
        "{verdict} (rtol {rtol}, atol {atol}): {} tensors in both, {differ} of them differ; {} only in A, {} only in B",
        report.tensors.len(),
        report.only_in_a.len(),
        report.only_in_b.len()
    )
}

/// `warmstart diff --json`: the report, each common tensor with `"equal"`, and the verdict.
pub fn write_diff_json(
    out: &mut dyn Write,
    report: &warmstart_compare::DiffReport,
    rtol: f64,
    atol: f64,
) -> io::Result<()> {
    let mut value = serde_json::to_value(report)?;
    for (t, v) in report.tensors.iter().zip(value["tensors"].as_array_mut().into_iter().flatten()) {
        v["equal"] = json!(t.equal());
    }
    value["equal"] = json!(report.equal());
    value["rtol"] = json!(rtol);
    value["atol"] = json!(atol);
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

/// `inspect --stats` as a table.
pub fn write_stats(
    out: &mut dyn Write,
    rows: &[(&TensorInfo, Option<warmstart_compare::TensorStats>)],
) -> io::Result<()> {
    let header = ["name", "dtype[shape]", "min", "max", "mean", "std", "nan", "inf", "zeros"].map(String::from);
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|(t, s)| match s {
            Some(s) => [
                t.name.clone(),
                shape(t),
                num(s.min),
                num(s.max),
                num(s.mean),
                num(s.std),
                s.nan.to_string(),
                s.inf.to_string(),
                s.zeros.to_string(),
            ],
            None => [
                t.name.clone(),
                shape(t),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| if i < 2 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

/// `inspect --stats --json`: `{"format", "tensors": [{"name", "dtype", "shape", "stats"}]}`, `stats`
/// null for tensors that are not numbers here.
pub fn write_stats_json(
    out: &mut dyn Write,
    format: &str,
    rows: &[(&TensorInfo, Option<warmstart_compare::TensorStats>)],
) -> io::Result<()> {
    let tensors: Vec<Value> = rows
        .iter()
        .map(|(t, s)| json!({ "name": t.name, "dtype": t.dtype.name(), "shape": t.shape, "stats": s }))
        .collect();
    serde_json::to_writer_pretty(&mut *out, &json!({ "format": format, "tensors": tensors }))?;
    writeln!(out)
}

/// With `--names variables`, `src` under its variables' names (TF2 object-based checkpoints; others
/// keep theirs); `None` when keys are asked for or `src` has no object graph.
pub fn named(
    src: &dyn warmstart_core::CheckpointSource,
    variables: bool,
) -> Result<Option<warmstart_rules::RulesSource<'_>>, crate::failure::Failure> {
    if !variables {
        return Ok(None);
    }
    warmstart_rules::names::named(src).map_err(crate::failure::Failure::failed)
}

/// `inspect --names both`: each tensor's variable name beside its checkpoint key.
pub fn write_names(out: &mut dyn Write, named: &Mapping, json: bool) -> io::Result<()> {
    let rows: Vec<(&str, &str, &TensorInfo)> = named
        .entries
        .iter()
        .filter_map(|e| match &e.fate {
            Fate::Kept(k) => Some((k.dest.name.as_str(), e.source.name.as_str(), &e.source)),
            Fate::Skipped(_) => None,
        })
        .collect();
    if json {
        let tensors: Vec<Value> = rows
            .iter()
            .map(|(name, key, t)| json!({ "name": name, "key": key, "dtype": t.dtype.name(), "shape": t.shape }))
            .collect();
        serde_json::to_writer_pretty(&mut *out, &json!({ "tensors": tensors }))?;
        return writeln!(out);
    }
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0).max(4);
    writeln!(out, "{:<width$}  key", "name")?;
    for (name, key, _) in rows {
        writeln!(out, "{name:<width$}  {key}")?;
    }
    Ok(())
}
