//! [`Format`]: the checkpoint formats warmstart knows, as a type. Sources say which format they read
//! ([`CheckpointSource::format`](crate::CheckpointSource::format)) and callers decide by it, never by a
//! name compared as a string. A new format adds a variant here.

use std::fmt;
use std::str::FromStr;

/// A checkpoint format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// safetensors: a single file, or shards named by `model.safetensors.index.json`.
    Safetensors,
    /// TensorFlow's V2 tensor bundle: `prefix.index` and `prefix.data-*-of-*`.
    Tf,
    /// HDF5, as Keras writes weights (`.weights.h5`, `.h5`).
    Hdf5,
    /// A Keras 3 archive (`.keras`: a zip of `config.json`, `metadata.json` and `model.weights.h5`), or
    /// sharded Keras weights (`.weights.json` and its `*_NNNNN.weights.h5` shards).
    Keras,
    /// PyTorch's `torch.save` zip archive (`pytorch_model.bin`, `.pt`), or shards named by
    /// `pytorch_model.bin.index.json`; read only.
    Torch,
    /// NumPy: an `.npz` archive of `.npy` members (`np.savez`, `np.savez_compressed`) or one `.npy` file.
    Numpy,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 6] =
        [Format::Safetensors, Format::Tf, Format::Hdf5, Format::Keras, Format::Torch, Format::Numpy];

    /// The short name, as `--to` takes it, `inspect` prints it and the cargo feature is called.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Tf => "tf",
            Format::Hdf5 => "hdf5",
            Format::Keras => "keras",
            Format::Torch => "torch",
            Format::Numpy => "numpy",
        }
    }

    /// Whether the format can store string tensors.
    pub fn stores_strings(self) -> bool {
        !matches!(self, Format::Safetensors | Format::Torch | Format::Numpy)
    }

    /// Whether warmstart writes this format (a read-only format is read, never written: PyTorch).
    pub fn writable(self) -> bool {
        match self {
            Format::Safetensors | Format::Tf | Format::Hdf5 | Format::Keras | Format::Numpy => true,
            Format::Torch => false,
        }
    }

    /// Whether the format keeps a partitioned variable's slices apart (TF bundles); other formats
    /// store every tensor whole.
    pub fn stores_partitions(self) -> bool {
        matches!(self, Format::Tf)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {name:?} (expected one of: safetensors, tf, hdf5, keras, torch, numpy)")]
pub struct UnknownFormat {
    /// The name given.
    pub name: String,
}

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Parses a format's name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownFormat { name: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
            assert_eq!(f.to_string(), f.name());
        }
        assert_eq!("TF".parse::<Format>().unwrap(), Format::Tf);
        let err = "onnx".parse::<Format>().unwrap_err();
        assert_eq!(err, UnknownFormat { name: "onnx".into() });
        assert_eq!(
            err.to_string(),
            "unknown format \"onnx\" (expected one of: safetensors, tf, hdf5, keras, torch, numpy)"
        );
    }

    #[test]
    fn only_tf_keeps_partitions_and_only_tf_and_hdf5_store_strings() {
        let partitions: Vec<_> = Format::ALL.into_iter().filter(|f| f.stores_partitions()).collect();
        assert_eq!(partitions, [Format::Tf]);
        let no_strings: Vec<_> = Format::ALL.into_iter().filter(|f| !f.stores_strings()).collect();
        assert_eq!(no_strings, [Format::Safetensors, Format::Torch, Format::Numpy]);
        let read_only: Vec<_> = Format::ALL.into_iter().filter(|f| !f.writable()).collect();
        assert_eq!(read_only, [Format::Torch]);
    }
}
