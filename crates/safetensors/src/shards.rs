//! Sharded output as Hugging Face writes it: [`split`] assigns tensors to shards exactly as
//! `huggingface_hub`'s `split_state_dict_into_shards_factory` does (in order; a tensor that would tip a
//! shard over the limit starts a new one; a tensor larger than the limit gets a shard of its own,
//! placed before the shard being filled), [`shard_names`] names them `model-0000K-of-0000N.safetensors`,
//! [`index_json`] writes `model.safetensors.index.json` as `transformers` does (`json.dumps(index,
//! indent=2, sort_keys=True) + "\n"`), and [`parse_size`] reads `--max-shard-size`.

use std::collections::BTreeMap;

/// The index file of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The shards of tensors of `sizes` bytes (in order) under `max` bytes each: the tensor indices of each
/// shard, in order. No tensors give no shard.
pub fn split(sizes: &[u64], max: u64) -> Vec<Vec<usize>> {
    let mut shards = Vec::new();
    let mut current = Vec::new();
    let mut current_size = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        if size > max {
            shards.push(vec![i]);
            continue;
        }
        if current_size.saturating_add(size) > max {
            shards.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(i);
        current_size += size;
    }
    if !current.is_empty() {
        shards.push(current);
    }
    shards
}

/// The file names of `n` shards: `model.safetensors` for one, else `model-0000K-of-0000N.safetensors`.
pub fn shard_names(n: usize) -> Vec<String> {
    if n <= 1 {
        return vec!["model.safetensors".to_string()];
    }
    (1..=n).map(|k| format!("model-{k:05}-of-{n:05}.safetensors")).collect()
}

/// Removes what an earlier sharded save left in `dir` that the one just put in place (`names`) does not
/// use: shards `model-NNNNN-of-MMMMM.safetensors` of another count (as `save_pretrained` removes them),
/// and, when the new checkpoint is one `model.safetensors`, the earlier index (which readers would
/// prefer). Best effort, once the new files are in place: a file that cannot be removed is left.
pub fn remove_stale(dir: &std::path::Path, names: &[String]) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let shard = name
            .strip_prefix("model-")
            .and_then(|r| r.strip_suffix(".safetensors"))
            .and_then(|r| r.split_once("-of-"))
            .is_some_and(|(k, n)| [k, n].iter().all(|d| d.len() == 5 && d.bytes().all(|b| b.is_ascii_digit())));
        let stale_index = name == INDEX_FILE && names.len() == 1;
        if (shard || stale_index) && !names.contains(&name) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The index `transformers` writes: `{"metadata": {"total_size": ...}, "weight_map": {...}}`, keys
/// sorted, two-space indents, non-ASCII escaped as Python's `json.dumps` escapes it, and a final newline.
pub fn index_json(total_size: u64, weight_map: &BTreeMap<String, String>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Metadata {
        total_size: u64,
    }
    #[derive(serde::Serialize)]
    struct Index<'a> {
        metadata: Metadata,
        weight_map: &'a BTreeMap<String, String>,
    }
    let index = Index { metadata: Metadata { total_size }, weight_map };
    // Serialising plain structs, strings and integers cannot fail.
    let text = serde_json::to_string_pretty(&index).unwrap_or_default();
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests;
