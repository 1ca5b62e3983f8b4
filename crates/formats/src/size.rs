//! [`parse_shard_size`]: the maximum shard size of sharded safetensors output (`--max-shard-size 5GB`),
//! read as the Hugging Face libraries read it.

use warmstart_core::BadShardSize;

/// A shard size as `huggingface_hub`'s `parse_size_to_int` reads it (`5GB`, `500MB`, `1.5GB`, `7KB`:
/// decimal units TB, GB, MB, KB in any case, a number that may have a fraction, truncated to bytes),
/// or with a binary unit as `transformers`' `convert_file_size_to_int` reads it (`10KiB`, `2GiB`: an
/// integer), or a plain number of bytes. At least one byte.
pub fn parse_shard_size(given: &str) -> Result<u64, BadShardSize> {
    let bad = |reason| BadShardSize { given: given.to_string(), reason };
    let s = given.trim();
    let upper = s.to_ascii_uppercase();
    let binary = [("KIB", 1u64 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("TIB", 1 << 40)];
    let decimal = [("KB", 1_000u64), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000)];
    let bytes = if let Some((unit, mult)) = binary.iter().find(|(u, _)| upper.ends_with(u)) {
        let number = s[..s.len() - unit.len()].trim();
        let n: u64 = number.parse().map_err(|_| bad("a binary unit takes a whole number"))?;
        n.checked_mul(*mult).ok_or_else(|| bad("too large"))?
    } else if let Some((_, mult)) = decimal.iter().find(|(u, _)| upper.ends_with(u)) {
        let number = s[..s.len() - 2].trim();
        let value: f64 = number.parse().map_err(|_| bad("not a number before the unit"))?;
        let bytes = (value * *mult as f64).trunc();
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad("too large"));
        }
        if bytes < 0.0 {
            return Err(bad("negative"));
        }
        bytes as u64
    } else if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        s.parse().map_err(|_| bad("too large"))?
    } else {
        return Err(bad("the unit is none of TB, GB, MB, KB, TiB, GiB, MiB, KiB"));
    };
    if bytes == 0 {
        return Err(bad("a shard must hold at least one byte"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn sizes_parse_as_huggingface_hub_and_transformers_parse_them() {
        let path = warmstart_core::test_support::fixtures().join("safetensors_shards/sizes.json");
        let sizes: BTreeMap<String, Option<u64>> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert!(sizes.len() >= 10);
        for (given, want) in sizes {
            assert_eq!(parse_shard_size(&given).ok(), want, "{given:?}");
        }
        assert_eq!(parse_shard_size("0KB").unwrap_err().reason, "a shard must hold at least one byte");
        assert_eq!(parse_shard_size("-5GB").unwrap_err().reason, "negative");
        assert_eq!(parse_shard_size("1.5KiB").unwrap_err().reason, "a binary unit takes a whole number");
        assert_eq!(parse_shard_size("1e30TB").unwrap_err().reason, "too large");
        let err = parse_shard_size("5 parsecs").unwrap_err().to_string();
        assert!(err.starts_with("\"5 parsecs\" is not a shard size: the unit is none of"), "{err}");
    }
}
