//! The start-up check: is the token accepted, and are indexer
//! acknowledgements on for it.

use sluice_core::sink::RequestError;

use super::HecClient;
use crate::classify;

impl HecClient {
    /// Preflight: an empty POST answers code 5 ("No data") once the token is
    /// accepted; an `/ack` query tells whether acks are on (`on`, `off`,
    /// `unknown`).
    pub(crate) async fn check(&self) -> Result<&'static str, CheckError> {
        let channel = &self.channels[0];
        let (status, answer, _) = self
            .post(&self.event_url, channel, Vec::new(), None)
            .await
            .map_err(CheckError::from)?;
        match (status, answer.code) {
            (400, Some(5)) => {}
            (401 | 403, _) | (400, Some(1..=4 | 16)) => {
                return Err(CheckError::Token(
                    classify::failed(status, &answer, 1)
                        .err()
                        .map(|e| e.failure().to_string())
                        .unwrap_or_default(),
                ));
            }
            (status, code) => {
                return Err(CheckError::Unreachable(format!(
                    "it answered {status} ({}) to a token check; is `endpoint` the HEC port (8088)?",
                    classify::kind_of(code)
                )));
            }
        }
        // Asked three times: behind a load balancer one node may have useACK
        // off; acks are off only when every answer says so.
        let mut answers = Vec::new();
        for _ in 0..3 {
            let body = br#"{"acks":[]}"#.to_vec();
            let (status, answer, _) =
                self.post(&self.ack_url, channel, body, None).await.map_err(CheckError::from)?;
            answers.push((status, answer.code));
        }
        Ok(if answers.iter().any(|(status, _)| *status == 200) {
            "on"
        } else if answers.iter().all(|a| *a == (400, Some(14))) {
            "off"
        } else {
            "unknown"
        })
    }
}

/// Why the start-up token check failed.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// Splunk refused the token (the text of its answer).
    Token(String),
    /// This side refused Splunk's TLS certificate.
    Certificate(String),
    /// No usable answer (another port, a network fault).
    Unreachable(String),
}

impl From<RequestError> for CheckError {
    fn from(err: RequestError) -> Self {
        let failure = err.failure();
        if failure.kind == "tls_certificate" {
            Self::Certificate(failure.to_string())
        } else {
            Self::Unreachable(failure.to_string())
        }
    }
}
