//! TF's vocabulary files and `GenerateVocabRemapping`: one token per whole line (`\n`, one trailing
//! `\r` stripped), the text-file table iterator's rules (empty files, empty lines with their byte
//! position, `vocab_size` cuts), the old table's duplicate refusal, and the new-id -> old-id remapping.

use std::collections::HashMap;

use crate::settings::VocabFile;
use crate::PlanError;

mod lines;
mod table;

use lines::Layout;
use table::TableHasher;

/// How many lines TF's `TextFileLineIterator` hands to a table built from `file` (whose lines are
/// `layout`) with `vocab_size` (-1 for all), or its refusal. Equivalent to reading the lines one by
/// one: the lines before the first empty line are not empty, and the first empty line is refused only
/// if it is read.
fn table_line_count(variable: &str, file: &VocabFile, layout: &Layout, vocab_size: i64) -> Result<usize, PlanError> {
    if let Some(reason) = &file.unreadable {
        return Err(PlanError::VocabFileUnreadable {
            variable: variable.to_string(),
            file: file.display.clone(),
            reason: reason.clone(),
        });
    }
    // The lines read: all of them (up to an empty one), or `vocab_size`; -1 and below take all.
    let limit = usize::try_from(vocab_size).ok().filter(|_| vocab_size != -1);
    if let Some(empty) = layout.first_empty {
        if limit.is_none_or(|limit| empty.index < limit) {
            return Err(PlanError::VocabEmptyLine {
                variable: variable.to_string(),
                file: file.display.clone(),
                position: empty.position as u64,
            });
        }
    }
    match limit {
        // A line beyond the limit is read and stops the iterator.
        Some(0) if layout.lines > 0 => Err(PlanError::VocabFinishedReading {
            variable: variable.to_string(),
            file: file.display.clone(),
            size: vocab_size,
        }),
        Some(limit) if layout.lines > limit => Ok(limit),
        _ if vocab_size != -1 && layout.lines as u64 != vocab_size as u64 => Err(PlanError::VocabSizeInvalid {
            variable: variable.to_string(),
            file: file.display.clone(),
            expected: vocab_size,
            got: layout.lines as i64,
        }),
        _ if layout.lines == 0 => {
            Err(PlanError::VocabFileEmpty { variable: variable.to_string(), file: file.display.clone() })
        }
        _ => Ok(layout.lines),
    }
}

/// The lines TF's `TextFileLineIterator` hands to a table built from `file` with `vocab_size` (-1 for
/// all), with its refusals.
#[cfg(test)]
pub(crate) fn table_lines<'a>(
    variable: &str,
    file: &'a VocabFile,
    vocab_size: i64,
) -> Result<Vec<&'a [u8]>, PlanError> {
    let layout = Layout::with_pieces(&file.contents, 3);
    let count = table_line_count(variable, file, &layout, vocab_size)?;
    let mut out = Vec::new();
    for piece in &layout.pieces {
        lines::for_each_line(&file.contents, piece, |_, _, line| {
            out.push(line);
            std::ops::ControlFlow::Continue(())
        });
    }
    out.truncate(count);
    Ok(out)
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
/// Both files are read in parallel pieces (rayon; see `lines`), checked as TF's table iterator checks
/// them, the old vocabulary's table built and its first duplicate (in line order) reported as TF's
/// table initialisation does, then the wanted range of the new vocabulary looked up in parallel
/// batches (see `table`).
pub fn generate_vocab_remapping(
    variable: &str,
    new_vocab: &VocabFile,
    old_vocab: &VocabFile,
    new_vocab_offset: u64,
    num_new_vocab: u64,
    old_vocab_size: i64,
) -> Result<VocabRemapping, PlanError> {
    let args = (new_vocab_offset, num_new_vocab, old_vocab_size);
    generate_vocab_remapping_in(variable, new_vocab, old_vocab, args, Layout::new)
}

/// [`generate_vocab_remapping`] with the files cut into pieces by `layout`.
fn generate_vocab_remapping_in(
    variable: &str,
    new_vocab: &VocabFile,
    old_vocab: &VocabFile,
    (new_vocab_offset, num_new_vocab, old_vocab_size): (u64, u64, i64),
    layout: impl Fn(&[u8]) -> Layout + Sync,
) -> Result<VocabRemapping, PlanError> {
    if old_vocab_size < -1 {
        return Err(PlanError::OldVocabSizeBelowMinimum { variable: variable.to_string(), size: old_vocab_size });
    }
    let (new_layout, old_layout) = rayon::join(|| layout(&new_vocab.contents), || layout(&old_vocab.contents));
    let new_count = table_line_count(variable, new_vocab, &new_layout, -1)?;
    let end = new_vocab_offset.checked_add(num_new_vocab);
    if end.is_none_or(|e| e > new_count as u64) {
        return Err(PlanError::VocabTableTooSmall { variable: variable.to_string(), file: new_vocab.display.clone() });
    }
    // Checked above: offset + num_new_vocab <= the lines of the file, which is in memory.
    let (skip, take) = (new_vocab_offset as usize, num_new_vocab as usize);
    let old_count = table_line_count(variable, old_vocab, &old_layout, old_vocab_size)?;
    let wanted = skip..skip + take;
    let (remapping, found) =
        table::remap(&old_vocab.contents, &old_layout, old_count, &new_vocab.contents, &new_layout, wanted).map_err(
            |duplicate| PlanError::VocabDuplicateToken {
                variable: variable.to_string(),
                file: old_vocab.display.clone(),
                key: String::from_utf8_lossy(duplicate.token).into_owned(),
                previous: duplicate.previous as i64,
                value: duplicate.line as i64,
            },
        )?;
    Ok(VocabRemapping { remapping, num_present: found as u64 })
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
    // Ids below this are checked in a bitset (at most 8 bytes per entry, as the remapping itself):
    // 125 KB for W1's million ids, which stays in cache, where a table of first users took 4 MB.
    let dense_limit = (remapping.len() as u64).saturating_mul(64).saturating_add(1 << 16);
    if (max as u64) < dense_limit {
        let mut used = vec![0u64; max as usize / 64 + 1];
        for (i, &old) in remapping.iter().enumerate() {
            if old < 0 {
                continue;
            }
            let (word, bit) = (&mut used[old as usize / 64], 1u64 << (old % 64));
            if *word & bit != 0 {
                // The error path only: the first user is found again.
                let first = remapping[..i].iter().position(|&o| o == old).unwrap_or(i);
                return Err(twice(old, first as i64, i));
            }
            *word |= bit;
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

    /// TF's `TextFileLineIterator` read one line at a time, as `ReadLine` and the iterator do: the
    /// reference the parallel reading is checked against.
    fn sequential_table_lines<'a>(
        variable: &str,
        file: &'a VocabFile,
        vocab_size: i64,
    ) -> Result<Vec<&'a [u8]>, PlanError> {
        let data = &file.contents[..];
        let mut out: Vec<&[u8]> = Vec::new();
        let mut pos = 0usize;
        loop {
            let n = out.len() as i64;
            let line = data.get(pos..).and_then(|rest| match memchr::memchr(b'\n', rest) {
                Some(i) => Some((lines::strip_cr(&rest[..i]), pos + i + 1)),
                None => Some((lines::strip_cr(rest), data.len())).filter(|(l, _)| !l.is_empty()),
            });
            let Some((line, next)) = line else {
                if vocab_size != -1 && n != vocab_size {
                    let (file, expected, got) = (file.display.clone(), vocab_size, n);
                    return Err(PlanError::VocabSizeInvalid { variable: variable.to_string(), file, expected, got });
                }
                if n == 0 {
                    return Err(PlanError::VocabFileEmpty {
                        variable: variable.to_string(),
                        file: file.display.clone(),
                    });
                }
                return Ok(out);
            };
            pos = next;
            if vocab_size != -1 && n >= vocab_size {
                if n == 0 {
                    let (file, size) = (file.display.clone(), vocab_size);
                    return Err(PlanError::VocabFinishedReading { variable: variable.to_string(), file, size });
                }
                return Ok(out);
            }
            if line.is_empty() {
                let (file, position) = (file.display.clone(), pos as u64);
                return Err(PlanError::VocabEmptyLine { variable: variable.to_string(), file, position });
            }
            out.push(line);
        }
    }

    #[test]
    fn parallel_reading_matches_sequential() {
        let mut all = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..7 {
            last =
                last.iter().flat_map(|s: &Vec<u8>| b"ab\r\n".iter().map(move |&c| [&s[..], &[c]].concat())).collect();
            all.extend(last.iter().cloned());
        }
        for data in all {
            let f = VocabFile::new("f.txt", data.clone());
            for size in -1..6 {
                let expected = sequential_table_lines("v", &f, size).map_err(|e| e.to_string());
                assert_eq!(table_lines("v", &f, size).map_err(|e| e.to_string()), expected, "{data:?} {size}");
            }
        }
    }

    /// `GenerateVocabRemapping` done the plain way: lines read one by one, a `HashMap` of the old ones.
    fn reference_remapping(
        new: &VocabFile,
        old: &VocabFile,
        args: (u64, u64, i64),
    ) -> Result<VocabRemapping, PlanError> {
        let (offset, num, old_size) = args;
        if old_size < -1 {
            return Err(PlanError::OldVocabSizeBelowMinimum { variable: "v".into(), size: old_size });
        }
        let new_lines = sequential_table_lines("v", new, -1)?;
        let wanted = new_lines.get(offset as usize..(offset + num) as usize);
        let wanted = wanted.ok_or(PlanError::VocabTableTooSmall { variable: "v".into(), file: new.display.clone() })?;
        let mut table = HashMap::new();
        for (value, token) in sequential_table_lines("v", old, old_size)?.into_iter().enumerate() {
            if let Some(&previous) = table.get(token) {
                let (file, key) = (old.display.clone(), String::from_utf8_lossy(token).into_owned());
                return Err(PlanError::VocabDuplicateToken {
                    variable: "v".into(),
                    file,
                    key,
                    previous,
                    value: value as i64,
                });
            }
            table.insert(token, value as i64);
        }
        let remapping: Vec<i64> = wanted.iter().map(|t| table.get(t).copied().unwrap_or(-1)).collect();
        let num_present = remapping.iter().filter(|&&id| id >= 0).count() as u64;
        Ok(VocabRemapping { remapping, num_present })
    }

    #[test]
    fn remapping_matches_reading_line_by_line() {
        // Random small vocabularies over {a, b, c, \r}, with empty lines, duplicates, CRLF, and cuts,
        // read in 1 to 6 pieces.
        struct Lcg(u64);
        impl Lcg {
            fn below(&mut self, n: u64) -> u64 {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (self.0 >> 33) % n
            }
            fn file(&mut self) -> VocabFile {
                let mut s = Vec::new();
                for _ in 0..2 + self.below(14) {
                    let len = if self.below(60) == 0 { 0 } else { 1 + self.below(3) };
                    for _ in 0..len {
                        s.push(if self.below(30) == 0 { b'\r' } else { b"abc"[self.below(3) as usize] });
                    }
                    s.extend_from_slice(if self.below(6) == 0 { b"\r\n" } else { b"\n" });
                }
                if self.below(3) == 0 {
                    s.pop();
                }
                VocabFile::new(format!("f{}.txt", self.below(2)), s)
            }
        }
        let mut rng = Lcg(0x9E37_79B9_7F4A_7C15);
        // How many cases ended in each outcome: found some tokens, duplicate, other refusals.
        let mut outcomes = [0usize; 3];
        for case in 0..6000 {
            let (old, new) = (rng.file(), rng.file());
            let old_size = if rng.below(2) == 0 { -1 } else { rng.below(14) as i64 - 2 };
            let args = (rng.below(3), rng.below(8), old_size);
            let expected = reference_remapping(&new, &old, args);
            outcomes[match &expected {
                Ok(r) if r.num_present > 0 => 0,
                Err(PlanError::VocabDuplicateToken { .. }) => 1,
                _ => 2,
            }] += 1;
            // Debug: every field of a refusal, not only those its message shows.
            let expected = expected.map_err(|e| format!("{e:?}"));
            let pieces = 1 + case % 6;
            let got = generate_vocab_remapping_in("v", &new, &old, args, |d| Layout::with_pieces(d, pieces));
            assert_eq!(
                got.map_err(|e| format!("{e:?}")),
                expected,
                "old {:?} new {:?} {args:?}",
                old.contents,
                new.contents
            );
        }
        assert!(outcomes.iter().all(|&n| n > 300), "{outcomes:?}");
    }

    #[test]
    fn remapping_matches_tf_on_duplicates_and_cuts() {
        // The first repeat in file order (line 4 repeats line 2), not the first repeated token.
        let e = generate_vocab_remapping("v", &file("a"), &file("x\ny\nz\nw\nz\nx"), 0, 1, -1).unwrap_err();
        assert!(matches!(&e, PlanError::VocabDuplicateToken { key, previous: 2, value: 4, .. } if key == "z"), "{e:?}");
        // A cut before the duplicate: no refusal, and the lines after the cut are not in the table.
        let r = generate_vocab_remapping("v", &file("w\nz\nq\nx"), &file("x\ny\nz\nw\nz\nx"), 1, 3, 4).unwrap();
        assert_eq!(r.remapping, [2, -1, 0]);
        assert_eq!(r.num_present, 2);
        // `\r\n` lines match plain ones.
        let r = generate_vocab_remapping("v", &file("b\r\na\r\n"), &file("a\nb"), 0, 2, -1).unwrap();
        assert_eq!(r.remapping, [1, 0]);
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
        let e = check_unique_old_ids("v", &[3, -1, 1, 3]).unwrap_err();
        assert_eq!(e.to_string(), "Old ID 3 is mapped to both new ID 0 and 3, which is not supported.");
        // Far ids go through the hash map, with the same answers.
        let far = 1i64 << 40;
        let e = check_unique_old_ids("v", &[far, -1, 1, far]).unwrap_err();
        assert_eq!(e.to_string(), format!("Old ID {far} is mapped to both new ID 0 and 3, which is not supported."));
        assert!(check_unique_old_ids("v", &[far, 63, 64, 0, -1, -1]).is_ok());
        let e = check_unique_old_ids("v", &[5, 63, 64, 0, 127, 64]).unwrap_err();
        assert_eq!(e.to_string(), "Old ID 64 is mapped to both new ID 2 and 5, which is not supported.");
    }
}
