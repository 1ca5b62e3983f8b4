//! [`Format`]: the checkpoint formats warmstart knows, their names, and which this build can handle.

use std::fmt;
use std::str::FromStr;

use crate::FormatsError;

/// A checkpoint format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// safetensors: a single file, or shards named by `model.safetensors.index.json`.
    Safetensors,
    /// TensorFlow's V2 tensor bundle: `prefix.index` and `prefix.data-*-of-*`.
    Tf,
    /// HDF5, as Keras writes weights (`.weights.h5`, `.h5`).
    Hdf5,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Safetensors, Format::Tf, Format::Hdf5];

    /// The short name, as `--to` takes it and as `CheckpointSource::format` returns it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Tf => "tf",
            Format::Hdf5 => "hdf5",
        }
    }

    /// Whether the format can store string tensors.
    pub fn stores_strings(self) -> bool {
        !matches!(self, Format::Safetensors)
    }

    /// Whether this build was compiled with the format's cargo feature.
    pub fn compiled_in(self) -> bool {
        match self {
            Format::Safetensors => cfg!(feature = "safetensors"),
            Format::Tf => cfg!(feature = "tf"),
            Format::Hdf5 => cfg!(feature = "hdf5"),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = FormatsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| FormatsError::UnknownFormat { name: s.to_string() })
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
        assert_eq!(err.to_string(), "unknown format \"onnx\" (expected one of: safetensors, tf, hdf5)");
    }

    #[test]
    fn compiled_in_follows_the_features() {
        assert_eq!(Format::Safetensors.compiled_in(), cfg!(feature = "safetensors"));
        assert_eq!(Format::Hdf5.compiled_in(), cfg!(feature = "hdf5"));
        assert_eq!(Format::Tf.compiled_in(), cfg!(feature = "tf"));
    }
}
