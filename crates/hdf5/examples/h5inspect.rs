//! Lists the tensors of HDF5 files as warmstart sees them, or the error it gives.
//! Usage: `cargo run -p warmstart-hdf5 --example h5inspect -- FILE...`

use warmstart_core::CheckpointSource;

fn main() {
    for arg in std::env::args().skip(1) {
        match warmstart_hdf5::Hdf5Source::open(std::path::Path::new(&arg)) {
            Err(e) => println!("{arg}: error: {e}"),
            Ok(src) => {
                println!("{arg}: {:?}, {} tensors", src.keras_layout(), src.tensors().len());
                for t in src.tensors() {
                    let check = match t.dtype {
                        warmstart_core::DType::String => src.read_strings(&t.name).map(|_| ()),
                        _ => src.read(&t.name).map(|_| ()),
                    };
                    let status = check.err().map(|e| format!("  read error: {e}")).unwrap_or_default();
                    println!("  {} {} {:?}{status}", t.name, t.dtype, t.shape);
                }
            }
        }
    }
}
