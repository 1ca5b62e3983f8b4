//! Applying rules to a checkpoint's tensor list: what each source tensor becomes (its destination
//! name, transpose and cast) or which rule skipped it, with every refusal found before any data is
//! read.

use std::collections::HashMap;
use std::path::Path;

use warmstart_core::{DType, TensorInfo};

use crate::cast::{classify, CastClass};
use crate::{RuleRef, Rules, RulesError};

/// What the rules make of a checkpoint.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Every source tensor, in the source's order.
    pub entries: Vec<Entry>,
    /// The rules that matched no tensor (a warning; an error with `strict`).
    pub unmatched: Vec<RuleRef>,
}

/// One source tensor and what becomes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The source tensor.
    pub source: TensorInfo,
    /// What becomes of it.
    pub fate: Fate,
}

/// What becomes of a source tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Left out, by this `skip` pattern.
    Skipped(RuleRef),
    /// Written as `dest`.
    Kept(Kept),
}

/// A source tensor that is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Its name, dtype and shape in the destination.
    pub dest: TensorInfo,
    /// The transpose applied, and the rule that asked for it.
    pub transpose: Option<(RuleRef, Vec<usize>)>,
    /// The cast applied (to `dest.dtype`), and the rule that asked for it.
    pub cast: Option<RuleRef>,
}

impl Rules {
    /// What the rules make of `tensors` (of the checkpoint at `path`). Refused: a transpose of another
    /// rank, a cast not allowed, two tensors given one name, and, if `strict`, a rule matching nothing.
    pub fn map(&self, path: &Path, tensors: &[TensorInfo], strict: bool) -> Result<Mapping, RulesError> {
        let mut hits: HashMap<&RuleRef, usize> = HashMap::new();
        let mut entries = Vec::with_capacity(tensors.len());
        let mut names: HashMap<String, usize> = HashMap::new();
        for t in tensors {
            let fate = self.fate(path, t, &mut hits)?;
            if let Fate::Kept(k) = &fate {
                if let Some(&first) = names.get(&k.dest.name) {
                    let first: &Entry = &entries[first];
                    return Err(RulesError::Collision {
                        path: path.to_path_buf(),
                        first: first.source.name.clone(),
                        second: t.name.clone(),
                        name: k.dest.name.clone(),
                    });
                }
                names.insert(k.dest.name.clone(), entries.len());
            }
            entries.push(Entry { source: t.clone(), fate });
        }
        let unmatched: Vec<RuleRef> = self.all().filter(|r| !hits.contains_key(r)).cloned().collect();
        if let (true, Some(rule)) = (strict, unmatched.first()) {
            return Err(RulesError::Unmatched {
                rules: self.path.clone(),
                path: path.to_path_buf(),
                rule: rule.clone(),
            });
        }
        Ok(Mapping { entries, unmatched })
    }

    fn fate<'r>(
        &'r self,
        path: &Path,
        t: &TensorInfo,
        hits: &mut HashMap<&'r RuleRef, usize>,
    ) -> Result<Fate, RulesError> {
        if let Some(rule) = self.skip.iter().find(|r| r.regex.is_match(&t.name)) {
            *hits.entry(&rule.at).or_default() += 1;
            return Ok(Fate::Skipped(rule.at.clone()));
        }
        let mut name = t.name.clone();
        for rule in &self.rename {
            if rule.regex.is_match(&name) {
                *hits.entry(&rule.at).or_default() += 1;
                name = rule.regex.replace_all(&name, rule.action.as_str()).into_owned();
                if name.is_empty() {
                    let (path, tensor, rule) = (path.to_path_buf(), t.name.clone(), rule.at.clone());
                    return Err(RulesError::EmptyName { path, tensor, rule });
                }
            }
        }
        let mut dest = TensorInfo::new(name, t.dtype, t.shape.clone());
        let mut transpose = None;
        if let Some(rule) = self.transpose.iter().find(|r| r.regex.is_match(&t.name)) {
            *hits.entry(&rule.at).or_default() += 1;
            let perm = &rule.action;
            if t.dtype == DType::String {
                let (path, tensor, rule) = (path.to_path_buf(), t.name.clone(), rule.at.clone());
                return Err(RulesError::TransposeStrings { path, tensor, rule });
            }
            if perm.len() != t.shape.len() {
                return Err(RulesError::RankMismatch {
                    path: path.to_path_buf(),
                    tensor: t.name.clone(),
                    rank: t.shape.len(),
                    rule: rule.at.clone(),
                    perm: perm.clone(),
                });
            }
            dest.shape = perm.iter().map(|&p| t.shape[p]).collect();
            transpose = Some((rule.at.clone(), perm.clone()));
        }
        let mut cast = None;
        if let Some(rule) = self.cast.iter().find(|r| r.regex.is_match(&t.name)) {
            *hits.entry(&rule.at).or_default() += 1;
            let to = rule.action.to;
            let refusal = |needs_lossy: bool| {
                let (path, tensor, rule, from) = (path.to_path_buf(), t.name.clone(), rule.at.clone(), t.dtype);
                if needs_lossy {
                    RulesError::CastNeedsLossy { path, tensor, rule, from, to }
                } else {
                    RulesError::CastUnsupported { path, tensor, rule, from, to }
                }
            };
            match classify(t.dtype, to) {
                None => return Err(refusal(false)),
                Some(CastClass::Lossy) if !rule.action.lossy => return Err(refusal(true)),
                Some(_) if to == t.dtype => {}
                Some(_) => {
                    dest.dtype = to;
                    cast = Some(rule.at.clone());
                }
            }
        }
        Ok(Fate::Kept(Kept { dest, transpose, cast }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Rules {
        Rules::from_toml(text, Path::new("r.toml")).unwrap()
    }

    fn t(name: &str, dtype: DType, shape: &[u64]) -> TensorInfo {
        TensorInfo::new(name, dtype, shape.to_vec())
    }

    fn kept(m: &Mapping, i: usize) -> &Kept {
        match &m.entries[i].fate {
            Fate::Kept(k) => k,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn skip_rename_in_order_transpose_and_cast_by_source_name() {
        let r = rules(
            "skip = ['adam_[mv]$']\n\
             [[rename]]\npattern = '^bert/(?P<rest>.*)$'\nreplace = 'bert.${rest}'\n\
             [[rename]]\npattern = '/'\nreplace = '.'\n\
             [[rename]]\npattern = 'kernel$'\nreplace = 'weight'\n\
             [[transpose]]\npattern = '/kernel$'\nperm = [1, 0]\n\
             [[cast]]\npattern = '^bert/'\nto = 'BF16'\n",
        );
        let tensors = [t("bert/a/kernel", DType::F32, &[2, 3]), t("bert/a/kernel/adam_m", DType::F32, &[2, 3])];
        let m = r.map(Path::new("ck"), &tensors, true).unwrap();
        let k = kept(&m, 0);
        assert_eq!(k.dest, t("bert.a.weight", DType::BF16, &[3, 2]));
        assert_eq!(k.transpose.as_ref().unwrap().1, [1, 0]);
        assert_eq!(k.cast.as_ref().unwrap().line, 15);
        assert_eq!(m.entries[1].fate, Fate::Skipped(r.skip[0].at.clone()));
        assert!(m.unmatched.is_empty());
    }

    #[test]
    fn refusals_name_the_tensors() {
        let r = rules("[[rename]]\npattern = '_[0-9]$'\nreplace = ''\n");
        let e = r.map(Path::new("ck"), &[t("a_1", DType::F32, &[1]), t("a_2", DType::F32, &[1])], false);
        assert_eq!(e.unwrap_err().to_string(), "ck: tensors \"a_1\" and \"a_2\" are both mapped to \"a\"");
        let r = rules("[[transpose]]\npattern = 'k'\nperm = [1, 0]\n");
        let e = r.map(Path::new("ck"), &[t("k", DType::F32, &[1, 2, 3])], false).unwrap_err().to_string();
        assert_eq!(e, "ck: tensor \"k\" has rank 3, but [[transpose]] \"k\" (line 2) has perm [1, 0]");
        let r = rules("[[cast]]\npattern = 'k'\nto = 'F32'\n");
        let e = r.map(Path::new("ck"), &[t("k", DType::I32, &[1])], false).unwrap_err().to_string();
        assert!(e.contains("casts I32 to F32, which can change values: add `lossy = true`"), "{e}");
        let r = rules("[[cast]]\npattern = 'k'\nto = 'F32'\nlossy = true\n");
        assert_eq!(
            kept(&r.map(Path::new("ck"), &[t("k", DType::I32, &[1])], false).unwrap(), 0).dest.dtype,
            DType::F32
        );
        let r = rules("[[cast]]\npattern = 'k'\nto = 'I32'\nlossy = true\n");
        let e = r.map(Path::new("ck"), &[t("k", DType::F32, &[1])], false).unwrap_err().to_string();
        assert!(e.contains("cannot cast F32 to I32"), "{e}");
    }

    #[test]
    fn unmatched_rules_warn_or_refuse() {
        let r = rules("skip = ['nothing']\n[[rename]]\npattern = 'a'\nreplace = 'b'\n");
        let m = r.map(Path::new("ck"), &[t("a", DType::F32, &[])], false).unwrap();
        assert_eq!(m.unmatched, [r.skip[0].at.clone()]);
        let e = r.map(Path::new("ck"), &[t("a", DType::F32, &[])], true).unwrap_err().to_string();
        assert_eq!(e, "r.toml: skip \"nothing\" (line 1) matched no tensor of ck");
    }
}
