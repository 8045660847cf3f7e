//! VRL conditions for `sluice test`: a program that must return `true` and
//! whose `assert!`/`assert_eq!` failures are reported with their message.

use std::sync::Arc;

use vrl::compiler::runtime::{Runtime, Terminate};
use vrl::compiler::{CompileConfig, Program, TargetValue, TimeZone, TypeState};
use vrl::diagnostic::Formatter;
use vrl::value::{Secrets, Value};

use crate::config::functions;
use crate::geoip::GeoIpDatabases;

/// A compiled condition.
pub struct Condition {
    program: Program,
    /// The program's text, to turn vrl's byte spans into line:column.
    source: String,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Condition")
    }
}

impl Condition {
    /// Compile `source`; the error is vrl's rendered diagnostic.
    pub fn compile(source: &str) -> Result<Self, String> {
        crate::nesting::check(source).map_err(|(line, column, what)| {
            format!("the condition nests too deeply at {line}:{column}: {what}")
        })?;
        let functions = functions(Arc::new(GeoIpDatabases::default()));
        vrl::compiler::compile_with_state(
            source,
            &functions,
            &TypeState::default(),
            CompileConfig::default(),
        )
        .map(|compiled| Self { program: compiled.program, source: source.to_owned() })
        .map_err(|diagnostics| Formatter::new(source, diagnostics).to_string())
    }

    /// Check `value` (with `metadata`); why it does not hold, if it does not.
    pub fn check(&self, value: &Value, metadata: Value) -> Result<(), String> {
        let mut target =
            TargetValue { value: value.clone(), metadata, secrets: Secrets::default() };
        match Runtime::default().resolve(&mut target, &self.program, &TimeZone::default()) {
            Ok(Value::Boolean(true)) => Ok(()),
            Ok(Value::Boolean(false)) => Err("the condition is false".into()),
            Ok(other) => Err(format!("the condition returned {other}, not a boolean")),
            Err(Terminate::Abort(error) | Terminate::Error(error)) => {
                Err(line_columns(&error.to_string(), &self.source))
            }
            Err(Terminate::Interrupted) => Err("the condition was interrupted".into()),
        }
    }
}

/// vrl writes where a runtime error happened as a byte span, ` at (54:87)`;
/// people read ` at line 2, column 1` (of the condition's program).
fn line_columns(message: &str, source: &str) -> String {
    let Some(start) = message.find(" at (") else { return message.to_owned() };
    let rest = &message[start + 5..];
    let Some(end) = rest.find(')') else { return message.to_owned() };
    let Some(offset) = rest[..end].split(':').next().and_then(|o| o.parse::<usize>().ok()) else {
        return message.to_owned();
    };
    let Some(before) = source.get(..offset) else { return message.to_owned() };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{} at line {line}, column {column}{}", &message[..start], &rest[end + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_assertion_messages_and_false_results() {
        let value =
            Value::from(serde_json::from_str::<serde_json::Value>(r#"{"a": 1}"#).expect("json"));
        let meta = Value::Object(Default::default());
        Condition::compile("assert_eq!(.a, 1)\ntrue")
            .expect("compiles")
            .check(&value, meta.clone())
            .expect("holds");
        let failed = Condition::compile("assert_eq!(.a, 2)")
            .expect("compiles")
            .check(&value, meta.clone())
            .expect_err("fails");
        assert!(failed.contains("assertion failed: 1 == 2"), "{failed}");
        let second_line = Condition::compile("assert_eq!(.a, 1)\n  assert_eq!(.a, 2)")
            .expect("compiles")
            .check(&value, meta.clone())
            .expect_err("fails");
        assert_eq!(
            second_line,
            r#"function call error for "assert_eq" at line 2, column 3: assertion failed: 1 == 2"#
        );
        let false_ = Condition::compile(".a == 3")
            .expect("compiles")
            .check(&value, meta)
            .expect_err("false");
        assert_eq!(false_, "the condition is false");
        assert!(Condition::compile(".a ==").is_err());
    }
}
