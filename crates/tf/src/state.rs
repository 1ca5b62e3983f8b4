//! Finding a checkpoint from a path as `tf.train.load_checkpoint` does, and the `checkpoint` state file
//! (a text-format `CheckpointState`) that points a directory at its latest checkpoint.

use std::path::{Path, PathBuf};

use crate::{StateFileError, TfError};

/// The name of the state file in a checkpoint directory.
pub const STATE_FILE: &str = "checkpoint";

/// The prefix of the checkpoint at `path`:
/// - a directory: the `model_checkpoint_path` of its `checkpoint` file, joined to the directory if
///   relative;
/// - a prefix with a `.index` file beside it;
/// - the `.index` file itself, or a `.data-NNNNN-of-NNNNN` file: their prefix (TensorFlow does not take
///   these; resolving them is friendlier than its errors).
pub fn resolve_prefix(path: &Path) -> Result<PathBuf, TfError> {
    check_not_interrupted(path)?;
    if path.is_dir() {
        let state_path = path.join(STATE_FILE);
        let text = match std::fs::read(&state_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TfError::NoCheckpoint {
                    path: path.to_path_buf(),
                    reason: format!("a directory without a '{STATE_FILE}' file"),
                })
            }
            Err(e) => return Err(TfError::io(&state_path, e)),
        };
        let latest =
            parse_state(&text).map_err(|reason| TfError::BadCheckpointState { path: state_path.clone(), reason })?;
        let prefix = path.join(latest);
        if !index_path(&prefix).is_file() {
            return Err(TfError::NoCheckpoint {
                path: path.to_path_buf(),
                reason: format!("'{}' names {}, which has no .index file", state_path.display(), prefix.display()),
            });
        }
        return Ok(prefix);
    }
    if index_path(path).is_file() {
        return Ok(path.to_path_buf());
    }
    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
        let stem = name.strip_suffix(".index").or_else(|| strip_data_suffix(name));
        if let Some(stem) = stem.filter(|s| !s.is_empty()) {
            let prefix = path.with_file_name(stem);
            if index_path(&prefix).is_file() {
                return Ok(prefix);
            }
        }
    }
    Err(TfError::NoCheckpoint {
        path: path.to_path_buf(),
        reason: "neither a directory with a 'checkpoint' file nor a prefix with a .index file".to_string(),
    })
}

/// Refuses a checkpoint whose write was interrupted: a commit journal (`<prefix>.warmstart-commit`) is
/// beside `path` (a prefix, its `.index` or a data file) or in it (a folder).
fn check_not_interrupted(path: &Path) -> Result<(), TfError> {
    let suffix = warmstart_core::journal::JOURNAL_SUFFIX;
    let found = if path.is_dir() {
        std::fs::read_dir(path).ok().into_iter().flatten().flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(suffix) && !name.starts_with('.')
        })
    } else {
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".index").or_else(|| strip_data_suffix(n)));
        let candidates = [Some(path.to_path_buf()), stem.map(|s| path.with_file_name(s))];
        candidates.into_iter().flatten().any(|p| warmstart_core::journal::journal_path(&p).exists())
    };
    if found {
        return Err(TfError::NoCheckpoint {
            path: path.to_path_buf(),
            reason: format!("interrupted write; run `warmstart recover {}`", path.display()),
        });
    }
    Ok(())
}

/// `prefix.index`.
pub fn index_path(prefix: &Path) -> PathBuf {
    append(prefix, ".index")
}

/// `prefix.data-NNNNN-of-NNNNN`.
pub fn data_path(prefix: &Path, shard: u32, num_shards: u32) -> PathBuf {
    append(prefix, &format!(".data-{shard:05}-of-{num_shards:05}"))
}

/// The data files that an earlier checkpoint at `prefix` with another number of shards left
/// (`prefix.data-NNNNN-of-MMMMM` with MMMMM not `num_shards`): the new index does not name them, so the
/// writer's commit retires them.
pub fn stale_shards(prefix: &Path, num_shards: u32) -> Vec<PathBuf> {
    let mut stale = Vec::new();
    let Some(name) = prefix.file_name() else { return stale };
    let dir = match prefix.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return stale };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let other_count = file_name
            .as_encoded_bytes()
            .strip_prefix(name.as_encoded_bytes())
            .and_then(shard_count)
            .is_some_and(|n| n != num_shards);
        if other_count && entry.file_type().is_ok_and(|t| t.is_file()) {
            stale.push(entry.path());
        }
    }
    stale.sort();
    stale
}

/// MMMMM of a data file's suffix `.data-NNNNN-of-MMMMM`, if it is one.
fn shard_count(suffix: &[u8]) -> Option<u32> {
    let five_digits = |b: &[u8]| b.len() == 5 && b.iter().all(u8::is_ascii_digit);
    let rest = suffix.strip_prefix(b".data-")?;
    let (shard, count) = (rest.get(..5)?, rest.get(5..)?.strip_prefix(b"-of-")?);
    if !five_digits(shard) || !five_digits(count) {
        return None;
    }
    std::str::from_utf8(count).ok()?.parse().ok()
}

/// `prefix.meta`.
pub fn meta_path(prefix: &Path) -> PathBuf {
    append(prefix, ".meta")
}

fn append(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `name` without a `.data-NNNNN-of-NNNNN` ending.
fn strip_data_suffix(name: &str) -> Option<&str> {
    let (stem, tail) = name.rsplit_once(".data-")?;
    let (a, b) = tail.split_once("-of-")?;
    let digits = |s: &str| s.len() >= 5 && s.bytes().all(|c| c.is_ascii_digit());
    (digits(a) && digits(b)).then_some(stem)
}

/// The `model_checkpoint_path` of a text-format `CheckpointState`.
pub fn parse_state(text: &[u8]) -> Result<String, StateFileError> {
    let mut lexer = Lexer { s: text, pos: 0 };
    let mut model_path: Option<Vec<u8>> = None;
    while let Some(field) = lexer.ident()? {
        lexer.skip_ws();
        if !lexer.eat(b':') {
            return Err(StateFileError::ExpectedColon { field });
        }
        lexer.skip_ws();
        match field.as_str() {
            "model_checkpoint_path" => model_path = Some(lexer.string()?),
            "all_model_checkpoint_paths" => {
                lexer.string()?;
            }
            "all_model_checkpoint_timestamps" | "last_preserved_timestamp" => lexer.number()?,
            _ => return Err(StateFileError::UnknownField { field }),
        }
    }
    let path = model_path.filter(|p| !p.is_empty()).ok_or(StateFileError::NoModelPath)?;
    String::from_utf8(path).map_err(|_| StateFileError::ModelPathNotUtf8)
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        loop {
            match self.s.get(self.pos) {
                Some(c) if c.is_ascii_whitespace() || *c == b',' || *c == b';' => self.pos += 1,
                Some(b'#') => {
                    while self.s.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Result<Option<String>, StateFileError> {
        self.skip_ws();
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
            self.pos += 1;
        }
        if start == self.pos {
            return match self.s.get(self.pos) {
                None => Ok(None),
                Some(c) => Err(StateFileError::Unexpected { found: *c as char, at: self.pos }),
            };
        }
        Ok(Some(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()))
    }

    fn number(&mut self) -> Result<(), StateFileError> {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c)) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(StateFileError::ExpectedNumber { at: start });
        }
        Ok(())
    }

    /// One or more adjacent quoted strings, C-unescaped and concatenated.
    fn string(&mut self) -> Result<Vec<u8>, StateFileError> {
        let mut out = Vec::new();
        let mut any = false;
        while let Some(&quote) = self.s.get(self.pos).filter(|c| **c == b'"' || **c == b'\'') {
            any = true;
            self.pos += 1;
            loop {
                let c = *self.s.get(self.pos).ok_or(StateFileError::UnterminatedString)?;
                self.pos += 1;
                match c {
                    _ if c == quote => break,
                    b'\n' => return Err(StateFileError::NewlineInString),
                    b'\\' => {
                        let e = *self.s.get(self.pos).ok_or(StateFileError::UnterminatedEscape)?;
                        self.pos += 1;
                        match e {
                            b'n' => out.push(b'\n'),
                            b't' => out.push(b'\t'),
                            b'r' => out.push(b'\r'),
                            b'a' => out.push(7),
                            b'b' => out.push(8),
                            b'f' => out.push(12),
                            b'v' => out.push(11),
                            b'0'..=b'7' => {
                                let mut v = u32::from(e - b'0');
                                for _ in 0..2 {
                                    match self.s.get(self.pos) {
                                        Some(d @ b'0'..=b'7') => {
                                            v = v * 8 + u32::from(d - b'0');
                                            self.pos += 1;
                                        }
                                        _ => break,
                                    }
                                }
                                out.push(u8::try_from(v).map_err(|_| StateFileError::OctalOutOfRange)?);
                            }
                            b'x' => {
                                let mut v = 0u32;
                                let mut n = 0;
                                while let Some(d) = self.s.get(self.pos).and_then(|c| (*c as char).to_digit(16)) {
                                    if n == 2 {
                                        break;
                                    }
                                    v = v * 16 + d;
                                    n += 1;
                                    self.pos += 1;
                                }
                                if n == 0 {
                                    return Err(StateFileError::EmptyHexEscape);
                                }
                                out.push(v as u8);
                            }
                            other => out.push(other),
                        }
                    }
                    other => out.push(other),
                }
            }
            self.skip_ws();
        }
        if !any {
            return Err(StateFileError::ExpectedString { at: self.pos });
        }
        Ok(out)
    }
}

/// The text of a state file naming `prefix_name` (a path relative to the directory) as the only and
/// latest checkpoint, escaped as protobuf text format escapes strings.
pub fn state_text(prefix_name: &str) -> String {
    let mut escaped = String::new();
    for b in prefix_name.bytes() {
        match b {
            b'"' => escaped.push_str("\\\""),
            b'\\' => escaped.push_str("\\\\"),
            b'\'' => escaped.push_str("\\'"),
            b'\n' => escaped.push_str("\\n"),
            b'\r' => escaped.push_str("\\r"),
            b'\t' => escaped.push_str("\\t"),
            0x20..=0x7e => escaped.push(b as char),
            other => escaped.push_str(&format!("\\{other:03o}")),
        }
    }
    format!("model_checkpoint_path: \"{escaped}\"\nall_model_checkpoint_paths: \"{escaped}\"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_journal_means_an_interrupted_write() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("m.ckpt");
        std::fs::write(index_path(&prefix), b"").unwrap();
        std::fs::write(dir.path().join("m.ckpt.warmstart-commit"), b"").unwrap();
        for path in [prefix.clone(), index_path(&prefix), data_path(&prefix, 0, 1), dir.path().to_path_buf()] {
            let err = resolve_prefix(&path).unwrap_err().to_string();
            assert!(err.contains("interrupted write; run `warmstart recover"), "{err}");
        }
    }

    #[test]
    fn stale_shards_are_those_of_other_counts_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "m.ckpt.data-00000-of-00001",
            "m.ckpt.data-00000-of-00003",
            "m.ckpt.data-00002-of-00003",
            "m.ckpt.index",
            "m.ckpt.data-0000-of-00003",
            "m.ckpt.data-00000-of-00003.bak",
            "other.data-00000-of-00003",
            "m.ckpt2.data-00000-of-00003",
        ];
        for name in names {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let stale = stale_shards(&dir.path().join("m.ckpt"), 1);
        let expected = ["m.ckpt.data-00000-of-00003", "m.ckpt.data-00002-of-00003"].map(|n| dir.path().join(n));
        assert_eq!(stale, expected);
    }

    #[test]
    fn parses_tf_state_files() {
        let text = b"model_checkpoint_path: \"model-0\"\nall_model_checkpoint_paths: \"model-0\"\n";
        assert_eq!(parse_state(text).unwrap(), "model-0");
        let newer = b"model_checkpoint_path: \"/a/ckpt-2\"\nall_model_checkpoint_paths: \"/a/ckpt-1\"\n\
            all_model_checkpoint_paths: \"/a/ckpt-2\"\nall_model_checkpoint_timestamps: 1700000000.5\n\
            last_preserved_timestamp: 1.7e+09\n";
        assert_eq!(parse_state(newer).unwrap(), "/a/ckpt-2");
        assert_eq!(parse_state(b"model_checkpoint_path: \"\"\n"), Err(StateFileError::NoModelPath));
        assert_eq!(parse_state(b"model_checkpoint_path: \"unterminated\n"), Err(StateFileError::NewlineInString));
        assert_eq!(parse_state(b""), Err(StateFileError::NoModelPath));
        assert_eq!(
            parse_state(b"model_checkpoint_path \"a\""),
            Err(StateFileError::ExpectedColon { field: "model_checkpoint_path".into() })
        );
        assert_eq!(parse_state(b"x: 1").unwrap_err().to_string(), "unknown field x");
        assert_eq!(parse_state(b"model_checkpoint_path: \"\\x\"").unwrap_err().to_string(), "empty \\x escape");
        assert_eq!(
            parse_state(b"model_checkpoint_path: \"\\777\"").unwrap_err().to_string(),
            "octal escape out of range"
        );
    }

    #[test]
    fn escapes_round_trip() {
        for name in ["model.ckpt-12", "we\"ird\\ name\u{e9}\n"] {
            assert_eq!(parse_state(state_text(name).as_bytes()).unwrap(), name);
        }
    }

    #[test]
    fn data_suffix() {
        assert_eq!(strip_data_suffix("m.data-00000-of-00001"), Some("m"));
        assert_eq!(strip_data_suffix("m.data-0-of-1"), None);
        assert_eq!(strip_data_suffix("m.index"), None);
    }
}
