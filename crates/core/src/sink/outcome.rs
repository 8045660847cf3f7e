//! What a destination answered, classified once for every sink: per item and
//! per request. The driver acts on these classes, never on status codes.

use std::fmt;

/// Why an item or a request did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The status the destination gave (HTTP status, or a protocol's own code).
    pub status: Option<u16>,
    /// A short machine word: Elasticsearch's `error.type`, `transport`, ...
    pub kind: String,
    /// The destination's explanation, shortened; never holds credentials.
    pub reason: String,
}

impl Failure {
    /// A failure with a status.
    pub fn new(status: u16, kind: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { status: Some(status), kind: kind.into(), reason: reason.into() }
    }

    /// A failure without a status (a timeout, a reset connection).
    pub fn without_status(kind: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { status: None, kind: kind.into(), reason: reason.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.status {
            write!(f, "{status} ")?;
        }
        // Both come from the destination: never raw into a log line.
        f.write_str(&crate::error::printable(&self.kind))?;
        if !self.reason.is_empty() {
            write!(f, ": {}", crate::error::printable(&self.reason))?;
        }
        Ok(())
    }
}

/// Why an event cannot be encoded for its destination: the event's own
/// fault, so it goes to the dead letter (`error.type: encode_failed`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// It cannot be written as JSON.
    #[error("the event cannot be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// It is not what the destination takes.
    #[error("{0}")]
    Invalid(String),
}

/// The answer for one item of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored durably.
    Delivered,
    /// Already stored (a replay after a crash or a retry): counts as delivered.
    Duplicate,
    /// Not stored, for a reason that passes (overload, a server error, an
    /// answer sluice does not understand): sent again with backoff.
    Retry(Failure),
    /// Not stored because of credentials, privileges, a missing or blocked
    /// index or another setting: `/health` says so at once, the item is
    /// sent again every `refused_retry_secs`, and its source waits.
    Refused(Failure),
    /// Not stored because of the document itself (a mapping conflict, a
    /// value of the wrong type): it goes to the dead letter.
    Rejected(Failure),
}

/// A request that got no per-item answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Transient (timeout, reset, 429, 5xx, a malformed or short answer,
    /// an unknown status): sent again with backoff.
    Retry(Failure),
    /// Credentials, privileges or a setting (401, 403, 404): `/health`, then
    /// sent again every `refused_retry_secs`.
    Refused(Failure),
    /// The request is too large (413): split in halves; a single item that
    /// is still too large is rejected.
    TooLarge(Failure),
    /// The request is invalid as a whole (400), which one bad document can
    /// cause: split in halves until the bad document is alone, then rejected.
    Invalid(Failure),
}

impl RequestError {
    /// The class an HTTP status has at every HTTP destination: 401 and 403
    /// refused (credentials, privileges), 413 too large, anything else
    /// (408, 429, 5xx, an unfollowed redirect, an unknown status) retried.
    /// A sink decides first what its destination means by a 400 or a 404.
    pub fn from_http_status(status: u16, failure: Failure) -> Self {
        match status {
            401 | 403 => Self::Refused(failure),
            413 => Self::TooLarge(failure),
            _ => Self::Retry(failure),
        }
    }

    /// The failure it carries.
    pub fn failure(&self) -> &Failure {
        match self {
            Self::Retry(f) | Self::Refused(f) | Self::TooLarge(f) | Self::Invalid(f) => f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_status_kind_and_reason() {
        let failure = Failure::new(
            403,
            "security_exception",
            "action [indices:data/write/bulk[s]] is unauthorized",
        );
        assert_eq!(
            failure.to_string(),
            "403 security_exception: action [indices:data/write/bulk[s]] is unauthorized"
        );
        assert_eq!(Failure::without_status("transport", "").to_string(), "transport");
    }

    #[test]
    fn http_statuses_have_the_classes_every_http_destination_shares() {
        let class =
            |status| match RequestError::from_http_status(status, Failure::without_status("x", ""))
            {
                RequestError::Refused(_) => "refused",
                RequestError::TooLarge(_) => "too large",
                RequestError::Retry(_) => "retry",
                RequestError::Invalid(_) => "invalid",
            };
        let classes: Vec<_> = [401, 403, 413, 408, 429, 500, 503, 302, 599].map(class).into();
        assert_eq!(
            classes,
            [
                "refused",
                "refused",
                "too large",
                "retry",
                "retry",
                "retry",
                "retry",
                "retry",
                "retry"
            ]
        );
    }
}
