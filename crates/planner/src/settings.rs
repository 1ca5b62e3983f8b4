//! The warm-start settings as the planner takes them: TF's `vars_to_warm_start`,
//! `var_name_to_prev_var_name` and `var_name_to_vocab_info`, with the vocabulary files already read
//! (the planner does no I/O).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

/// Which variables to warm-start (TF's `vars_to_warm_start`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VarsToWarmStart {
    /// A regular expression matched (Python `re.match`, at the start) against each TRAINABLE variable's
    /// `name:0` (per partition `name/part_N:0`). The empty string selects every trainable variable but,
    /// being falsy in Python, warm-starts only those with a vocabulary.
    Regex(String),
    /// One regular expression each, over the GLOBAL variables; the union without de-duplication.
    List(Vec<String>),
    /// TF's list of `Variable` objects, by name: exactly those variables, in this order, with no regex
    /// and no collection filter. Each name is a variable's full name (for a partitioned variable, all
    /// its parts, as TF's `list(partitioned_variable)`) or one part's name (`x/part_0`, that part
    /// alone); parts are grouped under their variable's full name. A name the target does not have is
    /// refused (a `Variable` object that is not in the graph cannot exist in TF).
    Variables(Vec<String>),
    /// TF's `None`: the trainable variables are grouped, but only those with a vocabulary are
    /// warm-started.
    Nothing,
}

impl Default for VarsToWarmStart {
    fn default() -> Self {
        VarsToWarmStart::Regex(".*".to_string())
    }
}

impl VarsToWarmStart {
    /// Whether Python would consider the value true (a non-empty string or list).
    pub fn is_truthy(&self) -> bool {
        match self {
            VarsToWarmStart::Regex(s) => !s.is_empty(),
            VarsToWarmStart::List(l) | VarsToWarmStart::Variables(l) => !l.is_empty(),
            VarsToWarmStart::Nothing => false,
        }
    }
}

/// What fills the cells a vocabulary remap cannot take from the old checkpoint (new tokens, OOV
/// buckets).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupInitializer {
    /// 0.0 (TF's default).
    #[default]
    Zeros,
    /// 1.0.
    Ones,
    /// A constant, rounded to float32 as TF's constant initializer does.
    Constant(f32),
    /// The target checkpoint's own initial value at that cell (beyond TF).
    Initial,
}

impl BackupInitializer {
    /// The constant value, or `None` for [`BackupInitializer::Initial`].
    pub fn constant(self) -> Option<f32> {
        match self {
            BackupInitializer::Zeros => Some(0.0),
            BackupInitializer::Ones => Some(1.0),
            BackupInitializer::Constant(c) => Some(c),
            BackupInitializer::Initial => None,
        }
    }
}

/// A vocabulary file: what to call it in messages, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VocabFile {
    /// The path as messages show it (TF shows the file name it was given).
    pub display: String,
    /// The file's contents, shared: a plan made from these settings keeps them without a copy.
    pub contents: Arc<Vec<u8>>,
    /// Why the file could not be read, if it could not: TF fails only when the remap op reads it,
    /// after the refusals Python raises while building the graph, and so does the planner.
    pub unreadable: Option<String>,
}

impl VocabFile {
    /// A vocabulary file from its display name and contents.
    pub fn new(display: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        VocabFile { display: display.into(), contents: Arc::new(contents.into()), unreadable: None }
    }

    /// A vocabulary file that could not be read, and why (the system's message).
    pub fn unreadable(display: impl Into<String>, reason: impl Into<String>) -> Self {
        VocabFile { display: display.into(), contents: Arc::default(), unreadable: Some(reason.into()) }
    }
}

/// TF's `VocabInfo`, with the files read.
#[derive(Debug, Clone, PartialEq)]
pub struct VocabInfo {
    /// The new vocabulary.
    pub new_vocab: VocabFile,
    /// How many leading entries of the new vocabulary are used.
    pub new_vocab_size: i64,
    /// Rows (axis 0) or columns (axis 1) appended after the vocabulary, always freshly initialised.
    pub num_oov_buckets: i64,
    /// The old vocabulary.
    pub old_vocab: VocabFile,
    /// How many leading lines of the old vocabulary count; -1 for all.
    pub old_vocab_size: i64,
    /// What fills missing entries.
    pub backup_initializer: BackupInitializer,
    /// 0: the vocabulary indexes rows; 1: columns.
    pub axis: i64,
}

/// Everything the planner needs to know about what the user asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanSettings {
    /// Which variables to warm-start.
    pub vars_to_warm_start: VarsToWarmStart,
    /// New variable name -> old tensor name.
    pub var_name_to_prev_var_name: BTreeMap<String, String>,
    /// Variable name -> vocabulary remapping.
    pub var_name_to_vocab_info: BTreeMap<String, VocabInfo>,
    /// Whether the output keeps partitioned variables partitioned (TF output) or writes them whole.
    pub keep_partitions: bool,
}
