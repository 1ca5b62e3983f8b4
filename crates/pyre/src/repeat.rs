//! Repeats: sre's REPEAT_ONE / MIN_REPEAT_ONE for one-character items, REPEAT with MAX_UNTIL /
//! MIN_UNTIL otherwise (another iteration is not tried where the last one started, once `min` is
//! reached), and POSSESSIVE_REPEAT.

use crate::ast::Greed;
use crate::compile::Op;
use crate::error::MatchError;
use crate::matcher::{below, once, one_at, Ctx};

type Res = Result<bool, MatchError>;
type K<'k> = &'k mut dyn FnMut(usize, &mut Ctx<'_>) -> Res;

/// Matches `body{min,max}` (greed as given) at `pos`, then `k`.
pub(crate) fn repeat(greed: Greed, min: u64, max: u64, body: &[Op], pos: usize, cx: &mut Ctx<'_>, k: K<'_>) -> Res {
    if let [item] = body {
        if item.single() {
            return repeat_one(greed, min, max, item, pos, cx, k);
        }
    }
    match greed {
        Greed::Max => max_until(body, min, max, 0, None, pos, cx, k),
        Greed::Min => min_until(body, min, max, 0, None, pos, cx, k),
        Greed::Possessive => possessive(body, min, max, pos, cx, k),
    }
}

fn repeat_one(greed: Greed, min: u64, max: u64, item: &Op, pos: usize, cx: &mut Ctx<'_>, k: K<'_>) -> Res {
    let mut n = 0u64;
    let limit = if max == crate::compile::UNBOUNDED { u64::MAX } else { max };
    let available = match greed {
        Greed::Min => min,
        _ => limit,
    };
    while n < available && one_at(item, cx, pos + n as usize) {
        cx.step()?;
        n += 1;
    }
    if n < min {
        return Ok(false);
    }
    match greed {
        Greed::Possessive => k(pos + n as usize, cx),
        Greed::Max => loop {
            cx.step()?;
            if k(pos + n as usize, cx)? {
                return Ok(true);
            }
            if n == min {
                return Ok(false);
            }
            n -= 1;
        },
        Greed::Min => loop {
            cx.step()?;
            if k(pos + n as usize, cx)? {
                return Ok(true);
            }
            if n >= limit || !one_at(item, cx, pos + n as usize) {
                return Ok(false);
            }
            n += 1;
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn max_until(
    body: &[Op],
    min: u64,
    max: u64,
    count: u64,
    last: Option<usize>,
    pos: usize,
    cx: &mut Ctx<'_>,
    k: K<'_>,
) -> Res {
    cx.step()?;
    if count < min {
        return crate::matcher::seq(body, pos, cx, &mut |p, cx| max_until(body, min, max, count + 1, last, p, cx, k));
    }
    if below(count, max) && last != Some(pos) {
        let more =
            crate::matcher::seq(body, pos, cx, &mut |p, cx| max_until(body, min, max, count + 1, Some(pos), p, cx, k))?;
        if more {
            return Ok(true);
        }
    }
    k(pos, cx)
}

#[allow(clippy::too_many_arguments)]
fn min_until(
    body: &[Op],
    min: u64,
    max: u64,
    count: u64,
    last: Option<usize>,
    pos: usize,
    cx: &mut Ctx<'_>,
    k: K<'_>,
) -> Res {
    cx.step()?;
    if count < min {
        return crate::matcher::seq(body, pos, cx, &mut |p, cx| min_until(body, min, max, count + 1, last, p, cx, k));
    }
    if k(pos, cx)? {
        return Ok(true);
    }
    if !below(count, max) || last == Some(pos) {
        return Ok(false);
    }
    crate::matcher::seq(body, pos, cx, &mut |p, cx| min_until(body, min, max, count + 1, Some(pos), p, cx, k))
}

fn possessive(body: &[Op], min: u64, max: u64, pos: usize, cx: &mut Ctx<'_>, k: K<'_>) -> Res {
    let saved = cx.marks.clone();
    let mut p = pos;
    let mut count = 0;
    while count < min {
        match once(body, p, cx)? {
            Some(e) => p = e,
            None => {
                cx.marks = saved;
                return Ok(false);
            }
        }
        count += 1;
    }
    let mut prev = None;
    while below(count, max) && prev != Some(p) {
        cx.step()?;
        prev = Some(p);
        match once(body, p, cx)? {
            Some(e) => p = e,
            None => break,
        }
        count += 1;
    }
    if k(p, cx)? {
        return Ok(true);
    }
    cx.marks = saved;
    Ok(false)
}
