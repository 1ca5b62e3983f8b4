//! The parser: `re._parser.parse` for `str` patterns, refusing what it refuses with its messages and
//! positions (positions count characters, as Python's do).

use std::collections::HashMap;

use crate::ast::{flag, width, At, Category, Greed, Node, SetItem, MAXGROUPS, MAXREPEAT};
use crate::error::CompileError;
use crate::unicode::{is_alpha, is_identifier, lookup_name, py_repr};

type PResult<T> = Result<T, CompileError>;

/// A token: one character, or a backslash and the character after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Ch(char),
    Esc(char),
}

impl Tok {
    fn len(self) -> usize {
        match self {
            Tok::Ch(_) => 1,
            Tok::Esc(_) => 2,
        }
    }
    fn text(self) -> String {
        match self {
            Tok::Ch(c) => c.to_string(),
            Tok::Esc(c) => format!("\\{c}"),
        }
    }
    fn is(self, set: &str) -> bool {
        matches!(self, Tok::Ch(c) if set.contains(c))
    }
}

/// `re._parser.Tokenizer`.
pub(crate) struct Source<'a> {
    s: &'a [char],
    index: usize,
    pub(crate) next: Option<Tok>,
}

impl<'a> Source<'a> {
    fn new(s: &'a [char]) -> PResult<Self> {
        let mut src = Source { s, index: 0, next: None };
        src.advance()?;
        Ok(src)
    }
    pub(crate) fn advance(&mut self) -> PResult<()> {
        let i = self.index;
        self.next = match self.s.get(i) {
            None => None,
            Some('\\') => match self.s.get(i + 1) {
                None => return Err(CompileError::at("bad escape (end of pattern)", self.s, self.s.len() - 1)),
                Some(&c) => {
                    self.index = i + 2;
                    Some(Tok::Esc(c))
                }
            },
            Some(&c) => {
                self.index = i + 1;
                Some(Tok::Ch(c))
            }
        };
        Ok(())
    }
    pub(crate) fn tell(&self) -> usize {
        self.index - self.next.map_or(0, Tok::len)
    }
    fn seek(&mut self, index: usize) -> PResult<()> {
        self.index = index;
        self.advance()
    }
    pub(crate) fn get(&mut self) -> PResult<Option<Tok>> {
        let t = self.next;
        self.advance()?;
        Ok(t)
    }
    fn matches(&mut self, c: char) -> PResult<bool> {
        if self.next == Some(Tok::Ch(c)) {
            self.advance()?;
            return Ok(true);
        }
        Ok(false)
    }
    fn next_is(&self, set: &str) -> bool {
        self.next.is_some_and(|t| t.is(set))
    }
    /// Up to `n` characters of `set`.
    fn getwhile(&mut self, n: usize, set: &str) -> PResult<String> {
        let mut out = String::new();
        for _ in 0..n {
            match self.next {
                Some(Tok::Ch(c)) if set.contains(c) => {
                    out.push(c);
                    self.advance()?;
                }
                _ => break,
            }
        }
        Ok(out)
    }
    fn getuntil(&mut self, terminator: char, name: &str) -> PResult<String> {
        let mut out = String::new();
        loop {
            let c = self.next;
            self.advance()?;
            match c {
                None if out.is_empty() => return Err(self.error(&format!("missing {name}"), 0)),
                None => {
                    let n = out.chars().count();
                    return Err(self.error(&format!("missing {terminator}, unterminated name"), n));
                }
                Some(Tok::Ch(t)) if t == terminator => {
                    if out.is_empty() {
                        return Err(self.error(&format!("missing {name}"), 1));
                    }
                    return Ok(out);
                }
                Some(t) => out.push_str(&t.text()),
            }
        }
    }
    pub(crate) fn error(&self, msg: &str, offset: usize) -> CompileError {
        CompileError::at(msg, self.s, self.tell().saturating_sub(offset))
    }
    fn checkgroupname(&self, name: &str, offset: usize) -> PResult<()> {
        if !is_identifier(name) {
            let msg = format!("bad character in group name {}", py_repr(name));
            return Err(self.error(&msg, name.chars().count() + offset));
        }
        Ok(())
    }
}

/// `re._parser.State`.
pub(crate) struct State {
    pub(crate) flags: u32,
    groupdict: HashMap<String, usize>,
    pub(crate) groupwidths: Vec<Option<(u128, u128)>>,
    lookbehindgroups: Option<usize>,
    grouprefpos: Vec<(usize, usize)>,
}

impl State {
    pub(crate) fn groups(&self) -> usize {
        self.groupwidths.len()
    }
    fn checkgroup(&self, gid: usize) -> bool {
        gid < self.groups() && self.groupwidths[gid].is_some()
    }
    fn checklookbehindgroup(&self, gid: usize, src: &Source<'_>) -> PResult<()> {
        if let Some(lb) = self.lookbehindgroups {
            if !self.checkgroup(gid) {
                return Err(src.error("cannot refer to an open group", 0));
            }
            if gid >= lb {
                return Err(src.error("cannot refer to group defined in the same lookbehind subpattern", 0));
            }
        }
        Ok(())
    }
    pub(crate) fn open_group(&mut self, name: Option<&str>, src: &Source<'_>) -> PResult<usize> {
        let gid = self.groups();
        self.groupwidths.push(None);
        if let Some(name) = name {
            if let Some(&ogid) = self.groupdict.get(name) {
                let msg = format!("redefinition of group name {} as group {gid}; was group {ogid}", py_repr(name));
                return Err(src.error(&msg, name.chars().count() + 1));
            }
            self.groupdict.insert(name.to_string(), gid);
        }
        Ok(gid)
    }
}

/// The parsed pattern: its opcodes, its global flags (with UNICODE added unless ASCII) and group count.
pub(crate) struct Parsed {
    pub(crate) nodes: Vec<Node>,
    pub(crate) state: State,
}

/// `re._parser.parse(pattern)`.
pub(crate) fn parse(pattern: &[char]) -> PResult<Parsed> {
    let mut src = Source::new(pattern)?;
    let mut state = State {
        flags: 0,
        groupdict: HashMap::new(),
        groupwidths: vec![None],
        lookbehindgroups: None,
        grouprefpos: Vec::new(),
    };
    let nodes = parse_sub(&mut src, &mut state, false, 0)?;
    if state.flags & flag::ASCII == 0 {
        state.flags |= flag::UNICODE;
    }
    if src.next.is_some() {
        return Err(src.error("unbalanced parenthesis", 0));
    }
    for &(g, pos) in &state.grouprefpos {
        if g >= state.groups() {
            return Err(CompileError::at(&format!("invalid group reference {g}"), pattern, pos));
        }
    }
    Ok(Parsed { nodes, state })
}

/// `_parse_sub`: an alternation.
pub(crate) fn parse_sub(src: &mut Source<'_>, state: &mut State, verbose: bool, nested: usize) -> PResult<Vec<Node>> {
    let mut items: Vec<Vec<Node>> = Vec::new();
    let mut verbose = verbose;
    loop {
        let first = nested == 0 && items.is_empty();
        items.push(crate::parse_item::parse(src, state, verbose, nested + 1, first)?);
        if !src.matches('|')? {
            break;
        }
        if nested == 0 {
            verbose = state.flags & flag::VERBOSE != 0;
        }
    }
    if items.len() == 1 {
        return Ok(items.pop().unwrap_or_default());
    }
    let mut out = Vec::new();
    // Common prefixes move out of the branch.
    while let Some(prefix) = items[0].first().cloned() {
        if !items.iter().all(|it| it.first() == Some(&prefix)) {
            break;
        }
        for it in &mut items {
            it.remove(0);
        }
        out.push(prefix);
    }
    // Single literals and non-negated sets become one set.
    let mut set: Vec<SetItem> = Vec::new();
    let all_sets = items.iter().all(|it| match it.as_slice() {
        [Node::Literal(c)] => {
            set.push(SetItem::Literal(*c));
            true
        }
        [Node::In { negate: false, items }] => {
            set.extend(items.iter().copied());
            true
        }
        _ => false,
    });
    if all_sets {
        out.push(Node::In { negate: false, items: uniq(set) });
        return Ok(out);
    }
    out.push(Node::Branch(items));
    Ok(out)
}

/// `_uniq`: the items in first-seen order, without repeats.
pub(crate) fn uniq(items: Vec<SetItem>) -> Vec<SetItem> {
    let mut out: Vec<SetItem> = Vec::with_capacity(items.len());
    for it in items {
        if !out.contains(&it) {
            out.push(it);
        }
    }
    out
}

/// What an escape stands for.
pub(crate) enum Escape {
    Node(Node),
    Item(SetItem),
}

fn category(c: char) -> Option<Category> {
    Some(match c {
        'd' => Category::Digit,
        'D' => Category::NotDigit,
        's' => Category::Space,
        'S' => Category::NotSpace,
        'w' => Category::Word,
        'W' => Category::NotWord,
        _ => return None,
    })
}

fn simple_escape(c: char) -> Option<u32> {
    Some(match c {
        'a' => 7,
        'b' => 8,
        'f' => 12,
        'n' => 10,
        'r' => 13,
        't' => 9,
        'v' => 11,
        '\\' => 92,
        _ => return None,
    })
}

const HEX: &str = "0123456789abcdefABCDEF";
const OCT: &str = "01234567";
const DIGITS: &str = "0123456789";

/// The escapes both contexts share (`\x \u \U \N`), or `None` if `c` is none of them.
fn code_escape(src: &mut Source<'_>, c: char) -> PResult<Option<u32>> {
    let digits = match c {
        'x' => 2,
        'u' => 4,
        'U' => 8,
        'N' => return named_escape(src).map(Some),
        _ => return Ok(None),
    };
    let hex = src.getwhile(digits, HEX)?;
    let escape = format!("\\{c}{hex}");
    if hex.len() != digits {
        return Err(src.error(&format!("incomplete escape {escape}"), escape.chars().count()));
    }
    let value = u32::from_str_radix(&hex, 16).unwrap_or(u32::MAX);
    if value > 0x10FFFF {
        return Err(src.error(&format!("bad escape {escape}"), escape.chars().count()));
    }
    Ok(Some(value))
}

fn named_escape(src: &mut Source<'_>) -> PResult<u32> {
    if !src.matches('{')? {
        return Err(src.error("missing {", 0));
    }
    let name = src.getuntil('}', "character name")?;
    lookup_name(&name).ok_or_else(|| {
        let msg = format!("undefined character name {}", py_repr(&name));
        src.error(&msg, name.chars().count() + 4)
    })
}

/// `_class_escape`: an escape inside `[...]`.
pub(crate) fn class_escape(src: &mut Source<'_>, c: char) -> PResult<SetItem> {
    if let Some(v) = simple_escape(c) {
        return Ok(SetItem::Literal(v));
    }
    if let Some(cat) = category(c) {
        return Ok(SetItem::Category(cat));
    }
    if let Some(v) = code_escape(src, c)? {
        return Ok(SetItem::Literal(v));
    }
    if OCT.contains(c) {
        let more = src.getwhile(2, OCT)?;
        let escape = format!("\\{c}{more}");
        let v = u32::from_str_radix(&escape[1..], 8).unwrap_or(0);
        if v > 0o377 {
            let msg = format!("octal escape value {escape} outside of range 0-0o377");
            return Err(src.error(&msg, escape.len()));
        }
        return Ok(SetItem::Literal(v));
    }
    if c.is_ascii_alphanumeric() {
        return Err(src.error(&format!("bad escape \\{c}"), 2));
    }
    Ok(SetItem::Literal(u32::from(c)))
}

/// `_escape`: an escape outside sets.
pub(crate) fn escape(src: &mut Source<'_>, c: char, state: &mut State) -> PResult<Escape> {
    let at = match c {
        'A' => Some(At::BeginningString),
        'b' => Some(At::Boundary),
        'B' => Some(At::NonBoundary),
        'Z' => Some(At::EndString),
        _ => None,
    };
    if let Some(at) = at {
        return Ok(Escape::Node(Node::At(at)));
    }
    if let Some(cat) = category(c) {
        return Ok(Escape::Item(SetItem::Category(cat)));
    }
    if let Some(v) = simple_escape(c) {
        return Ok(Escape::Node(Node::Literal(v)));
    }
    if let Some(v) = code_escape(src, c)? {
        return Ok(Escape::Node(Node::Literal(v)));
    }
    if c == '0' {
        let more = src.getwhile(2, OCT)?;
        return Ok(Escape::Node(Node::Literal(u32::from_str_radix(&format!("0{more}"), 8).unwrap_or(0))));
    }
    if DIGITS.contains(c) {
        return number_escape(src, c, state).map(Escape::Node);
    }
    if c.is_ascii_alphanumeric() {
        return Err(src.error(&format!("bad escape \\{c}"), 2));
    }
    Ok(Escape::Node(Node::Literal(u32::from(c))))
}

/// `\1`..`\99` (a group reference) or a three-digit octal escape.
fn number_escape(src: &mut Source<'_>, c: char, state: &mut State) -> PResult<Node> {
    let mut escape = format!("\\{c}");
    if let Some(Tok::Ch(d)) = src.next.filter(|t| t.is(DIGITS)) {
        src.advance()?;
        escape.push(d);
        if OCT.contains(c) && OCT.contains(d) && src.next_is(OCT) {
            if let Some(Tok::Ch(e)) = src.get()? {
                escape.push(e);
            }
            let v = u32::from_str_radix(&escape[1..], 8).unwrap_or(0);
            if v > 0o377 {
                let msg = format!("octal escape value {escape} outside of range 0-0o377");
                return Err(src.error(&msg, escape.len()));
            }
            return Ok(Node::Literal(v));
        }
    }
    let group: usize = escape[1..].parse().unwrap_or(0);
    if group < state.groups() {
        if !state.checkgroup(group) {
            return Err(src.error("cannot refer to an open group", escape.len()));
        }
        state.checklookbehindgroup(group, src)?;
        return Ok(Node::GroupRef(group));
    }
    Err(src.error(&format!("invalid group reference {group}"), escape.len() - 1))
}

/// `{m,n}` bounds: `None` if this `{` is a literal.
pub(crate) fn repeat_bounds(src: &mut Source<'_>, here: usize) -> PResult<Option<(u64, u64)>> {
    if src.next == Some(Tok::Ch('}')) {
        return Ok(None);
    }
    let lo = src.getwhile(usize::MAX, DIGITS)?;
    let hi = if src.matches(',')? { src.getwhile(usize::MAX, DIGITS)? } else { lo.clone() };
    if !src.matches('}')? {
        src.seek(here)?;
        return Ok(None);
    }
    let number = |s: &str| -> PResult<u64> {
        let too_large = || CompileError::Overflow("the repetition number is too large".into());
        let s = s.trim_start_matches('0');
        if s.len() > 10 {
            return Err(too_large());
        }
        let v: u64 = if s.is_empty() { 0 } else { s.parse().map_err(|_| too_large())? };
        if v >= MAXREPEAT {
            return Err(too_large());
        }
        Ok(v)
    };
    let min = if lo.is_empty() { 0 } else { number(&lo)? };
    let max = if hi.is_empty() { MAXREPEAT } else { number(&hi)? };
    if !hi.is_empty() && max < min {
        return Err(src.error("min repeat greater than max repeat", src.tell() - here));
    }
    Ok(Some((min, max)))
}

/// `_parse_flags`: after `(?` and a flag letter or `-`. `None` for global flags (`(?i)`).
pub(crate) fn parse_flags(src: &mut Source<'_>, state: &mut State, first: Tok) -> PResult<Option<(u32, u32)>> {
    let (mut add, mut del) = (0u32, 0u32);
    let mut tok = first;
    if tok != Tok::Ch('-') {
        while let Tok::Ch(c) = tok {
            let Some(f) = flag::of(c) else { break };
            if c == 'L' {
                return Err(src.error("bad inline flags: cannot use 'L' flag with a str pattern", 0));
            }
            add |= f;
            if f & flag::TYPE != 0 && add & flag::TYPE != f {
                return Err(src.error("bad inline flags: flags 'a', 'u' and 'L' are incompatible", 0));
            }
            tok = src.get()?.ok_or_else(|| src.error("missing -, : or )", 0))?;
            if tok.is(")-:") {
                break;
            }
            if !matches!(tok, Tok::Ch(c) if flag::of(c).is_some()) {
                return Err(src.error(flag_error(tok, "missing -, : or )"), tok.len()));
            }
        }
    }
    if tok == Tok::Ch(')') {
        state.flags |= add;
        return Ok(None);
    }
    if add & flag::GLOBAL != 0 {
        return Err(src.error("bad inline flags: cannot turn on global flag", 1));
    }
    if tok == Tok::Ch('-') {
        del = parse_del_flags(src)?;
    }
    if del & flag::GLOBAL != 0 {
        return Err(src.error("bad inline flags: cannot turn off global flag", 1));
    }
    if add & del != 0 {
        return Err(src.error("bad inline flags: flag turned on and off", 1));
    }
    Ok(Some((add, del)))
}

fn flag_error(tok: Tok, otherwise: &'static str) -> &'static str {
    match tok {
        Tok::Ch(c) if is_alpha(u32::from(c)) => "unknown flag",
        _ => otherwise,
    }
}

fn parse_del_flags(src: &mut Source<'_>) -> PResult<u32> {
    let mut del = 0;
    let mut tok = src.get()?.ok_or_else(|| src.error("missing flag", 0))?;
    loop {
        let f = match tok {
            Tok::Ch(c) => flag::of(c),
            Tok::Esc(_) => None,
        };
        let Some(f) = f else {
            return Err(src.error(flag_error(tok, if del == 0 { "missing flag" } else { "missing :" }), tok.len()));
        };
        if f & flag::TYPE != 0 {
            return Err(src.error("bad inline flags: cannot turn off flags 'a', 'u' and 'L'", 0));
        }
        del |= f;
        tok = src.get()?.ok_or_else(|| src.error("missing :", 0))?;
        if tok == Tok::Ch(':') {
            return Ok(del);
        }
    }
}

/// `(?P<name>` and `(?P=name)`. `Ok(None)` after a backreference (already pushed to `out`).
pub(crate) fn parse_p(src: &mut Source<'_>, state: &mut State, out: &mut Vec<Node>) -> PResult<Option<String>> {
    if src.matches('<')? {
        let name = src.getuntil('>', "group name")?;
        src.checkgroupname(&name, 1)?;
        return Ok(Some(name));
    }
    if src.matches('=')? {
        let name = src.getuntil(')', "group name")?;
        src.checkgroupname(&name, 1)?;
        let n = name.chars().count();
        let Some(&gid) = state.groupdict.get(&name) else {
            return Err(src.error(&format!("unknown group name {}", py_repr(&name)), n + 1));
        };
        if !state.checkgroup(gid) {
            return Err(src.error("cannot refer to an open group", n + 1));
        }
        state.checklookbehindgroup(gid, src)?;
        out.push(Node::GroupRef(gid));
        return Ok(None);
    }
    let c = src.get()?.ok_or_else(|| src.error("unexpected end of pattern", 0))?;
    Err(src.error(&format!("unknown extension ?P{}", c.text()), c.len() + 2))
}

/// The condition of `(?(cond)yes|no)`: its group number.
pub(crate) fn condition(src: &mut Source<'_>, state: &mut State) -> PResult<usize> {
    let name = src.getuntil(')', "group name")?;
    let n = name.chars().count();
    let group = if is_identifier(&name) {
        src.checkgroupname(&name, 1)?;
        match state.groupdict.get(&name) {
            Some(&g) => g,
            None => return Err(src.error(&format!("unknown group name {}", py_repr(&name)), n + 1)),
        }
    } else {
        let bad = || src.error(&format!("bad character in group name {}", py_repr(&name)), n + 1);
        let g = python_int(&name).ok_or_else(bad)?;
        if g < 0 {
            return Err(bad());
        }
        if g == 0 {
            return Err(src.error("bad group number", n + 1));
        }
        if g as u128 >= u128::from(MAXGROUPS) {
            return Err(src.error(&format!("invalid group reference {g}"), n + 1));
        }
        let g = g as usize;
        if !state.grouprefpos.iter().any(|&(k, _)| k == g) {
            state.grouprefpos.push((g, src.tell() - n - 1));
        }
        g
    };
    state.checklookbehindgroup(group, src)?;
    Ok(group)
}

/// `int(s)` for ASCII digits (with Python's optional sign, surrounding whitespace and `_` separators).
fn python_int(s: &str) -> Option<i128> {
    let t = s.trim_matches(|c: char| crate::unicode::is_space(u32::from(c)));
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i128 = clean.parse().unwrap_or(i128::MAX);
    Some(if neg { -v } else { v })
}

/// Checks the lookbehind's groups while parsing one: `Some(previous)` to restore.
pub(crate) fn enter_lookbehind(state: &mut State) -> Option<usize> {
    let prev = state.lookbehindgroups;
    if prev.is_none() {
        state.lookbehindgroups = Some(state.groups());
    }
    prev
}

/// Leaves a lookbehind.
pub(crate) fn leave_lookbehind(state: &mut State, prev: Option<usize>) {
    if prev.is_none() {
        state.lookbehindgroups = None;
    }
}

/// `closegroup`: records the group's width.
pub(crate) fn close_group(state: &mut State, gid: usize, body: &[Node]) {
    let w = width(body, &state.groupwidths);
    state.groupwidths[gid] = Some(w);
}

/// The repeat kinds after a quantifier: `?` lazy, `+` possessive.
pub(crate) fn greed(src: &mut Source<'_>) -> PResult<Greed> {
    Ok(if src.matches('?')? {
        Greed::Min
    } else if src.matches('+')? {
        Greed::Possessive
    } else {
        Greed::Max
    })
}

pub(crate) use Tok as Token;
