//! Entry validation: the `.index` table's header checked (version, endianness, shard count), then each
//! `BundleEntryProto` decoded and checked at open against the header and the data shards (dtype known and supported, shape valid, shard present, byte range
//! inside the file, size equal to dtype x shape), so that reads need no checks of their own.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use prost::Message;
use warmstart_core::{DType, TensorInfo};

use super::shards::Stored;
use super::{Layout, TfSource, BUNDLE_VERSION};
use crate::dtype::{from_tf, TfDType};
use crate::proto::{BundleEntryProto, BundleHeaderProto, TensorShapeProto};
use crate::slice_key;
use crate::TfError;

/// The entries under tensor names, in table order.
type NamedEntries = Vec<(String, Vec<u8>)>;

/// The entries under slice keys, by key.
pub(super) type SliceEntries = HashMap<Vec<u8>, Vec<u8>>;

/// The bundle header, which must be the table's first entry, under the empty key.
pub(super) fn header(index_path: &Path, first: Option<(Vec<u8>, Vec<u8>)>) -> Result<BundleHeaderProto, TfError> {
    match first {
        Some((key, value)) if key.is_empty() => BundleHeaderProto::decode(value.as_slice()).map_err(|source| {
            TfError::BadProto { path: index_path.to_path_buf(), what: "bundle header".into(), source: source.into() }
        }),
        _ => Err(TfError::MissingHeader { path: index_path.to_path_buf() }),
    }
}

/// Checks that the header's version admits this reader; gives whether the bundle is big-endian and
/// how many data shards it has.
pub(super) fn check_header(index_path: &Path, header: &BundleHeaderProto) -> Result<(bool, u32), TfError> {
    let bad_header = |reason: String| TfError::BadHeader { path: index_path.to_path_buf(), reason };
    let version = header.version.clone().unwrap_or_default();
    if version.min_consumer > BUNDLE_VERSION {
        return Err(bad_header(format!(
            "it needs a reader of version {} or newer; this one is version {BUNDLE_VERSION}",
            version.min_consumer
        )));
    }
    if version.producer < 0 || version.bad_consumers.contains(&BUNDLE_VERSION) {
        return Err(bad_header(format!("version {version:?} excludes this reader")));
    }
    let big_endian = match header.endianness {
        0 => false,
        1 => true,
        other => return Err(bad_header(format!("unknown endianness {other}"))),
    };
    let num_shards =
        u32::try_from(header.num_shards).map_err(|_| bad_header(format!("num_shards {}", header.num_shards)))?;
    Ok((big_endian, num_shards))
}

/// The entries after the header, told apart: those under a tensor's name (which must be UTF-8), in
/// table order, and those under a slice's OrderedCode key, by key.
pub(super) fn by_kind(
    index_path: &Path,
    entries: impl Iterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<(NamedEntries, SliceEntries), TfError> {
    let mut slice_entries = SliceEntries::new();
    let mut named = Vec::new();
    for (key, value) in entries {
        if slice_key::is_slice_key(&key) {
            slice_entries.insert(key, value);
        } else {
            let name = String::from_utf8(key).map_err(|e| TfError::CorruptTable {
                path: index_path.to_path_buf(),
                offset: 0,
                reason: format!("tensor name {:?} is not UTF-8", String::from_utf8_lossy(e.as_bytes())),
            })?;
            named.push((name, value));
        }
    }
    Ok((named, slice_entries))
}

impl TfSource {
    /// Decodes and checks the entry of tensor `name` (and of its slices, for a partitioned tensor, from
    /// `slice_entries`), and adds the tensor.
    pub(super) fn add_tensor(
        &mut self,
        name: String,
        value: &[u8],
        slice_entries: &SliceEntries,
    ) -> Result<(), TfError> {
        let entry = self.decode_entry(&name, value)?;
        let (dtype, shape) = self.dtype_and_shape(&name, &entry)?;
        let layout = if entry.slices.is_empty() {
            Layout::Whole(self.stored(&name, &entry, dtype, &shape)?)
        } else {
            Layout::Sliced(self.parts(&name, &entry, dtype, &shape, slice_entries)?)
        };
        self.by_name.insert(name.clone(), self.tensors.len());
        self.tensors.push(TensorInfo::new(name, dtype, shape));
        self.layouts.push(layout);
        Ok(())
    }

    pub(super) fn decode_entry(&self, what: &str, value: &[u8]) -> Result<BundleEntryProto, TfError> {
        BundleEntryProto::decode(value).map_err(|source| TfError::BadProto {
            path: self.index_path.clone(),
            what: format!("entry of tensor {what:?}"),
            source: source.into(),
        })
    }

    pub(super) fn dtype_and_shape(&self, name: &str, entry: &BundleEntryProto) -> Result<(DType, Vec<u64>), TfError> {
        let dtype = match from_tf(entry.dtype) {
            TfDType::Known(d) => d,
            TfDType::Unsupported(tf_name) => {
                return Err(TfError::UnsupportedDType {
                    path: self.index_path.clone(),
                    tensor: name.to_string(),
                    dtype: tf_name.to_string(),
                })
            }
            TfDType::Unknown => {
                return Err(TfError::UnknownDType {
                    path: self.index_path.clone(),
                    tensor: name.to_string(),
                    dtype: entry.dtype,
                })
            }
        };
        let shape = self.shape(name, entry.shape.as_ref())?;
        Ok((dtype, shape))
    }

    pub(super) fn shape(&self, name: &str, proto: Option<&TensorShapeProto>) -> Result<Vec<u64>, TfError> {
        let bad =
            |reason: String| TfError::BadShape { path: self.index_path.clone(), tensor: name.to_string(), reason };
        let Some(proto) = proto else {
            return Ok(Vec::new());
        };
        if proto.unknown_rank {
            return Err(bad("unknown rank".into()));
        }
        let shape: Vec<u64> = proto
            .dim
            .iter()
            .map(|d| u64::try_from(d.size).map_err(|_| bad(format!("dimension {}", d.size))))
            .collect::<Result<_, _>>()?;
        if warmstart_core::TensorInfo::new(name, DType::U8, shape.clone()).num_elements().is_none() {
            return Err(bad(format!("{shape:?} has more elements than fit in 64 bits")));
        }
        Ok(shape)
    }

    /// Checks a whole entry's shard, byte range and size.
    pub(super) fn stored(
        &self,
        name: &str,
        entry: &BundleEntryProto,
        dtype: DType,
        shape: &[u64],
    ) -> Result<Stored, TfError> {
        let shard = usize::try_from(entry.shard_id).ok().filter(|&s| s < self.shards.len()).ok_or_else(|| {
            TfError::BadShardId {
                path: self.index_path.clone(),
                tensor: name.to_string(),
                shard: i64::from(entry.shard_id),
                num_shards: self.shards.len() as u32,
            }
        })?;
        let file = &self.shards[shard];
        let file_len = file.bytes().len();
        let out_of_range = || TfError::DataOutOfRange {
            path: file.path.clone(),
            tensor: name.to_string(),
            offset: entry.offset,
            size: entry.size,
            file_len: file_len as u64,
        };
        let offset = usize::try_from(entry.offset).map_err(|_| out_of_range())?;
        let size = usize::try_from(entry.size).map_err(|_| out_of_range())?;
        if offset.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(out_of_range());
        }
        let elements = TensorInfo::new(name, dtype, shape.to_vec()).num_elements();
        match dtype.size() {
            Some(width) => {
                let expected = elements.and_then(|n| n.checked_mul(width as u64));
                if expected != Some(size as u64) {
                    return Err(TfError::SizeMismatch {
                        path: self.index_path.clone(),
                        tensor: name.to_string(),
                        size: entry.size,
                        expected: expected.unwrap_or(u64::MAX),
                    });
                }
            }
            // Strings: the lengths' checksum alone takes 4 bytes; decoding checks the rest.
            None if size < 4 => {
                return Err(TfError::SizeMismatch {
                    path: self.index_path.clone(),
                    tensor: name.to_string(),
                    size: entry.size,
                    expected: 4,
                })
            }
            None => {}
        }
        Ok(Stored { shard, offset, size, crc: entry.crc32c, computed: OnceLock::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::tensor_shape_proto::Dim;
    use crate::proto::TensorShapeProto;
    use crate::TfError;

    #[test]
    fn forged_entries_name_the_tensor() {
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"f32", |e| e.size = 1 << 40));
        assert!(matches!(&e, TfError::DataOutOfRange { tensor, .. } if tensor == "f32"), "{e}");
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"f32", |e| e.offset = -4));
        assert!(matches!(&e, TfError::DataOutOfRange { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"f32", |e| e.shape.as_mut().unwrap().dim[0].size = 3));
        assert!(matches!(&e, TfError::SizeMismatch { tensor, .. } if tensor == "f32"), "{e}");
        assert!(e.to_string().contains("all.index"), "{e}");
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"i8", |e| e.dtype = 99));
        assert!(matches!(&e, TfError::UnknownDType { tensor, dtype: 99, .. } if tensor == "i8"), "{e}");
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"i8", |e| e.dtype = 21));
        assert!(e.to_string().contains("DT_VARIANT") && e.to_string().contains("\"i8\""), "{e}");
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"i8", |e| e.shard_id = 5));
        assert!(matches!(&e, TfError::BadShardId { shard: 5, .. }), "{e}");
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"i8", |e| e.shape.as_mut().unwrap().dim[0].size = -1));
        assert!(matches!(&e, TfError::BadShape { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| {
            edit_entry(x, b"i8", |e| {
                e.shape = Some(TensorShapeProto {
                    dim: vec![Dim { size: 1 << 40, name: String::new() }; 3],
                    unknown_rank: false,
                })
            })
        });
        assert!(matches!(&e, TfError::BadShape { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"i8", |e| e.shape.as_mut().unwrap().unknown_rank = true));
        assert!(matches!(&e, TfError::BadShape { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| {
            let (_, v) = x.iter_mut().find(|(k, _)| k == b"u8").unwrap();
            *v = vec![0x12, 0xff, 0xff];
        });
        assert!(matches!(&e, TfError::BadProto { what, .. } if what.contains("u8")), "{e}");
    }

    #[test]
    fn forged_headers() {
        let e = open_err("dtypes", "all", |x| {
            x.remove(0);
        });
        assert!(matches!(e, TfError::MissingHeader { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| edit_header(x, |h| h.version.as_mut().unwrap().min_consumer = 2));
        assert!(matches!(e, TfError::BadHeader { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| edit_header(x, |h| h.endianness = 7));
        assert!(matches!(e, TfError::BadHeader { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| edit_header(x, |h| h.num_shards = -1));
        assert!(matches!(e, TfError::BadHeader { .. }), "{e}");
        // A forged shard count is bounded by the files that exist: the first missing one is the error.
        let e = open_err("dtypes", "all", |x| edit_header(x, |h| h.num_shards = i32::MAX));
        assert!(matches!(&e, TfError::MissingShard { shard: 0, .. }), "{e}");
        assert!(e.to_string().contains("all.data-00000-of-2147483647"), "{e}");
    }
}
