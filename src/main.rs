//! The `warmstart` command line. It only parses arguments and wires the library crates together: one
//! small function per subcommand, the work itself in `warmstart-formats` and the format crates.
//!
//! Exit codes: 0 success, 1 a refused input or a failed operation, 2 a usage error.

mod failure;
mod inspect;

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
}

#[derive(Args)]
struct InspectArgs {
    /// The checkpoint: a file, a folder, or a TF bundle prefix. Its format is read from its content.
    src: PathBuf,
    /// Print {"format": ..., "tensors": [{"name", "dtype", "shape"}, ...]} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ConvertArgs {
    /// The checkpoint to read. Its format is read from its content.
    src: PathBuf,
    /// Where to write. Its format comes from --to, else from its name (.safetensors, ...).
    dst: PathBuf,
    /// The destination format: safetensors, tf or hdf5.
    #[arg(long, value_name = "FORMAT")]
    to: Option<Format>,
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
    match try_main(cli) {
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
    }
}

fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let src = warmstart_formats::open(&args.src).map_err(Failure::failed)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        inspect::write_json(&mut out, src.as_ref())
    } else {
        inspect::write_table(&mut out, src.as_ref())
    }
    .map_err(Failure::stdout)
}

fn convert(args: ConvertArgs) -> Result<(), Failure> {
    let format = warmstart_formats::destination_format(&args.dst, args.to).map_err(Failure::usage)?;
    let src = warmstart_formats::open(&args.src).map_err(Failure::failed)?;
    let report = warmstart_formats::convert(src.as_ref(), &args.dst, format, &WriteOptions::default())
        .map_err(Failure::failed)?;
    for skipped in &report.skipped {
        eprintln!("warning: skipped tensor {:?}: {}", skipped.name, skipped.reason);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} tensors ({}) to {} ({format})",
        report.tensors,
        inspect::human_bytes(report.bytes),
        args.dst.display()
    )
    .map_err(Failure::stdout)
}
