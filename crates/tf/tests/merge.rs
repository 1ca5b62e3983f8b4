//! `TfSink::create_worker` and `merge`: the parts of N workers, merged, are byte for byte the bundle one
//! `TfSink::create` with N shards writes, for every TF-made fixture (partitioned ones among them), with
//! tensors given in order or at offsets.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use warmstart_core::{CheckpointSink, CheckpointSource, DType, SinkTensor};
use warmstart_tf::{merge, TfSink, TfSource};

fn sink_tensors(src: &TfSource) -> Vec<SinkTensor> {
    let mut out = Vec::new();
    for t in src.tensors() {
        match src.slices(&t.name) {
            Some(slices) => out.extend(
                slices
                    .into_iter()
                    .filter(|s| (1..t.shape.len()).all(|d| s.start[d] == 0 && s.len[d] == t.shape[d]))
                    .map(|s| SinkTensor { info: t.clone(), slice: Some(s) }),
            ),
            None => out.push(SinkTensor::whole(t.clone())),
        }
    }
    out
}

/// Writes every tensor of `src` to `sink`, in order or (`at`) through regions.
fn fill(src: &TfSource, tensors: &[SinkTensor], mut sink: Box<dyn CheckpointSink>, at: bool) {
    for t in tensors {
        if t.info.dtype == DType::String {
            sink.write_strings(t, &src.read_strings(&t.info.name).unwrap()).unwrap();
            continue;
        }
        let bytes = match &t.slice {
            Some(s) => src.read_rows(&t.info.name, s.start[0]..s.start[0] + s.len[0]).unwrap().into_owned(),
            None => src.read(&t.info.name).unwrap().into_owned(),
        };
        if at {
            let region = sink.begin_tensor_at(t).unwrap();
            region.write_at(0, &bytes).unwrap();
            sink.end_tensor_at(region, Some(crc32c::crc32c(&bytes))).unwrap();
        } else {
            sink.begin_tensor(t).unwrap();
            sink.write_data(&bytes).unwrap();
            sink.end_tensor().unwrap();
        }
    }
    sink.finish().unwrap();
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let read = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap());
    read.map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())).collect()
}

#[test]
fn merged_worker_parts_equal_one_sharded_write() {
    let mut compared = 0;
    for case in CASES {
        let src = TfSource::open(&prefix(case)).unwrap();
        let tensors = sink_tensors(&src);
        for (n, at) in [(1, false), (2, true), (3, false), (4, true)] {
            let tmp = tempfile::tempdir().unwrap();
            let one = tmp.path().join("one/model.ckpt");
            fill(&src, &tensors, Box::new(TfSink::create(&one, &tensors, n).unwrap()), at);
            let many = tmp.path().join("many/model.ckpt");
            for w in 0..n {
                fill(&src, &tensors, Box::new(TfSink::create_worker(&many, &tensors, n, w).unwrap()), at);
            }
            let parts = merge::worker_parts(&many).unwrap();
            assert_eq!(parts.len(), n);
            merge::merge(&many, &parts, false).unwrap();
            assert_eq!(snapshot(&tmp.path().join("one")), snapshot(&tmp.path().join("many")), "{case}, {n} workers");
            compared += 1;
        }
    }
    assert_eq!(compared, 4 * CASES.len());
}

#[test]
fn a_worker_outside_the_count_is_refused() {
    let src = TfSource::open(&prefix(CASES[0])).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let err = TfSink::create_worker(&tmp.path().join("m"), &sink_tensors(&src), 2, 2).err().unwrap();
    assert!(err.to_string().contains("worker 2 of 2"), "{err}");
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
}
