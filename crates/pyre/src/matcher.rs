//! The backtracking matcher: continuation passing over the compiled [`Op`]s, with sre's semantics
//! (alternatives in order, greedy/lazy/possessive repeats with sre's zero-width iteration rule, marks
//! restored on backtracking) and a step budget.

use crate::ast::Category;
use crate::compile::{Anchor, Cat, Fold, Op, Set, Tail, UNBOUNDED};
use crate::error::MatchError;
use crate::unicode::{ascii_lower, is_alnum, is_ascii_word, is_decimal, is_space, to_lower, to_upper_astral};

/// How deep the matcher's recursion may go before it gives up (each level is a few stack frames).
pub const MAX_DEPTH: usize = 3000;

type Res = Result<bool, MatchError>;
type K<'k> = &'k mut dyn FnMut(usize, &mut Ctx<'_>) -> Res;

/// The state of one match.
pub(crate) struct Ctx<'t> {
    pub(crate) text: &'t [u32],
    /// Start and end mark of each group (index 2g and 2g+1).
    pub(crate) marks: Vec<Option<usize>>,
    pub(crate) steps: u64,
    pub(crate) budget: u64,
    depth: usize,
}

impl<'t> Ctx<'t> {
    pub(crate) fn new(text: &'t [u32], groups: usize, budget: u64) -> Self {
        Ctx { text, marks: vec![None; 2 * groups], steps: 0, budget, depth: 0 }
    }
    pub(crate) fn step(&mut self) -> Result<(), MatchError> {
        self.steps += 1;
        if self.steps > self.budget {
            let text = self.text.iter().filter_map(|&c| char::from_u32(c)).collect();
            return Err(MatchError::BudgetExceeded { budget: self.budget, text });
        }
        Ok(())
    }
    fn group(&self, g: usize) -> Option<(usize, usize)> {
        match (self.marks.get(2 * g).copied().flatten(), self.marks.get(2 * g + 1).copied().flatten()) {
            (Some(s), Some(e)) if e >= s => Some((s, e)),
            _ => None,
        }
    }
}

fn fold(f: Fold, c: u32) -> u32 {
    match f {
        Fold::None => c,
        Fold::Ascii => ascii_lower(c),
        Fold::Unicode => to_lower(c),
    }
}

fn is_word(c: u32, ascii: bool) -> bool {
    if ascii {
        is_ascii_word(c)
    } else {
        is_alnum(c) || c == u32::from(b'_')
    }
}

fn category(cat: Cat, c: u32) -> bool {
    let a = cat.ascii;
    match cat.cat {
        Category::Digit => digit(c, a),
        Category::NotDigit => !digit(c, a),
        Category::Space => space(c, a),
        Category::NotSpace => !space(c, a),
        Category::Word => is_word(c, a),
        Category::NotWord => !is_word(c, a),
    }
}

fn digit(c: u32, ascii: bool) -> bool {
    if ascii {
        (0x30..=0x39).contains(&c)
    } else {
        is_decimal(c)
    }
}

fn space(c: u32, ascii: bool) -> bool {
    if ascii {
        matches!(c, 0x20 | 0x09..=0x0d)
    } else {
        is_space(c)
    }
}

fn in_set(set: &Set, c: u32) -> bool {
    let c = fold(set.fold, c);
    let in_map = set.map.binary_search_by(|&(lo, hi)| {
        if hi < c {
            std::cmp::Ordering::Less
        } else if lo > c {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let hit = in_map.is_ok()
        || set.tail.iter().any(|t| match *t {
            Tail::Literal(l) => l == c,
            Tail::Range(a, b) => (a..=b).contains(&c),
            Tail::RangeUpper(a, b) => (a..=b).contains(&c) || (a..=b).contains(&to_upper_astral(c)),
            Tail::Cat(cat) => category(cat, c),
        });
    hit != set.negate
}

/// Whether the one-character op matches character `c`.
fn one(op: &Op, c: u32) -> bool {
    match op {
        Op::Literal { code, fold: f, not } => (fold(*f, c) == *code) != *not,
        Op::Set(set) => in_set(set, c),
        Op::Any { all } => *all || c != u32::from(b'\n'),
        Op::Seq(body) => body.first().is_some_and(|o| one(o, c)),
        _ => false,
    }
}

fn anchor(a: Anchor, text: &[u32], pos: usize) -> bool {
    let nl = u32::from(b'\n');
    let n = text.len();
    match a {
        Anchor::Beginning => pos == 0,
        Anchor::BeginningLine => pos == 0 || text[pos - 1] == nl,
        Anchor::End => pos == n || (pos + 1 == n && text[pos] == nl),
        Anchor::EndLine => pos == n || text[pos] == nl,
        Anchor::EndString => pos == n,
        Anchor::Boundary { ascii } | Anchor::NonBoundary { ascii } => {
            if n == 0 {
                return false;
            }
            let before = pos > 0 && is_word(text[pos - 1], ascii);
            let after = pos < n && is_word(text[pos], ascii);
            (before != after) == matches!(a, Anchor::Boundary { .. })
        }
    }
}

/// Matches `ops` at `pos`, then the continuation `k`.
pub(crate) fn seq(ops: &[Op], pos: usize, cx: &mut Ctx<'_>, k: K<'_>) -> Res {
    match ops {
        [] => k(pos, cx),
        [only] => node(only, pos, cx, k),
        [first, rest @ ..] => {
            cx.depth += 1;
            if cx.depth > MAX_DEPTH {
                return Err(MatchError::TooDeep { depth: MAX_DEPTH, len: cx.text.len() });
            }
            let r = node(first, pos, cx, &mut |p, cx| seq(rest, p, cx, k));
            cx.depth -= 1;
            r
        }
    }
}

fn node(op: &Op, pos: usize, cx: &mut Ctx<'_>, k: K<'_>) -> Res {
    cx.step()?;
    match op {
        Op::Literal { .. } | Op::Set(_) | Op::Any { .. } => match cx.text.get(pos) {
            Some(&c) if one(op, c) => k(pos + 1, cx),
            _ => Ok(false),
        },
        Op::Anchor(a) => {
            if anchor(*a, cx.text, pos) {
                k(pos, cx)
            } else {
                Ok(false)
            }
        }
        Op::Seq(body) => seq(body, pos, cx, k),
        Op::Branch(alts) => {
            for alt in alts {
                if seq(alt, pos, cx, k)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Op::Group { index, body } => group(*index, body, pos, cx, k),
        Op::Atomic(body) => atomic(body, pos, cx, k),
        Op::Repeat { greed, min, max, body } => crate::repeat::repeat(*greed, *min, *max, body, pos, cx, k),
        Op::GroupRef { group, fold: f } => backref(*group, *f, pos, cx, k),
        Op::GroupRefExists { group, yes, no } => {
            let branch = if cx.group(*group).is_some() { yes } else { no };
            seq(branch, pos, cx, k)
        }
        Op::Assert { behind, negate, body } => assert(*behind, *negate, body, pos, cx, k),
    }
}

fn group(index: usize, body: &[Op], pos: usize, cx: &mut Ctx<'_>, k: K<'_>) -> Res {
    let (s, e) = (2 * index, 2 * index + 1);
    let old_start = cx.marks[s];
    cx.marks[s] = Some(pos);
    let r = seq(body, pos, cx, &mut |p, cx| {
        let old_end = cx.marks[e];
        cx.marks[e] = Some(p);
        if k(p, cx)? {
            return Ok(true);
        }
        cx.marks[e] = old_end;
        Ok(false)
    })?;
    if !r {
        cx.marks[s] = old_start;
    }
    Ok(r)
}

/// The first way `body` matches at `pos` (its end), keeping the marks it set; `None` if none.
pub(crate) fn once(body: &[Op], pos: usize, cx: &mut Ctx<'_>) -> Result<Option<usize>, MatchError> {
    let mut end = None;
    seq(body, pos, cx, &mut |p, _| {
        end = Some(p);
        Ok(true)
    })?;
    Ok(end)
}

fn atomic(body: &[Op], pos: usize, cx: &mut Ctx<'_>, k: K<'_>) -> Res {
    let saved = cx.marks.clone();
    let Some(end) = once(body, pos, cx)? else { return Ok(false) };
    if k(end, cx)? {
        return Ok(true);
    }
    cx.marks = saved;
    Ok(false)
}

fn assert(behind: Option<usize>, negate: bool, body: &[Op], pos: usize, cx: &mut Ctx<'_>, k: K<'_>) -> Res {
    let start = match behind {
        Some(w) if w > pos => None,
        Some(w) => Some(pos - w),
        None => Some(pos),
    };
    let saved = cx.marks.clone();
    let matched = match start {
        Some(s) => once(body, s, cx)?.is_some(),
        None => false,
    };
    if matched == negate {
        cx.marks = saved;
        return Ok(false);
    }
    if k(pos, cx)? {
        return Ok(true);
    }
    cx.marks = saved;
    Ok(false)
}

fn backref(group: usize, f: Fold, pos: usize, cx: &mut Ctx<'_>, k: K<'_>) -> Res {
    let Some((s, e)) = cx.group(group) else { return Ok(false) };
    let len = e - s;
    if pos + len > cx.text.len() {
        return Ok(false);
    }
    let same = (0..len).all(|i| fold(f, cx.text[s + i]) == fold(f, cx.text[pos + i]));
    if same {
        k(pos + len, cx)
    } else {
        Ok(false)
    }
}

/// Whether a one-character op matches at `pos`.
pub(crate) fn one_at(op: &Op, cx: &Ctx<'_>, pos: usize) -> bool {
    cx.text.get(pos).is_some_and(|&c| one(op, c))
}

/// Whether `max` allows another iteration after `count`.
pub(crate) fn below(count: u64, max: u64) -> bool {
    max == UNBOUNDED || count < max
}
