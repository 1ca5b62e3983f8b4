//! `warmstart-fuzz [--seconds N] [--seed S] [--out DIR] [--hang-ms MS] [--mem-mb MB] [TARGET...]`:
//! runs each target (all by default) for N seconds from seed S, each in child processes of its own,
//! and prints executions and findings per target. `warmstart-fuzz --run TARGET FILE` runs one input. Exits 1 if a Rust-side failure was found (a crash
//! inside the HDF5 C library is reported as a known issue, see fuzz/KNOWN_ISSUES.md, and does not fail).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use warmstart_fuzz::driver::{self, ChildArgs, Options};
use warmstart_fuzz::{target, TARGETS};

#[global_allocator]
static ALLOC: warmstart_fuzz::alloc::Counting = warmstart_fuzz::alloc::Counting;

/// The command line: the options, the targets, and the child's part when this is a child.
struct Cli {
    options: Options,
    targets: Vec<String>,
    child: Option<(String, u64, u64)>,
}

fn parse(args: &[String]) -> Result<Cli, String> {
    let mut options = Options {
        seconds: 10,
        seed: 1,
        out: Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).join("target/fuzz"),
        hang: Duration::from_secs(1),
        mem_mb: 4096,
    };
    let (mut targets, mut child, mut from, mut until) = (Vec::new(), None, 0, 0);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        let mut number = || value().and_then(|v| v.parse::<u64>().map_err(|_| format!("{arg}: not a number: {v}")));
        match arg.as_str() {
            "--seconds" => options.seconds = number()?,
            "--seed" => options.seed = number()?,
            "--hang-ms" => options.hang = Duration::from_millis(number()?),
            "--mem-mb" => options.mem_mb = number()?,
            "--from" => from = number()?,
            "--until-ms" => until = number()?,
            "--out" => options.out = PathBuf::from(value()?),
            "--child" => child = Some(value()?.clone()),
            "-h" | "--help" => return Err(String::new()),
            name if !name.starts_with('-') => targets.push(name.to_string()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Cli { options, targets, child: child.map(|c| (c, from, until)) })
}

fn usage() {
    eprintln!("usage: warmstart-fuzz [--seconds N] [--seed S] [--out DIR] [--hang-ms MS] [--mem-mb MB] [TARGET...]");
    eprintln!("targets: {}", TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(" "));
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, name, file] = args.as_slice() {
        if flag == "--run" {
            return reproduce(name, Path::new(file));
        }
    }
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("warmstart-fuzz: {message}");
            }
            usage();
            return ExitCode::from(2);
        }
    };
    if let Some((name, from, until_ms)) = cli.child {
        let code = driver::child(&ChildArgs { target: name, from, until_ms, options: cli.options });
        return ExitCode::from(code as u8);
    }
    match run(&cli.options, &cli.targets) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("warmstart-fuzz: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `--run TARGET FILE`: runs one input in this process (a reproducer), without catching anything.
fn reproduce(name: &str, file: &Path) -> ExitCode {
    let Some(t) = target(name) else {
        eprintln!("warmstart-fuzz: no target {name:?}");
        return ExitCode::from(2);
    };
    match std::fs::read(file) {
        Ok(data) => {
            (t.run)(&data);
            println!("warmstart-fuzz: {name} returned on {}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warmstart-fuzz: cannot read {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

/// Runs the targets named (all if none) and prints a summary; whether no Rust failure was found.
fn run(options: &Options, names: &[String]) -> Result<bool, String> {
    let chosen: Vec<_> = if names.is_empty() {
        TARGETS.iter().collect()
    } else {
        names.iter().map(|n| target(n).ok_or_else(|| format!("no target {n:?}"))).collect::<Result<_, _>>()?
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut clean = true;
    println!(
        "warmstart-fuzz: seed {}, {} s per target, findings under {}",
        options.seed,
        options.seconds,
        options.out.display()
    );
    for t in chosen {
        let report = driver::supervise(&exe, t, options)?;
        println!(
            "{:<18} {:>8} execs  {} failures  {} C-library crashes",
            t.name,
            report.execs,
            report.failures.len(),
            report.c_crashes.len()
        );
        for line in &report.failures {
            println!("  FAILURE {line}");
        }
        for line in &report.c_crashes {
            println!("  known issue (HDF5 C library, see fuzz/KNOWN_ISSUES.md): {line}");
        }
        clean &= report.failures.is_empty();
    }
    Ok(clean)
}
