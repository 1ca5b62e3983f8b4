//! Writing a new archive from a template: the weights written come back, every other member is the
//! template's byte for byte, nothing is left behind on failure.

mod common;

use std::io::Read;
use std::path::Path;

use warmstart_core::{CheckpointSink, CheckpointSource, SinkTensor};
use warmstart_keras::{KerasSink, KerasSource};

/// Each member's name, compression and stored bytes, in order.
fn raw_members(path: &Path) -> Vec<(String, zip::CompressionMethod, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut m = zip.by_index_raw(i).unwrap();
            let mut raw = Vec::new();
            m.read_to_end(&mut raw).unwrap();
            (m.name().unwrap().into_owned(), m.compression(), raw)
        })
        .collect()
}

/// Writes `src`'s tensors into a new archive at `out` with `template`'s other members.
fn write_from(src: &dyn CheckpointSource, template: &Path, out: &Path) {
    let tensors: Vec<SinkTensor> = src.tensors().iter().cloned().map(SinkTensor::whole).collect();
    let mut sink: Box<dyn CheckpointSink> = Box::new(KerasSink::create(out, &tensors, Some(template)).unwrap());
    for t in &tensors {
        sink.begin_tensor(t).unwrap();
        sink.write_data(&src.read(&t.info.name).unwrap()).unwrap();
        sink.end_tensor().unwrap();
    }
    sink.finish().unwrap();
}

#[test]
fn an_archive_written_from_a_template_keeps_its_members_and_takes_new_weights() {
    let dir = tempfile::tempdir().unwrap();
    let template = common::json("model").0;
    let source = KerasSource::open(&common::json("source").0).unwrap();
    let out = dir.path().join("out.keras");
    write_from(&source, &template, &out);
    // Only the archive is left.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["out.keras"]);

    let back = KerasSource::open(&out).unwrap();
    common::assert_lists(&back, &common::tensors("source"));
    let (want, got) = (raw_members(&template), raw_members(&out));
    assert_eq!(got.len(), want.len());
    for (w, g) in want.iter().zip(&got) {
        assert_eq!((&g.0, g.1), (&w.0, zip::CompressionMethod::Stored), "members in the template's order, stored");
        if w.0 != warmstart_keras::WEIGHTS {
            assert_eq!(g.2, w.2, "{} byte for byte", w.0);
        }
    }
    // The template's own weights written back: the same datasets, values and layout as Keras's.
    let again = dir.path().join("again.keras");
    write_from(&KerasSource::open(&template).unwrap(), &template, &again);
    common::assert_lists(&KerasSource::open(&again).unwrap(), &common::tensors("model"));
}

#[test]
fn bf16_weights_are_written_back_as_bf16() {
    let dir = tempfile::tempdir().unwrap();
    let template = common::json("bf16").0;
    let out = dir.path().join("bf16.keras");
    write_from(&KerasSource::open(&template).unwrap(), &template, &out);
    common::assert_lists(&KerasSource::open(&out).unwrap(), &common::tensors("bf16"));
}

#[test]
fn without_an_archive_template_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.keras");
    let err = KerasSink::create(&out, &[], None).unwrap_err().to_string();
    assert!(err.contains("a .keras archive is written from another .keras archive"), "{err}");
    let not_archive = common::case_dir("bf16").join("model.weights.h5");
    assert!(KerasSink::create(&out, &[], Some(&not_archive)).is_err());
    // A failed write (a tensor never written) leaves nothing.
    let template = common::json("model").0;
    let src = KerasSource::open(&template).unwrap();
    let tensors: Vec<SinkTensor> = src.tensors().iter().cloned().map(SinkTensor::whole).collect();
    let sink: Box<dyn CheckpointSink> = Box::new(KerasSink::create(&out, &tensors, Some(&template)).unwrap());
    assert!(sink.finish().is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn assets_and_other_members_are_copied_byte_for_byte_in_their_order() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    // The model's archive with an asset member between its other members.
    let template = dir.path().join("with_assets.keras");
    let original = std::fs::read(common::json("model").0).unwrap();
    let mut from = zip::ZipArchive::new(std::io::Cursor::new(original)).unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&template).unwrap());
    for i in 0..from.len() {
        zip.raw_copy_file(from.by_index_raw(i).unwrap()).unwrap();
        if i == 0 {
            let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
            zip.start_file("assets/layers/lookup/vocabulary.txt", stored).unwrap();
            zip.write_all(b"a\nb\nc\n").unwrap();
        }
    }
    zip.finish().unwrap();
    let out = dir.path().join("out.keras");
    write_from(&KerasSource::open(&common::json("source").0).unwrap(), &template, &out);
    let (want, got) = (raw_members(&template), raw_members(&out));
    let names: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["metadata.json", "assets/layers/lookup/vocabulary.txt", "config.json", "model.weights.h5"]);
    for (w, g) in want.iter().zip(&got).filter(|(w, _)| w.0 != warmstart_keras::WEIGHTS) {
        assert_eq!(g, w, "{}", w.0);
    }
    common::assert_lists(&KerasSource::open(&out).unwrap(), &common::tensors("source"));
}
