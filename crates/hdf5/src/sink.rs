//! [`Hdf5Sink`]: writes tensors as HDF5 datasets.
/// Placeholder.
pub struct Hdf5Sink;
