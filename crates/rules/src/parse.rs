//! Reading a rules file: TOML with `skip`, `[[rename]]`, `[[transpose]]` and `[[cast]]`, every
//! pattern compiled and every value checked before any checkpoint is read. A problem names the line and
//! the key (from the TOML parser's spans).

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;
use warmstart_core::DType;

use crate::cast::classify;
use crate::RulesError;

/// Which list a rule is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `skip = [...]`.
    Skip,
    /// `[[rename]]`.
    Rename,
    /// `[[transpose]]`.
    Transpose,
    /// `[[cast]]`.
    Cast,
}

impl RuleKind {
    /// How the rules file spells it.
    pub fn spelling(self) -> &'static str {
        match self {
            RuleKind::Skip => "skip",
            RuleKind::Rename => "[[rename]]",
            RuleKind::Transpose => "[[transpose]]",
            RuleKind::Cast => "[[cast]]",
        }
    }
}

/// Where a rule is: its list, its pattern and its line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleRef {
    /// Its list.
    pub kind: RuleKind,
    /// Its pattern as written.
    pub pattern: String,
    /// The line of its pattern (1-based).
    pub line: usize,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} (line {})", self.kind.spelling(), self.pattern, self.line)
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule<T> {
    /// Where it is.
    pub at: RuleRef,
    /// Its compiled pattern.
    pub regex: Regex,
    /// What it does.
    pub action: T,
}

/// `[[cast]]`'s target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CastTo {
    /// The dtype to cast to.
    pub to: DType,
    /// Whether integer-to-float and narrowing integer casts are allowed.
    pub lossy: bool,
}

/// A rules file, parsed and checked.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The file (for messages).
    pub path: PathBuf,
    /// `skip`.
    pub skip: Vec<Rule<()>>,
    /// `[[rename]]`, in order: the replacement.
    pub rename: Vec<Rule<String>>,
    /// `[[transpose]]`: the permutation.
    pub transpose: Vec<Rule<Vec<usize>>>,
    /// `[[cast]]`.
    pub cast: Vec<Rule<CastTo>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    skip: Vec<Spanned<String>>,
    #[serde(default)]
    rename: Vec<RawRename>,
    #[serde(default)]
    transpose: Vec<RawTranspose>,
    #[serde(default)]
    cast: Vec<RawCast>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRename {
    pattern: Spanned<String>,
    replace: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTranspose {
    pattern: Spanned<String>,
    perm: Spanned<Vec<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCast {
    pattern: Spanned<String>,
    to: Spanned<String>,
    #[serde(default)]
    lossy: bool,
}

impl Rules {
    /// Reads and checks the rules file at `path`.
    pub fn from_file(path: &Path) -> Result<Rules, RulesError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| RulesError::Read { path: path.to_path_buf(), source })?;
        Rules::from_toml(&text, path)
    }

    /// Parses and checks rules text; `path` names it in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Rules, RulesError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let raw: RawRules = toml::from_str(text).map_err(|e| RulesError::Toml {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of(s.start)),
            message: e.message().trim_end().to_string(),
        })?;
        let compile =
            |kind: RuleKind, key: &'static str, p: &Spanned<String>| -> Result<(RuleRef, Regex), RulesError> {
                let line = line_of(p.span().start);
                let regex = Regex::new(p.get_ref()).map_err(|source| RulesError::Regex {
                    path: path.to_path_buf(),
                    line,
                    key: if kind == RuleKind::Skip { key.to_string() } else { format!("{} {key}", kind.spelling()) },
                    source: Box::new(source),
                })?;
                Ok((RuleRef { kind, pattern: p.get_ref().clone(), line }, regex))
            };
        let mut rules =
            Rules { path: path.to_path_buf(), skip: vec![], rename: vec![], transpose: vec![], cast: vec![] };
        for p in &raw.skip {
            let (at, regex) = compile(RuleKind::Skip, "skip", p)?;
            rules.skip.push(Rule { at, regex, action: () });
        }
        for r in raw.rename {
            let (at, regex) = compile(RuleKind::Rename, "pattern", &r.pattern)?;
            rules.rename.push(Rule { at, regex, action: r.replace });
        }
        for t in raw.transpose {
            let (at, regex) = compile(RuleKind::Transpose, "pattern", &t.pattern)?;
            let perm = t.perm.get_ref().clone();
            let mut seen = vec![false; perm.len()];
            if perm.iter().any(|&p| p >= perm.len() || std::mem::replace(&mut seen[p], true)) {
                let line = line_of(t.perm.span().start);
                return Err(RulesError::NotAPermutation { path: path.to_path_buf(), line, perm });
            }
            rules.transpose.push(Rule { at, regex, action: perm });
        }
        for c in raw.cast {
            let (at, regex) = compile(RuleKind::Cast, "pattern", &c.pattern)?;
            let line = line_of(c.to.span().start);
            let bad = |reason: String| RulesError::BadDType { path: path.to_path_buf(), line, reason };
            let to: DType = c.to.get_ref().parse().map_err(|e: warmstart_core::UnknownDType| bad(e.to_string()))?;
            if classify(DType::F32, to).is_none() && classify(DType::I64, to).is_none() {
                return Err(bad(format!("warmstart does not cast to {to}")));
            }
            rules.cast.push(Rule { at, regex, action: CastTo { to, lossy: c.lossy } });
        }
        Ok(rules)
    }

    /// Every rule, in the order of the file's lists.
    pub fn all(&self) -> impl Iterator<Item = &RuleRef> {
        let skip = self.skip.iter().map(|r| &r.at);
        let rename = self.rename.iter().map(|r| &r.at);
        skip.chain(rename).chain(self.transpose.iter().map(|r| &r.at)).chain(self.cast.iter().map(|r| &r.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rules, RulesError> {
        Rules::from_toml(text, Path::new("r.toml"))
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_file() {
        let rules = parse(
            "skip = ['adam_[mv]$', '^global_step$']\n[[rename]]\npattern = '/'\nreplace = '.'\n\
             [[transpose]]\npattern = 'kernel$'\nperm = [1, 0]\n[[cast]]\npattern = '.'\nto = 'BF16'\n",
        )
        .unwrap();
        assert_eq!(rules.skip.len(), 2);
        assert_eq!(rules.rename[0].action, ".");
        assert_eq!(rules.rename[0].at.line, 3);
        assert_eq!(rules.transpose[0].action, [1, 0]);
        assert_eq!(rules.cast[0].action, CastTo { to: DType::BF16, lossy: false });
        assert_eq!(rules.all().count(), 5);
    }

    #[test]
    fn problems_name_the_line_and_key() {
        assert_eq!(
            message("[[rename]]\npattern = 'a'\nreplace = 'b'\nreplacement = 'c'\n"),
            "r.toml line 4: unknown field `replacement`, expected `pattern` or `replace`"
        );
        assert_eq!(
            message("skopt = []\n"),
            "r.toml line 1: unknown field `skopt`, expected one of `skip`, `rename`, `transpose`, `cast`"
        );
        let bad_regex = message("\n[[rename]]\npattern = 'a('\nreplace = ''\n");
        assert!(bad_regex.starts_with("r.toml line 3: [[rename]] pattern: invalid regex"), "{bad_regex}");
        assert!(message("skip = ['ok', '[z-a]']").starts_with("r.toml line 1: skip: invalid regex"));
        assert_eq!(
            message("[[transpose]]\npattern = 'k'\nperm = [0, 0]\n"),
            "r.toml line 3: [[transpose]] perm: [0, 0] is not a permutation of 0..2"
        );
        assert_eq!(
            message("[[transpose]]\npattern = 'k'\nperm = [2, 0]\n"),
            "r.toml line 3: [[transpose]] perm: [2, 0] is not a permutation of 0..2"
        );
        assert_eq!(
            message("[[cast]]\npattern = 'k'\nto = 'F33'\n"),
            "r.toml line 3: [[cast]] to: unknown dtype \"F33\""
        );
        assert_eq!(
            message("[[cast]]\npattern = 'k'\nto = 'STRING'\n"),
            "r.toml line 3: [[cast]] to: warmstart does not cast to STRING"
        );
        assert!(message("[[cast]]\npattern = 'k'\n").contains("missing field `to`"));
        assert!(message("skip = 'x'").starts_with("r.toml line 1: invalid type"));
    }
}
