//! The zip archive `torch.save` writes, read in place from the file's map: its members
//! `<name>/data.pkl` (the pickled state dict), `<name>/data/<key>` (one per storage, the raw bytes),
//! `<name>/byteorder` (`little` or `big`; absent in files older than torch 1.10, which are
//! little-endian) and `<name>/version`. The `zip` crate reads the central directory; every member is
//! then a range of the map, checked against the file's length. `torch.save` stores members without
//! compression; a compressed or encrypted member is refused, so nothing is ever inflated.

use std::collections::HashMap;
use std::io::Cursor;
use std::ops::Range;
use std::path::Path;

use warmstart_core::{Result, TorchError};
use zip::CompressionMethod;

/// The pickle stream of the legacy format's first record: protocol 2, then LONG1 of 10 bytes, the
/// magic number 0x1950a86a20f9469cfc6c (little-endian).
const LEGACY_MAGIC: [u8; 12] = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// The largest `data.pkl` read (a state dict of 10,000 tensors pickles to about 1 MB).
pub(crate) const MAX_PICKLE_LEN: u64 = 256 << 20;

/// Whether `bytes` start as the legacy (pre-zip) format of `torch.save` does.
pub(crate) fn is_legacy(bytes: &[u8]) -> bool {
    bytes.len() >= 14 && bytes[0] == 0x80 && bytes[2..14] == LEGACY_MAGIC
}

/// The members of one `torch.save` record.
#[derive(Debug)]
pub(crate) struct Archive {
    /// `data.pkl`'s bytes in the map.
    pub(crate) pickle: Range<usize>,
    /// Whether the storages are big-endian.
    pub(crate) big_endian: bool,
    /// Each storage key's bytes in the map (`data/<key>`), or the compression method that keeps
    /// them from being read in place.
    pub(crate) storages: HashMap<String, Result<Range<usize>, String>>,
}

/// One member as the central directory and its local header say.
struct Member {
    name: String,
    bytes: Range<usize>,
    stored: Result<(), String>,
}

/// Reads the central directory of the archive `bytes` (the file at `path`).
pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<Archive> {
    if is_legacy(bytes) {
        return Err(TorchError::LegacyFormat { path: path.to_path_buf() }.into());
    }
    let members = members(path, bytes)?;
    let mut prefixes: Vec<String> =
        members.iter().filter_map(|m| m.name.strip_suffix("/data.pkl")).map(str::to_string).collect();
    prefixes.sort();
    let prefix = match prefixes.as_slice() {
        [] => return Err(TorchError::NoDataPkl { path: path.to_path_buf() }.into()),
        [one] => one.clone(),
        _ => return Err(TorchError::SeveralRecords { path: path.to_path_buf(), prefixes }.into()),
    };
    let in_place = |m: &Member| -> Result<Range<usize>> {
        m.stored.clone().map_err(|method| TorchError::CompressedMember {
            path: path.to_path_buf(),
            member: m.name.clone(),
            method,
        })?;
        Ok(m.bytes.clone())
    };
    let (mut pickle, mut big_endian, mut storages) = (None, false, HashMap::new());
    let data = format!("{prefix}/data/");
    for member in &members {
        let Some(rest) = member.name.strip_prefix(&prefix).and_then(|r| r.strip_prefix('/')) else { continue };
        if rest == "data.pkl" {
            pickle = Some(in_place(member)?);
        } else if rest == "byteorder" {
            big_endian = byte_order(path, &bytes[in_place(member)?])?;
        } else if let Some(key) = member.name.strip_prefix(&data) {
            // Checked when a tensor uses it, so that a stray compressed member is harmless.
            storages.insert(key.to_string(), member.stored.clone().map(|()| member.bytes.clone()));
        }
    }
    let pickle = pickle.ok_or_else(|| TorchError::NoDataPkl { path: path.to_path_buf() })?;
    if pickle.len() as u64 > MAX_PICKLE_LEN {
        return Err(TorchError::PickleTooLarge {
            path: path.to_path_buf(),
            len: pickle.len() as u64,
            max: MAX_PICKLE_LEN,
        }
        .into());
    }
    Ok(Archive { pickle, big_endian, storages })
}

impl Archive {
    /// The bytes of storage `key`, or why not: missing, or compressed.
    pub(crate) fn storage(&self, path: &Path, tensor: &str, key: &str) -> Result<Range<usize>> {
        match self.storages.get(key) {
            Some(Ok(range)) => Ok(range.clone()),
            Some(Err(method)) => Err(TorchError::CompressedMember {
                path: path.to_path_buf(),
                member: format!("data/{key}"),
                method: method.clone(),
            }
            .into()),
            None => Err(TorchError::MissingStorage {
                path: path.to_path_buf(),
                tensor: tensor.to_string(),
                key: key.to_string(),
            }
            .into()),
        }
    }
}

/// `byteorder`'s value: `true` for big-endian.
fn byte_order(path: &Path, value: &[u8]) -> Result<bool> {
    match value {
        b"little" => Ok(false),
        b"big" => Ok(true),
        other => {
            let value = String::from_utf8_lossy(&other[..other.len().min(32)]).into_owned();
            Err(TorchError::BadByteOrder { path: path.to_path_buf(), value }.into())
        }
    }
}

/// Every file member, with its data's range in `bytes` (checked to lie inside it).
fn members(path: &Path, bytes: &[u8]) -> Result<Vec<Member>> {
    let bad_zip = |e: zip::result::ZipError| TorchError::BadZip { path: path.to_path_buf(), source: Box::new(e) };
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(bad_zip)?;
    let mut out = Vec::with_capacity(zip.len().min(1 << 16));
    for i in 0..zip.len() {
        let file = zip.by_index_raw(i).map_err(bad_zip)?;
        if file.is_dir() {
            continue;
        }
        let name = file.name().map_err(bad_zip)?.into_owned();
        let start = file.data_start().unwrap_or(u64::MAX);
        let end = start.checked_add(file.compressed_size());
        let file_len = bytes.len() as u64;
        let Some(end) = end.filter(|&e| e <= file_len) else {
            let end = end.unwrap_or(u64::MAX);
            return Err(
                TorchError::MemberOutOfFile { path: path.to_path_buf(), member: name, start, end, file_len }.into()
            );
        };
        let stored = if file.encrypted() {
            Err("encrypted".to_string())
        } else if file.compression() != CompressionMethod::Stored || file.size() != file.compressed_size() {
            Err(format!("{:?}", file.compression()))
        } else {
            Ok(())
        };
        out.push(Member { name, bytes: start as usize..end as usize, stored });
    }
    Ok(out)
}
