//! The `.npy` header: the magic, the version, the length, and the Python dict literal that gives the
//! dtype, the order and the shape. [`parse`] reads only the shapes numpy writes (a strict grammar, no
//! evaluation: the literal is never run), and refuses object, structured, complex and other dtypes by
//! name; [`write`] writes a header byte for byte as `np.save` does.

use std::path::{Path, PathBuf};

use warmstart_core::DType;

use crate::NumpyError;

/// The magic every `.npy` starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header read: `np.load`'s default `max_header_size`.
pub const MAX_HEADER_LEN: u64 = 10_000;

/// numpy aligns the data to this many bytes (`numpy.lib.format.ARRAY_ALIGN`).
const ARRAY_ALIGN: usize = 64;

/// Room numpy leaves in a header for the growing axis's length (`GROWTH_AXIS_MAX_DIGITS`).
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// What a `.npy` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The element type.
    pub dtype: DType,
    /// Whether the elements are big-endian (`>`): they are swapped on read.
    pub big_endian: bool,
    /// Whether the data is in column-major (Fortran) order: it is transposed on read.
    pub fortran_order: bool,
    /// The shape.
    pub shape: Vec<u64>,
    /// Where the data starts: the length of magic, version, length field and header.
    pub data_offset: usize,
}

impl Header {
    /// The bytes of data dtype and shape need, or `None` on overflow.
    pub fn data_len(&self) -> Option<u64> {
        warmstart_core::TensorInfo::new(String::new(), self.dtype, self.shape.clone()).byte_len()
    }
}

/// Names the file and the member in errors.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The file.
    pub path: &'a Path,
    /// The member (or the file's own name for a single `.npy`).
    pub member: &'a str,
}

impl Ctx<'_> {
    fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    fn member(&self) -> String {
        self.member.to_string()
    }

    fn bad(&self, at: usize, expected: &'static str) -> NumpyError {
        NumpyError::BadHeader { path: self.path(), member: self.member(), at, expected }
    }
}

/// The length of magic, version, length field and header (where the data starts), from the first
/// bytes of a `.npy` (at least 12, or all there are).
pub fn prefix_len(bytes: &[u8], ctx: Ctx<'_>) -> Result<usize, NumpyError> {
    let magic_len = MAGIC.len().min(bytes.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(NumpyError::BadMagic { path: ctx.path(), member: ctx.member() });
    }
    let truncated = |need: u64| NumpyError::HeaderTruncated {
        path: ctx.path(),
        member: ctx.member(),
        need,
        have: bytes.len() as u64,
    };
    let (major, minor) = match bytes.get(6..8) {
        Some(v) => (v[0], v[1]),
        None => return Err(truncated(10)),
    };
    let (start, len) = match (major, minor) {
        (1, 0) => (10, bytes.get(8..10).map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))),
        (2, 0) | (3, 0) => (12, bytes.get(8..12).map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))),
        _ => return Err(NumpyError::UnsupportedVersion { path: ctx.path(), member: ctx.member(), major, minor }),
    };
    let len = len.ok_or_else(|| truncated(start as u64))?;
    if len > MAX_HEADER_LEN {
        return Err(NumpyError::HeaderTooLarge { path: ctx.path(), member: ctx.member(), len, max: MAX_HEADER_LEN });
    }
    // At most 12 + 10000: fits.
    Ok(start + len as usize)
}

/// Parses the header at the start of `bytes` (which hold at least the whole header).
pub fn parse(bytes: &[u8], ctx: Ctx<'_>) -> Result<Header, NumpyError> {
    let data_offset = prefix_len(bytes, ctx)?;
    let text_start = if bytes[6] == 1 { 10 } else { 12 };
    let Some(text) = bytes.get(text_start..data_offset) else {
        return Err(NumpyError::HeaderTruncated {
            path: ctx.path(),
            member: ctx.member(),
            need: data_offset as u64,
            have: bytes.len() as u64,
        });
    };
    let mut parser = Parser { text, at: 0, ctx };
    let (dtype, big_endian, fortran_order, shape) = parser.dict()?;
    Ok(Header { dtype, big_endian, fortran_order, shape, data_offset })
}

/// A cursor over the header text.
struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    ctx: Ctx<'a>,
}

type Fields = (DType, bool, bool, Vec<u64>);

impl<'a> Parser<'a> {
    fn bad(&self, expected: &'static str) -> NumpyError {
        self.ctx.bad(self.at, expected)
    }

    fn skip_ws(&mut self) {
        while self.text.get(self.at).is_some_and(|&b| b == b' ' || b == b'\n') {
            self.at += 1;
        }
    }

    /// Skips white space, then takes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        let found = self.text.get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), NumpyError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.bad(expected))
        }
    }

    /// `{'descr': ..., 'fortran_order': ..., 'shape': ..., }`: each key once, in any order, an
    /// optional trailing comma, then only white space to the end.
    fn dict(&mut self) -> Result<Fields, NumpyError> {
        self.expect(b'{', "'{'")?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        while !self.eat(b'}') {
            let key_at = self.at;
            let key = self.string()?;
            self.expect(b':', "':'")?;
            let repeated = match key {
                b"descr" => descr.replace(self.descr()?).is_some(),
                b"fortran_order" => fortran.replace(self.bool()?).is_some(),
                b"shape" => shape.replace(self.shape()?).is_some(),
                _ => return Err(self.ctx.bad(key_at, "the key 'descr', 'fortran_order' or 'shape'")),
            };
            if repeated {
                return Err(self.ctx.bad(key_at, "each key once"));
            }
            if !self.eat(b',') {
                self.expect(b'}', "',' or '}'")?;
                break;
            }
        }
        self.skip_ws();
        if self.at != self.text.len() {
            return Err(self.bad("the end of the header after '}'"));
        }
        match (descr, fortran, shape) {
            (Some((dtype, big_endian)), Some(fortran), Some(shape)) => Ok((dtype, big_endian, fortran, shape)),
            _ => Err(self.bad("the keys 'descr', 'fortran_order' and 'shape'")),
        }
    }

    /// A quoted string (`'...'` or `"..."`) of printable ASCII without backslashes.
    fn string(&mut self) -> Result<&'a [u8], NumpyError> {
        self.skip_ws();
        let quote = match self.text.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(self.bad("a quoted string")),
        };
        let start = self.at + 1;
        let len = self.text[start..].iter().position(|&b| b == quote).ok_or_else(|| self.bad("a closing quote"))?;
        let s = &self.text[start..start + len];
        if let Some(i) = s.iter().position(|&b| !(b' '..=b'~').contains(&b) || b == b'\\') {
            return Err(self.ctx.bad(start + i, "printable ASCII without escapes"));
        }
        self.at = start + len + 1;
        Ok(s)
    }

    fn bool(&mut self) -> Result<bool, NumpyError> {
        self.skip_ws();
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.text[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(value);
            }
        }
        Err(self.bad("True or False"))
    }

    /// `()`, `(n,)`, `(n, m)`, `(n, m, )`, ...: non-negative integers (a one-tuple needs its comma).
    fn shape(&mut self) -> Result<Vec<u64>, NumpyError> {
        self.expect(b'(', "a tuple '('")?;
        let mut shape = Vec::new();
        loop {
            if self.eat(b')') {
                if shape.len() == 1 && self.text[..self.at - 1].iter().rev().find(|&&b| b != b' ') != Some(&b',') {
                    return Err(self.bad("a one-tuple's ','"));
                }
                return Ok(shape);
            }
            if shape.len() == 64 {
                return Err(self.bad("at most 64 dimensions"));
            }
            shape.push(self.int()?);
            if !self.eat(b',') {
                self.expect(b')', "',' or ')'")?;
                if shape.len() == 1 {
                    return Err(self.bad("a one-tuple's ','"));
                }
                return Ok(shape);
            }
        }
    }

    /// A decimal integer without leading zeros that fits in 64 bits.
    fn int(&mut self) -> Result<u64, NumpyError> {
        self.skip_ws();
        let start = self.at;
        let digits = self.text[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        let s = &self.text[start..start + digits];
        if digits == 0 || (digits > 1 && s[0] == b'0') {
            return Err(self.bad("a non-negative integer"));
        }
        let value = s.iter().try_fold(0u64, |v, &d| v.checked_mul(10)?.checked_add(u64::from(d - b'0')));
        self.at += digits;
        value.ok_or_else(|| self.ctx.bad(start, "a dimension below 2^64"))
    }

    /// The `descr` value: a dtype string; a list (a structured dtype) is refused by name.
    fn descr(&mut self) -> Result<(DType, bool), NumpyError> {
        self.skip_ws();
        if self.text.get(self.at) == Some(&b'[') {
            let descr = String::from_utf8_lossy(&self.text[self.at..]).trim_end().to_string();
            return Err(self.unsupported(descr, "a structured dtype"));
        }
        let at = self.at;
        let s = self.string()?;
        let text = String::from_utf8_lossy(s).into_owned();
        let (order, code) = match s.split_first() {
            Some((&o @ (b'<' | b'>' | b'|' | b'='), rest)) => (o, rest),
            _ => (0, s),
        };
        let dtype = dtype_of(code).map_err(|kind| self.unsupported(text.clone(), kind))?;
        let one_byte = dtype.size() == Some(1);
        match order {
            b'<' => Ok((dtype, false)),
            b'>' => Ok((dtype, !one_byte)),
            b'|' if one_byte => Ok((dtype, false)),
            _ => Err(self.ctx.bad(at + 1, "a byte order '<' or '>' ('|' for one-byte types)")),
        }
    }

    fn unsupported(&self, descr: String, kind: &'static str) -> NumpyError {
        NumpyError::UnsupportedDtype { path: self.ctx.path(), member: self.ctx.member(), descr, kind }
    }
}

/// The dtype of a type code without its byte order (`f4`, `b1`, ...), or what kind of dtype it is.
fn dtype_of(code: &[u8]) -> Result<DType, &'static str> {
    Ok(match code {
        b"b1" => DType::Bool,
        b"u1" => DType::U8,
        b"u2" => DType::U16,
        b"u4" => DType::U32,
        b"u8" => DType::U64,
        b"i1" => DType::I8,
        b"i2" => DType::I16,
        b"i4" => DType::I32,
        b"i8" => DType::I64,
        b"f2" => DType::F16,
        b"f4" => DType::F32,
        b"f8" => DType::F64,
        _ => {
            return Err(match code.first() {
                Some(b'O') => "an object dtype (reading it would run pickle)",
                Some(b'c') => "a complex dtype",
                Some(b'f') => "an extended-precision float dtype",
                Some(b'S' | b'U' | b'a') => "a string dtype",
                Some(b'V') => "a void (raw bytes) dtype",
                Some(b'M' | b'm') => "a date or time dtype",
                _ => "not a dtype numpy writes",
            })
        }
    })
}

/// The `descr` numpy writes for `dtype`, or `None` if numpy has no such type.
pub fn descr(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::I8 => "|i1",
        DType::U16 => "<u2",
        DType::I16 => "<i2",
        DType::U32 => "<u4",
        DType::I32 => "<i4",
        DType::U64 => "<u8",
        DType::I64 => "<i8",
        DType::F16 => "<f2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        _ => return None,
    })
}

/// The header `np.save` writes for a C-order array of `descr` and `shape`: magic, version, length,
/// the dict literal with spare room for the first axis, spaces to align the data to 64 bytes, `\n`.
pub fn write(descr: &str, shape: &[u64]) -> Vec<u8> {
    let shape_repr = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // As numpy's `_wrap_header_guess_version`: version 1.0 unless the header needs a 32-bit length.
    let hlen = dict.len() + 1;
    let pad_for = |len_bytes: usize| ARRAY_ALIGN - (MAGIC.len() + 2 + len_bytes + hlen) % ARRAY_ALIGN;
    let (version, len_bytes) = if hlen + pad_for(2) <= usize::from(u16::MAX) { (1u8, 2) } else { (2u8, 4) };
    let pad = pad_for(len_bytes);
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + len_bytes + hlen + pad);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    let field = (hlen + pad) as u32;
    out.extend_from_slice(&field.to_le_bytes()[..len_bytes]);
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + pad, b' ');
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests;
