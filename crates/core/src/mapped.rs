//! Memory-mapped inputs: letting go of the pages of a read-only file mapping once a reader is done with
//! them, so that streaming a large checkpoint through a map keeps the process's resident memory bounded;
//! and [`InputMap`], a file mapped for reading that survives being truncated under the map (see
//! [`guard`]) and notices being rewritten in place.

mod guard;

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, UncheckedAdvice};

use crate::{Error, Result};

/// Drops the pages that hold bytes `range` of `map` from this process's resident memory
/// (`madvise(MADV_DONTNEED)`); the file's data stays in the OS page cache and the next access to those
/// bytes maps it again. Whole pages are dropped, so bytes of neighbours that share a page with the range
/// are dropped too, with the same effect. A range outside the map, or a failure, changes nothing.
pub fn release(map: &Mmap, range: Range<usize>) {
    if range.start >= range.end || range.end > map.len() {
        return;
    }
    // SAFETY: `Mmap` is a read-only (PROT_READ, MAP_PRIVATE) mapping that nothing ever writes, so it
    // holds no private copies of pages: MADV_DONTNEED only removes page-table entries, and the next
    // access, through any slice borrowed before or after, reads the very same file bytes back from the
    // page cache. The contents seen through the map never change (as long as the file does not, which
    // mapping it at all already assumes), so no borrow is invalidated. The range lies within the map.
    let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, range.start, range.end - range.start) };
}

/// A file memory-mapped for reading, guarded against being changed under the map. If the file is
/// truncated while mapped, reading its vanished pages does not raise SIGBUS (which would kill the
/// process): they read as zeros and [`InputMap::check_read`] fails from then on (see [`guard`]).
/// [`InputMap::check_unchanged`] also compares the file's size and modification time with those at
/// open, so that a file rewritten in place is noticed too.
#[derive(Debug)]
pub struct InputMap {
    // Declared first, so dropped first: the map leaves the registry before it is unmapped.
    guard: Option<guard::Registration>,
    map: Option<Mmap>,
    file: File,
    path: PathBuf,
    opened: Stamp,
}

/// What identifies a file's contents without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp { len: meta.len(), modified: (meta.mtime(), meta.mtime_nsec()) }
    }
}

impl InputMap {
    /// Opens and maps the file at `path` (an empty file is not mapped: it has no bytes).
    pub fn open(path: &Path) -> std::io::Result<InputMap> {
        InputMap::new(File::open(path)?, path)
    }

    /// Maps `file`, opened from `path` (the name errors give).
    pub fn new(file: File, path: &Path) -> std::io::Result<InputMap> {
        let meta = file.metadata()?;
        let map = if meta.len() == 0 {
            None
        } else {
            // SAFETY: the map is read-only and private, and only ever read. A file truncated while
            // mapped would make reads of its lost pages raise SIGBUS: the map is registered with the
            // SIGBUS guard, which turns those reads into zeros and flags the map, and the readers
            // report it. A file rewritten in place is noticed by `check_unchanged`.
            Some(unsafe { Mmap::map(&file) }?)
        };
        let guard = map.as_ref().and_then(|m| guard::Registration::new(m.as_ptr(), m.len()));
        Ok(InputMap { guard, map, file, path: path.to_path_buf(), opened: Stamp::of(&meta) })
    }

    /// The file's bytes, as mapped.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file mapped (for copies made file to file, which read it without the map).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Drops bytes `range` from resident memory (see [`release`]).
    pub fn release(&self, range: Range<usize>) {
        if let Some(map) = &self.map {
            release(map, range);
        }
    }

    /// Whether the file shrank under the map: some of its mapped bytes were found gone (and read as
    /// zeros instead).
    pub fn truncated(&self) -> bool {
        self.guard.as_ref().is_some_and(|g| g.faulted())
    }

    /// [`Error::InputChanged`] if the file was found truncated while being read.
    pub fn check_read(&self) -> Result<()> {
        if self.truncated() {
            return Err(self.changed("it was truncated: some of its bytes vanished while mapped".into()));
        }
        Ok(())
    }

    /// [`Error::InputChanged`] if the file was found truncated, or if its size or
    /// modification time differ from those at open (it was rewritten in place).
    pub fn check_unchanged(&self) -> Result<()> {
        self.check_read()?;
        let now = self.file.metadata().map(|m| Stamp::of(&m)).map_err(|e| Error::io(&self.path, e))?;
        if now.len != self.opened.len {
            return Err(self.changed(format!("its size went from {} to {} bytes", self.opened.len, now.len)));
        }
        if now != self.opened {
            return Err(self.changed("it was modified".into()));
        }
        Ok(())
    }

    fn changed(&self, reason: String) -> Error {
        Error::InputChanged { path: self.path.clone(), reason }
    }
}

impl std::ops::Deref for InputMap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn released_bytes_read_back_the_same() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i * 7 % 251) as u8).collect();
        file.write_all(&data).unwrap();
        // SAFETY: (test) the temporary file is not modified while mapped.
        let map = unsafe { Mmap::map(&file) }.unwrap();
        let borrowed = &map[4000..9000];
        let before = borrowed.to_vec();
        release(&map, 100..9000);
        release(&map, 0..map.len());
        // Out of range or empty: nothing happens.
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 10..5;
        release(&map, reversed);
        release(&map, 0..map.len() + 1);
        assert_eq!(borrowed, &before[..]);
        assert_eq!(&map[..], &data[..]);
    }

    /// The resident kB of the mapping that starts at `addr`, from `/proc/self/smaps`.
    #[cfg(target_os = "linux")]
    fn resident_kb(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut lines = smaps.lines();
        while let Some(line) = lines.next() {
            let start = line.split('-').next().and_then(|a| usize::from_str_radix(a, 16).ok());
            if start == Some(addr) {
                let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
                return rss.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
        panic!("mapping {addr:#x} not in /proc/self/smaps");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn released_pages_leave_resident_memory() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![1u8; 64 * 4096]).unwrap();
        // SAFETY: (test) the temporary file is not modified while mapped.
        let map = unsafe { Mmap::map(&file) }.unwrap();
        let touched: u64 = map.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        assert_eq!(touched, 64);
        let addr = map.as_ptr() as usize;
        assert_eq!(resident_kb(addr), 256);
        release(&map, 0..32 * 4096);
        assert_eq!(resident_kb(addr), 128);
        release(&map, 0..map.len());
        assert_eq!(resident_kb(addr), 0);
        assert!(map.iter().all(|&b| b == 1));
    }

    #[test]
    fn a_map_truncated_under_it_reads_zeros_and_says_so() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&vec![7u8; 5 * 4096 + 10]).unwrap();
        let map = InputMap::open(file.path()).unwrap();
        let other = InputMap::open(file.path()).unwrap();
        assert_eq!(map.len(), 5 * 4096 + 10);
        assert!(map.check_unchanged().is_ok());
        assert_eq!(map[3 * 4096], 7);
        file.as_file().set_len(4096 + 1).unwrap();
        // Within the file's remaining pages, its bytes; past them, zeros instead of SIGBUS.
        assert_eq!(map[4096], 7);
        assert_eq!(map[4096 + 100], 0);
        assert!(map[2 * 4096..].iter().all(|&b| b == 0));
        assert!(map.truncated());
        let err = map.check_read().unwrap_err().to_string();
        assert!(err.contains(&file.path().display().to_string()) && err.contains("truncated"), "{err}");
        // The other map of the same file has not read past the end yet: only its size tells.
        assert!(!other.truncated());
        let err = other.check_unchanged().unwrap_err().to_string();
        assert!(err.contains("its size went from 20490 to 4097 bytes"), "{err}");
        release(map.map.as_ref().unwrap(), 0..map.len());
        assert_eq!(map[10], 7);
        assert_eq!(map[3 * 4096], 0);
        drop(map);
        // A slot freed and taken again starts unflagged.
        let again = InputMap::open(file.path()).unwrap();
        assert!(!again.truncated() && again.check_unchanged().is_ok());
    }

    #[test]
    fn a_file_rewritten_in_place_is_noticed() {
        use std::os::unix::fs::FileExt;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&[1u8; 100]).unwrap();
        let map = InputMap::open(file.path()).unwrap();
        let empty = tempfile::NamedTempFile::new().unwrap();
        let empty_map = InputMap::open(empty.path()).unwrap();
        assert_eq!(empty_map.bytes(), &[] as &[u8]);
        // Past the clock tick that file times are taken from.
        std::thread::sleep(std::time::Duration::from_millis(30));
        file.as_file().write_all_at(&[2], 50).unwrap();
        let err = map.check_unchanged().unwrap_err().to_string();
        assert!(err.contains("it was modified") && err.contains("changed while being read"), "{err}");
        assert!(map.check_read().is_ok());
        assert!(empty_map.check_unchanged().is_ok());
    }

    /// A fault outside every input map still kills the process with SIGBUS.
    #[test]
    fn other_sigbus_keep_their_default_action() {
        let exe = std::env::current_exe().unwrap();
        if std::env::var_os("WARMSTART_SIGBUS_CHILD").is_some() {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), [1u8; 10]).unwrap();
            let _guarded = InputMap::open(file.path()).unwrap();
            std::fs::write(file.path(), vec![1u8; 3 * 4096]).unwrap();
            // SAFETY: (test) a child process run to die here: the file is truncated under the map.
            let plain = unsafe { Mmap::map(file.as_file()) }.unwrap();
            file.as_file().set_len(0).unwrap();
            let byte = std::hint::black_box(&plain[..])[2 * 4096];
            std::process::exit(i32::from(byte) + 3);
        }
        let status = std::process::Command::new(exe)
            .args(["--exact", "mapped::tests::other_sigbus_keep_their_default_action", "--test-threads=1"])
            .env("WARMSTART_SIGBUS_CHILD", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGBUS));
    }
}
