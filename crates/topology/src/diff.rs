//! Field-by-field differences between two JSON documents, for `sluice test`
//! and conformance checks: every missing, extra or different field by path.

use serde_json::Value;

/// Every difference between `expected` and `actual`, as `path: problem` lines.
/// Arrays compare element by element; numbers compare by value and by kind
/// (an integer is not a float), as Elasticsearch mappings would.
pub fn json_diff(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", expected, actual, &mut out);
    out
}

fn walk(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let here = format!("{path}.{key}");
                match a.get(key) {
                    None => out.push(format!("{here}: missing (expected {value})")),
                    Some(actual) => walk(&here, value, actual, out),
                }
            }
            for (key, value) in a {
                if !e.contains_key(key) {
                    out.push(format!("{path}.{key}: extra ({value})"));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (index, (e, a)) in e.iter().zip(a).enumerate() {
                walk(&format!("{path}[{index}]"), e, a, out);
            }
        }
        (e, a) if e != a || e.is_f64() != a.is_f64() => {
            let path = if path.is_empty() { "." } else { path };
            out.push(format!("{path}: expected {e}, got {a}"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_missing_extra_and_different_fields() {
        let expected = json!({"a": 1, "b": {"c": [1, 2]}, "d": 1.5, "n": 29518});
        let actual = json!({"a": 1, "b": {"c": [1, 3]}, "e": true, "d": 1.5, "n": 29518.0});
        assert_eq!(
            json_diff(&expected, &actual),
            [".b.c[1]: expected 2, got 3", ".n: expected 29518, got 29518.0", ".e: extra (true)"]
        );
        assert_eq!(json_diff(&json!({"x": 1}), &json!({})), [".x: missing (expected 1)"]);
        assert!(json_diff(&expected, &expected).is_empty());
    }
}
