//! A walk of an HDF5 file's structure, made before the HDF5 library opens the file, that refuses the
//! structures the library asserts on instead of returning an error (a debug build of the library, the
//! one `cargo build` makes, aborts the process on them; see `fuzz/KNOWN_ISSUES.md`):
//! - a version-1 chunk B-tree leaf whose key gives a chunk of 0 bytes (`H5D__btree_found`);
//! - a group whose symbol table (or the root's cached one) names an undefined local heap address
//!   (`H5HL_protect`).
//!
//! The walk reads what the library reads on the way there, the original format only: a version 0 or 1
//! superblock and its root symbol table entry, version-1 object headers and their continuation
//! blocks, symbol table messages, group B-trees and symbol table nodes (recursively, each object once),
//! local heap signatures, and the version-1 chunk B-trees that layout messages of version 1 to 3 name.
//! Every offset and length comes from the file, so each is bounds-checked before it is followed; a
//! structure that cannot be read, or that the walk does not know (superblock version 2 and 3, version-2
//! object headers, newer chunk indexes), ends the walk there and is left to the library, which checks it
//! itself. The bytes are read with positioned reads (no map, so a file cut meanwhile cannot fault), at
//! most [`BUDGET`] of them per file (a crafted file of many structures pointing at each other costs at
//! most that; past it the rest is left to the library).

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use warmstart_core::Hdf5StructureReason;

/// The format signature, at byte 0, 512, 1024, 2048, ... of the file.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
/// How many reads (each a few bytes: a header, an address, a key) one walk makes at most. A Keras
/// model of a thousand weights takes some ten thousand.
pub(crate) const BUDGET: usize = 500_000;
/// Groups nested deeper than this are not walked further.
const MAX_DEPTH: usize = 64;
/// B-trees of more levels than this are not walked (real ones have a handful; each level is a frame).
const MAX_LEVEL: u8 = 16;
/// Message types of a version-1 object header.
const LAYOUT: u16 = 0x0008;
const CONTINUATION: u16 = 0x0010;
const SYMBOL_TABLE: u16 = 0x0011;

/// Checks the file at `path`; a file that cannot be read is left to the library.
pub(crate) fn check_file(path: &Path) -> Result<(), Hdf5StructureReason> {
    match File::open(path) {
        Ok(file) => check(&file),
        Err(_) => Ok(()),
    }
}

/// Something the walk can read bytes of at any offset.
pub(crate) trait Bytes {
    /// Fills `buf` from byte `at`; false if the bytes are not all there.
    fn read_at(&self, at: u64, buf: &mut [u8]) -> bool;
}

impl Bytes for File {
    fn read_at(&self, at: u64, buf: &mut [u8]) -> bool {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, at).is_ok()
    }
}

impl Bytes for [u8] {
    fn read_at(&self, at: u64, buf: &mut [u8]) -> bool {
        let Ok(at) = usize::try_from(at) else { return false };
        match at.checked_add(buf.len()).and_then(|end| self.get(at..end)) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

/// Walks the structure of `bytes`, refusing what the library would abort on.
pub(crate) fn check<B: Bytes + ?Sized>(bytes: &B) -> Result<(), Hdf5StructureReason> {
    match Walk::open(bytes) {
        Some((mut walk, root)) => walk.root(&root),
        None => Ok(()),
    }
}

/// A decoded address: `None` for the undefined address (every byte 0xff).
type Address = Option<u64>;

/// A symbol table entry: the object header's address and, for cache type 1, the cached group B-tree
/// and local heap addresses.
struct SymbolEntry {
    header: Address,
    cached: Option<(Address, Address)>,
}

/// The walk of one file: its superblock's sizes, the structures seen and the reads left.
struct Walk<'b, B: ?Sized> {
    bytes: &'b B,
    /// Where addresses count from (the superblock's position, as the library takes it).
    base: u64,
    /// Size of offsets (addresses) and of lengths, in bytes (each 2, 4 or 8).
    offsets: usize,
    lengths: usize,
    seen: HashSet<u64>,
    reads: Cell<usize>,
}

impl<'b, B: Bytes + ?Sized> Walk<'b, B> {
    /// Finds a version 0 or 1 superblock; gives the walk and the root group's symbol table entry.
    fn open(bytes: &'b B) -> Option<(Walk<'b, B>, SymbolEntry)> {
        let mut at = 0u64;
        let base = loop {
            let mut sig = [0u8; 8];
            if !bytes.read_at(at, &mut sig) {
                return None;
            }
            if &sig == SIGNATURE {
                break at;
            }
            at = if at == 0 { 512 } else { at.checked_mul(2)? };
        };
        let mut head = [0u8; 16];
        if !bytes.read_at(base.checked_add(8)?, &mut head) {
            return None;
        }
        let (version, offsets, lengths) = (head[0], usize::from(head[5]), usize::from(head[6]));
        if version > 1 || ![2, 4, 8].contains(&offsets) || ![2, 4, 8].contains(&lengths) {
            return None;
        }
        let walk = Walk { bytes, base, offsets, lengths, seen: HashSet::new(), reads: Cell::new(BUDGET) };
        // Fixed fields (24 bytes; 28 in version 1), then four addresses, then the root entry.
        let fixed: u64 = if version == 0 { 24 } else { 28 };
        let root_at = base.checked_add(fixed)?.checked_add(4 * offsets as u64)?;
        let root = walk.symbol_entry(root_at)?;
        Some((walk, root))
    }

    /// `n` (at most 16) bytes at absolute position `at`; none once the budget is spent.
    fn read(&self, at: u64, n: usize) -> Option<Vec<u8>> {
        let left = self.reads.get().checked_sub(1)?;
        self.reads.set(left);
        let mut buf = vec![0u8; n];
        self.bytes.read_at(at, &mut buf).then_some(buf)
    }

    /// A little-endian unsigned integer of `n` (at most 8) bytes at `at`.
    fn uint(&self, at: u64, n: usize) -> Option<u64> {
        let bytes = self.read(at, n)?;
        Some(bytes.iter().rev().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
    }

    /// An address at `at`: `Some(None)` if undefined.
    fn address(&self, at: u64) -> Option<Address> {
        let raw = self.uint(at, self.offsets)?;
        let undefined = if self.offsets == 8 { u64::MAX } else { (1u64 << (8 * self.offsets)) - 1 };
        Some((raw != undefined).then_some(raw))
    }

    /// The absolute position of address `addr`.
    fn position(&self, addr: u64) -> Option<u64> {
        self.base.checked_add(addr)
    }

    /// Takes `at` as seen; false if it was already.
    fn visit(&mut self, at: u64) -> bool {
        self.seen.insert(at)
    }

    /// A symbol table entry at `at`: link name offset, object header address, cache type, reserved,
    /// scratch pad (16 bytes).
    fn symbol_entry(&self, at: u64) -> Option<SymbolEntry> {
        let o = self.offsets as u64;
        let header = self.address(at.checked_add(o)?)?;
        let cache_type = self.uint(at.checked_add(2 * o)?, 4)?;
        let cached = if cache_type == 1 {
            let scratch = at.checked_add(2 * o + 8)?;
            Some((self.address(scratch)?, self.address(scratch.checked_add(o)?)?))
        } else {
            None
        };
        Some(SymbolEntry { header, cached })
    }

    /// The root group: its cached symbol table (which the library verifies against the object
    /// header's, falling back to it), then its object header.
    fn root(&mut self, root: &SymbolEntry) -> Result<(), Hdf5StructureReason> {
        if let (Some((_, None)), Some(header)) = (root.cached, root.header) {
            return Err(Hdf5StructureReason::UndefinedLocalHeap { header: self.base.saturating_add(header) });
        }
        match root.header {
            Some(header) => self.object(header, 0),
            None => Ok(()),
        }
    }

    /// A version-1 object header at address `addr` (its messages, then the groups and chunk B-trees
    /// they name).
    fn object(&mut self, addr: u64, depth: usize) -> Result<(), Hdf5StructureReason> {
        let Some(at) = self.position(addr) else { return Ok(()) };
        if depth > MAX_DEPTH || !self.visit(at) {
            return Ok(());
        }
        let Some(head) = self.read(at, 16) else { return Ok(()) };
        if head[0] != 1 {
            return Ok(()); // version 2 ("OHDR") and anything else: the library's
        }
        let count = u16::from_le_bytes([head[2], head[3]]);
        let size = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let mut blocks = vec![(at.saturating_add(16), u64::from(size))];
        let mut left = usize::from(count);
        let mut found = Vec::new();
        while let Some((start, len)) = blocks.pop() {
            if left == 0 {
                break;
            }
            self.messages(start, len, &mut left, &mut blocks, &mut found);
        }
        for message in found {
            match message {
                Named::Group { btree, heap } => {
                    let Some(heap) = heap else {
                        return Err(Hdf5StructureReason::UndefinedLocalHeap { header: at });
                    };
                    self.local_heap(heap);
                    if let Some(btree) = btree {
                        self.group_btree(btree, depth, None)?;
                    }
                }
                Named::Chunks { btree, dims } => self.chunk_btree(btree, dims, None)?,
            }
        }
        Ok(())
    }

    /// The messages of one block (`len` bytes at `start`) of a version-1 object header, at most `left`:
    /// continuation blocks go to `blocks`, symbol tables and chunked layouts to `found`.
    fn messages(&self, start: u64, len: u64, left: &mut usize, blocks: &mut Vec<(u64, u64)>, found: &mut Vec<Named>) {
        let Some(end) = start.checked_add(len) else { return };
        let mut p = start;
        while *left > 0 && p.saturating_add(8) <= end {
            let Some(head) = self.read(p, 8) else { return };
            let kind = u16::from_le_bytes([head[0], head[1]]);
            let size = u64::from(u16::from_le_bytes([head[2], head[3]]));
            let data = p + 8;
            let Some(next) = data.checked_add(size).filter(|&n| n <= end) else { return };
            *left -= 1;
            match kind {
                CONTINUATION => {
                    let block = self.address(data).flatten().and_then(|a| self.position(a));
                    let length = self.uint(data.saturating_add(self.offsets as u64), self.lengths);
                    if let (Some(block), Some(length)) = (block, length) {
                        blocks.push((block, length));
                    }
                }
                SYMBOL_TABLE => {
                    if let (Some(btree), Some(heap)) =
                        (self.address(data), self.address(data.saturating_add(self.offsets as u64)))
                    {
                        found.push(Named::Group { btree, heap });
                    }
                }
                LAYOUT => found.extend(self.chunked_layout(data)),
                _ => {}
            }
            p = next;
        }
    }

    /// A layout message (version 1 to 3) of chunked storage: its B-tree and dimensionality.
    fn chunked_layout(&self, data: u64) -> Option<Named> {
        let head = self.read(data, 3)?;
        let (dims, btree) = match head[0] {
            1 | 2 if head[2] == 2 => (head[1], self.address(data.checked_add(8)?)?),
            3 if head[1] == 2 => (head[2], self.address(data.checked_add(3)?)?),
            _ => return None,
        };
        Some(Named::Chunks { btree: btree?, dims: usize::from(dims) })
    }

    /// Looks at a local heap's signature (the library reads it; nothing to refuse once the address is
    /// defined).
    fn local_heap(&self, addr: u64) -> bool {
        self.position(addr).and_then(|at| self.read(at, 4)).is_some_and(|sig| sig == b"HEAP")
    }

    /// A version-1 B-tree node header at address `addr` of node type `kind`: its position, level and
    /// entries used.
    fn btree_node(&mut self, addr: u64, kind: u8) -> Option<(u64, u8, u16)> {
        let at = self.position(addr)?;
        if !self.visit(at) {
            return None;
        }
        let head = self.read(at, 8)?;
        if &head[..4] != b"TREE" || head[4] != kind || head[5] > MAX_LEVEL {
            return None;
        }
        Some((at, head[5], u16::from_le_bytes([head[6], head[7]])))
    }

    /// A group B-tree (node type 0) at `addr`: its symbol table nodes, and the objects they list.
    /// `parent` is the level of the node pointing here (each child is one level lower).
    fn group_btree(&mut self, addr: u64, depth: usize, parent: Option<u8>) -> Result<(), Hdf5StructureReason> {
        let Some((at, level, used)) = self.btree_node(addr, 0) else { return Ok(()) };
        if parent.is_some_and(|p| level.checked_add(1) != Some(p)) {
            return Ok(());
        }
        let (o, key) = (self.offsets as u64, self.lengths as u64);
        // Keys and children alternate after the header and the two sibling addresses.
        let first_child = at.saturating_add(8 + 2 * o + key);
        for i in 0..u64::from(used) {
            let Some(child) = first_child.checked_add(i * (o + key)).and_then(|c| self.address(c)).flatten() else {
                return Ok(());
            };
            if level > 0 {
                self.group_btree(child, depth, Some(level))?;
            } else {
                self.symbol_node(child, depth)?;
            }
        }
        Ok(())
    }

    /// A symbol table node ("SNOD") at `addr`: each entry's object, one level deeper.
    fn symbol_node(&mut self, addr: u64, depth: usize) -> Result<(), Hdf5StructureReason> {
        let Some(at) = self.position(addr) else { return Ok(()) };
        if !self.visit(at) {
            return Ok(());
        }
        let Some(head) = self.read(at, 8) else { return Ok(()) };
        if &head[..4] != b"SNOD" {
            return Ok(());
        }
        let count = u16::from_le_bytes([head[6], head[7]]);
        let entry_len = 2 * self.offsets as u64 + 24;
        for i in 0..u64::from(count) {
            let Some(entry) = (at + 8).checked_add(i * entry_len).and_then(|e| self.symbol_entry(e)) else {
                return Ok(());
            };
            if let Some(header) = entry.header {
                self.object(header, depth + 1)?;
            }
        }
        Ok(())
    }

    /// A chunk B-tree (node type 1) at `addr` for a layout of `dims` dimensions: every leaf key that a
    /// chunk is looked up by must give a chunk of more than 0 bytes. `parent` as for
    /// [`group_btree`](Walk::group_btree).
    fn chunk_btree(&mut self, addr: u64, dims: usize, parent: Option<u8>) -> Result<(), Hdf5StructureReason> {
        let Some((at, level, used)) = self.btree_node(addr, 1) else { return Ok(()) };
        if parent.is_some_and(|p| level.checked_add(1) != Some(p)) {
            return Ok(());
        }
        let o = self.offsets as u64;
        // A key: chunk size (4 bytes), filter mask (4), one 8-byte offset per dimension.
        let key = 8 + 8 * dims as u64;
        let first_key = at.saturating_add(8 + 2 * o);
        for i in 0..u64::from(used) {
            let Some(key_at) = first_key.checked_add(i * (key + o)) else { return Ok(()) };
            if level == 0 {
                if self.uint(key_at, 4) == Some(0) {
                    return Err(Hdf5StructureReason::EmptyChunk { node: at, key: i });
                }
            } else if let Some(child) = self.address(key_at.saturating_add(key)).flatten() {
                self.chunk_btree(child, dims, Some(level))?;
            }
        }
        Ok(())
    }
}

/// What an object header's messages name.
enum Named {
    /// A group's symbol table: its B-tree and local heap.
    Group { btree: Address, heap: Address },
    /// A dataset's chunk B-tree and its layout's dimensionality.
    Chunks { btree: u64, dims: usize },
}

#[cfg(test)]
mod tests;
