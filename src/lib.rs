//! warmstart as a library: TensorFlow's `tf.compat.v1.train.warm_start`, bit for bit, on checkpoints of
//! any format.
//!
//! [`plan`] is the dry run (what every target variable gets, and why, or TF's refusal); [`run`] carries
//! the plan out into a sink. Both take [`WarmStartSettings`] (from a TOML file with
//! [`WarmStartSettings::from_file`], or built directly) and the two opened checkpoints. This is the only
//! layer that does I/O of its own: it reads the vocabulary files.
#![deny(missing_docs)]

use std::collections::BTreeMap;

use warmstart_core::{CheckpointSink, CheckpointSource, SinkTensor};
use warmstart_planner::{OldCheckpoint, PlanSettings, Target, VocabFile, VocabInfo};

pub use warmstart_config::{BackupInitializer, ConfigError, ConfigPath, VarsToWarmStart, VocabSettings, WarmStartSettings};
pub use warmstart_executor::{ExecError, ExecOptions, Report};
pub use warmstart_formats::Format;
pub use warmstart_planner::{Action, Plan, PlanError, VariablePlan};

/// Everything that can stop a warm-start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TF refuses this warm-start (its message; see [`PlanError::variable`]).
    #[error("{}", refusal(.0))]
    Refused(#[from] PlanError),
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] warmstart_core::Error),
    /// Executing the plan failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn refusal(e: &PlanError) -> String {
    if e.message_names_variable() {
        e.to_string()
    } else {
        format!("variable {}: {e}", e.variable())
    }
}

/// Reads the vocabulary files and turns the settings into the planner's.
fn plan_settings(settings: &WarmStartSettings, keep_partitions: bool) -> Result<PlanSettings> {
    let read = |p: &ConfigPath| -> VocabFile {
        if p.given.is_empty() {
            // TF refuses an empty path with its own message; the planner says so.
            return VocabFile::default();
        }
        match std::fs::read(p.resolve()) {
            Ok(contents) => VocabFile::new(p.given.clone(), contents),
            // Refused by the planner when the remap needs the file, in TF's order of refusals.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                VocabFile::unreadable(p.given.clone(), "No such file or directory")
            }
            Err(e) => VocabFile::unreadable(p.given.clone(), e.to_string()),
        }
    };
    let mut vocab = BTreeMap::new();
    for (name, v) in &settings.var_name_to_vocab_info {
        vocab.insert(
            name.clone(),
            VocabInfo {
                new_vocab: read(&v.new_vocab),
                new_vocab_size: v.new_vocab_size,
                num_oov_buckets: v.num_oov_buckets,
                old_vocab: read(&v.old_vocab),
                old_vocab_size: v.old_vocab_size,
                backup_initializer: v.backup_initializer,
                axis: v.axis,
            },
        );
    }
    Ok(PlanSettings {
        vars_to_warm_start: settings.vars_to_warm_start.clone(),
        var_name_to_prev_var_name: settings.var_name_to_prev_var_name.clone(),
        var_name_to_vocab_info: vocab,
        keep_partitions,
    })
}

/// Plans the warm-start; partitioned variables stay partitioned in the output if `keep_partitions`
/// (TF output) and are written whole otherwise.
pub fn plan_with(
    settings: &WarmStartSettings,
    old: &dyn CheckpointSource,
    target: &dyn CheckpointSource,
    keep_partitions: bool,
) -> Result<Plan> {
    let plan_settings = plan_settings(settings, keep_partitions)?;
    let variables = match target.graph() {
        Some(graph) => warmstart_planner::variables_from_graph(graph, target.tensors())?,
        None => {
            let target_keys = target.object_graph_keys()?;
            warmstart_planner::variables_without_graph(
                target.tensors(),
                &settings.non_trainable,
                target_keys.as_ref(),
                |n| target.slices(n),
            )?
        }
    };
    let keys = old.object_graph_keys()?;
    let old_checkpoint = OldCheckpoint {
        display: &settings.ckpt_to_initialize_from.given,
        tensors: old.tensors(),
        object_graph_keys: keys.as_ref(),
    };
    let target = Target { variables: &variables, tensors: target.tensors() };
    Ok(warmstart_planner::plan(&plan_settings, &old_checkpoint, &target)?)
}

/// Plans the warm-start (the dry run), keeping partitions when the target is a TF checkpoint.
pub fn plan(settings: &WarmStartSettings, old: &dyn CheckpointSource, target: &dyn CheckpointSource) -> Result<Plan> {
    plan_with(settings, old, target, target.format() == "tf")
}

/// Called with the plan and the bytes it will write.
pub type OnPlan<'a> = dyn Fn(&Plan, u64) + 'a;

/// Options of [`run`].
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Keep partitioned variables partitioned in the output (for TF output).
    pub keep_partitions: bool,
    /// Called with the bytes written so far.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
    /// Called once with the plan and the total bytes to write, before writing.
    pub on_plan: Option<&'a OnPlan<'a>>,
    /// Leave string tensors out of the output (for formats that cannot store them); they are listed in
    /// [`Plan::skipped`].
    pub skip_string_tensors: bool,
    /// How many data shards to write (TF output only; `None` for one).
    pub shards: Option<usize>,
    /// The executor's window for remapping large old tensors, if not the default (see
    /// [`ExecOptions::window_bytes`]).
    pub window_bytes: Option<u64>,
    /// The executor's row block size, if not the default (see [`ExecOptions::block_bytes`]).
    pub block_bytes: Option<u64>,
    /// Flush the output to the disk (fsync) before moving it into place (see
    /// [`WriteOptions::sync`](warmstart_formats::WriteOptions::sync)).
    pub sync: bool,
}

/// Plans and executes the warm-start. `create_sink` is called with the output tensor list only if TF
/// would accept the warm-start, so a refused run writes nothing; the sink is finished at the end.
pub fn run(
    settings: &WarmStartSettings,
    old: &dyn CheckpointSource,
    target: &dyn CheckpointSource,
    create_sink: impl FnOnce(&[SinkTensor]) -> Result<Box<dyn CheckpointSink>>,
    options: &RunOptions<'_>,
) -> Result<(Plan, Report)> {
    let mut plan = plan_with(settings, old, target, options.keep_partitions)?;
    if options.skip_string_tensors {
        plan.skip_string_tensors();
    }
    if let Some(on_plan) = options.on_plan {
        on_plan(&plan, warmstart_executor::total_bytes(&plan));
    }
    let mut sink = create_sink(&plan.sink_tensors())?;
    let mut exec = ExecOptions { progress: options.progress, ..ExecOptions::default() };
    if let Some(window_bytes) = options.window_bytes {
        exec.window_bytes = window_bytes;
    }
    if let Some(block_bytes) = options.block_bytes {
        exec.block_bytes = block_bytes;
    }
    let report = warmstart_executor::execute(&plan, old, target, sink.as_mut(), &exec)?;
    sink.finish()?;
    Ok((plan, report))
}

/// Opens the old checkpoint and the target that `settings` name, whatever their formats.
pub fn open_checkpoints(settings: &WarmStartSettings) -> Result<(Box<dyn CheckpointSource>, Box<dyn CheckpointSource>)> {
    let old = warmstart_formats::open(&settings.ckpt_to_initialize_from.resolve())?;
    let target = warmstart_formats::open(&settings.target.resolve())?;
    Ok((old, target))
}

/// [`plan`] on the checkpoints the settings name; partitions are kept as for TF output.
pub fn plan_files(settings: &WarmStartSettings) -> Result<Plan> {
    let (old, target) = open_checkpoints(settings)?;
    plan(settings, old.as_ref(), target.as_ref())
}

/// [`run`] on the checkpoints the settings name, writing `out` in `format` (or the format its name
/// says). Partitioned variables stay partitioned in TF output and are written whole otherwise. A
/// refused warm-start creates no file.
pub fn run_files(
    settings: &WarmStartSettings,
    out: &std::path::Path,
    format: Option<Format>,
    options: &RunOptions<'_>,
) -> Result<(Plan, Report)> {
    let format = warmstart_formats::destination_format(out, format)?;
    let (old, target) = open_checkpoints(settings)?;
    let target: std::sync::Arc<dyn CheckpointSource> = std::sync::Arc::from(target);
    let options = RunOptions {
        keep_partitions: format == Format::Tf,
        skip_string_tensors: !format.stores_strings(),
        progress: options.progress,
        on_plan: options.on_plan,
        shards: options.shards,
        window_bytes: options.window_bytes,
        block_bytes: options.block_bytes,
        sync: options.sync,
    };
    // A target in the output's own format lends its layout (Keras HDF5 weight paths) to the output.
    let template = (target.format() == format.name()).then(|| target.clone());
    // The folders made for the output, from its parent up: removed again if the run fails.
    let created: std::cell::RefCell<Vec<std::path::PathBuf>> = Default::default();
    let result = run(
        settings,
        old.as_ref(),
        target.as_ref(),
        |tensors| {
            // Only now, with the warm-start accepted, may anything be created.
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
                let missing = parent.ancestors().take_while(|a| !a.as_os_str().is_empty() && !a.exists());
                *created.borrow_mut() = missing.map(std::path::Path::to_path_buf).collect();
                std::fs::create_dir_all(parent).map_err(|e| warmstart_core::Error::io(parent, e))?;
            }
            let write = warmstart_formats::WriteOptions { template, shards: options.shards, sync: options.sync, ..Default::default() };
            Ok(warmstart_formats::create_sink(out, format, tensors, &write)?)
        },
        &options,
    );
    if result.is_err() {
        // Only folders left empty go (the sink has removed its files); the first that is not ends it.
        for folder in created.borrow().iter() {
            if std::fs::remove_dir(folder).is_err() {
                break;
            }
        }
    }
    result
}
