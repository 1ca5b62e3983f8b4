//! The warmstart configuration: TF's `warm_start` settings as a TOML file (issue 5's format) or built
//! directly by Rust callers as a [`WarmStartSettings`].
//!
//! ```toml
//! ckpt_to_initialize_from = "old"        # directory (latest checkpoint), prefix or file
//! target = "newinit/model.ckpt"          # the new model's initial checkpoint
//! vars_to_warm_start = ".*"              # a string, a list of strings, { variables = [...] }, or false
//! non_trainable = ["global_step"]        # for targets without a graph
//! format = "safetensors"                 # where a folder holds checkpoints of several formats
//! [var_name_to_prev_var_name]
//! "new_scope/kernel" = "old_scope/kernel"
//! [var_name_to_vocab_info."input/embedding"]
//! new_vocab = "new_vocab.txt"
//! new_vocab_size = 1000
//! num_oov_buckets = 0
//! old_vocab = "old_vocab.txt"
//! old_vocab_size = -1                    # default -1
//! backup_initializer = "zeros"           # "zeros" | "ones" | "initial" | { constant = 0.25 }
//! axis = 0                               # 0 or 1
//! ```
//! `vars_to_warm_start` takes TF's forms:
//! - a string: a regex (Python `re.match` on `name:0`) over the TRAINABLE variables;
//! - a list of strings: one regex scope each over the GLOBAL variables (optimizer slots included:
//!   `["v1"]` also takes `v1/Momentum`);
//! - `{ variables = ["v1", "dense/kernel/part_0"] }`: TF's list of `Variable` objects, exactly those
//!   variables (no regex, no collection filter). Each name is a variable's exact name (for a partitioned
//!   variable, all its parts, as TF's `list(partitioned_variable)`) or one part's name (that part alone,
//!   grouped under its variable's full name as TF groups it). A name the target does not have is
//!   refused with a message naming it, since a TF `Variable` object cannot name a variable outside its
//!   graph. `{ variables = [] }` is TF's empty list (falsy);
//! - `false`: TF's `None`.
//!
//! Unknown keys are refused by name. Paths are relative to the configuration file's folder; messages
//! show them as written, as TF shows the paths it was given.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
pub use warmstart_planner::{BackupInitializer, VarsToWarmStart};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The configuration's text is not a valid configuration.
    #[error("{}{problem}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Invalid {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// What is wrong with it.
        problem: ConfigProblem,
    },
}

/// What is wrong with a configuration's text, each naming the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// `format` names no format warmstart knows.
    #[error("format: {0}")]
    Format(#[from] warmstart_core::UnknownFormat),
    /// Malformed TOML, an unknown key, or a value of the wrong kind.
    #[error("{message}{}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Toml {
        /// The TOML parser's message (naming the key).
        message: String,
        /// The line it points at, if it points.
        line: Option<usize>,
    },
    /// A `vars_to_warm_start` list holds something other than a string.
    #[error("vars_to_warm_start: list items must be strings (regexes), not {value}")]
    VarsListItem {
        /// The item, as TOML.
        value: String,
    },
    /// `vars_to_warm_start` is neither a string, a list, `{ variables = [...] }` nor `false`.
    #[error(
        "vars_to_warm_start = {value} is not a setting: use a regex string (\".*\" for all trainable \
         variables), a list of regexes, {{ variables = [\"name\", ...] }} (a list of variables), or false"
    )]
    VarsToWarmStart {
        /// The value, as TOML.
        value: String,
    },
    /// `vars_to_warm_start = { variables = [...] }` is malformed: another key, no `variables`, or an item
    /// that is not a string.
    #[error(
        "vars_to_warm_start: {problem}; the list of variables is written {{ variables = [\"v1\", \"dense/kernel\"] }}"
    )]
    VariablesList {
        /// What is wrong with it.
        problem: String,
    },
    /// A vocabulary's `backup_initializer` is not one of the settings.
    #[error(
        "var_name_to_vocab_info.{variable:?}.backup_initializer: {problem}, expected \"zeros\", \"ones\", \
         \"initial\" or {{ constant = X }}"
    )]
    BackupInitializer {
        /// The variable whose vocabulary it is.
        variable: String,
        /// What is wrong with it.
        problem: BackupProblem,
    },
}

/// What is wrong with a `backup_initializer`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackupProblem {
    /// A string that names no initializer.
    #[error("unknown value {0:?}")]
    UnknownValue(String),
    /// A table with a key other than `constant`.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// `{ constant = X }` where X is not a number.
    #[error("{{ constant = X }} needs a number X")]
    ConstantNotANumber,
    /// Neither a string nor a table.
    #[error("unexpected value {0}")]
    Unexpected(String),
}

impl From<ConfigProblem> for ConfigError {
    fn from(problem: ConfigProblem) -> Self {
        ConfigError::Invalid { path: None, problem }
    }
}

/// A path as written in the configuration, and the folder it is relative to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    /// As written (what messages show).
    pub given: String,
    /// The folder relative paths start from (the configuration's folder), if any.
    pub base: Option<PathBuf>,
}

impl ConfigPath {
    /// A path used as given (relative to the working directory).
    pub fn new(path: impl Into<String>) -> Self {
        ConfigPath { given: path.into(), base: None }
    }

    /// The path to open.
    pub fn resolve(&self) -> PathBuf {
        match &self.base {
            Some(base) => base.join(&self.given),
            None => PathBuf::from(&self.given),
        }
    }
}

/// TF's `VocabInfo`, with file paths.
#[derive(Debug, Clone, PartialEq)]
pub struct VocabSettings {
    /// The new vocabulary file.
    pub new_vocab: ConfigPath,
    /// How many leading entries of the new vocabulary are used.
    pub new_vocab_size: i64,
    /// OOV buckets after the vocabulary.
    pub num_oov_buckets: i64,
    /// The old vocabulary file.
    pub old_vocab: ConfigPath,
    /// How many leading lines of the old vocabulary count (-1: all).
    pub old_vocab_size: i64,
    /// What fills missing entries.
    pub backup_initializer: BackupInitializer,
    /// 0 (rows) or 1 (columns).
    pub axis: i64,
}

/// The settings of one warm-start: TF's three settings plus where the checkpoints are.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmStartSettings {
    /// The old checkpoint (folder with a `checkpoint` file, prefix, or a file of any format).
    pub ckpt_to_initialize_from: ConfigPath,
    /// The new model's initial checkpoint.
    pub target: ConfigPath,
    /// Which variables to warm-start (default `".*"`).
    pub vars_to_warm_start: VarsToWarmStart,
    /// New variable name -> old tensor name.
    pub var_name_to_prev_var_name: BTreeMap<String, String>,
    /// Variable name -> vocabulary.
    pub var_name_to_vocab_info: BTreeMap<String, VocabSettings>,
    /// For targets without a graph: regexes (matched on `name:0`) of variables that are not trainable.
    pub non_trainable: Vec<String>,
    /// The format to open where the old checkpoint's or the target's folder holds checkpoints of several
    /// formats (`--format` overrides it); `None` refuses such a folder, listing the formats.
    pub format: Option<warmstart_core::Format>,
}

impl WarmStartSettings {
    /// Settings with TF's defaults: warm-start every trainable variable, no renames, no vocabularies.
    pub fn new(ckpt_to_initialize_from: impl Into<String>, target: impl Into<String>) -> Self {
        WarmStartSettings {
            ckpt_to_initialize_from: ConfigPath::new(ckpt_to_initialize_from),
            target: ConfigPath::new(target),
            vars_to_warm_start: VarsToWarmStart::default(),
            var_name_to_prev_var_name: BTreeMap::new(),
            var_name_to_vocab_info: BTreeMap::new(),
            non_trainable: Vec::new(),
            format: None,
        }
    }

    /// Reads a configuration file; relative paths are taken from its folder.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, &base).map_err(|e| match e {
            ConfigError::Invalid { problem, .. } => ConfigError::Invalid { path: Some(path.to_path_buf()), problem },
            other => other,
        })
    }

    /// Parses configuration text, with relative paths taken from `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_problem(text, &e))?;
        let at = |given: String| ConfigPath { given, base: Some(base.to_path_buf()) };
        let vars_to_warm_start = match raw.vars_to_warm_start {
            None => VarsToWarmStart::default(),
            Some(toml::Value::String(s)) => VarsToWarmStart::Regex(s),
            Some(toml::Value::Array(items)) => VarsToWarmStart::List(
                items
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s),
                        other => Err(ConfigProblem::VarsListItem { value: other.to_string() }),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(toml::Value::Table(t)) => variables_list(t)?,
            Some(toml::Value::Boolean(false)) => VarsToWarmStart::Nothing,
            Some(other) => return Err(ConfigProblem::VarsToWarmStart { value: other.to_string() }.into()),
        };
        let mut vocab = BTreeMap::new();
        for (name, v) in raw.var_name_to_vocab_info {
            let bad = |problem| ConfigProblem::BackupInitializer { variable: name.clone(), problem };
            let backup_initializer = match v.backup_initializer {
                None => BackupInitializer::Zeros,
                Some(toml::Value::String(n)) => match n.as_str() {
                    "zeros" => BackupInitializer::Zeros,
                    "ones" => BackupInitializer::Ones,
                    "initial" => BackupInitializer::Initial,
                    other => return Err(bad(BackupProblem::UnknownValue(other.to_string())).into()),
                },
                Some(toml::Value::Table(t)) => {
                    if let Some(key) = t.keys().find(|k| *k != "constant") {
                        return Err(bad(BackupProblem::UnknownKey(key.clone())).into());
                    }
                    match t.get("constant") {
                        // Rounded to float32 as TF's constant initializer does.
                        Some(toml::Value::Float(x)) => BackupInitializer::Constant(*x as f32),
                        Some(toml::Value::Integer(x)) => BackupInitializer::Constant(*x as f32),
                        _ => return Err(bad(BackupProblem::ConstantNotANumber).into()),
                    }
                }
                Some(other) => return Err(bad(BackupProblem::Unexpected(other.to_string())).into()),
            };
            vocab.insert(
                name,
                VocabSettings {
                    new_vocab: at(v.new_vocab),
                    new_vocab_size: v.new_vocab_size,
                    num_oov_buckets: v.num_oov_buckets,
                    old_vocab: at(v.old_vocab),
                    old_vocab_size: v.old_vocab_size,
                    backup_initializer,
                    axis: v.axis,
                },
            );
        }
        Ok(WarmStartSettings {
            ckpt_to_initialize_from: at(raw.ckpt_to_initialize_from),
            target: at(raw.target),
            vars_to_warm_start,
            var_name_to_prev_var_name: raw.var_name_to_prev_var_name,
            var_name_to_vocab_info: vocab,
            non_trainable: raw.non_trainable,
            format: raw.format.map(|f| f.parse()).transpose().map_err(ConfigProblem::Format)?,
        })
    }
}

/// `vars_to_warm_start = { variables = [...] }`: TF's list of `Variable` objects, by name.
fn variables_list(table: toml::Table) -> Result<VarsToWarmStart, ConfigProblem> {
    let bad = |problem: String| ConfigProblem::VariablesList { problem };
    if let Some(key) = table.keys().find(|k| *k != "variables") {
        return Err(bad(format!("unknown key {key:?}")));
    }
    let Some(value) = table.get("variables") else {
        return Err(bad("the table has no key \"variables\"".into()));
    };
    let toml::Value::Array(items) = value else {
        return Err(bad(format!("variables = {value} is not a list")));
    };
    let names = items
        .iter()
        .map(|v| match v {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(bad(format!("variables: list items must be variable names (strings), not {other}"))),
        })
        .collect::<Result<_, _>>()?;
    Ok(VarsToWarmStart::Variables(names))
}

/// The TOML parser's error as a [`ConfigProblem`], with the line it points at.
fn toml_problem(text: &str, e: &toml::de::Error) -> ConfigProblem {
    let line = e.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    ConfigProblem::Toml { message: e.message().to_string(), line }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    ckpt_to_initialize_from: String,
    target: String,
    vars_to_warm_start: Option<toml::Value>,
    #[serde(default)]
    non_trainable: Vec<String>,
    #[serde(default)]
    var_name_to_prev_var_name: BTreeMap<String, String>,
    #[serde(default)]
    var_name_to_vocab_info: BTreeMap<String, RawVocab>,
    format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVocab {
    new_vocab: String,
    new_vocab_size: i64,
    num_oov_buckets: i64,
    old_vocab: String,
    #[serde(default = "minus_one")]
    old_vocab_size: i64,
    backup_initializer: Option<toml::Value>,
    #[serde(default)]
    axis: i64,
}

fn minus_one() -> i64 {
    -1
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
ckpt_to_initialize_from = "old"
target = "new/model.ckpt"
vars_to_warm_start = ["v1", "v2[^/]"]
[var_name_to_prev_var_name]
"new_scope/kernel" = "old_scope/kernel"
[var_name_to_vocab_info."input/embedding"]
new_vocab = "new_vocab.txt"
new_vocab_size = 1000
num_oov_buckets = 1
old_vocab = "old_vocab.txt"
backup_initializer = { constant = 0.25 }
axis = 1
"#;

    #[test]
    fn parses_the_issue_format_with_defaults() {
        let s = WarmStartSettings::from_toml(FULL, Path::new("/cfg")).unwrap();
        assert_eq!(s.vars_to_warm_start, VarsToWarmStart::List(vec!["v1".into(), "v2[^/]".into()]));
        assert_eq!(s.target.resolve(), PathBuf::from("/cfg/new/model.ckpt"));
        assert_eq!(s.target.given, "new/model.ckpt");
        let v = &s.var_name_to_vocab_info["input/embedding"];
        assert_eq!((v.old_vocab_size, v.axis, v.num_oov_buckets), (-1, 1, 1));
        assert_eq!(v.backup_initializer, BackupInitializer::Constant(0.25));
        assert_eq!(s.var_name_to_prev_var_name["new_scope/kernel"], "old_scope/kernel");
        let d = WarmStartSettings::from_toml("ckpt_to_initialize_from = \"a\"\ntarget = \"b\"", Path::new("")).unwrap();
        assert_eq!(d.vars_to_warm_start, VarsToWarmStart::Regex(".*".into()));
    }

    #[test]
    fn format_names_a_format() {
        let base = "ckpt_to_initialize_from = \"a\"\ntarget = \"b\"\n";
        let s = WarmStartSettings::from_toml(&format!("{base}format = \"Safetensors\""), Path::new("")).unwrap();
        assert_eq!(s.format, Some(warmstart_core::Format::Safetensors));
        assert_eq!(WarmStartSettings::from_toml(base, Path::new("")).unwrap().format, None);
        let err = WarmStartSettings::from_toml(&format!("{base}format = \"onnx\""), Path::new("")).unwrap_err();
        assert!(err.to_string().contains("format: unknown format \"onnx\""), "{err}");
    }

    #[test]
    fn false_string_and_backups() {
        let base = "ckpt_to_initialize_from = \"a\"\ntarget = \"b\"\n";
        let s = WarmStartSettings::from_toml(&format!("{base}vars_to_warm_start = false"), Path::new("")).unwrap();
        assert_eq!(s.vars_to_warm_start, VarsToWarmStart::Nothing);
        assert!(WarmStartSettings::from_toml(&format!("{base}vars_to_warm_start = true"), Path::new("")).is_err());
        let vocab = "[var_name_to_vocab_info.w]\nnew_vocab = \"n\"\nnew_vocab_size = 2\nnum_oov_buckets = 0\nold_vocab = \"o\"\n";
        let s = WarmStartSettings::from_toml(&format!("{base}{vocab}backup_initializer = \"initial\""), Path::new(""))
            .unwrap();
        assert_eq!(s.var_name_to_vocab_info["w"].backup_initializer, BackupInitializer::Initial);
        let e = WarmStartSettings::from_toml(&format!("{base}{vocab}backup_initializer = \"twos\""), Path::new(""))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "var_name_to_vocab_info.\"w\".backup_initializer: unknown value \"twos\", expected \"zeros\", \"ones\", \
             \"initial\" or { constant = X }"
        );
        let e = WarmStartSettings::from_toml(
            &format!("{base}{vocab}backup_initializer = {{ constnt = 1 }}"),
            Path::new(""),
        )
        .unwrap_err();
        assert!(e.to_string().contains("constnt"), "{e}");
        let s = WarmStartSettings::from_toml(
            &format!("{base}{vocab}backup_initializer = {{ constant = 2 }}"),
            Path::new(""),
        )
        .unwrap();
        assert_eq!(s.var_name_to_vocab_info["w"].backup_initializer, BackupInitializer::Constant(2.0));
        let e = WarmStartSettings::from_toml(&format!("{base}vars_to_warm_start = 3"), Path::new("")).unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid { path: None, problem: ConfigProblem::VarsToWarmStart { .. } }),
            "{e}"
        );
    }

    #[test]
    fn list_of_variables() {
        let base = "ckpt_to_initialize_from = \"a\"\ntarget = \"b\"\n";
        let parse = |v: &str| WarmStartSettings::from_toml(&format!("{base}vars_to_warm_start = {v}"), Path::new(""));
        let s = parse("{ variables = [\"v1\", \"dense/kernel/part_0\"] }").unwrap();
        assert_eq!(s.vars_to_warm_start, VarsToWarmStart::Variables(vec!["v1".into(), "dense/kernel/part_0".into()]));
        assert!(!parse("{ variables = [] }").unwrap().vars_to_warm_start.is_truthy());
        for (bad, says) in [
            ("{ variable = [\"v1\"] }", "unknown key \"variable\""),
            ("{}", "no key \"variables\""),
            ("{ variables = \"v1\" }", "is not a list"),
            ("{ variables = [1] }", "not 1"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { problem: ConfigProblem::VariablesList { .. }, .. }), "{e}");
            assert!(e.to_string().contains(says) && e.to_string().contains("{ variables = ["), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = WarmStartSettings::from_toml(
            "ckpt_to_initialize_from = \"a\"\ntarget = \"b\"\nvars_to_warmstart = \".*\"",
            Path::new(""),
        )
        .unwrap_err();
        assert!(e.to_string().contains("vars_to_warmstart") && e.to_string().ends_with("(line 3)"), "{e}");
        let e = WarmStartSettings::from_toml(
            "ckpt_to_initialize_from = \"a\"\ntarget = \"b\"\n[var_name_to_vocab_info.w]\nnew_vocab = \"n\"\nnew_vocab_size = 2\nnum_oov_buckets = 0\nold_vocab = \"o\"\naxes = 1",
            Path::new(""),
        )
        .unwrap_err();
        assert!(e.to_string().contains("axes"), "{e}");
    }
}
