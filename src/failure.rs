//! [`Failure`]: why a command failed, which exit code that means, and printing its error chain once.

use std::error::Error;

/// A failed command: a usage error (exit 2) or a refused input or failed operation (exit 1).
pub struct Failure {
    code: u8,
    error: Box<dyn Error + Send + Sync>,
}

impl Failure {
    /// The exit code of a usage error.
    pub const USAGE: u8 = 2;
    /// The exit code of a refused input or a failed operation.
    pub const FAILED: u8 = 1;

    /// A refused input or a failed operation.
    pub fn failed(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Failure { code: Self::FAILED, error: error.into() }
    }

    /// Arguments that cannot be acted on.
    pub fn usage(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Failure { code: Self::USAGE, error: error.into() }
    }

    /// Standard output could not be written.
    pub fn stdout(error: std::io::Error) -> Self {
        Self::failed(format!("writing to standard output: {error}"))
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// Prints the error and its causes to stderr, skipping causes the message above already says.
    pub fn print(&self) {
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
