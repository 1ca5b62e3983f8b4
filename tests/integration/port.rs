//! Porting (issue 17): `convert --rules` and `run --rules` against what numpy made
//! (tests/fixtures/port/convert, from gen_port.py) and TF's warm-start fixtures, `--plan`, and rules
//! files and mappings refused with the line, key or tensors named, before anything is written.

use std::path::{Path, PathBuf};

use crate::util::{files_in, fixture, warmstart};

fn case() -> PathBuf {
    fixture("port", "convert")
}

/// Every tensor of the safetensors file `a` as (name, dtype, shape, bytes), sorted by name.
fn tensors(path: &Path) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, format!("{:?}", v.dtype()), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    all.sort();
    all
}

fn rules_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("rules.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn convert_with_rules_gives_numpys_tensors_in_every_output_format() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let (src, rules) = (case().join("source.safetensors"), case().join("rules.toml"));
    let run = warmstart(["convert".as_ref(), src.as_os_str(), out.as_os_str(), "--rules".as_ref(), rules.as_os_str()])
        .expect_code(0);
    assert!(run.stdout.contains("wrote 6 tensors"), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(tensors(&out), tensors(&case().join("expected.safetensors")));
    // Through a TF bundle: ported to TF, then converted back without rules.
    let prefix = tmp.path().join("tf/model.ckpt");
    warmstart(["convert".as_ref(), src.as_os_str(), prefix.as_os_str(), "--rules".as_ref(), rules.as_os_str()])
        .expect_code(0);
    let back = tmp.path().join("back.safetensors");
    warmstart(["convert".as_ref(), prefix.as_os_str(), back.as_os_str()]).expect_code(0);
    assert_eq!(tensors(&back), tensors(&case().join("expected.safetensors")));
}

#[test]
fn plan_lists_each_source_tensor_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, rules) = (case().join("source.safetensors"), case().join("rules.toml"));
    let run =
        warmstart(["convert".as_ref(), src.as_os_str(), "--rules".as_ref(), rules.as_os_str(), "--plan".as_ref()])
            .expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines.contains(&"enc/layer_0/kernel/adam_m F32[3, 5]: skipped by skip \"/adam_[mv]$\" (line 2)"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"enc/layer_12/kernel F32[5, 2] -> encoder.layers.12.weight F32[2, 5]; transposed [1, 0] by [[transpose]] \"^enc/.*/kernel$\" (line 17)"),
        "{lines:?}"
    );
    assert!(lines.contains(&"ids I32[4] -> ids F32[4]; cast I32 -> F32 by [[cast]] \"^ids$\" (line 29)"), "{lines:?}");
    assert_eq!(lines.last(), Some(&"9 tensors: 6 written, 3 skipped"));
    let out = tmp.path().join("o.safetensors");
    let json = warmstart([
        "convert".as_ref(),
        src.as_os_str(),
        out.as_os_str(),
        "--rules".as_ref(),
        rules.as_os_str(),
        "--plan".as_ref(),
        "--json".as_ref(),
    ])
    .expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let conv = plan["tensors"].as_array().unwrap().iter().find(|t| t["source"] == "conv/kernel").unwrap();
    assert_eq!(conv["name"], "conv.weight");
    assert_eq!(conv["to_shape"], serde_json::json!([6, 4, 2, 3]));
    assert_eq!(conv["transpose"]["perm"], serde_json::json!([3, 2, 0, 1]));
    assert_eq!(conv["cast"]["to"], "BF16");
    let step = plan["tensors"].as_array().unwrap().iter().find(|t| t["source"] == "global_step").unwrap();
    assert_eq!(step["skipped_by"]["pattern"], "^global_step$");
    assert!(files_in(tmp.path()).is_empty(), "--plan wrote {:?}", files_in(tmp.path()));
}

#[test]
fn malformed_rules_are_refused_before_anything_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-checkpoint");
    let out = tmp.path().join("o.safetensors");
    let cases = [
        ("[[rename]]\npattern = 'a'\nreplace = 'b'\nreplacement = 'c'\n", "line 4: unknown field `replacement`"),
        (
            "skip = ['ok']\n\n[[transpose]]\npattern = 'a('\nperm = [1, 0]\n",
            "line 4: [[transpose]] pattern: invalid regex",
        ),
        ("[[transpose]]\npattern = 'k'\nperm = [1, 1]\n", "line 3: [[transpose]] perm: [1, 1] is not a permutation"),
        ("[[cast]]\npattern = 'k'\nto = 'FP8'\n", "line 3: [[cast]] to: unknown dtype \"FP8\""),
    ];
    for (text, message) in cases {
        let rules = rules_file(tmp.path(), text);
        let run = warmstart([
            "convert".as_ref(),
            missing.as_os_str(),
            out.as_os_str(),
            "--rules".as_ref(),
            rules.as_os_str(),
        ])
        .expect_code(2);
        assert!(run.stderr.contains(message), "{text}: {}", run.stderr);
        assert!(!run.stderr.contains("no-such-checkpoint"), "the checkpoint was opened: {}", run.stderr);
        assert_eq!(files_in(tmp.path()), ["rules.toml"]);
    }
}

#[test]
fn mappings_that_cannot_be_written_name_the_tensors_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = case().join("source.safetensors");
    let out = tmp.path().join("o.safetensors");
    let cases = [
        ("[[rename]]\npattern = '/adam_[mv]$'\nreplace = ''\n", "tensors \"enc/layer_0/kernel\" and \"enc/layer_0/kernel/adam_m\" are both mapped to \"enc/layer_0/kernel\""),
        ("[[transpose]]\npattern = '^conv/'\nperm = [1, 0]\n", "tensor \"conv/kernel\" has rank 4, but [[transpose]] \"^conv/\" (line 2) has perm [1, 0]"),
        ("[[cast]]\npattern = '^ids$'\nto = 'BF16'\n", "tensor \"ids\": [[cast]] \"^ids$\" (line 2) casts I32 to BF16, which can change values"),
        ("[[cast]]\npattern = '^emb$'\nto = 'I8'\nlossy = true\n", "tensor \"emb\": [[cast]] \"^emb$\" (line 2) cannot cast F32 to I8"),
    ];
    for (text, message) in cases {
        let rules = rules_file(tmp.path(), text);
        let run =
            warmstart(["convert".as_ref(), src.as_os_str(), out.as_os_str(), "--rules".as_ref(), rules.as_os_str()])
                .expect_code(1);
        assert!(run.stderr.contains(message), "{text}: {}", run.stderr);
        assert_eq!(files_in(tmp.path()), ["rules.toml"]);
    }
}

#[test]
fn a_rule_matching_nothing_warns_or_with_strict_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let src = case().join("source.safetensors");
    let out = tmp.path().join("o.safetensors");
    let rules = rules_file(tmp.path(), "skip = ['^global_step$', 'no_such_tensor']\n");
    let args = ["convert".as_ref(), src.as_os_str(), out.as_os_str(), "--rules".as_ref(), rules.as_os_str()];
    let run = warmstart(args.iter().chain([&"--strict".as_ref()])).expect_code(1);
    assert!(run.stderr.contains("skip \"no_such_tensor\" (line 1) matched no tensor"), "{}", run.stderr);
    assert_eq!(files_in(tmp.path()), ["rules.toml"]);
    let run = warmstart(args).expect_code(0);
    assert!(run.stderr.contains("warning: skip \"no_such_tensor\" (line 1) matched no tensor"), "{}", run.stderr);
    assert_eq!(tensors(&out).len(), 8);
}

#[test]
fn run_with_rules_ports_tfs_warm_started_output() {
    let case = fixture("warmstart", "accept_baseline");
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_file(
        tmp.path(),
        "[[rename]]\npattern = '^w$'\nreplace = 'model.w'\n[[transpose]]\npattern = '^w$'\nperm = [1, 0]\n",
    );
    let out = tmp.path().join("out/o.safetensors");
    let config = case.join("config.toml");
    let run = warmstart([
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--rules".as_ref(),
        rules.as_os_str(),
    ])
    .expect_code(0);
    assert!(run.stdout.contains("wrote 1 tensors"), "{}", run.stdout);
    let json = warmstart([
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        tmp.path().join("json/o.safetensors").as_os_str(),
        "--rules".as_ref(),
        rules.as_os_str(),
        "--json".as_ref(),
    ])
    .expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["rules"]["tensors"][0]["name"], "model.w", "{json}");
    assert_eq!(json["report"]["tensors_written"], 1, "{json}");
    let expected = tensors(&case.join("expected.safetensors"));
    let (_, dtype, shape, bytes) = &expected[0];
    // TF's [5, 1] values transposed to [1, 5] keep their bytes.
    assert_eq!(tensors(&out), [("model.w".to_string(), dtype.clone(), vec![shape[1], shape[0]], bytes.clone())]);
    assert_eq!(files_in(&tmp.path().join("out")), ["o.safetensors"], "the staging folder is gone");
    // A mapping refused after the warm-start leaves nothing.
    let bad = rules_file(tmp.path(), "[[transpose]]\npattern = '^w$'\nperm = [0]\n");
    let out = tmp.path().join("out2/o.safetensors");
    let run = warmstart([
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--rules".as_ref(),
        bad.as_os_str(),
    ])
    .expect_code(1);
    assert!(run.stderr.contains("tensor \"w\" has rank 2"), "{}", run.stderr);
    assert!(!tmp.path().join("out2").exists(), "{:?}", files_in(tmp.path()));
}

/// A JSON number, or "inf"/"nan", as the float it names.
fn float(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::String(s) if s == "inf" => Some(f64::INFINITY),
        serde_json::Value::String(s) if s == "nan" => Some(f64::NAN),
        v => v.as_f64(),
    }
}

#[test]
fn diff_agrees_with_numpys_isclose_at_each_tolerance() {
    let case = fixture("port", "diff");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
    let (a, b) = (case.join("a.safetensors"), case.join("b.safetensors"));
    for setting in expected["settings"].as_array().unwrap() {
        let (rtol, atol) =
            (setting["rtol"].as_f64().unwrap().to_string(), setting["atol"].as_f64().unwrap().to_string());
        let args = ["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--rtol", &rtol, "--atol", &atol, "--json"];
        let run = warmstart(args).expect_code(if setting["equal"].as_bool().unwrap() { 0 } else { 1 });
        let got: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(got["only_in_a"], expected["only_in_a"]);
        assert_eq!(got["only_in_b"], expected["only_in_b"]);
        assert_eq!(got["tensors"].as_array().unwrap().len(), 10);
        for t in got["tensors"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            let dtype_changed = expected["dtype_changed"].as_array().unwrap().iter().any(|n| n == name);
            assert_eq!(t["dtype_a"] != t["dtype_b"], dtype_changed, "{name}");
            let Some(want) = setting["tensors"].get(name) else {
                assert!(t["values"].is_null() && t["shape_a"] != t["shape_b"], "{name}: {t}");
                continue;
            };
            let v = &t["values"];
            let what = format!("{name} at rtol {rtol}, atol {atol}");
            assert_eq!(v["elements"], want["elements"], "{what}");
            assert_eq!(v["differing"], want["differing"], "{what}");
            assert_eq!(v["first_differing"], want["first_differing"], "{what}");
            for key in ["max_abs", "max_rel"] {
                let (g, w) = (float(&v[key]).unwrap(), float(&want[key]).unwrap());
                assert!(g == w || (g - w).abs() <= 1e-12 * w.abs(), "{what}: {key} {g} against numpy's {w}");
            }
            assert_eq!(t["equal"], want["differing"] == 0 && !dtype_changed, "{what}");
        }
    }
    // The text report, and trouble (a missing checkpoint) exits 2.
    let run = warmstart(["diff".as_ref(), a.as_os_str(), b.as_os_str()]).expect_code(1);
    assert!(
        run.stdout.contains("only in A: only_a\n") && run.stdout.contains("shape: shape [2, 3] -> [3, 2]\n"),
        "{}",
        run.stdout
    );
    warmstart(["diff".as_ref(), a.as_os_str(), a.as_os_str()]).expect_code(0);
    let run = warmstart(["diff".as_ref(), a.as_os_str(), case.join("missing").as_os_str()]).expect_code(2);
    assert!(run.stderr.contains("missing"), "{}", run.stderr);
}

#[test]
fn diff_with_rules_checks_a_port_against_its_reference() {
    let case = case();
    let (src, rules, want) =
        (case.join("source.safetensors"), case.join("rules.toml"), case.join("expected.safetensors"));
    let args = ["diff".as_ref(), src.as_os_str(), want.as_os_str(), "--rules".as_ref(), rules.as_os_str()];
    let run = warmstart(args).expect_code(0);
    assert!(run.stdout.starts_with("equal (rtol 0, atol 0): 6 tensors in both"), "{}", run.stdout);
    // Without the rules, nothing matches up.
    let run = warmstart(["diff".as_ref(), src.as_os_str(), want.as_os_str()]).expect_code(1);
    assert!(run.stdout.contains("only in A: enc/layer_0/kernel\n"), "{}", run.stdout);
    // Rules that cannot be used are trouble: exit 2.
    let tmp = tempfile::tempdir().unwrap();
    let bad = rules_file(tmp.path(), "[[cast]]\npattern = '^ids$'\nto = 'BF16'\n");
    let run = warmstart(["diff".as_ref(), src.as_os_str(), want.as_os_str(), "--rules".as_ref(), bad.as_os_str()])
        .expect_code(2);
    assert!(run.stderr.contains("add `lossy = true`"), "{}", run.stderr);
    let bad = rules_file(tmp.path(), "[[cast]]\npatern = 'x'\n");
    let run = warmstart(["diff".as_ref(), src.as_os_str(), want.as_os_str(), "--rules".as_ref(), bad.as_os_str()])
        .expect_code(2);
    assert!(run.stderr.contains("line 2: unknown field `patern`"), "{}", run.stderr);
}

#[test]
fn inspect_stats_agrees_with_numpy() {
    let case = fixture("port", "stats");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
    let src = case.join("source.safetensors");
    let run = warmstart(["inspect".as_ref(), src.as_os_str(), "--stats".as_ref(), "--json".as_ref()]).expect_code(0);
    let got: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let tensors = got["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), expected.as_object().unwrap().len());
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let (s, want) = (&t["stats"], &expected[name]);
        if want.is_null() {
            assert!(s.is_null(), "{name}: {s}");
            continue;
        }
        for key in ["elements", "nan", "inf", "zeros"] {
            assert_eq!(s[key], want[key], "{name}: {key}");
        }
        for key in ["min", "max", "mean", "std"] {
            match (s[key].as_f64(), want[key].as_f64()) {
                (Some(g), Some(w)) => {
                    assert!((g - w).abs() <= 1e-12 * w.abs().max(1e-300), "{name}: {key} {g} against numpy's {w}")
                }
                (g, w) => assert_eq!(g, w, "{name}: {key}"),
            }
        }
    }
    let run =
        warmstart(["inspect".as_ref(), src.as_os_str(), "--stats".as_ref(), "specials".as_ref(), "ints".as_ref()])
            .expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[1].starts_with("specials  F32[40]") && lines[1].ends_with("2    2      4"), "{}", run.stdout);
    let run = warmstart(["inspect".as_ref(), src.as_os_str(), "--stats".as_ref(), "nope".as_ref()]).expect_code(1);
    assert!(run.stderr.contains("\"nope\" not found"), "{}", run.stderr);
}

/// The repository's `examples/port/<name>`.
fn preset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/port").join(name)
}

/// `examples/port/<kind>-tf-to-hf.toml` on port/<kind>/tf gives transformers' own conversion of it:
/// every tensor of HF's state dict but the tied ones HF fills itself, and nothing else; HF's
/// `from_pretrained` loaded that output (`gen_port.py verify`). Returns the `--plan` text.
fn check_hf_preset(kind: &str) -> String {
    let case = fixture("port", kind);
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model.safetensors");
    let (src, rules) = (case.join("tf/model.ckpt"), preset(&format!("{kind}-tf-to-hf.toml")));
    let args = ["convert".as_ref(), src.as_os_str(), out.as_os_str(), "--rules".as_ref(), rules.as_os_str()];
    let run = warmstart(args.iter().chain([&"--strict".as_ref()])).expect_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let ours = tensors(&out);
    let theirs = tensors(&case.join("expected.safetensors"));
    assert_eq!(theirs.len() as u64, expected["tensors"].as_u64().unwrap());
    let names: Vec<&str> = ours.iter().map(|t| t.0.as_str()).collect();
    for tied in expected["tied"].as_array().unwrap() {
        assert!(!names.contains(&tied.as_str().unwrap()), "{tied} is HF's to fill");
    }
    assert_eq!(ours, theirs);
    let loaded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.join("from_pretrained.json")).unwrap()).unwrap();
    let empty = serde_json::json!([]);
    for key in ["unexpected_keys", "mismatched_keys", "error_msgs", "differ_from_expected"] {
        assert_eq!(loaded[key], empty, "{kind}: {key}");
    }
    for missing in loaded["missing_keys"].as_array().unwrap() {
        assert!(expected["tied"].as_array().unwrap().contains(missing), "{missing} missing in HF's load");
    }
    warmstart(args.iter().chain([&"--plan".as_ref()])).expect_code(0).stdout
}

#[test]
fn the_bert_preset_gives_transformers_own_conversion() {
    let plan = check_hf_preset("bert");
    // The optimizer's slots and the step are skipped.
    assert!(plan.ends_with("139 tensors: 46 written, 93 skipped\n"), "{plan}");
    assert!(plan.contains("global_step I64[]: skipped by skip"), "{plan}");
    assert!(
        plan.contains("-> bert.encoder.layer.1.attention.self.query.weight F32[8, 8]; transposed [1, 0]"),
        "{plan}"
    );
    let loaded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("port", "bert").join("from_pretrained.json")).unwrap()).unwrap();
    assert_eq!(loaded["decoder_tied_to_word_embeddings"], true);
}

#[test]
fn the_electra_preset_gives_transformers_own_conversion() {
    let plan = check_hf_preset("electra");
    assert!(plan.contains("generator/encoder/layer_0/output/dense/kernel F32[8, 4]: skipped by skip"), "{plan}");
    assert!(plan.contains("discriminator_predictions/dense_1/kernel F32[8, 1] -> discriminator_predictions.dense_prediction.weight F32[1, 8]"), "{plan}");
}

#[test]
fn tf2_checkpoints_under_their_variables_names() {
    let case = fixture("tf", "tf2_keras");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
    // TF's own object graph: variable name -> checkpoint key.
    let graph = expected["object_graph"].as_object().unwrap();
    let name_of = |key: &str| {
        graph.iter().find(|(_, k)| *k == key).map_or_else(
            || key.strip_suffix("/.ATTRIBUTES/VARIABLE_VALUE").unwrap_or(key).to_string(),
            |(name, _)| name.clone(),
        )
    };
    let src = case.join(expected["checkpoint"].as_str().unwrap());
    let run = warmstart(["inspect".as_ref(), src.as_os_str(), "--names".as_ref(), "both".as_ref(), "--json".as_ref()])
        .expect_code(0);
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let listed = listed["tensors"].as_array().unwrap();
    assert_eq!(listed.len(), expected["tensors"].as_object().unwrap().len());
    for t in listed {
        assert_eq!(t["name"].as_str().unwrap(), name_of(t["key"].as_str().unwrap()), "{t}");
    }
    assert!(listed.iter().any(|t| t["name"] == "sequential/hidden/kernel"));
    // Written under those names, with TF's bytes (its sha256 per key); the default stays TF's keys.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("named.safetensors");
    let run =
        warmstart(["convert".as_ref(), src.as_os_str(), out.as_os_str(), "--names".as_ref(), "variables".as_ref()])
            .expect_code(0);
    assert!(run.stdout.contains("wrote 15 tensors"), "{}", run.stdout);
    let written = tensors(&out);
    for (key, t) in expected["tensors"].as_object().unwrap().iter().filter(|(_, t)| t["dtype"] != "STRING") {
        let name = name_of(key);
        let (_, _, _, bytes) = written.iter().find(|w| w.0 == name).unwrap_or_else(|| panic!("{name} not written"));
        assert_eq!(crate::util::sha256_hex(bytes), t["sha256"].as_str().unwrap(), "{name}");
    }
    let run = warmstart(["inspect".as_ref(), src.as_os_str(), "--json".as_ref()]).expect_code(0);
    assert!(run.stdout.contains("optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"), "{}", run.stdout);
}
