//! Errors on one line, for logs and `/health`.

use std::borrow::Cow;

/// `text` with control characters escaped (`\n`, `\u{1b}`): text a
/// destination or an API wrote (an error reason) cannot forge a log line or
/// drive the terminal that shows the log.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An error and its causes on one line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::printable;

    /// Review L3 (reliability 2026-12): a reason with a newline, a fake log
    /// line and an ANSI escape forged a line in the text log.
    #[test]
    fn control_characters_are_escaped() {
        let forged = "bad\n2026-12-03T10:00:00Z  INFO sluice: all fine\u{1b}[2J";
        let shown = printable(forged);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(shown, "bad\\n2026-12-03T10:00:00Z  INFO sluice: all fine\\u{1b}[2J");
        assert!(matches!(printable("plain text"), std::borrow::Cow::Borrowed(_)));
    }
}
