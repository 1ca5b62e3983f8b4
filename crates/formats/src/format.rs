//! Which of the [`Format`]s (the core type) this build can read and write: each format's crate is
//! behind a cargo feature of the same name.

pub use warmstart_core::Format;

/// Whether this build was compiled with `format`'s cargo feature.
pub fn compiled_in(format: Format) -> bool {
    match format {
        Format::Safetensors => cfg!(feature = "safetensors"),
        Format::Tf => cfg!(feature = "tf"),
        Format::Hdf5 => cfg!(feature = "hdf5"),
        Format::Keras => cfg!(feature = "keras"),
        Format::Torch => cfg!(feature = "torch"),
        Format::Numpy => cfg!(feature = "numpy"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_follows_the_features() {
        assert_eq!(compiled_in(Format::Safetensors), cfg!(feature = "safetensors"));
        assert_eq!(compiled_in(Format::Hdf5), cfg!(feature = "hdf5"));
        assert_eq!(compiled_in(Format::Tf), cfg!(feature = "tf"));
        assert_eq!(compiled_in(Format::Keras), cfg!(feature = "keras"));
        assert_eq!(compiled_in(Format::Torch), cfg!(feature = "torch"));
        assert_eq!(compiled_in(Format::Numpy), cfg!(feature = "numpy"));
    }
}
