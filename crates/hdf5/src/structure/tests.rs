use std::path::{Path, PathBuf};

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn known_issue(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("fuzz/regressions/hdf5").join(name)).unwrap()
}

/// Every `.h5` file under `dir`, recursively.
fn h5_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            h5_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "h5") {
            found.push(path);
        }
    }
}

#[test]
fn the_known_library_aborts_are_refused() {
    let chunk = check(&known_issue("btree-chunk-nbytes-zero.h5")[..]);
    assert!(matches!(chunk, Err(Hdf5StructureReason::EmptyChunk { .. })), "{chunk:?}");
    let heap = check(&known_issue("local-heap-address-undefined.h5")[..]);
    assert!(matches!(heap, Err(Hdf5StructureReason::UndefinedLocalHeap { .. })), "{heap:?}");
}

#[test]
fn every_fixture_passes_and_its_structures_are_walked() {
    let mut files = Vec::new();
    h5_files(&repo().join("tests/fixtures"), &mut files);
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let damaged = file.components().any(|c| c.as_os_str() == "bad");
        if !damaged {
            assert_eq!(check(&bytes[..]), Ok(()), "{}", file.display());
            assert_eq!(check_file(&file), Ok(()), "{}", file.display());
        }
        if let Some((mut walk, root)) = Walk::open(&bytes[..]) {
            let _ = walk.root(&root);
            assert!(walk.seen.len() > 1 || damaged, "{}: only the root walked", file.display());
        }
    }
}

/// The first position of `needle` in `bytes` at or after `from`.
fn find(bytes: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    bytes[from..].windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// A fixture with chunked datasets, with the first chunk B-tree leaf key's size set to 0.
#[test]
fn an_empty_chunk_key_reached_through_the_groups_is_refused() {
    let mut bytes = std::fs::read(repo().join("tests/fixtures/hdf5/bad/bad_chunk.h5")).unwrap();
    assert_eq!(check(&bytes[..]), Ok(()));
    let mut from = 0;
    let leaf = loop {
        let at = find(&bytes, b"TREE", from).expect("a chunk B-tree leaf");
        if bytes[at + 4] == 1 && bytes[at + 5] == 0 {
            break at;
        }
        from = at + 1;
    };
    // Header (8 bytes) and the two sibling addresses (8 each), then the first key's size.
    bytes[leaf + 24..leaf + 28].fill(0);
    assert_eq!(check(&bytes[..]), Err(Hdf5StructureReason::EmptyChunk { node: leaf as u64, key: 0 }));
}

/// The root group's symbol table message and its cached copy in the superblock, each with the local
/// heap address undefined.
#[test]
fn an_undefined_local_heap_address_is_refused_in_the_message_and_the_cache() {
    let bytes = std::fs::read(repo().join("tests/fixtures/hdf5/plain/data.h5")).unwrap();
    // The root entry's scratch pad (superblock version 0, 8-byte offsets): B-tree and heap addresses.
    let scratch = 24 + 4 * 8 + 24;
    let pair = bytes[scratch..scratch + 16].to_vec();
    let message = find(&bytes, &pair, scratch + 16).expect("the root's symbol table message");
    for at in [scratch, message] {
        let mut damaged = bytes.clone();
        damaged[at + 8..at + 16].fill(0xff);
        let found = check(&damaged[..]);
        assert!(matches!(found, Err(Hdf5StructureReason::UndefinedLocalHeap { .. })), "at {at}: {found:?}");
    }
}

#[test]
fn cut_or_damaged_files_never_panic() {
    for bytes in [known_issue("local-heap-address-undefined.h5"), known_issue("btree-chunk-nbytes-zero.h5")] {
        for len in (0..bytes.len()).step_by(7) {
            let _ = check(&bytes[..len]);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let mut damaged = bytes.clone();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % damaged.len() as u64) as usize;
                damaged[at] = (state >> 32) as u8;
            }
            let _ = check(&damaged[..]);
        }
    }
}

#[test]
fn newer_superblocks_and_other_files_are_left_to_the_library() {
    let mut bytes = std::fs::read(repo().join("tests/fixtures/hdf5/plain/data.h5")).unwrap();
    bytes[8] = 2;
    assert_eq!(check(&bytes[..]), Ok(()));
    assert_eq!(check(&b"not HDF5 at all"[..]), Ok(()));
    assert_eq!(check_file(Path::new("/nonexistent/file.h5")), Ok(()));
    // The signature at 512 (after a user block).
    let mut shifted = vec![0u8; 512];
    shifted.extend(known_issue("btree-chunk-nbytes-zero.h5"));
    assert!(check(&shifted[..]).is_err());
}

/// A file whose one group B-tree leaf points at 65535 distinct symbol table nodes, each claiming 65535
/// entries: the walk stops when its read budget is spent, quickly.
#[test]
fn a_crafted_file_of_many_structures_ends_within_the_budget() {
    const NODES: usize = 2 << 20;
    let mut bytes = vec![0u8; NODES + 65535 * 8 + (1 << 20)];
    bytes[..8].copy_from_slice(SIGNATURE);
    bytes[13] = 8; // size of offsets
    bytes[14] = 8; // size of lengths
                   // The root entry (after 24 fixed bytes and 4 addresses): its object header at 128.
    bytes[56 + 8..56 + 16].copy_from_slice(&128u64.to_le_bytes());
    // A version-1 object header of one symbol table message: B-tree at 256, local heap at 200.
    bytes[128] = 1;
    bytes[130] = 1;
    bytes[136] = 24;
    bytes[144] = 0x11;
    bytes[146] = 16;
    bytes[152..160].copy_from_slice(&256u64.to_le_bytes());
    bytes[160..168].copy_from_slice(&200u64.to_le_bytes());
    bytes[200..204].copy_from_slice(b"HEAP");
    // The group B-tree leaf: 65535 children, child i the node at NODES + 8 i.
    bytes[256..264].copy_from_slice(b"TREE\0\0\xff\xff");
    bytes[264..280].fill(0xff);
    for i in 0..65535 {
        let child = 256 + 24 + 8 + i * 16;
        bytes[child..child + 8].copy_from_slice(&((NODES + 8 * i) as u64).to_le_bytes());
    }
    for node in (NODES..bytes.len() - 8).step_by(8) {
        bytes[node..node + 8].copy_from_slice(b"SNOD\x01\0\xff\xff");
    }
    let start = std::time::Instant::now();
    let (mut walk, root) = Walk::open(&bytes[..]).unwrap();
    assert_eq!(walk.root(&root), Ok(()));
    assert_eq!(walk.reads.get(), 0, "the budget was not spent: the file is not what the test means");
    assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
}
