//! Memory-mapped inputs: letting go of the pages of a read-only file mapping once a reader is done with
//! them, so that streaming a large checkpoint through a map keeps the process's resident memory bounded.

use std::ops::Range;

use memmap2::{Mmap, UncheckedAdvice};

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
}
