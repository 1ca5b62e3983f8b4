//! TF's vocabulary files and `GenerateVocabRemapping`: one token per whole line (`\n`, one trailing
//! `\r` stripped), the text-file table iterator's rules (empty files, empty lines with their byte
//! position, `vocab_size` cuts), the old table's duplicate refusal, and the new-id -> old-id remapping.

use std::collections::HashMap;

use crate::settings::VocabFile;
use crate::PlanError;

/// One line as TF's `InputBuffer::ReadLine` returns it, and the byte offset after its terminator; `None`
/// at the end of the file.
fn read_line(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = data.get(pos..)?;
    let (mut line, next) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], pos + i + 1),
        None => (rest, data.len()),
    };
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    // At the end of the file, an empty remainder (nothing, or a lone `\r`) is the end, not a line.
    if next == data.len() && !rest.contains(&b'\n') && line.is_empty() {
        return None;
    }
    Some((line, next))
}

/// The lines TF's `TextFileLineIterator` hands to a table built from `file` with `vocab_size` (-1 for
/// all), with its refusals.
pub(crate) fn table_lines<'a>(
    variable: &str,
    file: &'a VocabFile,
    vocab_size: i64,
) -> Result<Vec<&'a [u8]>, PlanError> {
    if let Some(reason) = &file.unreadable {
        return Err(PlanError::VocabFileUnreadable {
            variable: variable.to_string(),
            file: file.display.clone(),
            reason: reason.clone(),
        });
    }
    let data = &file.contents[..];
    let mut lines = Vec::new();
    let mut pos = 0usize;
    loop {
        let first = lines.is_empty();
        let n = lines.len() as i64;
        match read_line(data, pos) {
            None => {
                if vocab_size != -1 && n != vocab_size {
                    return Err(PlanError::VocabSizeInvalid {
                        variable: variable.to_string(),
                        file: file.display.clone(),
                        expected: vocab_size,
                        got: n,
                    });
                }
                if first {
                    return Err(PlanError::VocabFileEmpty {
                        variable: variable.to_string(),
                        file: file.display.clone(),
                    });
                }
                return Ok(lines);
            }
            Some((line, next)) => {
                pos = next;
                if vocab_size != -1 && n >= vocab_size {
                    if first {
                        return Err(PlanError::VocabFinishedReading {
                            variable: variable.to_string(),
                            file: file.display.clone(),
                            size: vocab_size,
                        });
                    }
                    return Ok(lines);
                }
                if line.is_empty() {
                    return Err(PlanError::VocabEmptyLine {
                        variable: variable.to_string(),
                        file: file.display.clone(),
                        position: pos as u64,
                    });
                }
                lines.push(line);
            }
        }
    }
}

/// The result of `GenerateVocabRemapping`: for each new id, its old id or -1, and how many were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabRemapping {
    /// `remapping[i]` is the old line of new entry `offset + i`, or -1.
    pub remapping: Vec<i64>,
    /// The entries that are not -1.
    pub num_present: u64,
}

/// TF's `GenerateVocabRemapping(new_vocab_file, old_vocab_file, new_vocab_offset, num_new_vocab,
/// old_vocab_size)`.
pub fn generate_vocab_remapping(
    variable: &str,
    new_vocab: &VocabFile,
    old_vocab: &VocabFile,
    new_vocab_offset: u64,
    num_new_vocab: u64,
    old_vocab_size: i64,
) -> Result<VocabRemapping, PlanError> {
    if old_vocab_size < -1 {
        return Err(PlanError::OldVocabSizeBelowMinimum { variable: variable.to_string(), size: old_vocab_size });
    }
    let new_lines = table_lines(variable, new_vocab, -1)?;
    let end = new_vocab_offset.checked_add(num_new_vocab);
    if end.is_none_or(|e| e > new_lines.len() as u64) {
        return Err(PlanError::VocabTableTooSmall { variable: variable.to_string(), file: new_vocab.display.clone() });
    }
    let old_lines = table_lines(variable, old_vocab, old_vocab_size)?;
    let mut old_ids: HashMap<&[u8], i64> = HashMap::with_capacity(old_lines.len());
    for (i, token) in old_lines.iter().enumerate() {
        if let Some(&previous) = old_ids.get(token) {
            return Err(PlanError::VocabDuplicateToken {
                variable: variable.to_string(),
                file: old_vocab.display.clone(),
                key: String::from_utf8_lossy(token).into_owned(),
                previous,
                value: i as i64,
            });
        }
        old_ids.insert(token, i as i64);
    }
    let start = new_vocab_offset as usize;
    let remapping: Vec<i64> = new_lines[start..start + num_new_vocab as usize]
        .iter()
        .map(|t| old_ids.get(t).copied().unwrap_or(-1))
        .collect();
    let num_present = remapping.iter().filter(|&&id| id != -1).count() as u64;
    Ok(VocabRemapping { remapping, num_present })
}

/// TF's `RemapVectorToMap` check: no old id may be used by two new ids.
pub(crate) fn check_unique_old_ids(variable: &str, remapping: &[i64]) -> Result<(), PlanError> {
    let mut seen: HashMap<i64, i64> = HashMap::new();
    for (i, &old) in remapping.iter().enumerate() {
        if old < 0 {
            continue;
        }
        if let Some(&first) = seen.get(&old) {
            return Err(PlanError::OldIdMappedTwice {
                variable: variable.to_string(),
                old_id: old,
                first,
                second: i as i64,
            });
        }
        seen.insert(old, i as i64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str) -> VocabFile {
        VocabFile::new("f.txt", s.as_bytes())
    }

    fn lines(s: &str, size: i64) -> Result<Vec<String>, PlanError> {
        let f = file(s);
        table_lines("v", &f, size).map(|l| l.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect())
    }

    #[test]
    fn line_rules() {
        assert_eq!(lines("a\nb", -1).unwrap(), ["a", "b"]);
        assert_eq!(lines("a\nb\n", -1).unwrap(), ["a", "b"]);
        assert_eq!(lines("a\r\nb\r\n", -1).unwrap(), ["a", "b"]);
        assert_eq!(lines("a \nb", -1).unwrap(), ["a ", "b"]);
        assert_eq!(lines("a\nb\nc", 2).unwrap(), ["a", "b"]);
        assert_eq!(lines("a\nb\n\n", 2).unwrap(), ["a", "b"]);
    }

    #[test]
    fn refusals_carry_tf_text() {
        let e = lines("orange\nguava\n\nx", -1).unwrap_err();
        assert_eq!(e.to_string(), "Invalid content in f.txt: empty line found at position 14.");
        assert_eq!(lines("", -1).unwrap_err().to_string(), "Read less bytes than requested");
        assert_eq!(lines("a\nb", 0).unwrap_err().to_string(), "Finished reading 0 of lines from f.txt");
        assert_eq!(lines("a\nb", 9).unwrap_err().to_string(), "Invalid vocab_size in f.txt: expected 9 but got 2");
    }

    #[test]
    fn remapping_doc_example() {
        let r = generate_vocab_remapping("v", &file("f0\nf1\nf2\nf3"), &file("f1\nf0\nf3"), 1, 3, -1).unwrap();
        assert_eq!(r.remapping, [0, -1, 2]);
        assert_eq!(r.num_present, 2);
        let e = generate_vocab_remapping("v", &file("a\nb"), &file("a\nb\na"), 0, 2, -1).unwrap_err();
        assert!(e.to_string().starts_with("HashTable has different value for same key. Key a has 0"));
        assert!(check_unique_old_ids("v", &[3, 1, 3]).is_err());
    }
}
