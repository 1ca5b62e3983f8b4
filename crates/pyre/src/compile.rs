//! `re._compiler._compile`: the parsed pattern with its flags resolved into what the matcher runs
//! (case-insensitive literals and sets as sre compiles them, ASCII or Unicode categories), plus the
//! compiler's own refusals (look-behind width, the TEMPLATE flag).

use crate::ast::{flag, width, At, Category, Greed, Node, SetItem, MAXREPEAT};
use crate::error::CompileError;
use crate::unicode::{ascii_cased, ascii_lower, fixes, is_cased, to_lower};

/// How input characters are folded before a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    None,
    Ascii,
    Unicode,
}

/// A category with its flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cat {
    pub(crate) cat: Category,
    pub(crate) ascii: bool,
}

/// What a set tests after the charmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    Literal(u32),
    Range(u32, u32),
    /// RANGE_UNI_IGNORE: the folded character or its uppercase in the range.
    RangeUpper(u32, u32),
    Cat(Cat),
}

/// A compiled set: `fold` the character, then look it up in `map` (sorted ranges) and `tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Set {
    pub(crate) negate: bool,
    pub(crate) fold: Fold,
    pub(crate) map: Vec<(u32, u32)>,
    pub(crate) tail: Vec<Tail>,
}

/// A zero-width assertion with its flags applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    Beginning,
    BeginningLine,
    End,
    EndLine,
    EndString,
    Boundary { ascii: bool },
    NonBoundary { ascii: bool },
}

/// One instruction of the matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// One character `c` (after folding) equals the code, or differs from it if `not`.
    Literal {
        code: u32,
        fold: Fold,
        not: bool,
    },
    Set(Box<Set>),
    Any {
        all: bool,
    },
    Anchor(Anchor),
    Branch(Vec<Vec<Op>>),
    Group {
        index: usize,
        body: Vec<Op>,
    },
    Seq(Vec<Op>),
    Atomic(Vec<Op>),
    Repeat {
        greed: Greed,
        min: u64,
        max: u64,
        body: Vec<Op>,
    },
    GroupRef {
        group: usize,
        fold: Fold,
    },
    GroupRefExists {
        group: usize,
        yes: Vec<Op>,
        no: Vec<Op>,
    },
    Assert {
        behind: Option<usize>,
        negate: bool,
        body: Vec<Op>,
    },
}

impl Op {
    /// Whether it always matches exactly one character (sre's REPEAT_ONE items).
    pub(crate) fn single(&self) -> bool {
        match self {
            Op::Literal { .. } | Op::Set(_) | Op::Any { .. } => true,
            Op::Seq(body) => body.len() == 1 && body[0].single(),
            _ => false,
        }
    }
}

/// Compiles `nodes` under `flags`; `groupwidths` for look-behind widths.
pub(crate) fn compile(nodes: &[Node], flags: u32, gw: &[Option<(u128, u128)>]) -> Result<Vec<Op>, CompileError> {
    nodes.iter().map(|n| compile_node(n, flags, gw)).collect()
}

fn fold_of(flags: u32) -> Fold {
    if flags & flag::IGNORECASE == 0 {
        Fold::None
    } else if flags & flag::UNICODE != 0 {
        Fold::Unicode
    } else {
        Fold::Ascii
    }
}

fn combine(flags: u32, add: u32, del: u32) -> u32 {
    let base = if add & flag::TYPE != 0 { flags & !flag::TYPE } else { flags };
    (base | add) & !del
}

fn compile_node(node: &Node, flags: u32, gw: &[Option<(u128, u128)>]) -> Result<Op, CompileError> {
    Ok(match node {
        Node::Literal(c) => literal(*c, flags, false),
        Node::NotLiteral(c) => literal(*c, flags, true),
        Node::In { negate, items } => Op::Set(Box::new(set(*negate, items, flags))),
        Node::Any => Op::Any { all: flags & flag::DOTALL != 0 },
        Node::At(at) => Op::Anchor(anchor(*at, flags)),
        Node::Branch(alts) => Op::Branch(alts.iter().map(|a| compile(a, flags, gw)).collect::<Result<_, _>>()?),
        Node::Subpattern { group, add, del, body } => {
            let body = compile(body, combine(flags, *add, *del), gw)?;
            match group {
                Some(index) => Op::Group { index: *index, body },
                None => Op::Seq(body),
            }
        }
        Node::Atomic(body) => Op::Atomic(compile(body, flags, gw)?),
        Node::Repeat { greed, min, max, body } => {
            if flags & flag::TEMPLATE != 0 {
                let name = match greed {
                    Greed::Max => "MAX_REPEAT",
                    Greed::Min => "MIN_REPEAT",
                    Greed::Possessive => "POSSESSIVE_REPEAT",
                };
                return Err(CompileError::bare(&format!("internal: unsupported template operator {name}")));
            }
            Op::Repeat { greed: *greed, min: *min, max: *max, body: compile(body, flags, gw)? }
        }
        Node::GroupRef(g) => Op::GroupRef { group: *g, fold: fold_of(flags) },
        Node::GroupRefExists { group, yes, no } => Op::GroupRefExists {
            group: *group,
            yes: compile(yes, flags, gw)?,
            no: match no {
                Some(no) => compile(no, flags, gw)?,
                None => Vec::new(),
            },
        },
        Node::Assert { behind, negate, body } => {
            let behind = if *behind { Some(lookbehind_width(body, gw)?) } else { None };
            Op::Assert { behind, negate: *negate, body: compile(body, flags, gw)? }
        }
    })
}

fn lookbehind_width(body: &[Node], gw: &[Option<(u128, u128)>]) -> Result<usize, CompileError> {
    let (lo, hi) = width(body, gw);
    if lo > u128::from(u32::MAX) {
        return Err(CompileError::bare("looks too much behind"));
    }
    if lo != hi {
        return Err(CompileError::bare("look-behind requires fixed-width pattern"));
    }
    Ok(lo as usize)
}

fn anchor(at: At, flags: u32) -> Anchor {
    let multiline = flags & flag::MULTILINE != 0;
    let ascii = flags & flag::UNICODE == 0;
    match at {
        At::Beginning if multiline => Anchor::BeginningLine,
        At::Beginning | At::BeginningString => Anchor::Beginning,
        At::End if multiline => Anchor::EndLine,
        At::End => Anchor::End,
        At::EndString => Anchor::EndString,
        At::Boundary => Anchor::Boundary { ascii },
        At::NonBoundary => Anchor::NonBoundary { ascii },
    }
}

/// LITERAL / NOT_LITERAL as `_compile` emits them.
fn literal(c: u32, flags: u32, not: bool) -> Op {
    match fold_of(flags) {
        Fold::None => Op::Literal { code: c, fold: Fold::None, not },
        Fold::Ascii if !ascii_cased(c) => Op::Literal { code: c, fold: Fold::None, not },
        Fold::Ascii => Op::Literal { code: ascii_lower(c), fold: Fold::Ascii, not },
        Fold::Unicode if !is_cased(c) => Op::Literal { code: c, fold: Fold::None, not },
        Fold::Unicode => {
            let lo = to_lower(c);
            let extra: Vec<u32> = fixes(lo).collect();
            if extra.is_empty() {
                return Op::Literal { code: lo, fold: Fold::Unicode, not };
            }
            let mut map: Vec<(u32, u32)> = std::iter::once(lo).chain(extra).map(|k| (k, k)).collect();
            map.sort_unstable();
            Op::Set(Box::new(Set { negate: not, fold: Fold::Unicode, map, tail: Vec::new() }))
        }
    }
}

/// `_optimize_charset` and the IN opcode choice.
fn set(negate: bool, items: &[SetItem], flags: u32) -> Set {
    let ascii = flags & flag::UNICODE == 0;
    let fold = fold_of(flags);
    let lower = |c: u32| match fold {
        Fold::None => c,
        Fold::Ascii => ascii_lower(c),
        Fold::Unicode => to_lower(c),
    };
    let cased = |c: u32| match fold {
        Fold::None => false,
        Fold::Ascii => ascii_cased(c),
        Fold::Unicode => is_cased(c),
    };
    let mut charmap = vec![false; 0x10000];
    let mut tail = Vec::new();
    let mut hascased = false;
    let mark = |k: u32, charmap: &mut Vec<bool>| -> bool {
        if k >= 0x10000 {
            return false;
        }
        charmap[k as usize] = true;
        if fold == Fold::Unicode {
            for f in fixes(k) {
                charmap[f as usize] = true;
            }
        }
        true
    };
    for item in items {
        match *item {
            SetItem::Literal(c) => {
                if !mark(lower(c), &mut charmap) {
                    hascased |= fold != Fold::None;
                    tail.push(Tail::Literal(c));
                } else if cased(c) {
                    hascased = true;
                }
            }
            SetItem::Range(a, b) => {
                let all_in = (a..=b).all(|c| mark(lower(c), &mut charmap));
                if !all_in {
                    if fold == Fold::None {
                        tail.push(Tail::Range(a, b));
                    } else {
                        hascased = true;
                        tail.push(Tail::RangeUpper(a, b));
                    }
                } else if !hascased && fold != Fold::None {
                    hascased = (a..=b).any(cased);
                }
            }
            SetItem::Category(cat) => tail.push(Tail::Cat(Cat { cat, ascii })),
        }
    }
    let fold = if hascased { fold } else { Fold::None };
    Set { negate, fold, map: ranges(&charmap), tail }
}

fn ranges(charmap: &[bool]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &on) in charmap.iter().enumerate() {
        match (on, start) {
            (true, None) => start = Some(i as u32),
            (false, Some(s)) => {
                out.push((s, i as u32 - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, charmap.len() as u32 - 1));
    }
    out
}

/// sre's MAXREPEAT as the matcher's "unbounded".
pub(crate) const UNBOUNDED: u64 = MAXREPEAT;
