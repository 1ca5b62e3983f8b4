//! The `warmstart` command line. It only parses arguments and wires the library crates together: one
//! small function per subcommand, the work itself in `warmstart-formats` and the format crates.
//!
//! Exit codes: 0 success, 1 a refused input or a failed operation, 2 a usage error, 128 + n a `run` or
//! `convert` ended by signal n (SIGINT, SIGTERM, SIGHUP), having removed what it had begun to write.
//! Standard output closed by its reader (`| head`) ends a command quietly with 0; standard output
//! failing after `run` or `convert` put their output in place is a warning (the exit code says whether
//! the output is there).

mod failure;
mod inspect;
mod merging;
mod porting;
#[cfg(unix)]
mod signals;
mod warm;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use warmstart_formats::{Format, WriteOptions};

use failure::Failure;

/// Warm-start ML models from checkpoints exactly as TensorFlow's warm_start does, across formats.
#[derive(Parser)]
#[command(name = "warmstart", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List a checkpoint's tensors: name, dtype, shape and size.
    Inspect(InspectArgs),
    /// Convert a checkpoint to another format, keeping every byte of every tensor.
    Convert(ConvertArgs),
    /// Dry run of a warm-start: what every target variable gets and why, or TF's refusal.
    Plan(PlanArgs),
    /// Warm-start: write the target's variables, warm-started from the old checkpoint, to --out.
    Run(RunArgs),
    /// Finish or roll back a write to DST that was interrupted (killed), and remove what it left.
    Recover(RecoverArgs),
    /// Compare two checkpoints of any formats, element by element. Exit 0 equal, 1 different, 2 trouble.
    Diff(DiffArgs),
    /// Join the parts that `run --worker I/N` wrote (or TF bundles) into one TF checkpoint.
    Merge(merging::MergeArgs),
}

#[derive(Args)]
struct DiffArgs {
    /// The first checkpoint (the one --rules applies to).
    a: PathBuf,
    /// The second checkpoint.
    b: PathBuf,
    /// Relative tolerance, as numpy.isclose: |a - b| <= atol + rtol * |b|.
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    rtol: f64,
    /// Absolute tolerance.
    #[arg(long, default_value_t = 0.0, value_name = "A")]
    atol: f64,
    /// Apply this rules file to A first (patterns in Rust regex syntax), to check a port in one command.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RecoverArgs {
    /// The destination of the interrupted write (a TF prefix, a file) or its folder.
    dst: PathBuf,
    /// If another warmstart is writing there, wait for it rather than fail.
    #[arg(long)]
    wait: bool,
}

/// How `inspect`, `convert`, `plan` and `run` open their inputs.
#[derive(Args)]
struct InputArgs {
    /// Where a folder holds checkpoints of several formats (a hub folder with model.safetensors and
    /// tf_model.h5), open the one in this format: safetensors, tf, hdf5 or numpy. Elsewhere the format
    /// is always the content's.
    #[arg(long, value_name = "FORMAT")]
    format: Option<Format>,
}

#[derive(Args)]
struct PlanArgs {
    /// The warm-start configuration (TOML); its paths are relative to its folder.
    #[arg(long)]
    config: PathBuf,
    #[command(flatten)]
    input: InputArgs,
    /// Print the plan (or the refusal) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RunArgs {
    /// The warm-start configuration (TOML); its paths are relative to its folder.
    #[arg(long)]
    config: PathBuf,
    /// Where to write the warm-started model. Its format comes from --to, else from its name, else it is
    /// the target's.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    rules: RulesArgs,
    /// Print the report (or the refusal) as JSON.
    #[arg(long)]
    json: bool,
    /// Write only worker I's part of a TF bundle of N shards (with --shards N, or implying it):
    /// PREFIX.part-0000I-of-0000N; `warmstart merge PREFIX` joins the parts.
    #[arg(long, value_name = "I/N", value_parser = merging::parse_worker)]
    worker: Option<merging::Worker>,
}

#[derive(Args)]
struct InspectArgs {
    /// The checkpoint: a file, a folder, or a TF bundle prefix. Its format is read from its content.
    src: PathBuf,
    /// Print {"format": ..., "tensors": [{"name", "dtype", "shape"}, ...]} as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    input: InputArgs,
    /// Per numeric tensor: min, max, mean, std (population) of the finite elements, and the counts of
    /// NaN, Inf and zeros (computed in f64).
    #[arg(long)]
    stats: bool,
    /// With --stats: only these tensors.
    #[arg(requires = "stats", value_name = "NAME")]
    names: Vec<String>,
    /// TF2 object-based checkpoints: list tensors by checkpoint key (TF's, the default), by the
    /// variables' names (as the object graph records them), or both side by side.
    #[arg(long = "names", value_enum, default_value_t = Names::Keys)]
    name_kind: Names,
}

/// How tensors of TF2 object-based checkpoints are named.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Names {
    /// The checkpoint keys (`model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE`).
    Keys,
    /// The variables' original names where the object graph records them (`dense/kernel`), else the
    /// key without `/.ATTRIBUTES/VARIABLE_VALUE`.
    Variables,
    /// Both (inspect only).
    Both,
}

#[derive(Args)]
struct ConvertArgs {
    /// The checkpoint to read. Its format is read from its content.
    src: PathBuf,
    /// Where to write. Its format comes from --to, else from its name (.safetensors, ...), else it is
    /// the source's.
    #[arg(required_unless_present = "plan")]
    dst: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    rules: RulesArgs,
    /// With --rules: list what each source tensor becomes (or which rule skips it); write nothing.
    #[arg(long, requires = "rules")]
    plan: bool,
    /// With --plan: print the plan as JSON.
    #[arg(long, requires = "plan")]
    json: bool,
    /// TF2 object-based checkpoints: write tensors under the variables' names (before any --rules),
    /// or under TF's checkpoint keys (the default).
    #[arg(long = "names", value_enum, default_value_t = Names::Keys)]
    name_kind: Names,
}

/// A rules file that renames, skips, transposes and casts tensors (see the README's "Porting").
#[derive(Args)]
struct RulesArgs {
    /// Apply this rules file (TOML; patterns in Rust regex syntax) to the tensors written.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// With --rules: a rule that matches no tensor is an error, not a warning.
    #[arg(long, requires = "rules")]
    strict: bool,
}

impl RulesArgs {
    /// The rules file, read and checked (before any checkpoint is read), if one was given.
    fn load(&self) -> Result<Option<warmstart_rules::Rules>, Failure> {
        self.rules.as_deref().map(warmstart_rules::Rules::from_file).transpose().map_err(Failure::usage)
    }
}

/// How `run` and `convert` write their output.
#[derive(Args)]
struct OutputArgs {
    /// The output format: safetensors, tf, hdf5, keras or numpy (else told from the destination's name,
    /// else the input's).
    #[arg(long, value_name = "FORMAT")]
    to: Option<Format>,
    /// Write a TF bundle's data in this many shards (.data-0000i-of-N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=99999))]
    shards: Option<u32>,
    /// Write safetensors split as Hugging Face splits it, in shards of at most SIZE (5GB, 500MB, 10KiB):
    /// the destination is then a folder of model-0000K-of-0000N.safetensors and
    /// model.safetensors.index.json (or model.safetensors, if one shard holds everything).
    #[arg(long, value_name = "SIZE", value_parser = warmstart_formats::parse_shard_size)]
    max_shard_size: Option<u64>,
    /// Deflate the members of NumPy (.npz) output, as np.savez_compressed does.
    #[arg(long)]
    compress: bool,
    /// Flush the written files to the disk (fsync) before moving them into place. TensorFlow and cp
    /// do not; use it when the checkpoint must survive a crash of the machine.
    #[arg(long)]
    sync: bool,
    /// If another warmstart is writing to the destination's folder, wait for it rather than fail.
    #[arg(long)]
    wait: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version go to stdout with success; real usage errors to stderr with 2.
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(Failure::USAGE) } else { ExitCode::SUCCESS };
        }
    };
    #[cfg(unix)]
    {
        signals::ignore_file_size_limit();
        if matches!(cli.command, Command::Run(_) | Command::Convert(_) | Command::Merge(_)) {
            signals::clean_up_on_interrupt();
        }
    }
    let result = try_main(cli);
    // What a write found and recovered at its destination, success or not.
    for note in warmstart_core::journal::take_notes() {
        eprintln!("note: {note}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.print();
            ExitCode::from(failure.code())
        }
    }
}

fn try_main(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Inspect(args) => inspect(args),
        Command::Convert(args) => convert(args),
        Command::Plan(args) => plan(args),
        Command::Run(args) => run(args),
        Command::Recover(args) => recover(args),
        Command::Diff(args) => diff(args),
        Command::Merge(args) => merging::merge(args),
    }
}

fn diff(args: DiffArgs) -> Result<(), Failure> {
    let rules = args.rules.as_deref().map(warmstart_rules::Rules::from_file).transpose().map_err(Failure::trouble)?;
    let a = warmstart_formats::open(&args.a).map_err(Failure::trouble)?;
    let b = warmstart_formats::open(&args.b).map_err(Failure::trouble)?;
    let ported = match &rules {
        Some(r) => Some(warmstart_rules::RulesSource::new(a.as_ref(), r, false).map_err(Failure::trouble)?),
        None => None,
    };
    let a: &dyn warmstart_core::CheckpointSource = match &ported {
        Some(p) => {
            porting::warn_unmatched(p.mapping(), &args.a);
            p
        }
        None => a.as_ref(),
    };
    let options = warmstart_compare::DiffOptions { rtol: args.rtol, atol: args.atol, ..Default::default() };
    let report = warmstart_compare::diff(a, b.as_ref(), &options).map_err(Failure::trouble)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        porting::write_diff_json(&mut out, &report, args.rtol, args.atol)
    } else {
        porting::write_diff(&mut out, &report, args.rtol, args.atol)
    }
    .and_then(|()| out.flush())
    .map_err(Failure::stdout)?;
    if report.equal() {
        Ok(())
    } else {
        Err(Failure::differ())
    }
}

fn recover(args: RecoverArgs) -> Result<(), Failure> {
    warmstart_core::journal::set_wait_for_lock(args.wait);
    let (done, removed) = warmstart_core::journal::recover(&args.dst).map_err(Failure::failed)?;
    let mut out = std::io::stdout().lock();
    let mut lines = Vec::new();
    for r in &done {
        lines.push(format!("{}: the interrupted write was {r}", r.journal.display()));
    }
    if done.is_empty() {
        lines.push(format!("{}: no interrupted write", args.dst.display()));
    }
    lines.push(format!("removed {removed} leftover temporary files"));
    lines.iter().try_for_each(|l| writeln!(out, "{l}")).and_then(|()| out.flush()).map_err(Failure::stdout)
}

/// A refusal: TF's message on stderr (and as JSON on stdout with --json), exit 1.
fn refused(error: warmstart::Error, json: bool) -> Failure {
    if let (true, warmstart::Error::Refused(e)) = (json, &error) {
        let _ = warm::write_refusal_json(&mut std::io::stdout().lock(), e);
    }
    Failure::failed(error)
}

/// The configuration at `path`, with `--format` (if given) overriding its `format`.
fn settings(path: &std::path::Path, input: &InputArgs) -> Result<warmstart::WarmStartSettings, Failure> {
    let mut settings = warmstart::WarmStartSettings::from_file(path).map_err(Failure::usage)?;
    if input.format.is_some() {
        settings.format = input.format;
    }
    Ok(settings)
}

/// The output's format (`--to`, else the name's, else `input`'s); says so on stderr when it is
/// `input`'s, which is `what` ("the target", "the source").
fn output_format(out: &std::path::Path, output: &OutputArgs, input: Format, what: &str) -> Format {
    // Sharded output by size is safetensors.
    let to = output.to.or(output.max_shard_size.map(|_| Format::Safetensors));
    let (format, chosen) = warmstart_formats::choose_destination_format(out, to, input);
    if chosen {
        let whose = if format == input { format!("{what}'s format") } else { format!("{what}'s format is read only") };
        eprintln!("note: {}: the name tells no format; writing {format} ({whose}; --to chooses)", out.display());
    }
    format
}

fn plan(args: PlanArgs) -> Result<(), Failure> {
    let settings = settings(&args.config, &args.input)?;
    let plan = warmstart::plan_files(&settings).map_err(|e| refused(e, args.json))?;
    let mut out = std::io::stdout().lock();
    if args.json { warm::write_plan_json(&mut out, &plan) } else { warm::write_plan(&mut out, &plan) }
        .and_then(|()| out.flush())
        .map_err(Failure::stdout)
}

fn run(args: RunArgs) -> Result<(), Failure> {
    warmstart_core::journal::set_wait_for_lock(args.output.wait);
    let rules = args.rules.load()?;
    let settings = settings(&args.config, &args.input)?;
    let target = warmstart_formats::detect_preferring(&settings.target.resolve(), settings.format);
    // A target that cannot be told is refused by the run itself, naming it.
    let target = target.map_err(|e| refused(e.into(), args.json))?;
    let format = output_format(&args.out, &args.output, target, "the target");
    let shards = merging::worker_shards(args.worker, args.output.shards)?;
    if let Some(rules) = rules {
        if args.worker.is_some() {
            return Err(Failure::usage("--worker does not go with --rules"));
        }
        return run_with_rules(&args, &settings, format, &rules);
    }
    let progress = warm::Progress::new();
    let on_plan = |_: &warmstart::Plan, total: u64| progress.start(total);
    let on_progress = |done: u64| progress.set(done);
    let options = warmstart::RunOptions { progress: Some(&on_progress), on_plan: Some(&on_plan), ..Default::default() };
    let output = warmstart::OutputOptions {
        format: Some(format),
        shards,
        max_shard_size: args.output.max_shard_size,
        compress: args.output.compress,
        sync: args.output.sync,
        worker: args.worker.map(|w| w.index),
    };
    let result = warmstart::run_files(&settings, &args.out, &output, &options);
    progress.finish();
    let (plan, report) = result.map_err(|e| refused(e, args.json))?;
    warm::warn_tensorflow_fails(&plan);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        warm::write_report_json(&mut out, &plan, &report, &args.out, format)
    } else {
        warm::write_report(&mut out, &plan, &report, &args.out, format)
    };
    failure::report_after_output(written.and_then(|()| out.flush()), &args.out)
}

/// `run --rules`: the warm-start, then the rules applied to its output.
fn run_with_rules(
    args: &RunArgs,
    settings: &warmstart::WarmStartSettings,
    format: Format,
    rules: &warmstart_rules::Rules,
) -> Result<(), Failure> {
    let output = warmstart::OutputOptions {
        format: Some(format),
        shards: args.output.shards.map(|n| n as usize),
        max_shard_size: args.output.max_shard_size,
        compress: args.output.compress,
        sync: args.output.sync,
        worker: None,
    };
    let options = warmstart::RunOptions::default();
    let ported = warmstart::rules::run_files(settings, &args.out, &output, &options, rules, args.rules.strict)
        .map_err(|e| match e {
            warmstart::rules::Error::Run(e) => refused(e, args.json),
            other => Failure::failed(other),
        })?;
    warm::warn_tensorflow_fails(&ported.plan);
    porting::warn_unmatched(&ported.mapping, Path::new("the warm-started output"));
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let mut value = serde_json::json!({ "out": args.out, "format": format.name(), "report": ported.report,
            "plan": ported.plan, "rules": porting::mapping_json(&ported.mapping) });
        value["report"]["tensors_written"] = ported.written.tensors.into();
        value["report"]["bytes_written"] = ported.written.bytes.into();
        serde_json::to_writer_pretty(&mut out, &value).map_err(std::io::Error::from).and_then(|()| writeln!(out))
    } else {
        let mut report = ported.report.clone();
        (report.tensors_written, report.bytes_written) = (ported.written.tensors, ported.written.bytes);
        warm::write_report(&mut out, &ported.plan, &report, &args.out, format)
    };
    failure::report_after_output(written.and_then(|()| out.flush()), &args.out)
}

fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let opened = warmstart_formats::open_preferring(&args.src, args.input.format).map_err(Failure::failed)?;
    let named = porting::named(opened.as_ref(), args.name_kind != Names::Keys)?;
    if let (Names::Both, Some(named)) = (args.name_kind, &named) {
        let mut out = std::io::stdout().lock();
        return porting::write_names(&mut out, named.mapping(), args.json)
            .and_then(|()| out.flush())
            .map_err(Failure::stdout);
    }
    let src: &dyn warmstart_core::CheckpointSource = named.as_ref().map_or(opened.as_ref(), |n| n);
    if args.stats {
        return inspect_stats(&args, src);
    }
    let mut out = std::io::stdout().lock();
    if args.json { inspect::write_json(&mut out, src) } else { inspect::write_table(&mut out, src) }
        .and_then(|()| out.flush())
        .map_err(Failure::stdout)
}

/// `inspect --stats [NAME...]`.
fn inspect_stats(args: &InspectArgs, src: &dyn warmstart_core::CheckpointSource) -> Result<(), Failure> {
    let tensors: Vec<&warmstart_core::TensorInfo> = if args.names.is_empty() {
        src.tensors().iter().collect()
    } else {
        args.names.iter().map(|n| src.require(n)).collect::<Result<_, _>>().map_err(Failure::failed)?
    };
    let stats = warmstart_compare::stats_of(src, &tensors).map_err(Failure::failed)?;
    let rows: Vec<_> = tensors.into_iter().zip(stats).collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        porting::write_stats_json(&mut out, src.format().name(), &rows)
    } else {
        porting::write_stats(&mut out, &rows)
    }
    .and_then(|()| out.flush())
    .map_err(Failure::stdout)
}

fn convert(args: ConvertArgs) -> Result<(), Failure> {
    warmstart_core::journal::set_wait_for_lock(args.output.wait);
    let rules = args.rules.load()?;
    let (Some(dst), false) = (args.dst.clone(), args.plan) else { return convert_plan(&args, rules) };
    let opened = warmstart_formats::open_preferring(&args.src, args.input.format).map_err(Failure::failed)?;
    let format = output_format(&dst, &args.output, opened.format(), "the source");
    let named = porting::named(opened.as_ref(), args.name_kind != Names::Keys)?;
    let base: &dyn warmstart_core::CheckpointSource = named.as_ref().map_or(opened.as_ref(), |n| n);
    let ported = match &rules {
        Some(r) => Some(warmstart_rules::RulesSource::new(base, r, args.rules.strict).map_err(Failure::failed)?),
        None => None,
    };
    let src: &dyn warmstart_core::CheckpointSource = match &ported {
        Some(p) => {
            porting::warn_unmatched(p.mapping(), &args.src);
            p
        }
        None => base,
    };
    let dst = dst.as_path();
    let options = WriteOptions {
        shards: args.output.shards.map(|n| n as usize),
        max_shard_size: args.output.max_shard_size,
        compress: args.output.compress,
        sync: args.output.sync,
        ..Default::default()
    };
    let report = warmstart_formats::convert(src, dst, format, &options).map_err(Failure::failed)?;
    for skipped in &report.skipped {
        eprintln!("warning: skipped tensor {:?}: {}", skipped.name, skipped.reason);
    }
    let mut out = std::io::stdout().lock();
    let written = writeln!(
        out,
        "wrote {} tensors ({}) to {} ({format})",
        report.tensors,
        inspect::human_bytes(report.bytes),
        dst.display()
    );
    failure::report_after_output(written.and_then(|()| out.flush()), dst)
}

/// `convert --rules F --plan`: what each source tensor becomes; nothing is written.
fn convert_plan(args: &ConvertArgs, rules: Option<warmstart_rules::Rules>) -> Result<(), Failure> {
    let rules = rules.ok_or_else(|| Failure::usage("--plan needs --rules"))?;
    let opened = warmstart_formats::open_preferring(&args.src, args.input.format).map_err(Failure::failed)?;
    let named = porting::named(opened.as_ref(), args.name_kind != Names::Keys)?;
    let src: &dyn warmstart_core::CheckpointSource = named.as_ref().map_or(opened.as_ref(), |n| n);
    let mapping = rules.map(src.path(), src.tensors(), args.rules.strict).map_err(Failure::failed)?;
    porting::warn_unmatched(&mapping, &args.src);
    let mut out = std::io::stdout().lock();
    if args.json { porting::write_plan_json(&mut out, &mapping) } else { porting::write_plan(&mut out, &mapping) }
        .and_then(|()| out.flush())
        .map_err(Failure::stdout)
}
