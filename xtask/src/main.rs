//! Project tasks run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`). Light (std, plus
//! libc and serde_json for `bench`; the bench worker's checkpoint crates are behind the `bench-worker`
//! feature): it compiles in seconds and calls cargo through `$CARGO`. Run with no task to list the tasks.

mod bench;
mod fixtures;
mod python;

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// A task's body: it gets the arguments after the task name.
type Task = fn(&[String]) -> Result<(), String>;

/// Every task: its name, what it does, and the function that does it.
const TASKS: &[(&str, &str, Task)] = &[
    ("test", "install cmake 3.26+ if missing (to build HDF5 from source; apt-get as root, else PyPI), then cargo fmt --check, every test of every crate with all features, clippy -D warnings, each format feature alone, the Python package's pytest suite (python), and 20 s of each fuzz target from seed 1", test),
    ("python", "build the Python package into target/python-venv (pinned, from PyPI) and run its pytest suite: [PYTEST ARGS...]", python_tests),
    ("example", "warm-start the small TF-made example under examples/vocab-embedding (and inspect examples/small.safetensors)", example),
    ("bench", "time warmstart run, the readers, cp and plain reads on the generated W1 workload (--help)", bench),
    ("faults", "randomized fault trials of the write path, N per class (default 30): [N] [--seed S] (root for ENOSPC)", faults),
    ("fuzz", "run the fuzz targets of fuzz/ from a fixed seed: [--release] [--seconds N] [--seed S] [TARGET...] (see fuzz/README.md)", fuzz),
    ("fixtures", "regenerate tests/fixtures (or the named areas) with the pinned reference Python libraries, in target/fixtures-venv", fixtures::fixtures),
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

/// Each format feature, built and tested alone by `cargo xtask test` so that the code paths of the
/// formats left out are compiled and run too.
const FORMAT_FEATURES: [&str; 6] = ["tf", "safetensors", "hdf5", "keras", "torch", "numpy"];

/// The packages that have the format features.
const FORMAT_PACKAGES: [&str; 2] = ["warmstart", "warmstart-formats"];

/// `cargo xtask test`: what CI runs, in order: `cargo fmt --check`, every test of every crate with
/// all features, `cargo clippy --all-targets --all-features -D warnings`, then the packages with format
/// features tested with each format alone, the Python package's tests (`python`), and each fuzz target
/// for `FUZZ_CI_SECONDS` from seed 1.
/// `cargo xtask test ARGS...` runs only the full test step,
/// with `ARGS` passed to `cargo test` (for iterating on a few tests).
fn test(extra: &[String]) -> Result<(), String> {
    use_cmake_for_hdf5()?;
    ensure_strace();
    let mut args = vec!["test", "--workspace", "--all-features"];
    args.extend(extra.iter().map(String::as_str));
    if !extra.is_empty() {
        return run(cargo().args(args));
    }
    ensure_components(&["rustfmt", "clippy"])?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args(args))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]))?;
    for feature in FORMAT_FEATURES {
        let mut command = cargo();
        command.arg("test");
        for package in FORMAT_PACKAGES {
            command.args(["--package", package]);
        }
        run(command.args(["--no-default-features", "--features", feature]))?;
    }
    python::test(&[])?;
    // Reproducible from the fixed seed; 20 s per target keeps CI within a few minutes.
    fuzz(&["--seconds".to_string(), FUZZ_CI_SECONDS.to_string(), "--seed".to_string(), "1".to_string()])
}

/// `cargo xtask python [PYTEST ARGS...]`: the Python step of `cargo xtask test` alone.
fn python_tests(args: &[String]) -> Result<(), String> {
    use_cmake_for_hdf5()?;
    python::test(args)
}

/// Seconds per fuzz target in `cargo xtask test`.
const FUZZ_CI_SECONDS: u32 = 20;

/// `cargo xtask fuzz [--release] [ARGS...]`: builds the fuzz driver (debug unless `--release`) and
/// runs it with `ARGS` (`--seconds N`, `--seed S`, target names; see fuzz/README.md).
fn fuzz(args: &[String]) -> Result<(), String> {
    use_cmake_for_hdf5()?;
    let release = args.iter().any(|a| a == "--release");
    let mut command = cargo();
    command.args(["run", "--quiet", "--package", "warmstart-fuzz"]);
    if release {
        command.arg("--release");
    }
    run(command.arg("--").args(args.iter().filter(|a| *a != "--release")))
}

/// `cargo xtask faults [N] [--seed S]`: the `#[ignore]`d randomized fault trials of the integration
/// tests (`tests/integration/faults/trials.rs`), N per fault class, printing a table of how each ended.
fn faults(args: &[String]) -> Result<(), String> {
    use_cmake_for_hdf5()?;
    ensure_strace();
    let mut trials = "30".to_string();
    let mut seed = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => seed = Some(args.next().ok_or("--seed needs a value")?.clone()),
            n if n.parse::<u32>().is_ok() => trials = n.to_string(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mut command = cargo();
    command.env("WARMSTART_FAULT_TRIALS", trials);
    if let Some(seed) = seed {
        command.env("WARMSTART_FAULT_SEED", seed);
    }
    command.args(["test", "--all-features", "--test", "integration", "--", "--ignored", "--nocapture"]);
    run(command.arg("faults::trials::randomized_fault_trials"))
}

/// Makes sure the rustup components `names` (rustfmt, clippy) are installed, adding any missing.
fn ensure_components(names: &[&str]) -> Result<(), String> {
    let installed = |name: &str| {
        let tool = if name == "rustfmt" { "fmt" } else { name };
        succeeds(cargo().args([tool, "--version"]))
    };
    let missing: Vec<&str> = names.iter().copied().filter(|n| !installed(n)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add"]).args(&missing))
}

/// `cargo xtask example`: inspects the committed example checkpoint, then plans and runs the
/// committed warm-start example into `target/example/warm.safetensors`.
fn example(_: &[String]) -> Result<(), String> {
    use_cmake_for_hdf5()?;
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

/// `cargo xtask bench`: its worker builds the HDF5 reader, so a cmake for HDF5 is found first.
fn bench(args: &[String]) -> Result<(), String> {
    use_cmake_for_hdf5()?;
    bench::bench(args)
}

/// Makes sure the cargo commands this process runs can build the HDF5 C library from source: sets
/// `CMAKE` (which the cmake crate honors) in our own environment, which they inherit, when the cmake
/// to use is not the one on the PATH.
fn use_cmake_for_hdf5() -> Result<(), String> {
    if let Some(cmake) = ensure_cmake()? {
        // Single-threaded here: nothing reads the environment concurrently.
        env::set_var("CMAKE", cmake);
    }
    Ok(())
}

/// The oldest cmake that configures the HDF5 sources hdf5-metno-src bundles (their
/// `cmake_minimum_required`).
const CMAKE_MIN: (u32, u32) = (3, 26);

/// Where `ensure_cmake` installs cmake from PyPI when the system's is missing or too old.
fn local_cmake() -> PathBuf {
    root().join("target/xtask-cmake/bin/cmake")
}

/// Makes sure a cmake can build the HDF5 C library the hdf5 crate compiles from source: `$CMAKE` if
/// set, else a `cmake` on the PATH new enough, else the one a previous run installed under `target/`.
/// Otherwise, as root, apt-get installs cmake; if that is still too old (Debian 12 has 3.25), installs
/// cmake from PyPI into a virtual environment under `target/` (apt-get installing python3-venv if
/// needed). Returns the cmake to use, if not the one on the PATH.
fn ensure_cmake() -> Result<Option<PathBuf>, String> {
    if env::var_os("CMAKE").is_some() {
        return Ok(None);
    }
    if cmake_is_new_enough(Path::new("cmake")) {
        return Ok(None);
    }
    let local = local_cmake();
    if cmake_is_new_enough(&local) {
        return Ok(Some(local));
    }
    let root_user = is_root();
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    if root_user && !succeeds(Command::new("cmake").arg("--version")) {
        println!("xtask: installing cmake and a C compiler with apt-get (the HDF5 C library is built from source)");
        run(&mut apt(&["update", "-qq"]))?;
        run(&mut apt(&["install", "-y", "-qq", "--no-install-recommends", "cmake", "make", "gcc", "libc6-dev"]))?;
        if cmake_is_new_enough(Path::new("cmake")) {
            return Ok(None);
        }
    }
    let venv = root().join("target/xtask-cmake");
    println!(
        "xtask: cmake {}.{} or newer is needed to build HDF5; installing it from PyPI into {}",
        CMAKE_MIN.0,
        CMAKE_MIN.1,
        venv.display()
    );
    let make_venv = || succeeds(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    if !make_venv() {
        if !root_user {
            return Err(format!(
                "cannot create a Python virtual environment for cmake; install cmake {}.{} or newer \
                 (e.g. `pip install cmake`) and set CMAKE to it",
                CMAKE_MIN.0, CMAKE_MIN.1
            ));
        }
        run(&mut apt(&["update", "-qq"]))?;
        run(&mut apt(&["install", "-y", "-qq", "--no-install-recommends", "python3-venv"]))?;
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let requirement = format!("cmake>={}.{}", CMAKE_MIN.0, CMAKE_MIN.1);
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", &requirement]))?;
    if cmake_is_new_enough(&local) {
        Ok(Some(local))
    } else {
        Err(format!("{} does not run as cmake {}.{} or newer", local.display(), CMAKE_MIN.0, CMAKE_MIN.1))
    }
}

/// Whether `cmake --version` runs and says at least `CMAKE_MIN`.
fn cmake_is_new_enough(cmake: &Path) -> bool {
    let Ok(out) = Command::new(cmake).arg("--version").output() else {
        return false;
    };
    out.status.success() && cmake_version(&String::from_utf8_lossy(&out.stdout)).is_some_and(|v| v >= CMAKE_MIN)
}

/// The major and minor version in cmake's `cmake version 3.25.1` line.
fn cmake_version(text: &str) -> Option<(u32, u32)> {
    let version = text.lines().next()?.strip_prefix("cmake version ")?;
    let mut parts = version.split('.');
    Some((parts.next()?.trim().parse().ok()?, parts.next()?.trim().parse().ok()?))
}

/// Whether we run as root (`id -u` prints 0).
/// Installs strace (the integration tests kill a write at each of its renames with it) with apt-get when
/// running as root; elsewhere those tests are skipped with a note.
fn ensure_strace() {
    if succeeds(Command::new("strace").arg("-V")) || !is_root() {
        return;
    }
    println!("xtask: installing strace with apt-get (the crash tests of the commit journal use it)");
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    if run(&mut apt(&["install", "-y", "-qq", "--no-install-recommends", "strace"])).is_err() {
        let _ = run(&mut apt(&["update", "-qq"]))
            .and_then(|()| run(&mut apt(&["install", "-y", "-qq", "--no-install-recommends", "strace"])));
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmake_versions_are_read_from_the_first_line() {
        assert_eq!(cmake_version("cmake version 3.25.1\n\nCMake suite maintained by Kitware"), Some((3, 25)));
        assert_eq!(cmake_version("cmake version 4.4.5\n"), Some((4, 4)));
        assert_eq!(cmake_version("cmake3 version 3.26.0"), None);
        assert!(cmake_version("cmake version 3.25.1").is_some_and(|v| v < CMAKE_MIN));
        assert!(cmake_version("cmake version 3.26.0-rc1").is_some_and(|v| v >= CMAKE_MIN));
    }
}
