//! pubhook's `json.dumps` against Python's own output, case by case (fixtures written by
//! `fixtures/generate_pyjson.py` with python3 and checked in).

use pubhook_core::pyjson::to_python_json;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    input: String,
    expected: String,
}

#[test]
fn python_json_dumps_fixtures_match_byte_for_byte() {
    let cases: Vec<Case> =
        serde_json::from_str(include_str!("fixtures/pyjson_cases.json")).expect("fixture file");
    assert!(cases.len() > 10);
    for case in cases {
        let value: serde_json::Value = serde_json::from_str(&case.input).expect(&case.name);
        assert_eq!(to_python_json(&value), case.expected, "{}", case.name);
    }
}
