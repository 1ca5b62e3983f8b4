//! TF's vocabulary files and `GenerateVocabRemapping`: one token per whole line (`\n`, one trailing
//! `\r` stripped), the text-file table iterator's rules (empty files, empty lines with their byte
//! position, `vocab_size` cuts), the old table's duplicate refusal, and the new-id -> old-id remapping.

use std::collections::HashMap;
use std::hash::BuildHasher;

use rayon::prelude::*;

use crate::settings::VocabFile;
use crate::PlanError;

/// The hasher of the vocabulary tables: foldhash's fast hash, seeded per process, several times faster
/// than SipHash on short tokens.
type TableHasher = foldhash::fast::RandomState;

/// `line` without one trailing `\r`.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One line as TF's `InputBuffer::ReadLine` returns it, and the byte offset after its terminator; `None`
/// at the end of the file.
fn read_line(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = data.get(pos..)?;
    match memchr::memchr(b'\n', rest) {
        Some(i) => Some((strip_cr(&rest[..i]), pos + i + 1)),
        None => {
            // At the end of the file, an empty remainder (nothing, or a lone `\r`) is the end, not a line.
            let line = strip_cr(rest);
            (!line.is_empty()).then_some((line, data.len()))
        }
    }
}

/// Calls `visit` with each line TF's `TextFileLineIterator` hands to a table built from `file` with
/// `vocab_size` (-1 for all), in order, with its refusals; returns how many lines there were. The
/// lines are not stored.
fn for_each_table_line<'a>(
    variable: &str,
    file: &'a VocabFile,
    vocab_size: i64,
    mut visit: impl FnMut(&'a [u8]),
) -> Result<u64, PlanError> {
    if let Some(reason) = &file.unreadable {
        return Err(PlanError::VocabFileUnreadable {
            variable: variable.to_string(),
            file: file.display.clone(),
            reason: reason.clone(),
        });
    }
    let data = &file.contents[..];
    let mut n = 0i64;
    let mut pos = 0usize;
    loop {
        let first = n == 0;
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
                return Ok(n as u64);
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
                    return Ok(n as u64);
                }
                if line.is_empty() {
                    return Err(PlanError::VocabEmptyLine {
                        variable: variable.to_string(),
                        file: file.display.clone(),
                        position: pos as u64,
                    });
                }
                visit(line);
                n += 1;
            }
        }
    }
}

/// The lines TF's `TextFileLineIterator` hands to a table built from `file` with `vocab_size` (-1 for
/// all), with its refusals.
#[cfg(test)]
pub(crate) fn table_lines<'a>(variable: &str, file: &'a VocabFile, vocab_size: i64) -> Result<Vec<&'a [u8]>, PlanError> {
    let mut lines = Vec::new();
    for_each_table_line(variable, file, vocab_size, |line| lines.push(line))?;
    Ok(lines)
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
///
/// The old vocabulary's table is built in parallel (rayon) as [`SHARDS`] hash tables of line numbers,
/// each small enough to stay in cache, split by the tokens' hashes; the old table's first duplicate
/// (in line order) is reported only once the whole file has been accepted, as TF's table
/// initialisation does. The new vocabulary is validated and counted as TF's table does, then its wanted
/// range is looked up in parallel.
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
    let new_count = for_each_table_line(variable, new_vocab, -1, |_| {})?;
    let end = new_vocab_offset.checked_add(num_new_vocab);
    if end.is_none_or(|e| e > new_count) {
        return Err(PlanError::VocabTableTooSmall { variable: variable.to_string(), file: new_vocab.display.clone() });
    }
    // At most one line per `\n` (plus one) of the file already in memory.
    let capacity = memchr::memchr_iter(b'\n', &old_vocab.contents).count() + 1;
    let capacity = match old_vocab_size {
        -1 => capacity,
        size => capacity.min(usize::try_from(size).unwrap_or(usize::MAX)),
    };
    let mut old_lines: Vec<&[u8]> = Vec::with_capacity(capacity);
    for_each_table_line(variable, old_vocab, old_vocab_size, |token| old_lines.push(token))?;
    let table = OldTable::build(&old_lines);
    if let Some((previous, value)) = table.first_duplicate {
        return Err(PlanError::VocabDuplicateToken {
            variable: variable.to_string(),
            file: old_vocab.display.clone(),
            key: String::from_utf8_lossy(old_lines[value]).into_owned(),
            previous: previous as i64,
            value: value as i64,
        });
    }
    // Checked above: offset + num_new_vocab <= the lines of the file, which is in memory.
    let (skip, take) = (new_vocab_offset as usize, num_new_vocab as usize);
    let mut wanted: Vec<&[u8]> = Vec::with_capacity(take);
    let (data, mut pos, mut seen) = (&new_vocab.contents[..], 0usize, 0usize);
    while wanted.len() < take {
        let Some((line, next)) = read_line(data, pos) else { break };
        pos = next;
        if seen >= skip {
            wanted.push(line);
        }
        seen += 1;
    }
    let remapping: Vec<i64> = wanted.par_iter().map(|token| table.get(&old_lines, token)).collect();
    let num_present = remapping.iter().filter(|&&id| id != -1).count() as u64;
    Ok(VocabRemapping { remapping, num_present })
}

/// One shard of the old vocabulary's table: line numbers, hashed by their tokens.
type ShardTable = hashbrown::HashTable<usize>;

/// Shards of the old vocabulary's table.
const SHARDS: usize = 64;

/// The old vocabulary's table: token -> first line number, as [`SHARDS`] hash tables of line numbers
/// chosen by middle bits of the token's hash.
struct OldTable {
    hasher: TableHasher,
    shards: Vec<ShardTable>,
    /// The first line (in file order) whose token an earlier line already had, as `(earlier, line)`.
    first_duplicate: Option<(usize, usize)>,
}

impl OldTable {
    /// Bits 40.. of the hash: hashbrown takes a table's bucket from the low bits and its tag from
    /// the top seven, which must stay independent of the shard.
    fn shard_of(hash: u64) -> usize {
        (hash >> 40) as usize % SHARDS
    }

    fn build(lines: &[&[u8]]) -> Self {
        let hasher = TableHasher::default();
        let hashes: Vec<u64> = lines.par_iter().map(|token| hasher.hash_one(token)).collect();
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); SHARDS];
        for (i, &h) in hashes.iter().enumerate() {
            members[Self::shard_of(h)].push(i);
        }
        // A token's lines all fall in one shard, in file order there.
        let built: Vec<(ShardTable, Option<(usize, usize)>)> = members
            .par_iter()
            .map(|lines_of_shard| {
                let mut table = hashbrown::HashTable::with_capacity(lines_of_shard.len());
                let mut duplicate = None;
                for &i in lines_of_shard {
                    let h = hashes[i];
                    match table.find(h, |&j: &usize| lines[j] == lines[i]) {
                        Some(&j) => {
                            duplicate = duplicate.or(Some((j, i)));
                        }
                        None => {
                            table.insert_unique(h, i, |&j: &usize| hashes[j]);
                        }
                    }
                }
                (table, duplicate)
            })
            .collect();
        let first_duplicate = built.iter().filter_map(|(_, d)| *d).min_by_key(|&(_, i)| i);
        OldTable { hasher, shards: built.into_iter().map(|(t, _)| t).collect(), first_duplicate }
    }

    /// The line of `token` in the old vocabulary (`lines`, as built), or -1.
    fn get(&self, lines: &[&[u8]], token: &[u8]) -> i64 {
        let h = self.hasher.hash_one(token);
        self.shards[Self::shard_of(h)].find(h, |&j| lines[j] == token).map_or(-1, |&j| j as i64)
    }
}

/// TF's `RemapVectorToMap` check: no old id may be used by two new ids. Ids within a few times the
/// remapping's length are checked in a dense table, others in a hash map.
pub(crate) fn check_unique_old_ids(variable: &str, remapping: &[i64]) -> Result<(), PlanError> {
    let Some(max) = remapping.iter().copied().filter(|&id| id >= 0).max() else { return Ok(()) };
    let twice = |old_id: i64, first: i64, second: usize| PlanError::OldIdMappedTwice {
        variable: variable.to_string(),
        old_id,
        first,
        second: second as i64,
    };
    let dense_limit = (remapping.len() as u64).saturating_mul(4).saturating_add(1024);
    if (max as u64) < dense_limit && remapping.len() < u32::MAX as usize {
        // first[old] = 1 + the first new index using `old`, 0 if none yet.
        let mut first = vec![0u32; max as usize + 1];
        for (i, &old) in remapping.iter().enumerate() {
            if old < 0 {
                continue;
            }
            let slot = &mut first[old as usize];
            if *slot != 0 {
                return Err(twice(old, i64::from(*slot - 1), i));
            }
            *slot = i as u32 + 1;
        }
        return Ok(());
    }
    let mut seen: HashMap<i64, i64, TableHasher> = HashMap::default();
    for (i, &old) in remapping.iter().enumerate() {
        if old < 0 {
            continue;
        }
        if let Some(&first) = seen.get(&old) {
            return Err(twice(old, first, i));
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
