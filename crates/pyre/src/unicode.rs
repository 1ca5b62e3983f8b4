//! Character predicates and case mappings as Python 3.11 (Unicode 14.0) has them, from the generated
//! [`crate::tables`], plus `repr()` of a string and `unicodedata.lookup` for `\N{...}`.

use crate::tables;

fn in_ranges(table: &[(u32, u32)], c: u32) -> bool {
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn mapped(table: &[(u32, u32)], c: u32) -> u32 {
    match table.binary_search_by_key(&c, |&(k, _)| k) {
        Ok(i) => table[i].1,
        Err(_) => c,
    }
}

/// `str.isalnum()`.
pub(crate) fn is_alnum(c: u32) -> bool {
    in_ranges(tables::ALNUM, c)
}
/// `str.isalpha()`.
pub(crate) fn is_alpha(c: u32) -> bool {
    in_ranges(tables::ALPHA, c)
}
/// `str.isdecimal()`.
pub(crate) fn is_decimal(c: u32) -> bool {
    in_ranges(tables::DECIMAL, c)
}
/// `str.isspace()`.
pub(crate) fn is_space(c: u32) -> bool {
    in_ranges(tables::SPACE, c)
}
/// `_sre.unicode_iscased`.
pub(crate) fn is_cased(c: u32) -> bool {
    in_ranges(tables::CASED, c)
}
/// `_sre.unicode_tolower`.
pub(crate) fn to_lower(c: u32) -> u32 {
    mapped(tables::LOWER, c)
}
/// sre's simple uppercase, needed only for non-BMP code points (RANGE_UNI_IGNORE in a non-BMP range).
pub(crate) fn to_upper_astral(c: u32) -> u32 {
    mapped(tables::UPPER_ASTRAL, c)
}
/// `re._casefix._EXTRA_CASES[lo]`: other lowercase characters with the same uppercase.
pub(crate) fn fixes(lo: u32) -> impl Iterator<Item = u32> {
    tables::FIXES.iter().filter(move |&&(k, _)| k == lo).map(|&(_, v)| v)
}
/// sre's ASCII `\w`.
pub(crate) fn is_ascii_word(c: u32) -> bool {
    c < 128 && (c as u8).is_ascii_alphanumeric() || c == u32::from(b'_')
}
/// `_sre.ascii_tolower`.
pub(crate) fn ascii_lower(c: u32) -> u32 {
    if c < 128 {
        u32::from((c as u8).to_ascii_lowercase())
    } else {
        c
    }
}
/// `_sre.ascii_iscased`.
pub(crate) fn ascii_cased(c: u32) -> bool {
    c < 128 && (c as u8).is_ascii_alphabetic()
}

/// `str.isidentifier()`.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) if in_ranges(tables::XID_START, u32::from(first)) => {
            chars.all(|c| in_ranges(tables::XID_CONTINUE, u32::from(c)))
        }
        _ => false,
    }
}

/// Python's `repr()` of a `str`.
pub(crate) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        let n = u32::from(c);
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if c == quote => {
                out.push('\\');
                out.push(c);
            }
            _ if n < 0x20 || n == 0x7f => out.push_str(&format!("\\x{n:02x}")),
            _ if n < 0x7f || in_ranges(tables::PRINTABLE, n) => out.push(c),
            _ if n <= 0xff => out.push_str(&format!("\\x{n:02x}")),
            _ if n <= 0xffff => out.push_str(&format!("\\u{n:04x}")),
            _ => out.push_str(&format!("\\U{n:08x}")),
        }
    }
    out.push(quote);
    out
}

/// `unicodedata.lookup(name)` as Python 3.11 answers it, or `None` (a `KeyError`, or a named sequence).
///
/// Names come from `unicode_names2` (a newer Unicode); a hit counts only if the name is the character's
/// own name exactly (Python ignores case except for the Hangul and CJK computed names) and the
/// character was named in Unicode 14.0. Aliases come from the generated table (those Python accepts).
pub(crate) fn lookup_name(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    if let Ok(i) = tables::ALIASES.binary_search_by_key(&upper.as_str(), |&(a, _)| a) {
        return Some(tables::ALIASES[i].1);
    }
    let c = unicode_names2::character(name)?;
    let n = u32::from(c);
    if !in_ranges(tables::NAMED, n) {
        return None;
    }
    let own = unicode_names2::name(c)?.to_string();
    let computed = own.starts_with("HANGUL SYLLABLE ") || own.starts_with("CJK UNIFIED IDEOGRAPH-");
    let same = if computed { own == name } else { own == upper };
    same.then_some(n)
}
