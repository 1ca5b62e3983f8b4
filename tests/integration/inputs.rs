//! Inputs that change under the reader (issue 14): a safetensors file or a TF data shard truncated
//! while `convert` or `run` reads it, and a safetensors file rewritten in place, end with exit 1, a
//! message naming the input, and no temporary file; never with SIGBUS. So do a torch `.bin` archive
//! and a `.keras` archive truncated while `convert` reads them.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::faults::{binary, outputs, safetensors_of_zeros, tree};

/// Waits until a staged temporary file under `dir` has data in it (the run is reading its input).
fn wait_for_staged_data(child: &mut Child, dir: &Path) {
    let start = Instant::now();
    loop {
        let writing = tree(dir).iter().any(|f| {
            f.ends_with(".tmp") && std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0 || m.blocks() > 0)
        });
        if writing {
            return;
        }
        if child.try_wait().unwrap().is_some() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("ended before writing: {:?}: {stderr}", tree(dir));
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no temporary file appeared: {:?}", tree(dir));
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs the binary with `args` in `dir`, calls `change` once its output is being written, and
/// returns its exit code and standard error.
fn change_mid_write(dir: &Path, args: &[&OsStr], change: impl FnOnce()) -> (Option<i32>, String) {
    let mut child = binary().current_dir(dir).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_staged_data(&mut child, dir);
    change();
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A sparse input of zeros that can be truncated and made whole again cheaply.
struct Input {
    /// What `convert` and the run config name.
    arg: &'static str,
    /// The file truncated (the safetensors file, or the TF data shard).
    data: &'static str,
    len: u64,
}

impl Input {
    /// A 1 GiB safetensors file of zeros (a hole).
    fn safetensors(dir: &Path) -> Input {
        let data = "big.safetensors";
        safetensors_of_zeros(&dir.join(data), &[("big", 1 << 30)]);
        Input { arg: data, data, len: std::fs::metadata(dir.join(data)).unwrap().len() }
    }

    /// A TF checkpoint of one 512 MiB tensor of zeros, its data shard made a hole afterwards.
    #[cfg(feature = "tf")]
    fn tf(dir: &Path) -> Input {
        let src = dir.join("zeros.safetensors");
        safetensors_of_zeros(&src, &[("big", 512 << 20)]);
        let output =
            binary().current_dir(dir).args(["convert", "zeros.safetensors", "tf/model.ckpt"]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        std::fs::remove_file(&src).unwrap();
        let data = "tf/model.ckpt.data-00000-of-00001";
        let input = Input { arg: "tf/model.ckpt", data, len: std::fs::metadata(dir.join(data)).unwrap().len() };
        input.truncate(dir, 0);
        input.restore(dir);
        input
    }

    fn truncate(&self, dir: &Path, len: u64) {
        File::options().write(true).open(dir.join(self.data)).unwrap().set_len(len).unwrap();
    }

    /// Back to its full size: zeros again, as it was made (a safetensors file made again, header and
    /// all; the TF shard is all data).
    fn restore(&self, dir: &Path) {
        self.truncate(dir, 0);
        if self.arg == self.data {
            safetensors_of_zeros(&dir.join(self.data), &[("big", 1 << 30)]);
        } else {
            self.truncate(dir, self.len);
        }
    }
}

/// The inputs this build reads.
fn inputs(dir: &Path) -> Vec<Input> {
    let safetensors = Input::safetensors(dir);
    #[cfg(feature = "tf")]
    return vec![safetensors, Input::tf(dir)];
    #[cfg(not(feature = "tf"))]
    vec![safetensors]
}

/// Asserts that a run ended with exit 1 and an error naming `input` as changed.
fn assert_input_changed(what: &str, (code, stderr): (Option<i32>, String), input: &Input) {
    assert_eq!(code, Some(1), "{what}: {stderr}");
    let name = Path::new(input.data).file_name().unwrap().to_string_lossy();
    assert!(stderr.contains(&*name) && stderr.contains("changed while being read"), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
}

/// `convert` of a safetensors and a TF input truncated mid-read into every output format.
#[test]
fn an_input_truncated_mid_convert_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    let before = tree(dir.path());
    for input in &inputs {
        for dst in outputs() {
            let what = format!("convert {} {dst}", input.arg);
            let args = ["convert".as_ref(), input.arg.as_ref(), OsStr::new(dst)];
            let run = change_mid_write(dir.path(), &args, || input.truncate(dir.path(), 4096));
            assert_input_changed(&what, run, input);
            assert_eq!(tree(dir.path()), before, "{what}");
            input.restore(dir.path());
        }
    }
}

/// `run` with the old checkpoint and the target truncated mid-read, into every output format.
#[test]
fn an_input_truncated_mid_run_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    for input in &inputs {
        let config = format!("{}.toml", input.data.replace('/', "_"));
        let toml = format!("ckpt_to_initialize_from = \"{0}\"\ntarget = \"{0}\"\n", input.arg);
        std::fs::write(dir.path().join(&config), toml).unwrap();
    }
    let before = tree(dir.path());
    for input in &inputs {
        let config = format!("{}.toml", input.data.replace('/', "_"));
        for dst in outputs() {
            let what = format!("run {config} --out {dst}");
            let args = ["run".as_ref(), "--config".as_ref(), config.as_ref(), "--out".as_ref(), OsStr::new(dst)];
            let run = change_mid_write(dir.path(), &args, || input.truncate(dir.path(), 4096));
            assert_input_changed(&what, run, input);
            assert_eq!(tree(dir.path()), before, "{what}");
            input.restore(dir.path());
        }
    }
}

/// A safetensors input (which has no checksums) rewritten in place during `convert`: its size stays,
/// its modification time does not, and the conversion fails naming it.
#[test]
fn a_safetensors_input_rewritten_in_place_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = Input::safetensors(dir.path());
    let before = tree(dir.path());
    for dst in outputs() {
        let what = format!("convert {} {dst}", input.arg);
        let args = ["convert".as_ref(), input.arg.as_ref(), OsStr::new(dst)];
        let run = change_mid_write(dir.path(), &args, || {
            // Past the clock tick file times are taken from, then a few bytes near the end.
            std::thread::sleep(Duration::from_millis(50));
            let file = File::options().write(true).open(dir.path().join(input.data)).unwrap();
            file.write_all_at(&[1, 2, 3, 4], input.len - 4).unwrap();
        });
        assert_eq!(run.0, Some(1), "{what}: {}", run.1);
        assert!(run.1.contains("big.safetensors") && run.1.contains("it was modified"), "{what}: {}", run.1);
        assert_eq!(tree(dir.path()), before, "{what}");
        input.restore(dir.path());
    }
}

/// A `torch.save` archive at `path` as torch 2.x writes it (`archive/data.pkl`, `archive/data/0`,
/// `archive/byteorder`, `archive/version`, members aligned to 64 bytes) holding `{"big": zeros}`, a
/// float32 tensor of `rows` x 1024: made here, so the test needs no Python.
#[cfg(feature = "torch")]
fn torch_archive_of_zeros(path: &Path, rows: u32) {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    let numel = rows * 1024;
    let mut pickle = b"\x80\x02}q\x00(X\x03\x00\x00\x00bigq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06J".to_vec();
    pickle.extend(numel.to_le_bytes());
    pickle.extend(b"tq\x07QK\x00J");
    pickle.extend(rows.to_le_bytes());
    pickle.extend(b"M\x00\x04\x86q\x08M\x00\x04K\x01\x86q\t\x89ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\ru.");
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).with_alignment(64);
    let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(&pickle).unwrap();
    zip.start_file("archive/byteorder", options).unwrap();
    zip.write_all(b"little").unwrap();
    zip.start_file("archive/data/0", options).unwrap();
    let block = vec![0u8; 4 << 20];
    for _ in 0..(u64::from(numel) * 4).div_ceil(block.len() as u64) {
        zip.write_all(&block).unwrap();
    }
    zip.start_file("archive/version", options).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
}

/// Converts `name` (in `dir`) to safetensors, truncating it once the output is being written: exit 1
/// naming it as changed, and nothing left but the inputs.
#[cfg(any(feature = "torch", feature = "keras"))]
fn assert_truncation_mid_convert_is_named(dir: &Path, name: &'static str) {
    let before = tree(dir);
    let args = ["convert".as_ref(), OsStr::new(name), "out.safetensors".as_ref()];
    let run = change_mid_write(dir, &args, || {
        File::options().write(true).open(dir.join(name)).unwrap().set_len(4096).unwrap();
    });
    let input = Input { arg: name, data: name, len: 0 };
    assert_input_changed(&format!("convert {name}"), run, &input);
    assert_eq!(tree(dir), before, "convert {name}");
}

/// A 256 MiB torch `.bin` archive truncated while `convert` reads it.
#[cfg(feature = "torch")]
#[test]
fn a_torch_input_truncated_mid_convert_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    torch_archive_of_zeros(&dir.path().join("pytorch_model.bin"), 1 << 16);
    assert_truncation_mid_convert_is_named(dir.path(), "pytorch_model.bin");
}

/// A 256 MiB `.keras` archive truncated while `convert` reads it.
#[cfg(feature = "keras")]
#[test]
fn a_keras_input_truncated_mid_convert_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    crate::keras::big_archive(&dir.path().join("big.keras"), 1 << 16);
    assert_truncation_mid_convert_is_named(dir.path(), "big.keras");
}
