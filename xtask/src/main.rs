//! Project tasks run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`). Light (std, plus
//! libc and serde_json for `bench`; the bench worker's checkpoint crates are behind the `bench-worker`
//! feature): it compiles in seconds and calls cargo through `$CARGO`. Run with no task to list the tasks.

mod bench;

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// A task's body: it gets the arguments after the task name.
type Task = fn(&[String]) -> Result<(), String>;

/// Every task: its name, what it does, and the function that does it.
const TASKS: &[(&str, &str, Task)] = &[
    ("test", "install the HDF5 C library if missing (as root, with apt-get), then run every test of every crate with all features", test),
    ("example", "warm-start the small TF-made example under examples/vocab-embedding (and inspect examples/small.safetensors)", example),
    ("bench", "time warmstart run, the readers, cp and plain reads on the generated W1 workload (--help)", bench::bench),
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(name) = args.first() else {
        print_tasks();
        return ExitCode::SUCCESS;
    };
    let Some((_, _, task)) = TASKS.iter().find(|(n, _, _)| n == name) else {
        eprintln!("xtask: unknown task {name:?}");
        print_tasks();
        return ExitCode::from(2);
    };
    match task(&args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {name}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_tasks() {
    println!("usage: cargo xtask <task>\n\ntasks:");
    for (name, about, _) in TASKS {
        println!("  {name:<8} {about}");
    }
}

/// `cargo xtask test [ARGS...]`: what CI runs. Extra arguments go to `cargo test`.
fn test(extra: &[String]) -> Result<(), String> {
    ensure_hdf5()?;
    let mut args = vec!["test", "--workspace", "--all-features"];
    args.extend(extra.iter().map(String::as_str));
    run(cargo().args(args))
}

/// `cargo xtask example`: inspects the committed example checkpoint, then plans and runs the
/// committed warm-start example into `target/example/warm.safetensors`.
fn example(_: &[String]) -> Result<(), String> {
    run(cargo().args(["run", "--quiet", "--", "inspect", "examples/small.safetensors"]))?;
    let config = "examples/vocab-embedding/warmstart.toml";
    run(cargo().args(["run", "--quiet", "--", "plan", "--config", config]))?;
    let out = "target/example/warm.safetensors";
    run(cargo().args(["run", "--quiet", "--", "run", "--config", config, "--out", out]))?;
    run(cargo().args(["run", "--quiet", "--", "inspect", out]))?;
    println!("xtask: TensorFlow's values are in examples/vocab-embedding/expected.safetensors");
    println!("xtask: (the integration test warmstart::example_vocab_embedding compares them bit for bit)");
    Ok(())
}

/// Makes sure the HDF5 C library the hdf5 crate links against is installed: if `pkg-config` does not
/// find it and we are root, installs it with apt-get; otherwise says why it is skipped.
fn ensure_hdf5() -> Result<(), String> {
    if succeeds(Command::new("pkg-config").args(["--exists", "hdf5"])) {
        return Ok(());
    }
    if !is_root() {
        println!("xtask: the HDF5 C library was not found and we are not root, so it is not installed;");
        println!("xtask: if the HDF5 tests fail to build, run: sudo apt-get install libhdf5-dev pkg-config");
        return Ok(());
    }
    println!("xtask: installing the HDF5 C library (libhdf5-dev, pkg-config) with apt-get");
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run(&mut apt(&["update", "-qq"]))?;
    run(&mut apt(&["install", "-y", "-qq", "--no-install-recommends", "libhdf5-dev", "pkg-config"]))
}

/// Whether we run as root (`id -u` prints 0).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The workspace root: the parent of this crate's folder.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A cargo command (the one running us, `$CARGO`) in the workspace root.
fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    command.current_dir(root());
    command
}

/// Whether `command` runs and exits 0, its output discarded.
fn succeeds(command: &mut Command) -> bool {
    command.output().is_ok_and(|out| out.status.success())
}

/// Runs `command` with inherited output; an error if it cannot start or exits non-zero.
fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}
