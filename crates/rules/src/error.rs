//! [`RulesError`]: a rules file that cannot be used, or rules that cannot be applied to a checkpoint.

use std::path::PathBuf;

use warmstart_core::DType;

use crate::RuleRef;

/// Why rules could not be read or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The rules file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The rules file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not TOML of the rules' form (an unknown key, a missing one, a wrong type).
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Toml {
        /// The rules file.
        path: PathBuf,
        /// The line the parser points at.
        line: Option<usize>,
        /// The parser's message (it names the key).
        message: String,
    },
    /// A pattern is not a valid regex (Rust `regex` syntax).
    #[error("{} line {line}: {key}: invalid regex: {source}", path.display())]
    Regex {
        /// The rules file.
        path: PathBuf,
        /// The pattern's line.
        line: usize,
        /// The key: `skip`, or the rule's list and `pattern`.
        key: String,
        /// The regex crate's message.
        source: Box<regex::Error>,
    },
    /// A `perm` is not a permutation of `0..n`.
    #[error("{} line {line}: [[transpose]] perm: {perm:?} is not a permutation of 0..{}", path.display(), perm.len())]
    NotAPermutation {
        /// The rules file.
        path: PathBuf,
        /// The perm's line.
        line: usize,
        /// The perm given.
        perm: Vec<usize>,
    },
    /// A cast's `to` is not a dtype warmstart casts to.
    #[error("{} line {line}: [[cast]] to: {reason}", path.display())]
    BadDType {
        /// The rules file.
        path: PathBuf,
        /// The line of `to`.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A transpose's perm has another rank than the tensor it matched.
    #[error("{}: tensor {tensor:?} has rank {rank}, but {rule} has perm {perm:?}", path.display())]
    RankMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The source tensor.
        tensor: String,
        /// Its rank.
        rank: usize,
        /// The rule.
        rule: RuleRef,
        /// Its perm.
        perm: Vec<usize>,
    },
    /// A transpose matched a string tensor.
    #[error("{}: tensor {tensor:?} holds strings, which {rule} cannot transpose", path.display())]
    TransposeStrings {
        /// The checkpoint.
        path: PathBuf,
        /// The source tensor.
        tensor: String,
        /// The rule.
        rule: RuleRef,
    },
    /// A cast that warmstart does not do (floats to integers, booleans, complex, strings, float8).
    #[error("{}: tensor {tensor:?}: {rule} cannot cast {from} to {to}", path.display())]
    CastUnsupported {
        /// The checkpoint.
        path: PathBuf,
        /// The source tensor.
        tensor: String,
        /// The rule.
        rule: RuleRef,
        /// The tensor's dtype.
        from: DType,
        /// The rule's.
        to: DType,
    },
    /// A cast that changes values beyond rounding (integers to floats, narrowing integers), without
    /// `lossy = true`.
    #[error("{}: tensor {tensor:?}: {rule} casts {from} to {to}, which can change values: add `lossy = true` to allow it", path.display())]
    CastNeedsLossy {
        /// The checkpoint.
        path: PathBuf,
        /// The source tensor.
        tensor: String,
        /// The rule.
        rule: RuleRef,
        /// The tensor's dtype.
        from: DType,
        /// The rule's.
        to: DType,
    },
    /// The checkpoint (its object graph, for its variables' names) cannot be read.
    #[error(transparent)]
    Checkpoint(#[from] warmstart_core::Error),
    /// Two source tensors were given one name.
    #[error("{}: tensors {first:?} and {second:?} are both mapped to {name:?}", path.display())]
    Collision {
        /// The checkpoint.
        path: PathBuf,
        /// The first source tensor.
        first: String,
        /// The second.
        second: String,
        /// The name both got.
        name: String,
    },
    /// A rename left a tensor without a name.
    #[error("{}: {rule} renames tensor {tensor:?} to the empty name", path.display())]
    EmptyName {
        /// The checkpoint.
        path: PathBuf,
        /// The source tensor.
        tensor: String,
        /// The rule.
        rule: RuleRef,
    },
    /// With `--strict`: a rule matched no tensor.
    #[error("{}: {rule} matched no tensor of {}", rules.display(), path.display())]
    Unmatched {
        /// The rules file.
        rules: PathBuf,
        /// The checkpoint.
        path: PathBuf,
        /// The rule.
        rule: RuleRef,
    },
}
