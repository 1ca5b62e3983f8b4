//! The casts and transposes against what numpy and ml_dtypes give (tests/fixtures/port/cast.json and
//! transpose.json, written by tests/fixtures/gen_port.py).

use std::path::Path;

use warmstart_core::test_support::{fixture, MemorySource};
use warmstart_core::{CheckpointSource, DType, TensorInfo};
use warmstart_rules::transpose::Transpose;
use warmstart_rules::{Rules, RulesSource};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn load(name: &str) -> serde_json::Value {
    let path = fixture("port", name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn casts_give_numpys_bits() {
    let cases = load("cast.json");
    let pairs = cases["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 100);
    let mut wrong = Vec::new();
    for p in pairs {
        let from: DType = p["from"].as_str().unwrap().parse().unwrap();
        let to: DType = p["to"].as_str().unwrap().parse().unwrap();
        let (input, expected) = (hex(p["input"].as_str().unwrap()), hex(p["expected"].as_str().unwrap()));
        let mut got = Vec::new();
        warmstart_rules::cast::convert(from, to, &input, &mut got);
        let (fs, ts) = (from.size().unwrap(), to.size().unwrap());
        assert_eq!(got.len(), expected.len(), "{from} -> {to}");
        for (i, (g, e)) in got.chunks(ts).zip(expected.chunks(ts)).enumerate() {
            if g != e {
                wrong.push(format!("{from}->{to} #{i} {:02x?}: got {g:02x?}, numpy {e:02x?}", &input[i * fs..][..fs]));
            }
        }
    }
    assert!(wrong.is_empty(), "{} elements differ:\n{}", wrong.len(), wrong[..wrong.len().min(40)].join("\n"));
}

#[test]
fn transposes_give_numpys_bytes_in_any_blocks() {
    let cases = load("transpose.json");
    for c in cases["cases"].as_array().unwrap() {
        let dtype: DType = c["dtype"].as_str().unwrap().parse().unwrap();
        let shape: Vec<u64> = c["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let perm: Vec<usize> = c["perm"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let (input, expected) = (hex(c["input"].as_str().unwrap()), hex(c["expected"].as_str().unwrap()));
        let what = format!("{dtype} {shape:?} by {perm:?}");
        // Whole, in one block.
        let t = Transpose { shape: shape.clone(), perm: perm.clone() };
        let out_rows = t.out_shape().first().copied().unwrap_or(1);
        let mut out = vec![0u8; expected.len()];
        t.scatter_block(dtype.size().unwrap(), &input, 0..shape.first().copied().unwrap_or(1), &mut out, 0..out_rows);
        assert_eq!(out, expected, "{what}, one block");
        // Through a rules source, row by row and in blocks of 3 rows.
        let inner = MemorySource::new().with_bytes(TensorInfo::new("t", dtype, shape.clone()), input.clone());
        let perm_text = format!("{perm:?}");
        let rules =
            Rules::from_toml(&format!("[[transpose]]\npattern = 't'\nperm = {perm_text}\n"), Path::new("r")).unwrap();
        let src = RulesSource::new(&inner, &rules, true).unwrap();
        assert_eq!(src.tensors()[0].shape, t.out_shape(), "{what}");
        for step in [1, 3] {
            let mut got = Vec::new();
            for a in (0..out_rows).step_by(step) {
                got.extend_from_slice(&src.read_rows("t", a..(a + step as u64).min(out_rows)).unwrap());
            }
            if out_rows == 0 {
                got = src.read("t").unwrap().into_owned();
            }
            assert_eq!(got, expected, "{what}, {step} rows at a time");
        }
    }
}

#[test]
fn a_cast_through_a_rules_source() {
    let cases = load("cast.json");
    let p = cases["pairs"].as_array().unwrap().iter().find(|p| p["from"] == "F32" && p["to"] == "BF16").unwrap();
    let input = hex(p["input"].as_str().unwrap());
    let n = input.len() as u64 / 4;
    let inner = MemorySource::new().with_bytes(TensorInfo::new("w", DType::F32, vec![n]), input);
    let rules = Rules::from_toml("[[cast]]\npattern = 'w'\nto = 'BF16'\n", Path::new("r")).unwrap();
    let src = RulesSource::new(&inner, &rules, true).unwrap();
    assert_eq!(src.read("w").unwrap().into_owned(), hex(p["expected"].as_str().unwrap()));
}
