//! The errors: [`CompileError`] (what `re.compile` raises, with Python's exact text) and [`MatchError`].

/// A pattern Python's `re` refuses. `Display` is `str(e)` of the Python exception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// `re.error`: the message with `at position N` (and `(line L, column C)` for multi-line patterns).
    #[error("{0}")]
    Re(String),
    /// `OverflowError`: a repeat count of 2**32 - 1 or more (`the repetition number is too large`).
    #[error("{0}")]
    Overflow(String),
}

impl CompileError {
    /// The Python exception class: `error` (i.e. `re.error`) or `OverflowError`.
    pub fn python_class(&self) -> &'static str {
        match self {
            CompileError::Re(_) => "error",
            CompileError::Overflow(_) => "OverflowError",
        }
    }

    /// `re.error(msg, pattern, pos)`: the message Python formats from them.
    pub(crate) fn at(msg: &str, pattern: &[char], pos: usize) -> Self {
        let mut text = format!("{msg} at position {pos}");
        if pattern.contains(&'\n') {
            let before = &pattern[..pos.min(pattern.len())];
            let line = before.iter().filter(|&&c| c == '\n').count() + 1;
            let col = match before.iter().rposition(|&c| c == '\n') {
                Some(nl) => pos - nl,
                None => pos + 1,
            };
            text = format!("{text} (line {line}, column {col})");
        }
        CompileError::Re(text)
    }

    /// `re.error(msg)` without a position (the compiler's errors).
    pub(crate) fn bare(msg: &str) -> Self {
        CompileError::Re(msg.to_string())
    }
}

/// A match that could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// The backtracking matcher used up its step budget.
    #[error(
        "the regular expression needed more than {budget} backtracking steps on {text:?}: catastrophic \
         backtracking; Python's re (and so TensorFlow's warm_start) would likely not finish either"
    )]
    BudgetExceeded {
        /// The budget.
        budget: u64,
        /// The text being matched.
        text: String,
    },
    /// The text is too long for the matcher's recursion on this pattern.
    #[error("the regular expression nests more than {depth} backtracking levels deep on a text of {len} characters")]
    TooDeep {
        /// The depth limit.
        depth: usize,
        /// The text's length in characters.
        len: usize,
    },
}
