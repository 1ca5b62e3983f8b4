//! [`TfSource`]: a V2 checkpoint opened for reading. The `.index` table is read and every entry
//! validated at open (dtype, shape, shard, byte range, size, slices); the data shards are memory-mapped,
//! and each stored tensor's CRC32C is verified on its first read, before any of its bytes are handed out.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;
use prost::Message;
use rayon::prelude::*;
use warmstart_core::{CheckpointSource, DType, Format, GraphInfo, Slice, TensorInfo};

use crate::dtype::{from_tf, swap_unit, TfDType};
use crate::proto::{BundleEntryProto, BundleHeaderProto, TensorShapeProto};
use crate::slice_key::{self, Extent};
use crate::state::{data_path, index_path, meta_path, resolve_prefix};
use crate::table::{mask_crc, read_index_file};
use crate::{strings, TfError};

/// The bundle format version this reader implements (`kTensorBundleVersion`).
const BUNDLE_VERSION: i32 = 1;
/// The key of the tensor holding a TF2 checkpoint's object graph.
pub const OBJECT_GRAPH_KEY: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";

/// A TensorFlow V2 checkpoint (tensor bundle) opened for reading.
pub struct TfSource {
    prefix: PathBuf,
    index_path: PathBuf,
    tensors: Vec<TensorInfo>,
    layouts: Vec<Layout>,
    by_name: HashMap<String, usize>,
    shards: Vec<Shard>,
    big_endian: bool,
    graph: Option<GraphInfo>,
}

/// One memory-mapped data file.
struct Shard {
    path: PathBuf,
    /// `None` for an empty file (which cannot be mapped).
    map: Option<Mmap>,
}

impl Shard {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Drops bytes `range` of the shard from resident memory (see [`warmstart_core::mapped::release`]).
    fn release(&self, range: Range<usize>) {
        if let Some(map) = &self.map {
            warmstart_core::mapped::release(map, range);
        }
    }

    /// The CRC32C of bytes `range` (within the shard). A large run is hashed in parallel chunks, each
    /// dropped from resident memory once hashed, so that verifying a tensor does not keep it mapped.
    fn checksum(&self, range: Range<usize>) -> u32 {
        self.checksum_in_chunks(range, CHECKSUM_CHUNK)
    }

    fn checksum_in_chunks(&self, range: Range<usize>, chunk_bytes: usize) -> u32 {
        let bytes = &self.bytes()[range.clone()];
        if bytes.len() <= chunk_bytes {
            return crc32c::crc32c(bytes);
        }
        let hash = |(i, chunk): (usize, &[u8])| {
            let crc = crc32c::crc32c(chunk);
            let at = range.start + i * chunk_bytes;
            self.release(at..at + chunk.len());
            (crc, chunk.len())
        };
        let combine = |(crc_a, len_a): (u32, usize), (crc_b, len_b): (u32, usize)| {
            (crc32c::crc32c_combine(crc_a, crc_b, len_b), len_a + len_b)
        };
        // Inside a rayon task the chunks are hashed in turn, not as more tasks: the task holds the
        // tensor's one-time check, which other tasks may be waiting for, and waiting in a join could
        // run one of them here.
        let (crc, _) = if rayon::current_thread_index().is_some() {
            bytes.chunks(chunk_bytes).enumerate().map(hash).fold((0, 0), combine)
        } else {
            bytes.par_chunks(chunk_bytes).enumerate().map(hash).reduce(|| (0, 0), combine)
        };
        crc
    }
}

/// Bytes one task hashes when a large tensor's checksum is verified in parallel.
const CHECKSUM_CHUNK: usize = 4 << 20;

/// A run of bytes in a data shard holding one tensor or one slice.
struct Stored {
    shard: usize,
    offset: usize,
    size: usize,
    /// The masked CRC32C from the entry.
    crc: u32,
    /// The masked CRC32C of the bytes, computed on first read.
    computed: OnceLock<u32>,
}

/// How a logical tensor is stored.
enum Layout {
    Whole(Stored),
    Sliced(Vec<(Slice, Stored)>),
}

impl TfSource {
    /// Opens the checkpoint at `path`: a directory with a `checkpoint` file (its latest checkpoint), a
    /// prefix, or the prefix's `.index` or `.data-*` file.
    pub fn open(path: &Path) -> Result<TfSource, TfError> {
        let prefix = resolve_prefix(path)?;
        let (index_path, entries) = read_index_file(&index_path(&prefix))?;
        let mut iter = entries.into_iter();
        let header = match iter.next() {
            Some((key, value)) if key.is_empty() => BundleHeaderProto::decode(value.as_slice())
                .map_err(|source| TfError::BadProto {
                    path: index_path.clone(),
                    what: "bundle header".into(),
                    source: source.into(),
                })?,
            _ => return Err(TfError::MissingHeader { path: index_path }),
        };
        let bad_header = |reason: String| TfError::BadHeader {
            path: index_path.clone(),
            reason,
        };
        let version = header.version.clone().unwrap_or_default();
        if version.min_consumer > BUNDLE_VERSION {
            return Err(bad_header(format!(
                "it needs a reader of version {} or newer; this one is version {BUNDLE_VERSION}",
                version.min_consumer
            )));
        }
        if version.producer < 0 || version.bad_consumers.contains(&BUNDLE_VERSION) {
            return Err(bad_header(format!(
                "version {version:?} excludes this reader"
            )));
        }
        let big_endian = match header.endianness {
            0 => false,
            1 => true,
            other => return Err(bad_header(format!("unknown endianness {other}"))),
        };
        let num_shards = u32::try_from(header.num_shards)
            .map_err(|_| bad_header(format!("num_shards {}", header.num_shards)))?;

        let mut shards = Vec::new();
        for i in 0..num_shards {
            let path = data_path(&prefix, i, num_shards);
            let file = File::open(&path).map_err(|source| TfError::MissingShard {
                path: path.clone(),
                shard: i,
                num_shards,
                source,
            })?;
            let len = file.metadata().map_err(|e| TfError::io(&path, e))?.len();
            // SAFETY: the map is read-only; as with every memory-mapped reader, the file must not be
            // truncated or rewritten while the checkpoint is open.
            let map = if len == 0 {
                None
            } else {
                Some(unsafe { Mmap::map(&file) }.map_err(|e| TfError::io(&path, e))?)
            };
            shards.push(Shard { path, map });
        }

        let mut slice_entries: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut named = Vec::new();
        for (key, value) in iter {
            if slice_key::is_slice_key(&key) {
                slice_entries.insert(key, value);
            } else {
                let name = String::from_utf8(key).map_err(|e| TfError::CorruptTable {
                    path: index_path.clone(),
                    offset: 0,
                    reason: format!(
                        "tensor name {:?} is not UTF-8",
                        String::from_utf8_lossy(e.as_bytes())
                    ),
                })?;
                named.push((name, value));
            }
        }

        let mut ckpt = TfSource {
            prefix,
            index_path,
            tensors: Vec::with_capacity(named.len()),
            layouts: Vec::with_capacity(named.len()),
            by_name: HashMap::with_capacity(named.len()),
            shards,
            big_endian,
            graph: None,
        };
        for (name, value) in named {
            let entry = ckpt.decode_entry(&name, &value)?;
            let (dtype, shape) = ckpt.dtype_and_shape(&name, &entry)?;
            let layout = if entry.slices.is_empty() {
                Layout::Whole(ckpt.stored(&name, &entry, dtype, &shape)?)
            } else {
                Layout::Sliced(ckpt.parts(&name, &entry, dtype, &shape, &slice_entries)?)
            };
            ckpt.by_name.insert(name.clone(), ckpt.tensors.len());
            ckpt.tensors.push(TensorInfo::new(name, dtype, shape));
            ckpt.layouts.push(layout);
        }

        let meta = meta_path(&ckpt.prefix);
        if meta.is_file() {
            let bytes = std::fs::read(&meta).map_err(|e| TfError::io(&meta, e))?;
            let fallback = |name: &str| ckpt.tensor(name).map(|t| t.shape.clone());
            let graph = crate::meta::read_graph(&meta, &bytes, &fallback)?;
            ckpt.graph = Some(graph);
        }
        Ok(ckpt)
    }

    /// The checkpoint's prefix (`dir/model.ckpt-12`).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Whether the bundle was written big-endian (its tensors are byte-swapped on read).
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    fn decode_entry(&self, what: &str, value: &[u8]) -> Result<BundleEntryProto, TfError> {
        BundleEntryProto::decode(value).map_err(|source| TfError::BadProto {
            path: self.index_path.clone(),
            what: format!("entry of tensor {what:?}"),
            source: source.into(),
        })
    }

    fn dtype_and_shape(
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

    fn shape(&self, name: &str, proto: Option<&TensorShapeProto>) -> Result<Vec<u64>, TfError> {
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
    fn stored(
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

    /// Checks and collects the slices a full-name entry lists.
    fn parts(
        &self,
        name: &str,
        entry: &BundleEntryProto,
        dtype: DType,
        shape: &[u64],
        slice_entries: &HashMap<Vec<u8>, Vec<u8>>,
    ) -> Result<Vec<(Slice, Stored)>, TfError> {
        let bad = |reason: String| TfError::BadSlice {
            path: self.index_path.clone(),
            tensor: name.to_string(),
            reason,
        };
        let mut parts: Vec<(Slice, Stored)> = Vec::new();
        for (i, proto) in entry.slices.iter().enumerate() {
            if proto.extent.len() != shape.len() {
                return Err(bad(format!(
                    "slice {i} has rank {}, the tensor {}",
                    proto.extent.len(),
                    shape.len()
                )));
            }
            let mut extents = Vec::with_capacity(shape.len());
            let mut slice = Slice {
                start: Vec::with_capacity(shape.len()),
                len: Vec::with_capacity(shape.len()),
            };
            for (d, e) in proto.extent.iter().enumerate() {
                let length = e
                    .has_length
                    .map(|crate::proto::tensor_slice_proto::extent::HasLength::Length(l)| l);
                let (start, len) = match length {
                    None if e.start == 0 => (0, shape[d]),
                    Some(l) if e.start >= 0 && l >= 0 => (e.start as u64, l as u64),
                    _ => {
                        return Err(bad(format!(
                            "slice {i} has extent start {} length {length:?}",
                            e.start
                        )))
                    }
                };
                if start.checked_add(len).is_none_or(|end| end > shape[d]) {
                    return Err(bad(format!(
                        "slice {i} runs past dimension {d} ({start}+{len} > {})",
                        shape[d]
                    )));
                }
                extents.push(Extent {
                    start: e.start,
                    length,
                });
                slice.start.push(start);
                slice.len.push(len);
            }
            let desc = format!("{name} slice {:?}+{:?}", slice.start, slice.len);
            let key = slice_key::encode(name, &extents);
            let value = slice_entries.get(&key).ok_or_else(|| {
                bad(format!(
                    "the entry of slice {:?}+{:?} is missing",
                    slice.start, slice.len
                ))
            })?;
            let part = self.decode_entry(&desc, value)?;
            let (part_dtype, part_shape) = self.dtype_and_shape(&desc, &part)?;
            if part_dtype != dtype || part_shape != slice.len {
                return Err(bad(format!(
                    "slice entry {desc} holds {part_dtype} {part_shape:?}, expected {dtype} {:?}",
                    slice.len
                )));
            }
            if let Some((other, _)) = parts.iter().find(|(s, _)| overlaps(s, &slice)) {
                return Err(bad(format!(
                    "slices {:?}+{:?} and {:?}+{:?} overlap",
                    other.start, other.len, slice.start, slice.len
                )));
            }
            let stored = self.stored(&desc, &part, dtype, &part_shape)?;
            parts.push((slice, stored));
        }
        Ok(parts)
    }

    fn layout(&self, name: &str) -> Result<(&TensorInfo, &Layout), TfError> {
        let i = *self.by_name.get(name).ok_or_else(|| TfError::NotFound {
            path: self.prefix.clone(),
            tensor: name.to_string(),
        })?;
        Ok((&self.tensors[i], &self.layouts[i]))
    }

    /// Calls `visit` with the shard and byte range of rows `rows` of `name`: in the tensor, or in each
    /// of its slices that hold whole rows (partitions along the first axis; other slices are skipped).
    fn for_each_run_of_rows(&self, name: &str, rows: Range<u64>, visit: impl Fn(&Shard, Range<usize>)) {
        let Ok((info, layout)) = self.layout(name) else { return };
        let Some(row_bytes) = info.row_bytes() else { return };
        // Bytes of rows `rows` in a run whose first row is `first`.
        let run = |stored: &Stored, first: u64, rows: Range<u64>| -> Option<Range<usize>> {
            let start = usize::try_from(rows.start.checked_sub(first)?.checked_mul(row_bytes)?).ok()?;
            let end = usize::try_from(rows.end.checked_sub(first)?.checked_mul(row_bytes)?).ok()?;
            (start <= end && end <= stored.size).then(|| stored.offset + start..stored.offset + end)
        };
        match layout {
            Layout::Whole(stored) => {
                if let Some(bytes) = run(stored, 0, rows) {
                    visit(&self.shards[stored.shard], bytes);
                }
            }
            Layout::Sliced(parts) => {
                for (slice, stored) in parts {
                    let (Some((&first, inner_start)), Some((&len, inner_len))) =
                        (slice.start.split_first(), slice.len.split_first())
                    else {
                        continue;
                    };
                    let whole_rows = inner_start.iter().all(|&s| s == 0) && Some(inner_len) == info.shape.get(1..);
                    if !whole_rows {
                        continue;
                    }
                    let end = first.saturating_add(len);
                    let (lo, hi) = (rows.start.max(first), rows.end.min(end));
                    if let Some(bytes) = (lo < hi).then(|| run(stored, first, lo..hi)).flatten() {
                        visit(&self.shards[stored.shard], bytes);
                    }
                }
            }
        }
    }

    /// The bytes of a stored run, after verifying its CRC32C (computed once).
    fn verified(&self, name: &str, stored: &Stored) -> Result<&[u8], TfError> {
        let shard = &self.shards[stored.shard];
        let bytes = &shard.bytes()[stored.offset..stored.offset + stored.size];
        let computed = *stored
            .computed
            .get_or_init(|| mask_crc(shard.checksum(stored.offset..stored.offset + stored.size)));
        if computed != stored.crc {
            return Err(TfError::TensorChecksum {
                path: shard.path.clone(),
                tensor: name.to_string(),
                stored: stored.crc,
                computed,
            });
        }
        Ok(bytes)
    }

    fn too_large(&self, name: &str) -> TfError {
        TfError::TooLarge {
            path: self.prefix.clone(),
            tensor: name.to_string(),
        }
    }

    /// Copies rows `rows` of a sliced tensor out of its slices.
    fn assemble(
        &self,
        name: &str,
        info: &TensorInfo,
        width: usize,
        parts: &[(Slice, Stored)],
        rows: Range<u64>,
    ) -> Result<Vec<u8>, TfError> {
        let shape = &info.shape;
        let rank = shape.len();
        let (lo, hi): (Vec<u64>, Vec<u64>) = if rank == 0 {
            (Vec::new(), Vec::new())
        } else {
            let mut lo = vec![0; rank];
            let mut hi = shape.clone();
            lo[0] = rows.start;
            hi[0] = rows.end;
            (lo, hi)
        };
        let volume = |a: &[u64], b: &[u64]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| u128::from(y - x))
                .product::<u128>()
        };
        let wanted = volume(&lo, &hi);
        let mut pieces = Vec::new();
        let mut covered: u128 = 0;
        for (slice, stored) in parts {
            let ilo: Vec<u64> = (0..rank).map(|d| lo[d].max(slice.start[d])).collect();
            let ihi: Vec<u64> = (0..rank)
                .map(|d| hi[d].min(slice.start[d] + slice.len[d]))
                .collect();
            if (0..rank).any(|d| ilo[d] >= ihi[d]) {
                continue;
            }
            covered += volume(&ilo, &ihi);
            pieces.push((slice, stored, ilo, ihi));
        }
        // The slices do not overlap (checked at open), so volumes add up exactly when they cover.
        if wanted == 0 {
            return Ok(Vec::new());
        }
        if covered != wanted {
            return Err(TfError::SlicesDoNotCover {
                path: self.prefix.clone(),
                tensor: name.to_string(),
                start: rows.start,
                end: rows.end,
            });
        }
        // Bounded by the slices' data, which lies in the files.
        let out_len = usize::try_from(wanted * width as u128).map_err(|_| self.too_large(name))?;
        let mut out = vec![0u8; out_len];
        let strides = |dims: &[u64]| -> Vec<usize> {
            let mut s = vec![1usize; dims.len()];
            for d in (0..dims.len().saturating_sub(1)).rev() {
                s[d] = s[d + 1] * dims[d + 1] as usize;
            }
            s
        };
        let region: Vec<u64> = (0..rank).map(|d| hi[d] - lo[d]).collect();
        let dst_strides = strides(&region);
        for (slice, stored, ilo, ihi) in pieces {
            let src = self.verified(
                &format!("{name} slice {:?}+{:?}", slice.start, slice.len),
                stored,
            )?;
            let src_strides = strides(&slice.len);
            if rank == 0 {
                out.copy_from_slice(&src[..width]);
                continue;
            }
            let run = (ihi[rank - 1] - ilo[rank - 1]) as usize * width;
            let mut idx = ilo.clone();
            'copy: loop {
                let src_el: usize = (0..rank)
                    .map(|d| (idx[d] - slice.start[d]) as usize * src_strides[d])
                    .sum();
                let dst_el: usize = (0..rank)
                    .map(|d| (idx[d] - lo[d]) as usize * dst_strides[d])
                    .sum();
                out[dst_el * width..dst_el * width + run]
                    .copy_from_slice(&src[src_el * width..src_el * width + run]);
                // Advance an odometer over every dimension but the last.
                let mut d = rank - 1;
                loop {
                    if d == 0 {
                        break 'copy;
                    }
                    d -= 1;
                    idx[d] += 1;
                    if idx[d] < ihi[d] {
                        break;
                    }
                    idx[d] = ilo[d];
                }
            }
        }
        Ok(out)
    }

}

/// Whether two slices share an element.
fn overlaps(a: &Slice, b: &Slice) -> bool {
    (0..a.start.len())
        .all(|d| a.start[d] < b.start[d] + b.len[d] && b.start[d] < a.start[d] + a.len[d])
}

/// Reverses the bytes of every `unit`-wide element.
fn swap_bytes(bytes: &mut [u8], unit: usize) {
    if unit > 1 {
        for chunk in bytes.chunks_exact_mut(unit) {
            chunk.reverse();
        }
    }
}

impl CheckpointSource for TfSource {
    fn format(&self) -> Format {
        Format::Tf
    }

    fn path(&self) -> &Path {
        &self.prefix
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// Rows `rows` of a numeric tensor, little-endian.
    fn read_rows(&self, name: &str, rows: Range<u64>) -> warmstart_core::Result<Cow<'_, [u8]>> {
        let (info, layout) = self.layout(name)?;
        let Some(width) = info.dtype.size() else {
            return Err(TfError::WrongDType {
                path: self.prefix.clone(),
                tensor: name.to_string(),
                dtype: info.dtype,
            }.into());
        };
        let total_rows = info.rows();
        if rows.start > rows.end || rows.end > total_rows {
            return Err(TfError::RowsOutOfRange {
                path: self.prefix.clone(),
                tensor: name.to_string(),
                start: rows.start,
                end: rows.end,
                rows: total_rows,
            }.into());
        }
        if rows.start == rows.end {
            // No rows, including every read of a tensor with no rows, whose row size may overflow
            // (shape [0, 2^62] is a valid empty tensor).
            return Ok(Cow::Borrowed(&[]));
        }
        let row_bytes = info.row_bytes().ok_or_else(|| self.too_large(name))?;
        match layout {
            Layout::Whole(stored) => {
                let bytes = self.verified(name, stored)?;
                // Within the entry: its size was checked against rows x row_bytes at open.
                let start = (rows.start * row_bytes) as usize;
                let end = (rows.end * row_bytes) as usize;
                let part = &bytes[start..end];
                if self.big_endian {
                    let mut owned = part.to_vec();
                    swap_bytes(&mut owned, swap_unit(info.dtype));
                    Ok(Cow::Owned(owned))
                } else {
                    Ok(Cow::Borrowed(part))
                }
            }
            Layout::Sliced(parts) => {
                let mut out = self.assemble(name, info, width, parts, rows)?;
                if self.big_endian {
                    swap_bytes(&mut out, swap_unit(info.dtype));
                }
                Ok(Cow::Owned(out))
            }
        }
    }

    /// The elements of a DT_STRING tensor.
    fn read_strings(&self, name: &str) -> warmstart_core::Result<Vec<Vec<u8>>> {
        let (info, layout) = self.layout(name)?;
        if info.dtype != DType::String {
            return Err(TfError::WrongDType {
                path: self.prefix.clone(),
                tensor: name.to_string(),
                dtype: info.dtype,
            }.into());
        }
        let Layout::Whole(stored) = layout else {
            return Err(TfError::BadSlice {
                path: self.index_path.clone(),
                tensor: name.to_string(),
                reason: "string tensors cannot be read from slices".into(),
            }.into());
        };
        let shard = &self.shards[stored.shard];
        let bytes = &shard.bytes()[stored.offset..stored.offset + stored.size];
        let count = info.num_elements().ok_or_else(|| self.too_large(name))?;
        let values = strings::decode(bytes, count, stored.crc).map_err(|reason| TfError::BadStrings {
            path: shard.path.clone(),
            tensor: name.to_string(),
            reason,
        })?;
        Ok(values)
    }

    fn release(&self, name: &str, rows: Range<u64>) {
        self.for_each_run_of_rows(name, rows, |shard, bytes| shard.release(bytes));
    }

    fn slices(&self, name: &str) -> Option<Vec<Slice>> {
        match self.layout(name).ok()?.1 {
            Layout::Whole(_) => None,
            Layout::Sliced(parts) => Some(parts.iter().map(|(s, _)| s.clone()).collect()),
        }
    }

    fn graph(&self) -> Option<&GraphInfo> {
        self.graph.as_ref()
    }

    /// The map from each variable's original full name to its checkpoint key (TF2 checkpoints), or
    /// `None` if there is no object graph.
    fn object_graph_keys(&self) -> warmstart_core::Result<Option<HashMap<String, String>>> {
        if !self.by_name.contains_key(OBJECT_GRAPH_KEY) {
            return Ok(None);
        }
        let values = self.read_strings(OBJECT_GRAPH_KEY)?;
        let [bytes] = values.as_slice() else {
            return Err(TfError::BadStrings {
                path: self.index_path.clone(),
                tensor: OBJECT_GRAPH_KEY.to_string(),
                reason: format!("holds {} strings, expected one", values.len()),
            }.into());
        };
        Ok(Some(crate::meta::object_graph_keys(&self.index_path, bytes)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tensor_shape_proto::Dim;
    use crate::table::{build_table, read_table, Entries};
    use warmstart_core::Error;

    #[test]
    fn checksums_in_parallel_chunks_equal_the_whole_crc() {
        use std::io::Write;
        let data: Vec<u8> = (0..100_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&data).unwrap();
        // SAFETY (test): the temporary file is not modified while mapped.
        let map = unsafe { Mmap::map(file.as_file()) }.unwrap();
        let shard = Shard { path: file.path().to_path_buf(), map: Some(map) };
        for (range, chunk) in [(0..data.len(), 4096), (17..99_000, 1000), (5..6, 1), (0..0, 7), (3..50_000, 49_997)] {
            let expected = crc32c::crc32c(&data[range.clone()]);
            assert_eq!(shard.checksum_in_chunks(range.clone(), chunk), expected, "{range:?} in chunks of {chunk}");
            // Within a rayon task, the chunks are hashed in turn.
            let in_task = rayon::scope(|_| shard.checksum_in_chunks(range.clone(), chunk));
            assert_eq!(in_task, expected, "{range:?} in chunks of {chunk}, in a task");
        }
        // And the pages dropped while hashing read back the same.
        assert_eq!(shard.bytes(), &data[..]);
    }

    fn fixture(case: &str, name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tf")
            .join(case)
            .join(name)
    }

    /// Copies a fixture bundle into a temporary directory with its index entries edited.
    fn edited(
        case: &str,
        prefix: &str,
        edit: impl FnOnce(&mut Entries),
    ) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture(case, "")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        let index = dir.path().join(format!("{prefix}.index"));
        let mut entries = read_table(&index, &std::fs::read(&index).unwrap()).unwrap();
        edit(&mut entries);
        std::fs::write(&index, build_table(&entries)).unwrap();
        let p = dir.path().join(prefix);
        (dir, p)
    }

    fn edit_entry(entries: &mut Entries, key: &[u8], f: impl FnOnce(&mut BundleEntryProto)) {
        let (_, value) = entries.iter_mut().find(|(k, _)| k == key).unwrap();
        let mut e = BundleEntryProto::decode(value.as_slice()).unwrap();
        f(&mut e);
        *value = e.encode_to_vec();
    }

    fn edit_header(entries: &mut Entries, f: impl FnOnce(&mut BundleHeaderProto)) {
        let mut h = BundleHeaderProto::decode(entries[0].1.as_slice()).unwrap();
        f(&mut h);
        entries[0].1 = h.encode_to_vec();
    }

    fn open_err(case: &str, prefix: &str, edit: impl FnOnce(&mut Entries)) -> TfError {
        let (_dir, p) = edited(case, prefix, edit);
        match TfSource::open(&p) {
            Ok(_) => panic!("opened a forged bundle"),
            Err(e) => e,
        }
    }

    #[test]
    fn released_rows_read_back_the_same() {
        for (case, prefix) in [("tf1_partitioned", "model-0"), ("dtypes", "all")] {
            let ckpt = TfSource::open(&fixture(case, prefix)).unwrap();
            for info in ckpt.tensors.clone() {
                if info.dtype == DType::String {
                    continue;
                }
                let rows = info.rows();
                let before = ckpt.read_rows(&info.name, 0..rows).unwrap().into_owned();
                ckpt.release(&info.name, 0..rows);
                ckpt.release(&info.name, rows / 2..rows);
                // Out of range: ignored.
                ckpt.release(&info.name, 0..rows + 5);
                ckpt.release("no such tensor", 0..1);
                assert_eq!(ckpt.read_rows(&info.name, 0..rows).unwrap().into_owned(), before, "{case} {}", info.name);
            }
        }
    }

    #[test]
    fn unedited_copy_opens() {
        let (_dir, p) = edited("dtypes", "all", |_| {});
        assert_eq!(TfSource::open(&p).unwrap().tensors().len(), 25);
    }

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

    #[test]
    fn forged_headers() {
        let e = open_err("dtypes", "all", |x| {
            x.remove(0);
        });
        assert!(matches!(e, TfError::MissingHeader { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| {
            edit_header(x, |h| h.version.as_mut().unwrap().min_consumer = 2)
        });
        assert!(matches!(e, TfError::BadHeader { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| edit_header(x, |h| h.endianness = 7));
        assert!(matches!(e, TfError::BadHeader { .. }), "{e}");
        let e = open_err("dtypes", "all", |x| edit_header(x, |h| h.num_shards = -1));
        assert!(matches!(e, TfError::BadHeader { .. }), "{e}");
        // A forged shard count is bounded by the files that exist: the first missing one is the error.
        let e = open_err("dtypes", "all", |x| {
            edit_header(x, |h| h.num_shards = i32::MAX)
        });
        assert!(matches!(&e, TfError::MissingShard { shard: 0, .. }), "{e}");
        assert!(
            e.to_string().contains("all.data-00000-of-2147483647"),
            "{e}"
        );
    }

    #[test]
    fn forged_string_counts() {
        let (_dir, p) = edited("dtypes", "all", |x| {
            edit_entry(x, b"str_vec", |e| {
                e.shape.as_mut().unwrap().dim[0].size = 1 << 50
            })
        });
        let ckpt = TfSource::open(&p).unwrap();
        let e = ckpt.read_strings("str_vec").unwrap_err();
        assert!(
            matches!(&e, Error::Tf(TfError::BadStrings { tensor, .. }) if tensor == "str_vec"),
            "{e}"
        );
        let (_dir, p) = edited("dtypes", "all", |x| {
            edit_entry(x, b"str_vec", |e| e.crc32c ^= 1)
        });
        let e = TfSource::open(&p)
            .unwrap()
            .read_strings("str_vec")
            .unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn forged_slices() {
        let key = slice_key::encode(
            "emb",
            &[
                Extent {
                    start: 100,
                    length: Some(100),
                },
                Extent {
                    start: 0,
                    length: Some(2),
                },
            ],
        );
        let e = open_err("tf1_partitioned", "model-0", |x| {
            x.retain(|(k, _)| *k != key)
        });
        assert!(
            matches!(&e, TfError::BadSlice { tensor, .. } if tensor == "emb"),
            "{e}"
        );
        assert!(e.to_string().contains("missing"), "{e}");
        let e = open_err("tf1_partitioned", "model-0", |x| {
            edit_entry(x, b"emb", |e| {
                let first = e.slices[0].clone();
                e.slices.push(first);
            })
        });
        assert!(e.to_string().contains("overlap"), "{e}");
        let e = open_err("tf1_partitioned", "model-0", |x| {
            edit_entry(x, b"emb", |e| e.shape.as_mut().unwrap().dim[0].size = 250)
        });
        assert!(e.to_string().contains("runs past"), "{e}");
        let e = open_err("tf1_partitioned", "model-0", |x| {
            edit_entry(x, b"emb", |e| {
                e.slices[0].extent.pop();
            })
        });
        assert!(matches!(&e, TfError::BadSlice { .. }), "{e}");
        // Dropping a slice from the list leaves rows uncovered: reads there fail, others work.
        let (_dir, p) = edited("tf1_partitioned", "model-0", |x| {
            edit_entry(x, b"emb", |e| {
                e.slices.remove(1);
            })
        });
        let ckpt = TfSource::open(&p).unwrap();
        assert!(ckpt.read_rows("emb", 0..100).is_ok());
        assert!(ckpt.read_rows("emb", 250..300).is_ok());
        let e = ckpt.read_rows("emb", 99..101).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Tf(TfError::SlicesDoNotCover {
                    start: 99,
                    end: 101,
                    ..
                })
            ),
            "{e}"
        );
    }

    #[test]
    fn big_endian_bundles_are_swapped() {
        let original = TfSource::open(&fixture("dtypes", "all")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let index = fixture("dtypes", "all.index");
        let mut entries = read_table(&index, &std::fs::read(&index).unwrap()).unwrap();
        let mut data = std::fs::read(fixture("dtypes", "all.data-00000-of-00001")).unwrap();
        edit_header(&mut entries, |h| h.endianness = 1);
        for (key, value) in entries.iter_mut().skip(1) {
            let mut e = BundleEntryProto::decode(value.as_slice()).unwrap();
            let TfDType::Known(dtype) = from_tf(e.dtype) else {
                panic!()
            };
            if dtype == DType::String {
                continue;
            }
            let range = e.offset as usize..(e.offset + e.size) as usize;
            swap_bytes(&mut data[range.clone()], swap_unit(dtype));
            e.crc32c = mask_crc(crc32c::crc32c(&data[range]));
            *value = e.encode_to_vec();
            let _ = key;
        }
        std::fs::write(dir.path().join("be.index"), build_table(&entries)).unwrap();
        std::fs::write(dir.path().join("be.data-00000-of-00001"), &data).unwrap();
        let be = TfSource::open(&dir.path().join("be")).unwrap();
        assert!(be.is_big_endian());
        let mut numeric = 0;
        for t in original.tensors() {
            if t.dtype != DType::String {
                assert_eq!(
                    be.read_rows(&t.name, 0..t.rows()).unwrap(),
                    original.read_rows(&t.name, 0..t.rows()).unwrap(),
                    "{}",
                    t.name
                );
                numeric += 1;
            }
        }
        assert!(numeric > 10);
    }
}
