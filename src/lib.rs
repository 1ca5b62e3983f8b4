//! warmstart as a library: TensorFlow's `tf.compat.v1.train.warm_start`, bit for bit, on checkpoints of
//! any format.
//!
//! [`plan`] is the dry run (what every target variable gets, and why, or TF's refusal); [`run`] carries
//! the plan out into a sink. Both take [`WarmStartSettings`] (from a TOML file with
//! [`WarmStartSettings::from_file`], or built directly) and the two opened checkpoints. This is the only
//! layer that does I/O of its own: it reads the vocabulary files.
#![deny(missing_docs)]

pub mod rules;

use std::collections::BTreeMap;
use std::path::Path;

use warmstart_core::cancel::{CancelToken, CancellableSource};
use warmstart_core::output::CreatedFolders;
use warmstart_core::{CheckpointSink, CheckpointSource, SinkTensor};
use warmstart_formats::{LayoutTemplate, WriteOptions};
use warmstart_planner::{OldCheckpoint, PlanSettings, Target, VocabFile, VocabInfo};

pub use warmstart_config::{
    BackupInitializer, ConfigError, ConfigPath, VarsToWarmStart, VocabSettings, WarmStartSettings,
};
pub use warmstart_executor::{ExecError, ExecOptions, Report};
pub use warmstart_formats::Format;
pub use warmstart_planner::{Action, Plan, PlanError, TfKernelFailure, VariablePlan};

/// Everything that can stop a warm-start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TF refuses this warm-start (its message; see [`PlanError::variable`]). Boxed, as the other
    /// large errors are, so that `Result`s stay small.
    #[error("{}", refusal(.0))]
    Refused(Box<PlanError>),
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] warmstart_core::Error),
    /// Executing the plan failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        Error::Refused(Box::new(e))
    }
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
    let mut plan = warmstart_planner::plan(&plan_settings, &old_checkpoint, &target)?;
    // Where TF itself would fail for a missing kernel: marked, not refused.
    warmstart_planner::mark_tf_kernel_limits(&mut plan, old.tensors(), |n| old.slices(n));
    Ok(plan)
}

/// Plans the warm-start (the dry run), keeping partitions when the target's format stores them (TF).
pub fn plan(settings: &WarmStartSettings, old: &dyn CheckpointSource, target: &dyn CheckpointSource) -> Result<Plan> {
    plan_with(settings, old, target, target.format().stores_partitions())
}

/// Called with the plan and the bytes it will write.
pub type OnPlan<'a> = dyn Fn(&Plan, u64) + 'a;

/// Options of [`run`].
#[derive(Clone, Copy, Default)]
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
    /// The executor's row block size, if not the default (see [`ExecOptions::block_bytes`]).
    pub block_bytes: Option<u64>,
    /// Stops the run within one row block once cancelled, leaving no output (the reads fail with
    /// [`Cancelled`](warmstart_core::Error::Cancelled)); see [`warmstart_core::cancel`].
    pub cancel: Option<&'a CancelToken>,
}

/// Plans and executes the warm-start. `create_sink` is called with the output tensor list only if TF
/// would accept the warm-start, so a refused run writes nothing; the sink is finished at the end, unless
/// an input changed while being read (see [`CheckpointSource::check_unchanged`]), which is the error.
pub fn run(
    settings: &WarmStartSettings,
    old: &dyn CheckpointSource,
    target: &dyn CheckpointSource,
    create_sink: impl FnOnce(&[SinkTensor]) -> Result<Box<dyn CheckpointSink>>,
    options: &RunOptions<'_>,
) -> Result<(Plan, Report)> {
    let (old_cancellable, target_cancellable);
    let (old, target): (&dyn CheckpointSource, &dyn CheckpointSource) = match options.cancel {
        Some(token) => {
            old_cancellable = CancellableSource::new(old, token);
            target_cancellable = CancellableSource::new(target, token);
            (&old_cancellable, &target_cancellable)
        }
        None => (old, target),
    };
    let mut plan = plan_with(settings, old, target, options.keep_partitions)?;
    if options.skip_string_tensors {
        plan.skip_string_tensors();
    }
    if let Some(on_plan) = options.on_plan {
        on_plan(&plan, warmstart_executor::total_bytes(&plan));
    }
    let mut sink = create_sink(&plan.sink_tensors())?;
    let mut exec = ExecOptions { progress: options.progress, ..ExecOptions::default() };
    if let Some(block_bytes) = options.block_bytes {
        exec.block_bytes = block_bytes;
    }
    let executed = warmstart_executor::execute(&plan, old, target, sink.as_mut(), &exec);
    // An input truncated or rewritten while read: its error (which explains a failed write: bytes of
    // a vanished map make write(2) fail with EFAULT), and the output is not put in place.
    old.check_unchanged()?;
    target.check_unchanged()?;
    let report = executed?;
    sink.finish()?;
    Ok((plan, report))
}

/// Opens the old checkpoint and the target that `settings` name, whatever their formats.
pub fn open_checkpoints(
    settings: &WarmStartSettings,
) -> Result<(Box<dyn CheckpointSource>, Box<dyn CheckpointSource>)> {
    let old = warmstart_formats::open_preferring(&settings.ckpt_to_initialize_from.resolve(), settings.format)?;
    let target = warmstart_formats::open_preferring(&settings.target.resolve(), settings.format)?;
    Ok((old, target))
}

/// [`plan`] on the checkpoints the settings name; partitions are kept as for TF output.
pub fn plan_files(settings: &WarmStartSettings) -> Result<Plan> {
    let (old, target) = open_checkpoints(settings)?;
    plan(settings, old.as_ref(), target.as_ref())
}

/// Where and how [`run_files`] writes its output.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// The output's format, or `None` for safetensors with `max_shard_size`, else the one its name says
    /// (see [`destination_format`](warmstart_formats::destination_format)), else the target's (see
    /// [`choose_destination_format`](warmstart_formats::choose_destination_format)).
    pub format: Option<Format>,
    /// How many data shards to write (TF output only; `None` for one).
    pub shards: Option<usize>,
    /// Split safetensors output into Hugging Face shards of at most this many bytes (see
    /// [`WriteOptions::max_shard_size`](warmstart_formats::WriteOptions::max_shard_size)).
    pub max_shard_size: Option<u64>,
    /// Deflate NumPy output's members (see [`WriteOptions::compress`](warmstart_formats::WriteOptions::compress)).
    pub compress: bool,
    /// Flush the output to the disk (fsync) before moving it into place (see
    /// [`WriteOptions::sync`](warmstart_formats::WriteOptions::sync)).
    pub sync: bool,
    /// Write only this worker's part of a TF bundle of `shards` shards (see
    /// [`WriteOptions::worker`](warmstart_formats::WriteOptions::worker)).
    pub worker: Option<usize>,
}

/// [`run`] on the checkpoints the settings name, writing `out` as `output` says. Partitioned variables
/// stay partitioned in TF output and are written whole otherwise; string tensors are left out of formats
/// that cannot store them. A refused or failed warm-start leaves no file and no folder it made.
pub fn run_files(
    settings: &WarmStartSettings,
    out: &Path,
    output: &OutputOptions,
    options: &RunOptions<'_>,
) -> Result<(Plan, Report)> {
    let (old, target) = open_checkpoints(settings)?;
    // Output split by size is safetensors unless told otherwise.
    let explicit = output.format.or(output.max_shard_size.map(|_| Format::Safetensors));
    let format = warmstart_formats::choose_destination_format(out, explicit, target.format()).0;
    let options = RunOptions {
        keep_partitions: format.stores_partitions(),
        skip_string_tensors: !format.stores_strings(),
        ..*options
    };
    // A target in the output's own format lends its layout (Keras HDF5 weight paths) to the output.
    let write = WriteOptions {
        template: Some(LayoutTemplate::of(target.as_ref())),
        shards: output.shards,
        max_shard_size: output.max_shard_size,
        compress: output.compress,
        sync: output.sync,
        worker: output.worker,
        ..Default::default()
    };
    // The folders made for the output: removed again unless the run succeeds.
    let mut folders = None;
    let result = run(
        settings,
        old.as_ref(),
        target.as_ref(),
        |tensors| {
            // Only now, with the warm-start accepted, may anything be created.
            if let Some(parent) = out.parent() {
                folders = Some(CreatedFolders::create(parent)?);
            }
            Ok(warmstart_formats::create_sink(out, format, tensors, &write)?)
        },
        &options,
    );
    if let (Ok(_), Some(folders)) = (&result, folders) {
        folders.keep();
    }
    result
}
