//! The parsed pattern, shaped as `re._parser` leaves it (a list of opcodes per subpattern).

/// sre's MAXREPEAT: a repeat's `max` when unbounded (and the bound counts must stay under).
pub(crate) const MAXREPEAT: u64 = 4_294_967_295;
/// sre's MAXGROUPS.
pub(crate) const MAXGROUPS: u64 = 1_073_741_823;

/// The inline flags (`re.I` ...), with sre's bit values.
pub(crate) mod flag {
    pub const TEMPLATE: u32 = 1;
    pub const IGNORECASE: u32 = 2;
    pub const LOCALE: u32 = 4;
    pub const MULTILINE: u32 = 8;
    pub const DOTALL: u32 = 16;
    pub const UNICODE: u32 = 32;
    pub const VERBOSE: u32 = 64;
    pub const ASCII: u32 = 256;
    /// `a`, `u` and `L`.
    pub const TYPE: u32 = ASCII | LOCALE | UNICODE;
    /// The flags that may only be set for the whole pattern.
    pub const GLOBAL: u32 = TEMPLATE; // and DEBUG, which has no inline letter

    /// The flag of an inline letter.
    pub fn of(c: char) -> Option<u32> {
        Some(match c {
            'i' => IGNORECASE,
            'L' => LOCALE,
            'm' => MULTILINE,
            's' => DOTALL,
            'x' => VERBOSE,
            'a' => ASCII,
            't' => TEMPLATE,
            'u' => UNICODE,
            _ => return None,
        })
    }
}

/// `\d \D \s \S \w \W`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Digit,
    NotDigit,
    Space,
    NotSpace,
    Word,
    NotWord,
}

/// An item of a character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetItem {
    Literal(u32),
    Range(u32, u32),
    Category(Category),
}

/// The zero-width `AT` codes as parsed (before the flags pick their variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    /// `^`
    Beginning,
    /// `\A`
    BeginningString,
    /// `\b`
    Boundary,
    /// `\B`
    NonBoundary,
    /// `$`
    End,
    /// `\Z`
    EndString,
}

/// Greedy (`MAX_REPEAT`), lazy (`MIN_REPEAT`) or possessive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Greed {
    Max,
    Min,
    Possessive,
}

/// One opcode of a subpattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Literal(u32),
    NotLiteral(u32),
    /// A set (`negate` is sre's leading NEGATE).
    In {
        negate: bool,
        items: Vec<SetItem>,
    },
    Any,
    At(At),
    Branch(Vec<Vec<Node>>),
    /// A group: capturing (`group`) and/or with scoped flags.
    Subpattern {
        group: Option<usize>,
        add: u32,
        del: u32,
        body: Vec<Node>,
    },
    Atomic(Vec<Node>),
    Repeat {
        greed: Greed,
        min: u64,
        max: u64,
        body: Vec<Node>,
    },
    GroupRef(usize),
    GroupRefExists {
        group: usize,
        yes: Vec<Node>,
        no: Option<Vec<Node>>,
    },
    /// A lookaround: `behind` for `(?<=` / `(?<!`, `negate` for `(?!` / `(?<!`.
    Assert {
        behind: bool,
        negate: bool,
        body: Vec<Node>,
    },
}

/// `MAXWIDTH` of `re._parser`.
pub(crate) const MAXWIDTH: u128 = 1 << 64;

/// `SubPattern.getwidth()`: the (min, max) characters a subpattern can match.
pub(crate) fn width(nodes: &[Node], groupwidths: &[Option<(u128, u128)>]) -> (u128, u128) {
    let (mut lo, mut hi) = (0u128, 0u128);
    for node in nodes {
        let (i, j) = match node {
            Node::Branch(alts) => {
                let ws: Vec<_> = alts.iter().map(|a| width(a, groupwidths)).collect();
                (ws.iter().map(|w| w.0).min().unwrap_or(MAXWIDTH), ws.iter().map(|w| w.1).max().unwrap_or(0))
            }
            Node::Atomic(body) | Node::Subpattern { body, .. } => width(body, groupwidths),
            Node::Repeat { min, max, body, .. } => {
                let (i, j) = width(body, groupwidths);
                let hi_add = if *max == MAXREPEAT && j > 0 { MAXWIDTH } else { j * u128::from(*max) };
                (i * u128::from(*min), hi_add)
            }
            Node::Literal(_) | Node::NotLiteral(_) | Node::In { .. } | Node::Any => (1, 1),
            Node::GroupRef(g) => groupwidths.get(*g).copied().flatten().unwrap_or((0, 0)),
            Node::GroupRefExists { yes, no, .. } => {
                let (i, j) = width(yes, groupwidths);
                match no {
                    Some(no) => {
                        let (l, h) = width(no, groupwidths);
                        (i.min(l), j.max(h))
                    }
                    None => (0, j),
                }
            }
            Node::At(_) | Node::Assert { .. } => (0, 0),
        };
        lo = lo.saturating_add(i);
        hi = hi.saturating_add(j);
    }
    (lo.min(MAXWIDTH), hi.min(MAXWIDTH))
}
