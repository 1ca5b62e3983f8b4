//! Reading the archives and sharded weights Keras 3.15 wrote: names, dtypes, shapes and bytes equal
//! what h5py read from them; the weights are read in place from the archive.

mod common;

use warmstart_core::{CheckpointSource, Format};
use warmstart_keras::{KerasShardedSource, KerasSource};

#[test]
fn archives_list_and_read_what_h5py_read_from_their_weights() {
    for case in ["model", "source", "bf16"] {
        let (file, json) = common::json(case);
        let src = KerasSource::open(&file).unwrap();
        assert_eq!(src.format(), Format::Keras);
        common::assert_lists(&src, &common::tensors(case));
        let members: Vec<&str> = json["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
        assert_eq!(src.member_names(), members, "{case}");
        let layers: Vec<&str> = json["layers"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
        assert_eq!(src.layer_names(), layers, "{case}");
        // Where zipfile says the weights start; not a power of two, so no user block would do.
        let offset = json["weights_offset"].as_u64().unwrap() as usize;
        assert_eq!(src.weights_range().start, offset, "{case}");
        assert!(!offset.is_power_of_two());
    }
}

#[test]
fn bf16_archives_hold_bf16_weights() {
    let src = KerasSource::open(&common::json("bf16").0).unwrap();
    let bf16 = src.tensors().iter().filter(|t| t.dtype == warmstart_core::DType::BF16).count();
    assert!(bf16 >= 3, "{bf16} bf16 tensors");
}

#[test]
fn sharded_weights_read_as_the_unsharded_model() {
    let (index, json) = common::json("sharded");
    let src = KerasShardedSource::open(&index).unwrap();
    assert_eq!(src.format(), Format::Keras);
    let shards: Vec<String> =
        src.shards().iter().map(|s| s.path().file_name().unwrap().to_string_lossy().into_owned()).collect();
    let want: Vec<&str> = json["shards"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(shards, want);
    // The same tensors as the archive of the same model.
    common::assert_lists(&src, &common::tensors("model"));
    common::assert_lists(&src, &common::tensors("sharded"));
}

#[test]
fn open_tells_archives_indexes_and_folders_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("weights.bin");
    std::fs::copy(common::json("model").0, &archive).unwrap();
    assert_eq!(warmstart_keras::open(&archive).unwrap().tensors().len(), common::tensors("model").len());
    assert_eq!(warmstart_keras::open(dir.path()).unwrap().tensors().len(), common::tensors("model").len());
    let sharded = common::case_dir("sharded");
    assert_eq!(warmstart_keras::open(&sharded).unwrap().tensors().len(), common::tensors("model").len());
}

#[test]
fn an_archive_lists_what_the_hdf5_reader_lists_for_the_same_weights_saved_alone() {
    // `bf16` holds model.save's archive and save_weights' .weights.h5 of one model.
    let archive = KerasSource::open(&common::json("bf16").0).unwrap();
    let alone = warmstart_hdf5::Hdf5Source::open(&common::case_dir("bf16").join("model.weights.h5")).unwrap();
    assert_eq!(archive.tensors(), alone.tensors());
    for t in alone.tensors() {
        assert_eq!(archive.read(&t.name).unwrap(), alone.read(&t.name).unwrap(), "{}", t.name);
    }
}
