//! [`Failure`]: why a command failed, which exit code that means, and printing its error chain once.

use std::error::Error;

/// A failed command: a usage error (exit 2) or a refused input or failed operation (exit 1); or
/// standard output closed by its reader, which ends the command quietly with 0.
pub struct Failure {
    code: u8,
    error: Box<dyn Error + Send + Sync>,
    quiet: bool,
}

impl Failure {
    /// The exit code of a usage error.
    pub const USAGE: u8 = 2;
    /// The exit code of a refused input or a failed operation.
    pub const FAILED: u8 = 1;

    /// A refused input or a failed operation.
    pub fn failed(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Failure { code: Self::FAILED, error: error.into(), quiet: false }
    }

    /// Arguments that cannot be acted on.
    pub fn usage(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Failure { code: Self::USAGE, error: error.into(), quiet: false }
    }

    /// Trouble in a command whose exit code 1 means an answer (`diff`: the checkpoints differ): 2.
    pub fn trouble(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Failure { code: 2, error: error.into(), quiet: false }
    }

    /// No error, but exit 1: `diff` found differences (and said so on standard output).
    pub fn differ() -> Self {
        Failure { code: 1, error: "the checkpoints differ".into(), quiet: true }
    }

    /// Standard output could not be written. Closed by its reader (`warmstart inspect X | head -1`),
    /// the command ends quietly with success, as ripgrep and `cat` do.
    pub fn stdout(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Failure { code: 0, error: error.into(), quiet: true };
        }
        Self::failed(format!("writing to standard output: {error}"))
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// Prints the error and its causes to stderr, skipping causes the message above already says.
    pub fn print(&self) {
        if self.quiet {
            return;
        }
        let mut shown = self.error.to_string();
        eprintln!("error: {shown}");
        let mut source = self.error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !shown.contains(&text) {
                eprintln!("  caused by: {text}");
            }
            shown = text;
            source = cause.source();
        }
    }
}

/// The end of `run` or `convert`, whose output `dst` is in place, after writing their report to
/// standard output: a failure to write it is a warning, not a failed command, since the exit code
/// tells scripts whether the output is there; standard output closed by its reader is no warning.
pub fn report_after_output(written: std::io::Result<()>, dst: &std::path::Path) -> Result<(), Failure> {
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!(
                "warning: {} was written, but its report could not be written to standard output: {e}",
                dst.display()
            );
            Ok(())
        }
        _ => Ok(()),
    }
}
