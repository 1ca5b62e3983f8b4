//! Reading and checking the header of one safetensors file: the length prefix, the JSON, every
//! tensor's dtype, shape and byte range, and that the ranges tile the data buffer exactly.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use warmstart_core::TensorInfo;

use crate::dtype;
use crate::SafetensorsError;

/// The largest header safetensors accepts, in bytes.
pub(crate) const MAX_HEADER_LEN: u64 = 100_000_000;

/// The bytes of the header length prefix.
pub(crate) const LEN_PREFIX: usize = 8;

/// The key under which a header keeps its free-form string metadata.
pub(crate) const METADATA_KEY: &str = "__metadata__";

/// One file's checked header.
#[derive(Debug)]
pub(crate) struct Header {
    /// The tensors in storage order (by offset), each with its byte range in the whole file.
    pub tensors: Vec<(TensorInfo, Range<usize>)>,
    /// `__metadata__`, if present.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// The header's top-level entries in file order, duplicates kept so they can be reported.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// Reads and checks the header of the safetensors file `path` whose whole content is `bytes`.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Header, SafetensorsError> {
    let (header_bytes, data) = split(path, bytes)?;
    let text = std::str::from_utf8(header_bytes)
        .map_err(|source| SafetensorsError::HeaderNotUtf8 { path: path.to_path_buf(), source })?;
    let Entries(entries) = serde_json::from_str(text)
        .map_err(|source| SafetensorsError::HeaderNotJson { path: path.to_path_buf(), source: source.into() })?;
    let (metadata, raw) = read_entries(path, entries)?;
    let tensors = tile(path, raw, LEN_PREFIX + header_bytes.len(), data.len() as u64)?;

    // The official reader must agree.
    safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|source| SafetensorsError::Rejected { path: path.to_path_buf(), source: source.into() })?;
    Ok(Header { tensors, metadata })
}

/// A tensor entry of a header, with its warmstart dtype.
type RawEntry = (String, warmstart_core::DType, safetensors::tensor::TensorInfo);

/// A header's `__metadata__`.
type Metadata = BTreeMap<String, String>;

/// The header's bytes and the data buffer after them, after checking the length prefix.
fn split<'a>(path: &Path, bytes: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), SafetensorsError> {
    let path_buf = || path.to_path_buf();
    let Some((len_bytes, rest)) = bytes.split_first_chunk::<LEN_PREFIX>() else {
        return Err(SafetensorsError::FileTooShort { path: path_buf(), len: bytes.len() as u64 });
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge { path: path_buf(), header_len, max: MAX_HEADER_LEN });
    }
    let available = rest.len() as u64;
    if header_len > available {
        return Err(SafetensorsError::HeaderLongerThanFile { path: path_buf(), header_len, available });
    }
    // header_len <= rest.len(), so it fits in usize.
    Ok(rest.split_at(header_len as usize))
}

/// The metadata and the tensor entries of a header's top-level `entries`, in file order, after
/// checking that no name repeats and that every entry parses with a dtype warmstart has.
fn read_entries(
    path: &Path,
    entries: Vec<(String, serde_json::Value)>,
) -> Result<(Option<Metadata>, Vec<RawEntry>), SafetensorsError> {
    let path_buf = || path.to_path_buf();
    let mut seen = HashSet::new();
    let mut metadata = None;
    let mut raw = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if !seen.insert(name.clone()) {
            return Err(SafetensorsError::DuplicateEntry { path: path_buf(), name });
        }
        if name == METADATA_KEY {
            metadata = Some(
                serde_json::from_value::<Metadata>(value)
                    .map_err(|source| SafetensorsError::BadMetadata { path: path_buf(), source: source.into() })?,
            );
            continue;
        }
        let info = serde_json::from_value::<safetensors::tensor::TensorInfo>(value).map_err(|source| {
            SafetensorsError::BadTensorEntry { path: path_buf(), tensor: name.clone(), source: source.into() }
        })?;
        let Some(core_dtype) = dtype::to_core(info.dtype) else {
            return Err(SafetensorsError::UnsupportedDtype {
                path: path_buf(),
                tensor: name,
                dtype: dtype::spelling(info.dtype),
            });
        };
        raw.push((name, core_dtype, info));
    }
    Ok((metadata, raw))
}

/// The tensors of `raw` in storage order, each with its byte range in the whole file (whose data
/// buffer of `data_len` bytes starts at byte `data_start`), after checking that their ranges tile
/// the buffer exactly and match their dtypes and shapes.
fn tile(
    path: &Path,
    mut raw: Vec<RawEntry>,
    data_start: usize,
    data_len: u64,
) -> Result<Vec<(TensorInfo, Range<usize>)>, SafetensorsError> {
    let path_buf = || path.to_path_buf();
    raw.sort_by_key(|(_, _, info)| info.data_offsets);
    let mut tensors = Vec::with_capacity(raw.len());
    let mut previous: Option<&str> = None;
    let mut covered = 0u64;
    for (name, core_dtype, info) in &raw {
        let (begin, end) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
        if end < begin {
            return Err(SafetensorsError::ReversedOffsets { path: path_buf(), tensor: name.clone(), begin, end });
        }
        if end > data_len {
            return Err(SafetensorsError::OffsetsPastEnd { path: path_buf(), tensor: name.clone(), end, data_len });
        }
        if begin < covered {
            let other = previous.unwrap_or_default().to_string();
            return Err(SafetensorsError::OverlappingTensors { path: path_buf(), tensor: name.clone(), other });
        }
        if begin > covered {
            return Err(SafetensorsError::GapBeforeTensor {
                path: path_buf(),
                tensor: name.clone(),
                gap_start: covered,
                begin,
            });
        }
        let shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
        let core_info = TensorInfo::new(name.clone(), *core_dtype, shape);
        let expected = core_info.byte_len();
        if expected != Some(end - begin) {
            return Err(SafetensorsError::DtypeShapeMismatch {
                path: path_buf(),
                tensor: name.clone(),
                dtype: core_dtype.name().to_string(),
                shape: info.shape.clone(),
                expected,
                actual: end - begin,
            });
        }
        // begin <= end <= data_len, so both fit in usize.
        tensors.push((core_info, data_start + begin as usize..data_start + end as usize));
        covered = end;
        previous = Some(name);
    }
    if covered != data_len {
        return Err(SafetensorsError::TrailingBytes { path: path_buf(), end: covered, data_len });
    }
    Ok(tensors)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A file made of `header` (padded to 8 bytes, as safetensors does) and `data`.
    pub(crate) fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.as_bytes().to_vec();
        h.resize(h.len().next_multiple_of(8), b' ');
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend(h);
        out.extend(data);
        out
    }

    fn parse_err(bytes: &[u8]) -> SafetensorsError {
        let err = parse(Path::new("m.safetensors"), bytes).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("m.safetensors: "), "{text}");
        err
    }

    const TWO: &str = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[2,2],"data_offsets":[8,12]}}"#;

    #[test]
    fn valid_file_in_offset_order_with_metadata() {
        let header = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"U8","shape":[2,2],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"s":{"dtype":"BF16","shape":[],"data_offsets":[12,14]},"e":{"dtype":"F64","shape":[0,3],"data_offsets":[14,14]}}"#;
        let bytes = file(header, &[0; 14]);
        let h = parse(Path::new("m.safetensors"), &bytes).unwrap();
        let names: Vec<_> = h.tensors.iter().map(|(t, _)| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "s", "e"]);
        let start = bytes.len() - 14;
        assert_eq!(h.tensors[1].1, start + 8..start + 12);
        assert_eq!(h.tensors[2].0, TensorInfo::new("s", warmstart_core::DType::BF16, vec![]));
        assert_eq!(h.metadata.unwrap()["format"], "pt");
    }

    #[test]
    fn file_too_short() {
        assert!(matches!(parse_err(&[1, 0, 0]), SafetensorsError::FileTooShort { len: 3, .. }));
    }

    #[test]
    fn header_too_large() {
        let bytes = (MAX_HEADER_LEN + 1).to_le_bytes();
        assert!(matches!(parse_err(&bytes), SafetensorsError::HeaderTooLarge { .. }));
    }

    #[test]
    fn header_longer_than_file() {
        let mut bytes = file(TWO, &[0; 12]);
        bytes.truncate(20);
        assert!(matches!(parse_err(&bytes), SafetensorsError::HeaderLongerThanFile { available: 12, .. }));
    }

    #[test]
    fn header_not_utf8() {
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend([0xff, 0xfe]);
        assert!(matches!(parse_err(&bytes), SafetensorsError::HeaderNotUtf8 { .. }));
    }

    #[test]
    fn header_not_json() {
        assert!(matches!(parse_err(&file("{not json", &[])), SafetensorsError::HeaderNotJson { .. }));
        assert!(matches!(parse_err(&file("[1, 2]", &[])), SafetensorsError::HeaderNotJson { .. }));
    }

    #[test]
    fn duplicate_entry() {
        let header = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
        let err = parse_err(&file(header, &[0; 2]));
        assert!(matches!(&err, SafetensorsError::DuplicateEntry { name, .. } if name == "a"), "{err}");
    }

    #[test]
    fn bad_metadata() {
        let err = parse_err(&file(r#"{"__metadata__":{"n":1}}"#, &[]));
        assert!(matches!(err, SafetensorsError::BadMetadata { .. }), "{err}");
    }

    #[test]
    fn bad_tensor_entry() {
        for entry in [
            r#"{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#,
            r#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            r#"{"w":{"dtype":"F32","shape":[1]}}"#,
        ] {
            let err = parse_err(&file(entry, &[0; 4]));
            assert!(matches!(&err, SafetensorsError::BadTensorEntry { tensor, .. } if tensor == "w"), "{err}");
            assert!(err.to_string().contains("\"w\""));
        }
    }

    #[test]
    fn unsupported_dtype() {
        let err = parse_err(&file(r#"{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#, &[0]));
        assert!(
            matches!(&err, SafetensorsError::UnsupportedDtype { tensor, dtype, .. } if tensor == "w" && dtype == "F4")
        );
    }

    #[test]
    fn reversed_offsets() {
        let err = parse_err(&file(r#"{"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#, &[0; 4]));
        assert!(matches!(&err, SafetensorsError::ReversedOffsets { tensor, begin: 4, end: 0, .. } if tensor == "w"));
    }

    #[test]
    fn offsets_past_end() {
        let mut bytes = file(TWO, &[0; 12]);
        bytes.truncate(bytes.len() - 1);
        let err = parse_err(&bytes);
        assert!(
            matches!(&err, SafetensorsError::OffsetsPastEnd { tensor, end: 12, data_len: 11, .. } if tensor == "b")
        );
    }

    #[test]
    fn overlapping_tensors() {
        let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#;
        let err = parse_err(&file(header, &[0; 8]));
        assert!(
            matches!(&err, SafetensorsError::OverlappingTensors { tensor, other, .. } if tensor == "b" && other == "a")
        );
        assert!(err.to_string().contains("\"b\" overlaps tensor \"a\""));
    }

    #[test]
    fn gap_before_tensor() {
        let header = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}"#;
        let err = parse_err(&file(header, &[0; 6]));
        assert!(
            matches!(&err, SafetensorsError::GapBeforeTensor { tensor, gap_start: 2, begin: 4, .. } if tensor == "b")
        );
    }

    #[test]
    fn trailing_bytes() {
        let err = parse_err(&file(TWO, &[0; 13]));
        assert!(matches!(err, SafetensorsError::TrailingBytes { end: 12, data_len: 13, .. }));
    }

    #[test]
    fn dtype_shape_mismatch() {
        let header = r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        let err = parse_err(&file(header, &[0; 8]));
        assert!(
            matches!(&err, SafetensorsError::DtypeShapeMismatch { tensor, expected: Some(12), actual: 8, .. } if tensor == "w")
        );
        let header = r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
        let err = parse_err(&file(header, &[0; 8]));
        assert!(matches!(err, SafetensorsError::DtypeShapeMismatch { expected: None, .. }));
        assert!(err.to_string().contains("more than 2^64"));
    }

    #[test]
    fn rejected_wraps_the_library_error_with_the_file() {
        // Our checks are at least as strict as the library's for every input we know of, so this
        // variant is a safety net; check that it names the file and keeps the library's reason.
        let source = safetensors::SafeTensors::read_metadata(&[0u8; 3]).unwrap_err();
        let err = SafetensorsError::Rejected { path: "m.safetensors".into(), source: source.into() };
        assert_eq!(err.to_string(), "m.safetensors: the safetensors library refuses the file: header too small");
    }
}
