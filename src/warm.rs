//! Output of `warmstart plan` and `warmstart run`: the plan as a table or JSON, a refusal as TF's
//! message (and as JSON), the end-of-run summary, and the progress bar.

use std::io::{self, Write};

use warmstart::{Action, Format, Plan, PlanError, Report};

use crate::inspect::human_bytes;

fn shape(s: &[u64]) -> String {
    format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

fn what(action: &Action) -> String {
    match action {
        Action::KeepInitial => "keeps its initial value".to_string(),
        Action::Copy { from, parts: None } => format!("copied from {from}"),
        Action::Copy { from, parts: Some(ps) } => {
            format!("partitions {ps:?} copied from {from}, the others keep their initial value")
        }
        Action::Remap(r) => format!(
            "remapped from {} (axis {}: {} found, {} missing, {} OOV; backup {:?})",
            r.from, r.axis, r.entries_found, r.entries_missing, r.oov_buckets, r.backup
        ),
    }
}

/// Prints the plan, one variable per entry with what it gets and why.
pub fn write_plan(out: &mut dyn Write, plan: &Plan) -> io::Result<()> {
    for v in &plan.variables {
        let parts = match v.parts.len() {
            0 => String::new(),
            1 => " in 1 partition".to_string(),
            n => format!(" in {n} partitions"),
        };
        writeln!(out, "{} {}{}{parts}: {}", v.name, v.dtype, shape(&v.shape), what(&v.action))?;
        if !v.reason.is_empty() {
            writeln!(out, "    because: {}", v.reason)?;
        }
        if let Some(f) = &v.tensorflow_fails {
            writeln!(out, "    warning: TensorFlow itself would fail here: {}: {} ({})", f.class, f.message, f.why)?;
        }
    }
    for name in &plan.passthrough {
        writeln!(out, "{name}: not a variable, copied through unchanged")?;
    }
    writeln!(out, "{}", summary(plan))
}

fn summary(plan: &Plan) -> String {
    let count = |f: fn(&Action) -> bool| plan.variables.iter().filter(|v| f(&v.action)).count();
    format!(
        "{} variables: {} copied, {} remapped, {} kept initial; {} other tensors copied through",
        plan.variables.len(),
        count(|a| matches!(a, Action::Copy { .. })),
        count(|a| matches!(a, Action::Remap(_))),
        count(|a| matches!(a, Action::KeepInitial)),
        plan.passthrough.len()
    )
}

/// The plan as JSON.
pub fn write_plan_json(out: &mut dyn Write, plan: &Plan) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, plan)?;
    writeln!(out)
}

/// A refusal as JSON: `{"refused": {"class", "message", "variable"}}`.
pub fn write_refusal_json(out: &mut dyn Write, e: &PlanError) -> io::Result<()> {
    let value = serde_json::json!({
        "refused": { "class": e.tf_class(), "message": e.to_string(), "variable": e.variable() }
    });
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

/// One line on stderr per variable where TensorFlow itself would fail (a kernel it lacks) though
/// warmstart wrote the values.
pub fn warn_tensorflow_fails(plan: &Plan) {
    for v in &plan.variables {
        if let Some(f) = &v.tensorflow_fails {
            eprintln!("warning: {}: TensorFlow itself would fail here: {}: {} ({})", v.name, f.class, f.message, f.why);
        }
    }
}

/// The end-of-run summary.
pub fn write_report(
    out: &mut dyn Write,
    plan: &Plan,
    report: &Report,
    dst: &std::path::Path,
    format: Format,
) -> io::Result<()> {
    writeln!(out, "{}", summary(plan))?;
    for name in &plan.skipped {
        eprintln!("warning: skipped string tensor {name:?}: {format} cannot store string tensors");
    }
    writeln!(
        out,
        "wrote {} tensors ({}) to {} ({format})",
        report.tensors_written,
        human_bytes(report.bytes_written),
        dst.display()
    )
}

/// The run report and plan as JSON.
pub fn write_report_json(
    out: &mut dyn Write,
    plan: &Plan,
    report: &Report,
    dst: &std::path::Path,
    format: Format,
) -> io::Result<()> {
    let value = serde_json::json!({ "out": dst, "format": format.name(), "report": report, "plan": plan });
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

/// A progress bar on stderr for runs writing more than a few MiB (hidden when stderr is not a terminal).
pub struct Progress {
    bar: std::sync::OnceLock<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new() -> Self {
        Progress { bar: std::sync::OnceLock::new() }
    }

    /// Starts the bar once the plan says how much will be written.
    pub fn start(&self, total: u64) {
        if total < (64 << 20) {
            return;
        }
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta} left")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let _ = self.bar.set(bar);
    }

    /// Moves the bar.
    pub fn set(&self, done: u64) {
        if let Some(bar) = self.bar.get() {
            bar.set_position(done);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}
