//! A vocabulary file's lines located in parallel, so that both files of `GenerateVocabRemapping` can be
//! read by all cores: the file is cut at line starts into a few pieces, each piece's newlines are
//! counted (SIMD, `memchr`) and its first empty line searched (`memmem`), which gives every piece the
//! number of its first line and TF's line-iterator checks without visiting the lines one by one.
//! The lines themselves follow TF's `InputBuffer::ReadLine`: split at `\n`, one trailing `\r` stripped,
//! and an empty remainder (nothing, or a lone `\r`) at the end of the file is the end, not a line.

use std::ops::ControlFlow;

use rayon::prelude::*;

/// Bytes of file per piece, below which a file is not cut further.
const MIN_PIECE_BYTES: usize = 64 << 10;

/// Pieces per rayon thread, for balance when pieces take unequal times.
const PIECES_PER_THREAD: usize = 8;

/// `line` without one trailing `\r`.
pub(super) fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A run of whole lines of a file: `start` is the start of a line (or of the file) and `end` is just
/// after a `\n` (or the end of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Piece {
    /// The first byte of the piece.
    pub start: usize,
    /// One past the last byte of the piece.
    pub end: usize,
    /// The number (from 0) of the line the piece starts with.
    pub first_line: usize,
    /// How many lines start in the piece, empty ones included.
    pub lines: usize,
}

/// The first empty line of a file (which TF refuses if it is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EmptyLine {
    /// Its number (from 0): the lines before it are not empty.
    pub index: usize,
    /// The byte offset just after its terminator, as TF's message reports it.
    pub position: usize,
}

/// Where a file's lines are: its pieces, its first empty line, and how many lines it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    /// The pieces, in file order, covering the whole file.
    pub pieces: Vec<Piece>,
    /// The first empty line, if any.
    pub first_empty: Option<EmptyLine>,
    /// How many lines the file has, empty ones included.
    pub lines: usize,
}

/// The start of the first empty line of `piece` (which starts a line), if any.
fn first_empty_start(piece: &[u8]) -> Option<usize> {
    if piece.starts_with(b"\n") || piece.starts_with(b"\r\n") {
        return Some(0);
    }
    // After a `\n` (so at a line start), an empty line is `\n` or `\r\n`; the piece ends with its
    // last line's `\n` (or the file's end, where a lone `\r` is no line), so no empty line starts in
    // it unseen.
    let lf = memchr::memmem::find(piece, b"\n\n");
    let crlf = memchr::memmem::find(&piece[..lf.map_or(piece.len(), |at| at + 2)], b"\n\r\n");
    lf.into_iter().chain(crlf).min().map(|at| at + 1)
}

impl Layout {
    /// Locates the lines of `data`, cut into about `pieces_wanted` pieces (at least one).
    pub fn with_pieces(data: &[u8], pieces_wanted: usize) -> Self {
        let wanted = pieces_wanted.clamp(1, data.len().max(1));
        let mut bounds = vec![0usize];
        for k in 1..wanted {
            // A piece starts at the first line starting at or after byte `k * (len / wanted)`.
            let approx = data.len() / wanted * k;
            if approx <= *bounds.last().unwrap_or(&0) {
                continue;
            }
            // From `approx - 1`, so that a line starting exactly at `approx` starts a piece there.
            match memchr::memchr(b'\n', &data[approx - 1..]) {
                Some(i) if approx + i < data.len() => bounds.push(approx + i),
                _ => break,
            }
        }
        bounds.push(data.len());
        let counted: Vec<(usize, Option<usize>)> = bounds
            .par_windows(2)
            .map(|w| {
                let piece = &data[w[0]..w[1]];
                (memchr::memchr_iter(b'\n', piece).count(), first_empty_start(piece).map(|at| w[0] + at))
            })
            .collect();
        let mut pieces = Vec::with_capacity(counted.len());
        let mut first_empty = None;
        let mut line = 0usize;
        for (w, &(newlines, empty)) in bounds.windows(2).zip(&counted) {
            pieces.push(Piece { start: w[0], end: w[1], first_line: line, lines: newlines });
            if let (None, Some(at)) = (first_empty, empty) {
                let index = line + memchr::memchr_iter(b'\n', &data[w[0]..at]).count();
                let position = if data[at] == b'\n' { at + 1 } else { at + 2 };
                first_empty = Some(EmptyLine { index, position });
            }
            line += newlines;
        }
        // The text after the last `\n` is a line unless it is empty or a lone `\r`.
        let tail = memchr::memrchr(b'\n', data).map_or(data, |i| &data[i + 1..]);
        if !strip_cr(tail).is_empty() {
            line += 1;
            if let Some(last) = pieces.last_mut() {
                last.lines += 1;
            }
        }
        Layout { pieces, first_empty, lines: line }
    }

    /// Locates the lines of `data`, in as many pieces as suit its size and rayon's threads.
    pub fn new(data: &[u8]) -> Self {
        let wanted = (data.len() / MIN_PIECE_BYTES).clamp(1, rayon::current_num_threads() * PIECES_PER_THREAD);
        Self::with_pieces(data, wanted)
    }
}

/// Calls `visit(line number, start offset, line)` with each line of `piece` of `data` in order, until
/// it breaks.
pub(super) fn for_each_line<'a>(
    data: &'a [u8],
    piece: &Piece,
    mut visit: impl FnMut(usize, usize, &'a [u8]) -> ControlFlow<()>,
) {
    let bytes = &data[piece.start..piece.end];
    let mut line = piece.first_line;
    let mut from = 0usize;
    let ended = for_each_newline(bytes, |newline| {
        visit(line, piece.start + from, strip_cr(&bytes[from..newline]))?;
        line += 1;
        from = newline + 1;
        ControlFlow::Continue(())
    });
    let tail = strip_cr(&bytes[from..]);
    if ended.is_continue() && !tail.is_empty() {
        let _ = visit(line, piece.start + from, tail);
    }
}

/// Calls `visit` with the offset of each `\n` of `bytes`, in order, until it breaks.
fn for_each_newline(bytes: &[u8], mut visit: impl FnMut(usize) -> ControlFlow<()>) -> ControlFlow<()> {
    for newline in memchr::memchr_iter(b'\n', bytes) {
        visit(newline)?;
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of `data` with its start and the offset after its terminator, read one by one as
    /// TF's `ReadLine` does.
    fn reference_lines(data: &[u8]) -> Vec<(usize, Vec<u8>, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    out.push((pos, strip_cr(&rest[..i]).to_vec(), pos + i + 1));
                    pos += i + 1;
                }
                None => {
                    if !strip_cr(rest).is_empty() {
                        out.push((pos, strip_cr(rest).to_vec(), data.len()));
                    }
                    break;
                }
            }
        }
        out
    }

    /// All byte strings over `alphabet` up to `max_len` long.
    fn all_strings(alphabet: &[u8], max_len: usize) -> Vec<Vec<u8>> {
        let mut all = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max_len {
            last = last.iter().flat_map(|s: &Vec<u8>| alphabet.iter().map(move |&c| [&s[..], &[c]].concat())).collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn layout_matches_reading_line_by_line() {
        for data in all_strings(b"a\r\n", 7) {
            let expected = reference_lines(&data);
            for wanted in 1..=4 {
                let layout = Layout::with_pieces(&data, wanted);
                assert_eq!(layout.lines, expected.len(), "{data:?}");
                assert_eq!(layout.pieces.first().map(|p| p.start), Some(0));
                assert_eq!(layout.pieces.last().map(|p| p.end), Some(data.len()));
                let mut seen = Vec::new();
                for (k, piece) in layout.pieces.iter().enumerate() {
                    if k > 0 {
                        assert_eq!(piece.start, layout.pieces[k - 1].end);
                        assert_eq!(data[piece.start - 1], b'\n');
                    }
                    assert_eq!(piece.first_line, seen.len());
                    let before = seen.len();
                    for_each_line(&data, piece, |i, start, line| {
                        assert_eq!(i, seen.len());
                        seen.push((start, line.to_vec()));
                        ControlFlow::Continue(())
                    });
                    assert_eq!(piece.lines, seen.len() - before);
                }
                let starts_and_lines: Vec<_> = expected.iter().map(|(s, l, _)| (*s, l.clone())).collect();
                assert_eq!(seen, starts_and_lines, "{data:?} in {wanted} pieces");
                let empty = expected.iter().position(|(_, l, _)| l.is_empty());
                let empty = empty.map(|i| EmptyLine { index: i, position: expected[i].2 });
                assert_eq!(layout.first_empty, empty, "{data:?}");
            }
        }
    }

    #[test]
    fn newline_visits_stop_when_asked() {
        let mut seen = 0;
        let ended = for_each_newline(b"a\nb\nc\n", |_| {
            seen += 1;
            if seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((ended, seen), (ControlFlow::Break(()), 2));
    }

    #[test]
    fn big_file_is_cut_at_line_starts() {
        let data: Vec<u8> = (0..100_000).flat_map(|i| format!("tok{i}\r\n").into_bytes()).collect();
        let layout = Layout::with_pieces(&data, 16);
        assert_eq!(layout.pieces.len(), 16);
        assert_eq!(layout.lines, 100_000);
        assert_eq!(layout.first_empty, None);
        let piece = layout.pieces[5];
        let mut first = None;
        for_each_line(&data, &piece, |i, _, line| {
            first = Some((i, line.to_vec()));
            ControlFlow::Break(())
        });
        assert_eq!(first, Some((piece.first_line, format!("tok{}", piece.first_line).into_bytes())));
    }
}
