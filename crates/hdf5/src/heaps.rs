//! A check of a file's global heap collections, where HDF5 keeps variable-length strings, made before
//! the HDF5 library reads any variable-length value from the file: the library (2.2) loops forever
//! decoding a collection in which object 0, the free space, has size 0 ahead of the collection's end
//! (`H5HG__cache_heap_deserialize` advances by the object's size). Found by the corruption loop (one
//! flipped bit); nothing this crate can ask the library first, so the file's bytes are looked at.
//!
//! The check also refuses a variable-length reference (a 4-byte length, then the address of a
//! collection and an object index) that claims more bytes than the whole file holds: the library
//! allocates and zeroes the claimed length (up to 4 GiB) before it finds that the heap object is
//! shorter (found by the `keras` fuzz target: one byte of a `dtype` attribute's length). A reference
//! is recognised by the address of a collection of the file followed by the index of one of its
//! objects; a legitimate one never claims more than the file holds.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::image::FileImage;

/// A collection's signature.
const SIGNATURE: &[u8; 4] = b"GCOL";
/// The collection header: signature, version (1), three reserved bytes and the 8-byte size.
const HEADER_LEN: usize = 16;
/// An object header: index (2 bytes), reference count (2), reserved (4), size (8).
const OBJECT_HEADER_LEN: usize = 16;

/// Why a file's global heaps are refused, or could not be looked at.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeapCheckError {
    /// The file could not be opened.
    #[error("cannot read the file to check its global heaps: {source}")]
    Open {
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file could not be mapped.
    #[error("cannot map the file to check its global heaps: {source}")]
    Map {
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A variable-length reference claiming more bytes than the file holds.
    #[error(
        "the variable-length value at byte {at} claims {claimed} bytes, more than the file's {len} \
         (the HDF5 library would allocate them before finding its heap object shorter)"
    )]
    OversizedReference {
        /// The reference's offset in the file.
        at: usize,
        /// The length it claims.
        claimed: u64,
        /// The file's length.
        len: usize,
    },
    /// A collection the HDF5 library would loop forever on.
    #[error(
        "the global heap collection at byte {at} has an empty free-space object before its end \
         (the HDF5 library would loop forever reading it)"
    )]
    LoopingCollection {
        /// The collection's offset in the file.
        at: usize,
    },
}

/// A refused heap check, as the HDF5 library error the reads it guards return (the same text).
impl From<&HeapCheckError> for hdf5::Error {
    fn from(e: &HeapCheckError) -> hdf5::Error {
        hdf5::Error::from(e.to_string())
    }
}

/// The global heap check of one file, made once, the first time a variable-length value is read.
#[derive(Debug)]
pub(crate) struct GlobalHeaps {
    path: PathBuf,
    /// For a file read in place from a mapped input, its bytes (looked at instead of the path).
    image: Option<FileImage>,
    checked: OnceLock<Result<(), HeapCheckError>>,
}

impl GlobalHeaps {
    pub(crate) fn new(path: &Path) -> GlobalHeaps {
        GlobalHeaps { path: path.to_path_buf(), image: None, checked: OnceLock::new() }
    }

    /// The check of the file held in `image` (of the input at `path`).
    pub(crate) fn for_image(path: &Path, image: FileImage) -> GlobalHeaps {
        GlobalHeaps { path: path.to_path_buf(), image: Some(image), checked: OnceLock::new() }
    }

    /// Fine if no collection of the file would make the library loop; else why.
    pub(crate) fn check(&self) -> Result<(), &HeapCheckError> {
        self.checked
            .get_or_init(|| match &self.image {
                Some(image) => check_bytes(image.bytes()),
                None => check_file(&self.path),
            })
            .as_ref()
            .copied()
    }
}

fn check_file(path: &Path) -> Result<(), HeapCheckError> {
    let file = File::open(path).map_err(|source| HeapCheckError::Open { source })?;
    // SAFETY: a read-only map, read only inside this call; a file changed meanwhile can only give
    // a wrong answer about its heaps, which the library then meets as it would without the check.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| HeapCheckError::Map { source })?;
    check_bytes(&bytes)
}

fn check_bytes(bytes: &[u8]) -> Result<(), HeapCheckError> {
    if let Some(at) = looping_collection(bytes) {
        return Err(HeapCheckError::LoopingCollection { at });
    }
    match oversized_reference(bytes) {
        Some((at, claimed)) => Err(HeapCheckError::OversizedReference { at, claimed, len: bytes.len() }),
        None => Ok(()),
    }
}

/// Where the file's HDF5 data starts (the superblock, at 0, 512, 1024, ...): addresses are relative
/// to it.
fn base_address(bytes: &[u8]) -> usize {
    let mut at = 0usize;
    while at.saturating_add(8) <= bytes.len() {
        if &bytes[at..at + 8] == b"\x89HDF\r\n\x1a\n" {
            return at;
        }
        at = if at == 0 { 512 } else { at.saturating_mul(2) };
    }
    0
}

/// The object indexes of the collection at the start of `bytes` (its signature found), as far as
/// they can be walked.
fn object_indexes(bytes: &[u8]) -> Vec<u16> {
    let mut indexes = Vec::new();
    let Some(size) = read_u64(bytes, 8).and_then(|s| usize::try_from(s).ok()) else { return indexes };
    let heap = &bytes[..size.min(bytes.len())];
    let mut p = HEADER_LEN;
    while p + OBJECT_HEADER_LEN <= heap.len() {
        let index = u16::from_le_bytes([heap[p], heap[p + 1]]);
        let Some(object_size) = read_u64(heap, p + 8) else { break };
        if index == 0 {
            break; // the free space
        }
        indexes.push(index);
        let need = object_size.checked_add(7).map(|s| s & !7).and_then(|s| s.checked_add(OBJECT_HEADER_LEN as u64));
        match need.and_then(|n| usize::try_from(n).ok()).and_then(|n| p.checked_add(n)) {
            Some(next) if next > p => p = next,
            _ => break,
        }
    }
    indexes
}

/// The offset and claimed length of the first variable-length reference in `bytes` (its collection's
/// address and one of its object indexes, after a 4-byte length) claiming more than `bytes` holds.
fn oversized_reference(bytes: &[u8]) -> Option<(usize, u64)> {
    let base = base_address(bytes);
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], SIGNATURE) {
        let at = from + found;
        from = at + 1;
        let Some(address) = at.checked_sub(base) else { continue };
        let indexes = object_indexes(&bytes[at..]);
        for p in memchr::memmem::find_iter(bytes, &(address as u64).to_le_bytes()) {
            let (Some(len_at), Some(index)) = (p.checked_sub(4), bytes.get(p + 8..p + 12)) else { continue };
            let index = u32::from_le_bytes(index.try_into().ok()?);
            let claimed = u64::from(u32::from_le_bytes(bytes[len_at..p].try_into().ok()?));
            let names_an_object = u16::try_from(index).is_ok_and(|i| indexes.contains(&i));
            if names_an_object && claimed > bytes.len() as u64 {
                return Some((len_at, claimed));
            }
        }
    }
    None
}

/// The offset of the first global heap collection in `bytes` that the library would loop on.
fn looping_collection(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], SIGNATURE) {
        let at = from + found;
        if collection_loops(&bytes[at..]) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8; 4]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = haystack.get(from..)?.iter().position(|&b| b == needle[0]) {
        let at = from + i;
        if haystack.get(at..at + 4)? == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Whether the collection at the start of `bytes` (signature found) walks, as the library decodes
/// it, onto an object that does not move it forward. A collection that ends past the file or whose
/// objects run past its end is left to the library, which refuses it.
fn collection_loops(bytes: &[u8]) -> bool {
    if bytes.get(4) != Some(&1) {
        return false; // the library refuses other versions
    }
    let Some(size) = read_u64(bytes, 8).and_then(|s| usize::try_from(s).ok()) else { return false };
    let Some(heap) = bytes.get(..size) else { return false };
    let mut p = HEADER_LEN;
    while p < heap.len() {
        if p + OBJECT_HEADER_LEN > heap.len() {
            return false; // the free space at the end
        }
        let index = u16::from_le_bytes([heap[p], heap[p + 1]]);
        let Some(object_size) = read_u64(heap, p + 8) else { return false };
        let need = if index == 0 {
            object_size
        } else {
            // The object header plus its data, padded to 8 bytes.
            object_size.checked_add(7).map_or(u64::MAX, |s| s & !7).saturating_add(OBJECT_HEADER_LEN as u64)
        };
        if need == 0 {
            return true;
        }
        match usize::try_from(need).ok().and_then(|n| p.checked_add(n)) {
            Some(next) if next <= heap.len() => p = next,
            _ => return false, // runs past the collection: refused by the library
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collection of `size` bytes holding the given (index, data length) objects, then free space.
    fn collection(size: usize, objects: &[(u16, usize)], free_size: u64) -> Vec<u8> {
        let mut bytes = Vec::from(*SIGNATURE);
        bytes.extend([1, 0, 0, 0]);
        bytes.extend((size as u64).to_le_bytes());
        for &(index, len) in objects {
            bytes.extend(index.to_le_bytes());
            bytes.extend([1, 0, 0, 0, 0, 0]);
            bytes.extend((len as u64).to_le_bytes());
            bytes.extend(vec![b'x'; len.next_multiple_of(8)]);
        }
        let free_at = bytes.len();
        bytes.extend([0; 8]);
        bytes.extend(free_size.to_le_bytes());
        bytes.resize(size, 0);
        assert!(free_at + 16 <= size);
        bytes
    }

    #[test]
    fn a_well_formed_collection_does_not_loop() {
        let heap = collection(4096, &[(1, 5), (2, 11)], 4096 - 16 - 24 - 32);
        let mut file = vec![7u8; 100];
        file.extend(&heap);
        assert_eq!(looping_collection(&file), None);
    }

    #[test]
    fn an_empty_free_space_object_before_the_end_loops() {
        let heap = collection(4096, &[(1, 5)], 0);
        let mut file = vec![7u8; 100];
        file.extend(&heap);
        assert_eq!(looping_collection(&file), Some(100));
    }

    #[test]
    fn refusals_read_as_before() {
        assert_eq!(
            HeapCheckError::LoopingCollection { at: 100 }.to_string(),
            "the global heap collection at byte 100 has an empty free-space object before its end (the HDF5 library \
             would loop forever reading it)"
        );
        let e = HeapCheckError::Open { source: std::io::Error::other("gone") };
        assert_eq!(e.to_string(), "cannot read the file to check its global heaps: gone");
        assert_eq!(hdf5::Error::from(&e).to_string(), e.to_string());
        let e = HeapCheckError::Map { source: std::io::Error::other("no") };
        assert_eq!(e.to_string(), "cannot map the file to check its global heaps: no");
        let dir = std::env::temp_dir().join("warmstart-hdf5-no-such-dir");
        let heaps = GlobalHeaps::new(&dir.join("missing.h5"));
        assert!(matches!(heaps.check(), Err(HeapCheckError::Open { .. })));
    }

    /// A file of `collection` at byte 100 and a reference to its object `index` claiming `claimed` bytes.
    fn with_reference(collection: &[u8], index: u32, claimed: u32) -> Vec<u8> {
        let mut file = vec![7u8; 100];
        file.extend(collection);
        file.extend(claimed.to_le_bytes());
        file.extend(100u64.to_le_bytes());
        file.extend(index.to_le_bytes());
        file
    }

    #[test]
    fn references_claiming_more_than_the_file_are_refused() {
        let heap = collection(4096, &[(1, 5), (2, 11)], 4096 - 16 - 24 - 32);
        assert!(check_bytes(&with_reference(&heap, 2, 11)).is_ok());
        let file = with_reference(&heap, 1, 0xc900_0005);
        let err = check_bytes(&file).unwrap_err();
        assert!(matches!(err, HeapCheckError::OversizedReference { at: 4196, claimed: 0xc900_0005, .. }), "{err}");
        assert!(err.to_string().contains("claims 3372220421 bytes, more than the file's 4212"), "{err}");
        // Not a reference: an index the collection does not have.
        assert!(check_bytes(&with_reference(&heap, 9, u32::MAX)).is_ok());
    }

    #[test]
    fn collections_the_library_refuses_are_left_to_it() {
        let mut heap = collection(4096, &[(1, 5)], 0);
        heap[4] = 2; // another version
        assert_eq!(looping_collection(&heap), None);
        let heap = collection(4096, &[(1, 5)], 0);
        assert_eq!(looping_collection(&heap[..2000]), None, "ends past the file");
        let mut heap = collection(4096, &[(1, 5)], 0);
        heap[16 + 8..16 + 16].copy_from_slice(&u64::MAX.to_le_bytes()); // an object past the end
        assert_eq!(looping_collection(&heap), None);
        assert_eq!(looping_collection(b"GCO"), None);
    }
}
