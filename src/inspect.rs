//! What `warmstart inspect` prints: a readable table of tensors with totals, or the JSON listing
//! `{"format": ..., "tensors": [{"name", "dtype", "shape"}, ...]}`.

use std::io::{self, Write};

use serde::Serialize;
use warmstart_core::CheckpointSource;

/// The JSON listing of a checkpoint.
#[derive(Serialize)]
struct Listing<'a> {
    format: &'a str,
    tensors: Vec<ListedTensor<'a>>,
}

/// One tensor of the JSON listing.
#[derive(Serialize)]
struct ListedTensor<'a> {
    name: &'a str,
    dtype: &'a str,
    shape: &'a [u64],
}

/// Writes the JSON listing of `src`.
pub fn write_json(out: &mut impl Write, src: &dyn CheckpointSource) -> io::Result<()> {
    let listing = Listing {
        format: src.format().name(),
        tensors: src
            .tensors()
            .iter()
            .map(|t| ListedTensor { name: &t.name, dtype: t.dtype.name(), shape: &t.shape })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &listing)?;
    writeln!(out)
}

/// Writes a table of `src`'s tensors (name, dtype, shape, size), then the totals.
pub fn write_table(out: &mut impl Write, src: &dyn CheckpointSource) -> io::Result<()> {
    writeln!(out, "{} checkpoint {}", src.format(), src.path().display())?;
    if let Some(metadata) = src.metadata() {
        for (key, value) in metadata {
            writeln!(out, "metadata {key}: {value}")?;
        }
    }
    writeln!(out)?;
    let rows: Vec<[String; 4]> = src
        .tensors()
        .iter()
        .map(|t| {
            let shape = format!("[{}]", t.shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
            let size = t.byte_len().map_or_else(|| "-".to_string(), human_bytes);
            [t.name.clone(), t.dtype.name().to_string(), shape, size]
        })
        .collect();
    let header = ["name", "dtype", "shape", "size"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let [name, dtype, shape, size] = row;
        writeln!(
            out,
            "{name:<w0$}  {dtype:<w1$}  {shape:<w2$}  {size:>w3$}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )?;
    }
    let elements: u64 = src.tensors().iter().filter_map(|t| t.num_elements()).fold(0, u64::saturating_add);
    let bytes: u64 = src.tensors().iter().filter_map(|t| t.byte_len()).fold(0, u64::saturating_add);
    writeln!(out)?;
    let exact = if bytes < 1024 { String::new() } else { format!(" ({bytes} bytes)") };
    writeln!(out, "{} tensors, {elements} elements, {}{exact}", src.tensors().len(), human_bytes(bytes))
}

/// `bytes` as a short human-readable size: `512 B`, `1.5 KiB`, `3.0 MiB`, ...
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }
}
