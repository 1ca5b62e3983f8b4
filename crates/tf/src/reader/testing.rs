//! Helpers of the reader's unit tests: fixture bundles copied with their index entries edited.

use std::path::PathBuf;

use prost::Message;

pub(super) use super::TfSource;
pub(super) use crate::proto::{BundleEntryProto, BundleHeaderProto};
pub(super) use crate::table::Entries;
use crate::table::{build_table, read_table};
pub(super) use crate::TfError;

pub(super) fn fixture(case: &str, name: &str) -> PathBuf {
    warmstart_core::test_support::fixture("tf", case).join(name)
}

/// Copies a fixture bundle into a temporary directory with its index entries edited.
pub(super) fn edited(case: &str, prefix: &str, edit: impl FnOnce(&mut Entries)) -> (tempfile::TempDir, PathBuf) {
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

pub(super) fn edit_entry(entries: &mut Entries, key: &[u8], f: impl FnOnce(&mut BundleEntryProto)) {
    let (_, value) = entries.iter_mut().find(|(k, _)| k == key).unwrap();
    let mut e = BundleEntryProto::decode(value.as_slice()).unwrap();
    f(&mut e);
    *value = e.encode_to_vec();
}

pub(super) fn edit_header(entries: &mut Entries, f: impl FnOnce(&mut BundleHeaderProto)) {
    let mut h = BundleHeaderProto::decode(entries[0].1.as_slice()).unwrap();
    f(&mut h);
    entries[0].1 = h.encode_to_vec();
}

pub(super) fn open_err(case: &str, prefix: &str, edit: impl FnOnce(&mut Entries)) -> TfError {
    let (_dir, p) = edited(case, prefix, edit);
    match TfSource::open(&p) {
        Ok(_) => panic!("opened a forged bundle"),
        Err(e) => e,
    }
}
