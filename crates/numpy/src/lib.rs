//! NumPy files for warmstart: [`NumpySource`] reads an `.npz` archive (`np.savez`, stored members read
//! in place; `np.savez_compressed`, deflated members inflated at open) or a single `.npy` file (format
//! versions 1.0, 2.0 and 3.0), with each member's key (its name without `.npy`) as the tensor's name;
//! [`NumpySink`] writes an `.npz` as `np.savez` does, or a single `.npy`. The `.npy` header, a Python
//! dict literal, is parsed by a strict grammar of what numpy writes, never evaluated ([`header`]).
//! The zip structure is the `zip` crate's.
#![deny(missing_docs)]

pub mod header;
mod sink;
mod source;

pub use sink::NumpySink;
pub use source::NumpySource;
pub use warmstart_core::NumpyError;
