//! Entry validation: each `BundleEntryProto` of the `.index` table decoded and checked at open against
//! the header and the data shards (dtype known and supported, shape valid, shard present, byte range
//! inside the file, size equal to dtype x shape), so that reads need no checks of their own.

use std::sync::OnceLock;

use prost::Message;
use warmstart_core::{DType, TensorInfo};

use super::shards::Stored;
use super::TfSource;
use crate::dtype::{from_tf, TfDType};
use crate::proto::{BundleEntryProto, TensorShapeProto};
use crate::TfError;

impl TfSource {
    pub(super) fn decode_entry(&self, what: &str, value: &[u8]) -> Result<BundleEntryProto, TfError> {
        BundleEntryProto::decode(value).map_err(|source| TfError::BadProto {
            path: self.index_path.clone(),
            what: format!("entry of tensor {what:?}"),
            source: source.into(),
        })
    }

    pub(super) fn dtype_and_shape(
        &self,
        name: &str,
        entry: &BundleEntryProto,
    ) -> Result<(DType, Vec<u64>), TfError> {
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
        let bad = |reason: String| TfError::BadShape {
            path: self.index_path.clone(),
            tensor: name.to_string(),
            reason,
        };
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
        if warmstart_core::TensorInfo::new(name, DType::U8, shape.clone())
            .num_elements()
            .is_none()
        {
            return Err(bad(format!(
                "{shape:?} has more elements than fit in 64 bits"
            )));
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
        let shard = usize::try_from(entry.shard_id)
            .ok()
            .filter(|&s| s < self.shards.len())
            .ok_or_else(|| TfError::BadShardId {
                path: self.index_path.clone(),
                tensor: name.to_string(),
                shard: i64::from(entry.shard_id),
                num_shards: self.shards.len() as u32,
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
        Ok(Stored {
            shard,
            offset,
            size,
            crc: entry.crc32c,
            computed: OnceLock::new(),
        })
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
        let e = open_err("dtypes", "all", |x| {
            edit_entry(x, b"f32", |e| e.size = 1 << 40)
        });
        assert!(
            matches!(&e, TfError::DataOutOfRange { tensor, .. } if tensor == "f32"),
            "{e}"
        );
        let e = open_err("dtypes", "all", |x| {
            edit_entry(x, b"f32", |e| e.offset = -4)
        });
        assert!(matches!(&e, TfError::DataOutOfRange { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| {
            edit_entry(x, b"f32", |e| e.shape.as_mut().unwrap().dim[0].size = 3)
        });
        assert!(
            matches!(&e, TfError::SizeMismatch { tensor, .. } if tensor == "f32"),
            "{e}"
        );
        assert!(e.to_string().contains("all.index"), "{e}");
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"i8", |e| e.dtype = 99));
        assert!(
            matches!(&e, TfError::UnknownDType { tensor, dtype: 99, .. } if tensor == "i8"),
            "{e}"
        );
        let e = open_err("dtypes", "all", |x| edit_entry(x, b"i8", |e| e.dtype = 21));
        assert!(
            e.to_string().contains("DT_VARIANT") && e.to_string().contains("\"i8\""),
            "{e}"
        );
        let e = open_err("dtypes", "all", |x| {
            edit_entry(x, b"i8", |e| e.shard_id = 5)
        });
        assert!(matches!(&e, TfError::BadShardId { shard: 5, .. }), "{e}");
        let e = open_err("dtypes", "all", |x| {
            edit_entry(x, b"i8", |e| e.shape.as_mut().unwrap().dim[0].size = -1)
        });
        assert!(matches!(&e, TfError::BadShape { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| {
            edit_entry(x, b"i8", |e| {
                e.shape = Some(TensorShapeProto {
                    dim: vec![
                        Dim {
                            size: 1 << 40,
                            name: String::new()
                        };
                        3
                    ],
                    unknown_rank: false,
                })
            })
        });
        assert!(matches!(&e, TfError::BadShape { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| {
            edit_entry(x, b"i8", |e| e.shape.as_mut().unwrap().unknown_rank = true)
        });
        assert!(matches!(&e, TfError::BadShape { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| {
            let (_, v) = x.iter_mut().find(|(k, _)| k == b"u8").unwrap();
            *v = vec![0x12, 0xff, 0xff];
        });
        assert!(
            matches!(&e, TfError::BadProto { what, .. } if what.contains("u8")),
            "{e}"
        );
    }

}
