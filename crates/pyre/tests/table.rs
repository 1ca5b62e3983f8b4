//! The differential table: every (pattern, name) row of tests/fixtures/pyre/table.json (made by Python
//! 3.11's `re` through tests/fixtures/gen_pyre.py) must come out the same here: the same span or no
//! match, or the same exception class and message.

use warmstart_pyre::{MatchError, Regex};

fn table() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pyre/table.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// What we answer for one row, in the table's terms.
fn ours(pattern: &str, name: &str) -> Result<(serde_json::Value, u64), MatchError> {
    let re = match Regex::new(pattern) {
        Ok(re) => re,
        Err(e) => return Ok((serde_json::json!({"error": e.python_class(), "message": e.to_string()}), 0)),
    };
    let (span, steps) = re.match_counted(name)?;
    Ok((serde_json::json!({ "span": span.map(|(a, b)| vec![a, b]) }), steps))
}

#[test]
fn every_row_agrees_with_python() {
    let table = table();
    let rows = table["rows"].as_array().unwrap();
    assert!(rows.len() >= 300, "only {} rows", rows.len());
    let mut failures = Vec::new();
    let (mut max_steps, mut slowest) = (0, String::new());
    for row in rows {
        let (pattern, name) = (row["pattern"].as_str().unwrap(), row["name"].as_str().unwrap());
        let mut want = row.clone();
        let want = want.as_object_mut().unwrap();
        want.remove("pattern");
        want.remove("name");
        let want = serde_json::Value::Object(want.clone());
        match ours(pattern, name) {
            Ok((got, steps)) => {
                if steps > max_steps {
                    (max_steps, slowest) = (steps, format!("{pattern:?} on {name:?}"));
                }
                if got != want {
                    failures.push(format!("{pattern:?} on {name:?}: python {want}, ours {got}"));
                }
            }
            Err(e) => failures.push(format!("{pattern:?} on {name:?}: python {want}, ours {e}")),
        }
    }
    println!("{} rows, {} agree; most steps: {max_steps} ({slowest})", rows.len(), rows.len() - failures.len());
    assert!(failures.is_empty(), "{} of {} rows differ:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn budget_exceeded_is_an_error_of_its_own() {
    let re = Regex::new(r"(a|a)*\1b|a").unwrap().with_budget(10_000);
    let err = re.match_span(&"a".repeat(40)).unwrap_err();
    assert!(matches!(err, MatchError::BudgetExceeded { .. }));
    assert!(err.to_string().contains("would likely not finish either"), "{err}");
}
