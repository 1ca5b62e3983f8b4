use super::*;

fn ctx() -> Ctx<'static> {
    Ctx { path: Path::new("x.npy"), member: "x" }
}

/// A version 1.0 `.npy` prefix around `dict` (as numpy lays it out, without the alignment).
fn npy(dict: &str) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn parsed(dict: &str) -> Result<Header, NumpyError> {
    parse(&npy(dict), ctx())
}

#[test]
fn parses_what_numpy_writes() {
    let h = parsed("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }          \n").unwrap();
    assert_eq!((h.dtype, h.big_endian, h.fortran_order, h.shape.clone()), (DType::F32, false, false, vec![3, 4]));
    assert_eq!(h.data_offset, 10 + 70);
    let h = parsed("{'descr': '>i2', 'fortran_order': True, 'shape': (5,), }\n").unwrap();
    assert_eq!((h.dtype, h.big_endian, h.fortran_order, h.shape), (DType::I16, true, true, vec![5]));
    let h = parsed("{'descr': '|b1', 'fortran_order': False, 'shape': (), }").unwrap();
    assert_eq!((h.dtype, h.shape), (DType::Bool, vec![]));
    // Another order, double quotes, no trailing comma: what other writers make.
    let h = parsed(r#"{"shape": (2, 0, 1), "descr": "<u8", "fortran_order": False}"#).unwrap();
    assert_eq!((h.dtype, h.shape), (DType::U64, vec![2, 0, 1]));
    // '>' on a one-byte type changes nothing.
    assert!(!parsed("{'descr': '>u1', 'fortran_order': False, 'shape': (1,)}").unwrap().big_endian);
}

#[test]
fn bad_headers_are_refused_with_where_and_what() {
    let cases = [
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", "a one-tuple's ','"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (03,), }", "a non-negative integer"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "a non-negative integer"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551616,), }", "a dimension below 2^64"),
        ("{'descr': '<f4', 'fortran_order': 0, 'shape': (), }", "True or False"),
        ("{'descr': '<f4', 'shape': (), }", "the keys 'descr', 'fortran_order' and 'shape'"),
        ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (), }", "each key once"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}",
            "the key 'descr', 'fortran_order' or 'shape'",
        ),
        ("{'descr': 'f4', 'fortran_order': False, 'shape': (), }", "a byte order '<' or '>' ('|' for one-byte types)"),
        ("{'descr': '|f4', 'fortran_order': False, 'shape': (), }", "a byte order '<' or '>' ('|' for one-byte types)"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (), } x", "the end of the header after '}'"),
        ("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (), }", "printable ASCII without escapes"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (), ", "a quoted string"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': () ", "',' or '}'"),
        ("__import__('os')", "'{'"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,2,3", "',' or ')'"),
    ];
    for (dict, want) in cases {
        match parsed(dict) {
            Err(NumpyError::BadHeader { expected, .. }) => assert_eq!(expected, want, "{dict}"),
            other => panic!("{dict}: {other:?}"),
        }
    }
    let err = parsed("{'descr': '<f4', 'fortran_order': Fals").unwrap_err().to_string();
    assert_eq!(err, "x.npy: \"x\": bad .npy header at byte 34: expected True or False");
}

#[test]
fn dtypes_are_refused_by_kind() {
    let cases = [
        ("'|O'", "an object dtype (reading it would run pickle)"),
        ("'<c8'", "a complex dtype"),
        ("'<c16'", "a complex dtype"),
        ("'<f16'", "an extended-precision float dtype"),
        ("'<U3'", "a string dtype"),
        ("'|S3'", "a string dtype"),
        ("'|V2'", "a void (raw bytes) dtype"),
        ("'<M8[D]'", "a date or time dtype"),
        ("[('x', '<f4'), ('y', '<i4')]", "a structured dtype"),
        ("'<q'", "not a dtype numpy writes"),
    ];
    for (descr, want) in cases {
        let dict = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (2,), }}");
        match parsed(&dict) {
            Err(NumpyError::UnsupportedDtype { kind, .. }) => assert_eq!(kind, want, "{descr}"),
            other => panic!("{descr}: {other:?}"),
        }
    }
}

#[test]
fn the_prefix_is_checked() {
    let err = |bytes: &[u8]| prefix_len(bytes, ctx()).unwrap_err();
    assert!(matches!(err(b"PK\x03\x04"), NumpyError::BadMagic { .. }));
    assert!(matches!(err(b"\x93NUM"), NumpyError::HeaderTruncated { need: 10, have: 4, .. }));
    assert!(matches!(err(b"\x93NUMPY\x04\x00\x00\x00"), NumpyError::UnsupportedVersion { major: 4, minor: 0, .. }));
    assert!(matches!(err(b"\x93NUMPY\x02\x00\x10\x00"), NumpyError::HeaderTruncated { need: 12, have: 10, .. }));
    let too_long = err(b"\x93NUMPY\x02\x00\xff\xff\xff\xff");
    assert!(matches!(too_long, NumpyError::HeaderTooLarge { len: 0xffff_ffff, max: 10_000, .. }), "{too_long:?}");
    // A header longer than the bytes there are.
    let short = parse(b"\x93NUMPY\x01\x00\x40\x00{}", ctx()).unwrap_err();
    assert!(matches!(short, NumpyError::HeaderTruncated { need: 74, have: 12, .. }), "{short:?}");
    assert_eq!(prefix_len(b"\x93NUMPY\x03\x00\x34\x00\x00\x00", ctx()).unwrap(), 12 + 0x34);
}

#[test]
fn descr_names_the_types_numpy_has() {
    assert_eq!(descr(DType::F32), Some("<f4"));
    assert_eq!(descr(DType::Bool), Some("|b1"));
    assert_eq!(descr(DType::BF16), None);
    assert_eq!(descr(DType::C64), None);
    assert_eq!(descr(DType::String), None);
}
