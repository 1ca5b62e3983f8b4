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
#[cfg(unix)]
mod signals;
mod warm;

use std::io::Write;
use std::path::PathBuf;
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
    /// Print the report (or the refusal) as JSON.
    #[arg(long)]
    json: bool,
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
}

#[derive(Args)]
struct ConvertArgs {
    /// The checkpoint to read. Its format is read from its content.
    src: PathBuf,
    /// Where to write. Its format comes from --to, else from its name (.safetensors, ...), else it is
    /// the source's.
    dst: PathBuf,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// How `run` and `convert` write their output.
#[derive(Args)]
struct OutputArgs {
    /// The output format: safetensors, tf, hdf5 or numpy (else told from the destination's name, else
    /// the input's).
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
        if matches!(cli.command, Command::Run(_) | Command::Convert(_)) {
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
    let settings = settings(&args.config, &args.input)?;
    let target = warmstart_formats::detect_preferring(&settings.target.resolve(), settings.format);
    // A target that cannot be told is refused by the run itself, naming it.
    let target = target.map_err(|e| refused(e.into(), args.json))?;
    let format = output_format(&args.out, &args.output, target, "the target");
    let progress = warm::Progress::new();
    let on_plan = |_: &warmstart::Plan, total: u64| progress.start(total);
    let on_progress = |done: u64| progress.set(done);
    let options = warmstart::RunOptions { progress: Some(&on_progress), on_plan: Some(&on_plan), ..Default::default() };
    let output = warmstart::OutputOptions {
        format: Some(format),
        shards: args.output.shards.map(|n| n as usize),
        max_shard_size: args.output.max_shard_size,
        compress: args.output.compress,
        sync: args.output.sync,
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

fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let src = warmstart_formats::open_preferring(&args.src, args.input.format).map_err(Failure::failed)?;
    let mut out = std::io::stdout().lock();
    if args.json { inspect::write_json(&mut out, src.as_ref()) } else { inspect::write_table(&mut out, src.as_ref()) }
        .and_then(|()| out.flush())
        .map_err(Failure::stdout)
}

fn convert(args: ConvertArgs) -> Result<(), Failure> {
    warmstart_core::journal::set_wait_for_lock(args.output.wait);
    let src = warmstart_formats::open_preferring(&args.src, args.input.format).map_err(Failure::failed)?;
    let format = output_format(&args.dst, &args.output, src.format(), "the source");
    let options = WriteOptions {
        shards: args.output.shards.map(|n| n as usize),
        max_shard_size: args.output.max_shard_size,
        compress: args.output.compress,
        sync: args.output.sync,
        ..Default::default()
    };
    let report = warmstart_formats::convert(src.as_ref(), &args.dst, format, &options).map_err(Failure::failed)?;
    for skipped in &report.skipped {
        eprintln!("warning: skipped tensor {:?}: {}", skipped.name, skipped.reason);
    }
    let mut out = std::io::stdout().lock();
    let written = writeln!(
        out,
        "wrote {} tensors ({}) to {} ({format})",
        report.tensors,
        inspect::human_bytes(report.bytes),
        args.dst.display()
    );
    failure::report_after_output(written.and_then(|()| out.flush()), &args.dst)
}
