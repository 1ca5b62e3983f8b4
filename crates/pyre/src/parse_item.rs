//! `_parse`: one alternative (a sequence of items), with sets, repeats and groups.

use crate::ast::{flag, At, Node, SetItem};
use crate::error::CompileError;
use crate::parse::{self, uniq, Escape, Source, State, Token as Tok};

type PResult<T> = Result<T, CompileError>;

const WHITESPACE: &str = " \t\n\r\u{b}\u{c}";
const SPECIAL: &str = ".\\[{()*+?^$|";

/// `_parse(source, state, verbose, nested, first)`.
pub(crate) fn parse(
    src: &mut Source<'_>,
    state: &mut State,
    verbose: bool,
    nested: usize,
    first: bool,
) -> PResult<Vec<Node>> {
    let mut out: Vec<Node> = Vec::new();
    let mut verbose = verbose;
    while let Some(this) = src.next {
        if this == Tok::Ch('|') || this == Tok::Ch(')') {
            break;
        }
        src.get()?;
        if verbose {
            if this.is_in(WHITESPACE) {
                continue;
            }
            if this == Tok::Ch('#') {
                while !matches!(src.get()?, None | Some(Tok::Ch('\n'))) {}
                continue;
            }
        }
        match this {
            Tok::Esc(c) => match parse::escape(src, c, state)? {
                Escape::Node(n) => out.push(n),
                Escape::Item(it) => out.push(Node::In { negate: false, items: vec![it] }),
            },
            Tok::Ch(c) if !SPECIAL.contains(c) => out.push(Node::Literal(u32::from(c))),
            Tok::Ch('[') => out.push(parse_set(src)?),
            Tok::Ch(c) if "*+?{".contains(c) => repeat(src, &mut out, c)?,
            Tok::Ch('.') => out.push(Node::Any),
            Tok::Ch('(') => {
                if let Some(global_verbose) = group(src, state, &mut out, verbose, nested, first)? {
                    verbose = global_verbose;
                }
            }
            Tok::Ch('^') => out.push(Node::At(At::Beginning)),
            _ => out.push(Node::At(At::End)),
        }
    }
    // Non-capturing groups without flags are unpacked.
    let mut flat = Vec::with_capacity(out.len());
    for node in out {
        match node {
            Node::Subpattern { group: None, add: 0, del: 0, body } => flat.extend(body),
            other => flat.push(other),
        }
    }
    Ok(flat)
}

impl Tok {
    fn is_in(self, set: &str) -> bool {
        matches!(self, Tok::Ch(c) if set.contains(c))
    }
}

/// A set, after its `[`.
fn parse_set(src: &mut Source<'_>) -> PResult<Node> {
    let here = src.tell() - 1;
    let mut set: Vec<SetItem> = Vec::new();
    let negate = src.next == Some(Tok::Ch('^')) && {
        src.get()?;
        true
    };
    let unterminated = |src: &Source<'_>| src.error("unterminated character set", src.tell() - here);
    loop {
        let this = src.get()?.ok_or_else(|| unterminated(src))?;
        if this == Tok::Ch(']') && !set.is_empty() {
            break;
        }
        let code1 = match this {
            Tok::Esc(c) => parse::class_escape(src, c)?,
            Tok::Ch(c) => SetItem::Literal(u32::from(c)),
        };
        if src.next == Some(Tok::Ch('-')) {
            src.get()?;
            let that = src.get()?.ok_or_else(|| unterminated(src))?;
            if that == Tok::Ch(']') {
                set.push(code1);
                set.push(SetItem::Literal(u32::from('-')));
                break;
            }
            let code2 = match that {
                Tok::Esc(c) => parse::class_escape(src, c)?,
                Tok::Ch(c) => SetItem::Literal(u32::from(c)),
            };
            let text = |t: Tok| match t {
                Tok::Ch(c) => c.to_string(),
                Tok::Esc(c) => format!("\\{c}"),
            };
            let msg = format!("bad character range {}-{}", text(this), text(that));
            let offset = text(this).chars().count() + 1 + text(that).chars().count();
            match (code1, code2) {
                (SetItem::Literal(lo), SetItem::Literal(hi)) if hi >= lo => set.push(SetItem::Range(lo, hi)),
                _ => return Err(src.error(&msg, offset)),
            }
        } else {
            set.push(code1);
        }
    }
    let set = uniq(set);
    Ok(match set.as_slice() {
        [SetItem::Literal(c)] if negate => Node::NotLiteral(*c),
        [SetItem::Literal(c)] => Node::Literal(*c),
        _ => Node::In { negate, items: set },
    })
}

/// A quantifier `c` applies to the last item of `out`.
fn repeat(src: &mut Source<'_>, out: &mut Vec<Node>, c: char) -> PResult<()> {
    let here = src.tell();
    let (min, max) = match c {
        '?' => (0, 1),
        '*' => (0, crate::ast::MAXREPEAT),
        '+' => (1, crate::ast::MAXREPEAT),
        _ => match parse::repeat_bounds(src, here)? {
            Some(b) => b,
            None => {
                out.push(Node::Literal(u32::from('{')));
                return Ok(());
            }
        },
    };
    let Some(last) = out.last() else {
        return Err(src.error("nothing to repeat", src.tell() - here + 1));
    };
    match last {
        Node::At(_) => return Err(src.error("nothing to repeat", src.tell() - here + 1)),
        Node::Repeat { .. } => return Err(src.error("multiple repeat", src.tell() - here + 1)),
        _ => {}
    }
    let item = match out.pop() {
        Some(Node::Subpattern { group: None, add: 0, del: 0, body }) => body,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let greed = parse::greed(src)?;
    out.push(Node::Repeat { greed, min, max, body: item });
    Ok(())
}

/// A group, after its `(`. Returns `Some(verbose)` after global flags.
fn group(
    src: &mut Source<'_>,
    state: &mut State,
    out: &mut Vec<Node>,
    verbose: bool,
    nested: usize,
    first: bool,
) -> PResult<Option<bool>> {
    let start = src.tell() - 1;
    let (mut capture, mut atomic, mut name, mut add, mut del) = (true, false, None, 0u32, 0u32);
    if src.next == Some(Tok::Ch('?')) {
        src.get()?;
        let ch = src.get()?.ok_or_else(|| src.error("unexpected end of pattern", 0))?;
        match ch {
            Tok::Ch('P') => match parse::parse_p(src, state, out)? {
                Some(n) => name = Some(n),
                None => return Ok(None),
            },
            Tok::Ch(':') => capture = false,
            Tok::Ch('#') => {
                loop {
                    if src.next.is_none() {
                        return Err(src.error("missing ), unterminated comment", src.tell() - start));
                    }
                    if src.get()? == Some(Tok::Ch(')')) {
                        break;
                    }
                }
                return Ok(None);
            }
            Tok::Ch(c) if "=!<".contains(c) => {
                lookaround(src, state, out, verbose, nested, start, c)?;
                return Ok(None);
            }
            Tok::Ch('(') => {
                conditional(src, state, out, verbose, nested, start)?;
                return Ok(None);
            }
            Tok::Ch('>') => (capture, atomic) = (false, true),
            Tok::Ch(c) if c == '-' || flag::of(c).is_some() => match parse::parse_flags(src, state, ch)? {
                None => {
                    if !first || !out.is_empty() {
                        let msg = "global flags not at the start of the expression";
                        return Err(src.error(msg, src.tell() - start));
                    }
                    return Ok(Some(state.flags & flag::VERBOSE != 0));
                }
                Some((a, d)) => (add, del, capture) = (a, d, false),
            },
            other => {
                let text = match other {
                    Tok::Ch(c) => c.to_string(),
                    Tok::Esc(c) => format!("\\{c}"),
                };
                let msg = format!("unknown extension ?{text}");
                return Err(src.error(&msg, text.chars().count() + 1));
            }
        }
    }
    let gid = if capture { Some(state_open(src, state, name.as_deref())?) } else { None };
    let sub_verbose = (verbose || add & flag::VERBOSE != 0) && del & flag::VERBOSE == 0;
    let body = parse::parse_sub(src, state, sub_verbose, nested + 1)?;
    if !src.next.is_some_and(|t| t == Tok::Ch(')')) {
        return Err(src.error("missing ), unterminated subpattern", src.tell() - start));
    }
    src.get()?;
    if let Some(g) = gid {
        parse::close_group(state, g, &body);
    }
    out.push(if atomic { Node::Atomic(body) } else { Node::Subpattern { group: gid, add, del, body } });
    Ok(None)
}

fn state_open(src: &Source<'_>, state: &mut State, name: Option<&str>) -> PResult<usize> {
    state.open_group(name, src)
}

/// `(?=`, `(?!`, `(?<=`, `(?<!`: after the `=`, `!` or `<`.
fn lookaround(
    src: &mut Source<'_>,
    state: &mut State,
    out: &mut Vec<Node>,
    verbose: bool,
    nested: usize,
    start: usize,
    c: char,
) -> PResult<()> {
    let mut kind = c;
    let mut prev = None;
    let behind = c == '<';
    if behind {
        let t = src.get()?.ok_or_else(|| src.error("unexpected end of pattern", 0))?;
        match t {
            Tok::Ch(k) if k == '=' || k == '!' => kind = k,
            _ => {
                let text = match t {
                    Tok::Ch(k) => k.to_string(),
                    Tok::Esc(k) => format!("\\{k}"),
                };
                let msg = format!("unknown extension ?<{text}");
                return Err(src.error(&msg, text.chars().count() + 2));
            }
        }
        prev = Some(parse::enter_lookbehind(state));
    }
    let body = parse::parse_sub(src, state, verbose, nested + 1)?;
    if let Some(p) = prev {
        parse::leave_lookbehind(state, p);
    }
    if src.next != Some(Tok::Ch(')')) {
        return Err(src.error("missing ), unterminated subpattern", src.tell() - start));
    }
    src.get()?;
    out.push(Node::Assert { behind, negate: kind == '!', body });
    Ok(())
}

/// `(?(cond)yes|no)`, after `(?(`.
fn conditional(
    src: &mut Source<'_>,
    state: &mut State,
    out: &mut Vec<Node>,
    verbose: bool,
    nested: usize,
    start: usize,
) -> PResult<()> {
    let group = parse::condition(src, state)?;
    let yes = parse(src, state, verbose, nested + 1, false)?;
    let no = if src.next == Some(Tok::Ch('|')) {
        src.get()?;
        let no = parse(src, state, verbose, nested + 1, false)?;
        if src.next == Some(Tok::Ch('|')) {
            return Err(src.error("conditional backref with more than two branches", 0));
        }
        Some(no)
    } else {
        None
    };
    if src.next != Some(Tok::Ch(')')) {
        return Err(src.error("missing ), unterminated subpattern", src.tell() - start));
    }
    src.get()?;
    out.push(Node::GroupRefExists { group, yes, no });
    Ok(())
}
