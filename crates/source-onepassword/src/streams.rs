//! The three Events API streams, and the dataset each one's events carry
//! through the topology (`1password.<stream>`, as Elastic's integration
//! names its data streams).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The 1Password Events API streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// `POST /api/v{1,2}/signinattempts`.
    SigninAttempts,
    /// `POST /api/v{1,2}/itemusages`.
    ItemUsages,
    /// `POST /api/v{1,2}/auditevents`.
    AuditEvents,
}

impl Stream {
    /// Every stream, in the order the API documents them.
    pub const ALL: [Stream; 3] = [Self::SigninAttempts, Self::ItemUsages, Self::AuditEvents];

    /// The snake_case name used in configs, metrics, checkpoints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SigninAttempts => "signin_attempts",
            Self::ItemUsages => "item_usages",
            Self::AuditEvents => "audit_events",
        }
    }

    /// The dataset its events carry: `1password.<stream>`.
    pub fn dataset(self) -> &'static str {
        match self {
            Self::SigninAttempts => "1password.signin_attempts",
            Self::ItemUsages => "1password.item_usages",
            Self::AuditEvents => "1password.audit_events",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|stream| stream.as_str() == s).ok_or_else(|| {
            format!("unknown stream `{s}`, expected signin_attempts, item_usages or audit_events")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_round_trip_their_names_and_name_their_dataset() {
        for stream in Stream::ALL {
            assert_eq!(stream.as_str().parse::<Stream>(), Ok(stream));
            assert_eq!(stream.dataset(), format!("1password.{stream}"));
        }
        assert!("signins".parse::<Stream>().is_err());
    }
}
