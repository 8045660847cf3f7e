//! Environment variables in config values: `${VAR}`, `${VAR:-default}` and
//! `$$` for a literal `$`.
//!
//! Unlike Vector's textual pass over the whole file, substitution happens
//! after parsing and only inside scalar values, so a variable can never add
//! YAML structure, and VRL programs (which use `$` in regex replacements) are
//! never touched: the caller skips them.

use serde_yaml_ng::Value;

/// Substitute variables in `text`, looking names up with `lookup`.
pub fn interpolate(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| {
                format!("unterminated `${{` in `{text}`; write `$$` for a literal `$`")
            })?;
            out.push_str(&expand(&body[..end], lookup)?);
            rest = &body[end + 1..];
        } else {
            // A lone `$` (e.g. in a password) stays as it is.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(expr: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match expr.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (expr, None),
    };
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("`${{{expr}}}` is not a valid variable reference"));
    }
    match (lookup(name), default) {
        (Some(value), _) if value.contains(['\n', '\r']) => {
            Err(format!("environment variable {name} contains a line break, which is not allowed"))
        }
        (Some(value), _) if !value.is_empty() => Ok(value),
        (_, Some(default)) => Ok(default.to_owned()),
        (Some(_), None) => Err(format!(
            "environment variable {name} is set but empty (give it a value, or write ${{{name}:-default}} to give a default)"
        )),
        (None, None) => Err(format!(
            "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
        )),
    }
}

/// Substitute inside one scalar. A value that was nothing but one reference
/// (`port: ${PORT}`) is read again as a YAML scalar, as if it had been
/// written in the file, so numbers and booleans keep their type.
pub fn interpolate_value(
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    retype: bool,
) -> Result<(), String> {
    let Value::String(text) = value else { return Ok(()) };
    if !text.contains('$') {
        return Ok(());
    }
    let replaced = interpolate(text, lookup)?;
    let whole = text.starts_with("${") && text.ends_with('}') && text.matches('$').count() == 1;
    // Only what reads the same either way: `0x1F`, `+123` or `1e3` stay
    // text, and a secret (`retype` false) is never re-read at all.
    *value = match (whole && retype && plain_scalar(&replaced))
        .then(|| serde_yaml_ng::from_str::<Value>(&replaced))
    {
        Some(Ok(typed @ (Value::Number(_) | Value::Bool(_)))) => typed,
        _ => Value::String(replaced),
    };
    Ok(())
}

/// `true`, `false`, or a plain decimal number (`-12`, `0.5`).
fn plain_scalar(text: &str) -> bool {
    if text == "true" || text == "false" {
        return true;
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && all_digits(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("abc".into()),
            "PORT" => Some("9200".into()),
            "HEX" => Some("0x1F".into()),
            "PLUS" => Some("+123".into()),
            "EXP" => Some("1e3".into()),
            "HALF" => Some("0.5".into()),
            "YES" => Some("true".into()),
            "EMPTY" => Some(String::new()),
            "MULTI" => Some("a\nb".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_variables_defaults_and_escapes() {
        assert_eq!(interpolate("Bearer ${TOKEN}", &env).as_deref(), Ok("Bearer abc"));
        assert_eq!(interpolate("${UNSET:-fallback}", &env).as_deref(), Ok("fallback"));
        assert_eq!(interpolate("${EMPTY:-fallback}", &env).as_deref(), Ok("fallback"));
        assert_eq!(interpolate("${TOKEN:-fallback}", &env).as_deref(), Ok("abc"));
        assert_eq!(
            interpolate("cost: $$5 and $${TOKEN}", &env).as_deref(),
            Ok("cost: $5 and ${TOKEN}")
        );
        assert_eq!(interpolate("pa$word", &env).as_deref(), Ok("pa$word"));
    }

    #[test]
    fn an_empty_variable_is_called_empty_not_unset() {
        let empty = interpolate("${EMPTY}", &env).expect_err("empty");
        assert!(empty.starts_with("environment variable EMPTY is set but empty"), "{empty}");
    }

    #[test]
    fn refuses_unset_malformed_and_multiline_values() {
        let unset = interpolate("${NOPE}", &env).expect_err("unset");
        assert_eq!(
            unset,
            "environment variable NOPE is not set (write ${NOPE:-default} to give a default)"
        );
        assert!(interpolate("${TOKEN", &env).expect_err("open").contains("unterminated"));
        assert!(interpolate("${1X}", &env).expect_err("bad name").contains("not a valid"));
        assert!(interpolate("${MULTI}", &env).expect_err("newline").contains("line break"));
    }

    #[test]
    fn a_whole_reference_keeps_its_scalar_type() {
        let mut port = Value::String("${PORT}".into());
        interpolate_value(&mut port, &env, true).expect("set");
        assert_eq!(port, Value::Number(9200.into()));
        let mut url = Value::String("http://es:${PORT}".into());
        interpolate_value(&mut url, &env, true).expect("set");
        assert_eq!(url, Value::String("http://es:9200".into()));
        let mut structure = Value::String("${UNSET:-[a, b]}".into());
        interpolate_value(&mut structure, &env, true).expect("default");
        assert_eq!(structure, Value::String("[a, b]".into()), "a variable never adds structure");
        let typed = |name: &str, retype: bool| {
            let mut value = Value::String(format!("${{{name}}}"));
            interpolate_value(&mut value, &env, retype).expect("set");
            value
        };
        // Only what reads the same either way is re-typed.
        for (name, text) in [("HEX", "0x1F"), ("PLUS", "+123"), ("EXP", "1e3")] {
            assert_eq!(typed(name, true), Value::String(text.into()), "{name}");
        }
        assert_eq!(typed("HALF", true), serde_yaml_ng::from_str::<Value>("0.5").expect("yaml"));
        assert_eq!(typed("YES", true), Value::Bool(true));
        // A secret never: a numeric password stays the text it was.
        assert_eq!(typed("PORT", false), Value::String("9200".into()));
    }
}
