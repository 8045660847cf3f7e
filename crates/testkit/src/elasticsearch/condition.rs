//! The Painless subset that ingest `if` conditions in the 1Password
//! integration's and Fleet's pipelines use: field access on `ctx` with `.`
//! and the null-safe `?.`, `==`/`!=` against `null`, strings and booleans,
//! `&&`, `||`, `!`, parentheses, list literals and `.contains(...)`.
//! Reading a field of a missing value with a plain `.` is a null pointer
//! exception, as in Painless. Anything else is an error saying the testkit
//! cannot evaluate it.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Dot,
    SafeDot,
    Eq,
    Ne,
    And,
    Or,
    Not,
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
}

fn tokens(source: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (token, width) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('?', Some('.')) => (Token::SafeDot, 2),
            ('.', _) => (Token::Dot, 1),
            ('=', Some('=')) => (Token::Eq, 2),
            ('!', Some('=')) => (Token::Ne, 2),
            ('&', Some('&')) => (Token::And, 2),
            ('|', Some('|')) => (Token::Or, 2),
            ('!', _) => (Token::Not, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            ('[', _) => (Token::OpenList, 1),
            (']', _) => (Token::CloseList, 1),
            (',', _) => (Token::Comma, 1),
            ('\'' | '"', _) => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&d| d == c)
                    .ok_or_else(|| format!("unterminated string in [{source}]"))?;
                out.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
                continue;
            }
            (c, _) if c.is_alphanumeric() || c == '_' || c == '@' => {
                let len = chars[i..]
                    .iter()
                    .take_while(|d| d.is_alphanumeric() || **d == '_' || **d == '@')
                    .count();
                out.push(Token::Ident(chars[i..i + len].iter().collect()));
                i += len;
                continue;
            }
            _ => return Err(format!("the testkit cannot evaluate [{source}] (at '{c}')")),
        };
        out.push(token);
        i += width;
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    doc: &'a Value,
    source: &'a str,
}

/// Evaluate `source` against `doc` (`ctx`).
pub(crate) fn eval(source: &str, doc: &Value) -> Result<bool, String> {
    let mut parser = Parser { tokens: tokens(source)?, at: 0, doc, source };
    let value = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(parser.unsupported());
    }
    value.as_bool().ok_or_else(|| format!("[{source}] is not a boolean"))
}

impl Parser<'_> {
    fn unsupported(&self) -> String {
        format!("the testkit cannot evaluate [{}] (token {})", self.source, self.at)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, token: &Token) -> bool {
        let found = self.peek() == Some(token);
        if found {
            self.at += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Value, String> {
        let mut left = self.and()?;
        while self.eat(&Token::Or) {
            // Painless short-circuits: the right side is not evaluated when the left is true.
            if truthy(&left) {
                self.skip(false);
                continue;
            }
            left = self.and()?;
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut left = self.unary()?;
        while self.eat(&Token::And) {
            if !truthy(&left) {
                self.skip(true);
                continue;
            }
            left = self.unary()?;
        }
        Ok(left)
    }

    /// Skip a right-hand side without evaluating it (short circuit): up to
    /// the next `||` (and `&&` when `stop_at_and`) at this depth.
    fn skip(&mut self, stop_at_and: bool) {
        let mut depth = 0usize;
        while let Some(token) = self.peek() {
            match token {
                Token::Open | Token::OpenList => depth += 1,
                Token::Close | Token::CloseList if depth == 0 => return,
                Token::Close | Token::CloseList => depth -= 1,
                Token::Or if depth == 0 => return,
                Token::And if depth == 0 && stop_at_and => return,
                _ => {}
            }
            self.at += 1;
        }
    }

    fn unary(&mut self) -> Result<Value, String> {
        if self.eat(&Token::Not) {
            let value = self.unary()?;
            return Ok(Value::Bool(!truthy(&value)));
        }
        let left = self.operand()?;
        if self.eat(&Token::Eq) {
            return Ok(Value::Bool(left == self.operand()?));
        }
        if self.eat(&Token::Ne) {
            return Ok(Value::Bool(left != self.operand()?));
        }
        Ok(left)
    }

    fn operand(&mut self) -> Result<Value, String> {
        let value = match self.tokens.get(self.at).cloned() {
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.or()?;
                if !self.eat(&Token::Close) {
                    return Err(self.unsupported());
                }
                inner
            }
            Some(Token::OpenList) => {
                self.at += 1;
                let mut items = Vec::new();
                while !self.eat(&Token::CloseList) {
                    items.push(self.operand()?);
                    if !self.eat(&Token::Comma) && self.peek() != Some(&Token::CloseList) {
                        return Err(self.unsupported());
                    }
                }
                Value::Array(items)
            }
            Some(Token::Str(text)) => {
                self.at += 1;
                Value::String(text)
            }
            Some(Token::Ident(word)) => {
                self.at += 1;
                match word.as_str() {
                    "null" => Value::Null,
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "ctx" => self.doc.clone(),
                    _ => return Err(self.unsupported()),
                }
            }
            _ => return Err(self.unsupported()),
        };
        self.access(value)
    }

    /// `.field`, `?.field` and `.contains(x)` after a value.
    fn access(&mut self, mut value: Value) -> Result<Value, String> {
        loop {
            let safe = match self.peek() {
                Some(Token::SafeDot) => true,
                Some(Token::Dot) => false,
                _ => return Ok(value),
            };
            self.at += 1;
            let Some(Token::Ident(name)) = self.tokens.get(self.at).cloned() else {
                return Err(self.unsupported());
            };
            self.at += 1;
            if name == "contains" && self.eat(&Token::Open) {
                let needle = self.or()?;
                if !self.eat(&Token::Close) {
                    return Err(self.unsupported());
                }
                value = match &value {
                    Value::Array(items) => Value::Bool(items.contains(&needle)),
                    Value::String(text) => {
                        Value::Bool(needle.as_str().is_some_and(|n| text.contains(n)))
                    }
                    Value::Null if safe => Value::Null,
                    _ => return Err(format!("null_pointer_exception in [{}]", self.source)),
                };
                continue;
            }
            value = match value {
                Value::Object(map) => map.get(&name).cloned().unwrap_or(Value::Null),
                Value::Null if safe => Value::Null,
                _ => {
                    return Err(format!(
                        "null_pointer_exception: cannot access [{name}] in [{}]",
                        self.source
                    ));
                }
            };
        }
    }
}

fn truthy(value: &Value) -> bool {
    value == &Value::Bool(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_conditions_of_the_upstream_pipelines_evaluate_as_painless_does() {
        let doc = json!({"event": {"action": "firewall_reported_success"}, "tags": ["forwarded"],
                         "onepassword": {"object_type": "user", "object_uuid": "U1"}});
        let cases = [
            ("ctx.event?.original == null", true),
            ("ctx?.onepassword?.timestamp == null", true),
            ("ctx.onepassword?.actor_details?.name != null", false),
            (
                r#"ctx.onepassword?.object_type == "user" && ctx?.onepassword?.object_uuid != null"#,
                true,
            ),
            ("['success', 'firewall_reported_success'].contains(ctx.event?.action)", true),
            ("!['success', 'firewall_reported_success'].contains(ctx.event?.action)", false),
            ("ctx?.tags == null || !(ctx.tags.contains('preserve_original_event'))", true),
        ];
        for (source, expected) in cases {
            assert_eq!(eval(source, &doc), Ok(expected), "{source}");
        }
        let kept = json!({"tags": ["preserve_original_event"]});
        assert_eq!(
            eval("ctx?.tags == null || !(ctx.tags.contains('preserve_original_event'))", &kept),
            Ok(false)
        );
        // The left side guards the right: no null pointer on a missing `tags`.
        assert_eq!(eval("ctx?.tags == null || !(ctx.tags.contains('x'))", &json!({})), Ok(true));
    }

    #[test]
    fn a_plain_dot_on_a_missing_value_is_a_null_pointer_and_unknown_syntax_an_error() {
        let error = eval("ctx.event.original == null", &json!({})).expect_err("npe");
        assert!(error.contains("null_pointer_exception"), "{error}");
        let error = eval("ctx.a.size() > 2", &json!({"a": []})).expect_err("not modelled");
        assert!(error.contains("the testkit cannot evaluate"), "{error}");
    }
}
