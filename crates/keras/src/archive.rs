//! The members of a Keras archive, read with the `zip` crate from the archive's mapped bytes: where
//! each member's data lies (checked against the file's length), and the weights member, which must be
//! stored uncompressed to be read in place.

use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::Path;

use warmstart_core::KerasError;
use zip::{CompressionMethod, ZipArchive};

/// The weights member Keras writes (`saving_lib._VARS_FNAME_H5`).
pub const WEIGHTS: &str = "model.weights.h5";
/// The weights member Keras writes with `weights_format="npz"`, which this reader does not read.
pub const WEIGHTS_NPZ: &str = "model.weights.npz";
/// The model's configuration.
pub const CONFIG: &str = "config.json";
/// The Keras version and save date.
pub const METADATA: &str = "metadata.json";

/// The largest JSON member read (a model's config is a few megabytes at most).
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// One member of the archive.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) name: String,
    /// Where its (stored or compressed) bytes lie in the archive.
    pub(crate) data: Range<u64>,
    /// Its uncompressed size.
    pub(crate) size: u64,
    pub(crate) method: CompressionMethod,
}

/// Every member of the archive in `bytes` (the file at `path`), in the central directory's order,
/// after checking that each one's bytes lie inside the file and that no name appears twice.
pub(crate) fn members(path: &Path, bytes: &[u8]) -> Result<Vec<Member>, KerasError> {
    let zip_err = |e: zip::result::ZipError| KerasError::Zip { path: path.to_path_buf(), source: e.into() };
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(zip_err)?;
    let len = bytes.len() as u64;
    let mut members: Vec<Member> = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(zip_err)?;
        let name = file.name().map_err(zip_err)?.into_owned();
        // Unknown (never for an archive read whole) counts as past the end.
        let start = file.data_start().unwrap_or(u64::MAX);
        let end = start.checked_add(file.compressed_size());
        let Some(end) = end.filter(|&end| end <= len) else {
            return Err(KerasError::MemberOutOfBounds {
                path: path.to_path_buf(),
                member: name,
                start,
                end: start.saturating_add(file.compressed_size()),
                len,
            });
        };
        members.push(Member { name, data: start..end, size: file.size(), method: file.compression() });
    }
    let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(KerasError::DuplicateMember { path: path.to_path_buf(), member: pair[0].to_string() });
    }
    Ok(members)
}

/// The member called `name`.
pub(crate) fn find<'a>(members: &'a [Member], name: &str) -> Option<&'a Member> {
    members.iter().find(|m| m.name == name)
}

/// Where the weights' HDF5 file lies in the archive: the stored bytes of [`WEIGHTS`].
pub(crate) fn weights_range(path: &Path, members: &[Member]) -> Result<Range<usize>, KerasError> {
    let Some(weights) = find(members, WEIGHTS) else {
        let member = if find(members, WEIGHTS_NPZ).is_some() { WEIGHTS_NPZ } else { WEIGHTS };
        return Err(if member == WEIGHTS_NPZ {
            KerasError::UnsupportedWeights { path: path.to_path_buf(), member: member.into() }
        } else {
            KerasError::MissingMember { path: path.to_path_buf(), member: member.into() }
        });
    };
    if weights.method != CompressionMethod::Stored {
        return Err(KerasError::Compressed {
            path: path.to_path_buf(),
            member: WEIGHTS.into(),
            method: weights.method.to_string(),
        });
    }
    let stored = weights.data.end - weights.data.start;
    if stored != weights.size {
        return Err(KerasError::StoredSizeMismatch {
            path: path.to_path_buf(),
            member: WEIGHTS.into(),
            stored,
            size: weights.size,
        });
    }
    // Inside the mapped file (checked by `members`), so it fits in usize.
    Ok(weights.data.start as usize..weights.data.end as usize)
}

/// The parsed JSON member `name` of the archive in `bytes`, or `None` if there is none; it must be
/// stored uncompressed (as Keras writes every member) and at most [`MAX_JSON_BYTES`] long.
pub(crate) fn json_member(
    path: &Path,
    bytes: &[u8],
    members: &[Member],
    name: &str,
) -> Result<Option<serde_json::Value>, KerasError> {
    let Some(member) = find(members, name) else { return Ok(None) };
    if member.size > MAX_JSON_BYTES {
        return Err(KerasError::JsonTooLarge {
            path: path.to_path_buf(),
            member: name.into(),
            size: member.size,
            limit: MAX_JSON_BYTES,
        });
    }
    let json_err = |source: warmstart_core::LibraryError| KerasError::Json {
        path: path.to_path_buf(),
        member: name.into(),
        source,
    };
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| json_err(e.into()))?;
    let file = archive.by_name(name).map_err(|e| json_err(e.into()))?;
    let mut text = Vec::new();
    // At most the declared size (checked above), and the reader checks the CRC at the end.
    file.take(MAX_JSON_BYTES + 1).read_to_end(&mut text).map_err(|e| json_err(e.into()))?;
    serde_json::from_slice(&text).map(Some).map_err(|e| json_err(e.into()))
}
