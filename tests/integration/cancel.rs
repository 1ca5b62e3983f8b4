//! Cancellation reaches every phase of a warm-start: here the last phase of the one-pass vocabulary
//! remap (the executor's `scatter` module), which reads its regions back from the output and no
//! checkpoint, stops within a few regions of the cancel, leaving nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use warmstart::{RunOptions, WarmStartSettings};
use warmstart_core::cancel::CancelToken;

use crate::util::files_in;

/// Rows of the embedding: with one-row blocks, the read-back phase has half as many regions.
const ROWS: usize = 400;
const DIM: usize = 4;

fn embedding(name: &str, values: impl Fn(usize) -> f32) -> Vec<u8> {
    let data: Vec<u8> = (0..ROWS * DIM).flat_map(|i| values(i).to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![ROWS, DIM], &data).unwrap();
    safetensors::serialize([(name, view)], None).unwrap()
}

#[test]
fn a_cancel_while_regions_are_read_back_stops_the_remap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("case");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("old.safetensors"), embedding("emb", |i| i as f32)).unwrap();
    std::fs::write(dir.join("new.safetensors"), embedding("emb", |_| -1.0)).unwrap();
    let words: Vec<String> = (0..ROWS).map(|i| format!("w{i}")).collect();
    std::fs::write(dir.join("old_vocab.txt"), words.join("\n") + "\n").unwrap();
    // The new vocabulary is the old one reversed: every new row comes from one old row (no duplicates,
    // and a constant backup), so the read-back phase reads no checkpoint at all.
    let reversed: Vec<&str> = words.iter().rev().map(String::as_str).collect();
    std::fs::write(dir.join("new_vocab.txt"), reversed.join("\n") + "\n").unwrap();
    let config = format!(
        "ckpt_to_initialize_from = \"old.safetensors\"\ntarget = \"new.safetensors\"\nvars_to_warm_start = \"emb\"\n\n\
         [var_name_to_vocab_info.emb]\nnew_vocab = \"new_vocab.txt\"\nnew_vocab_size = {ROWS}\nnum_oov_buckets = 0\n\
         old_vocab = \"old_vocab.txt\"\n"
    );
    std::fs::write(dir.join("warmstart.toml"), config).unwrap();
    let settings = WarmStartSettings::from_file(&dir.join("warmstart.toml")).unwrap();
    let block = Some((DIM * 4) as u64);
    let out = tmp.path().join("out/warm.safetensors");

    // Uncancelled, it succeeds with every region reported.
    let calls = AtomicUsize::new(0);
    let count = |_: u64| {
        calls.fetch_add(1, Ordering::SeqCst);
    };
    let options = RunOptions { block_bytes: block, progress: Some(&count), ..Default::default() };
    warmstart::run_files(&settings, &out, &Default::default(), &options).unwrap();
    let uncancelled = calls.load(Ordering::SeqCst);
    assert!(uncancelled >= ROWS / 2, "{uncancelled} progress reports");
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();

    // Cancelled at the first region written (the first progress report, in the read-back phase).
    let token = CancelToken::new();
    let after = AtomicUsize::new(0);
    let cancel = |_: u64| {
        if token.is_cancelled() {
            after.fetch_add(1, Ordering::SeqCst);
        }
        token.cancel();
    };
    let options =
        RunOptions { block_bytes: block, progress: Some(&cancel), cancel: Some(&token), ..Default::default() };
    let err = warmstart::run_files(&settings, &out, &Default::default(), &options).unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    // Only the regions already queued for the writer are written after the cancel.
    let after = after.load(Ordering::SeqCst);
    assert!(after <= 8, "{after} regions written after the cancel, of {uncancelled}");
    assert_eq!(files_in(tmp.path()), ["case"]);
}
