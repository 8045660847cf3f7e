//! The Users API, read-only: an OAuth token by client credentials (HTTP
//! Basic, refreshed a minute before its 900 s end and once on a 401), the
//! list of users page by page, and the token's revocation at shutdown.
//!
//! There is deliberately no call to the suspend or reactivate actions: a
//! SIEM collector must never change who can sign in (see the test at the end).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use serde::Deserialize;
use sluice_core::Secret;
use sluice_core::http::{describe, excerpt, read_body, sensitive_header};
use tokio::time::Instant;

use crate::config::Settings;
use crate::inventory::User;

/// The largest answer read (a page of 1,000 users is about 250 KiB).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// A token is renewed this long before it ends.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// The lifetime when the token answer does not say (1Password: 900 s).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(900);
/// The longest `Retry-After` honoured.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// What a request to the Users API can end in. No variant holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The token endpoint refuses the client ID and secret.
    #[error(
        "the token endpoint refuses the client credentials (HTTP {status}: {message}); check client_id and client_secret, or issue a new secret in 1Password (Integrations > OAuth application)"
    )]
    CredentialsRefused {
        /// HTTP status.
        status: u16,
        /// The answer's reason.
        message: String,
    },
    /// The client secret file cannot be read.
    #[error("{0}")]
    Secret(String),
    /// A fresh access token was refused too (401).
    #[error("the Users API refuses a fresh access token (HTTP 401: {0})")]
    Unauthorized(String),
    /// The application may not list the account's users (403).
    #[error(
        "the Users API forbids listing the users of this account (HTTP 403: {0}); grant the OAuth application the \"list users\" permission"
    )]
    Forbidden(String),
    /// The account is unknown (404).
    #[error("the Users API does not know this account (HTTP 404: {0}); check account_id")]
    NotFound(String),
    /// The request was refused as invalid (400).
    #[error("the Users API refuses the request (HTTP 400: {0})")]
    BadRequest(String),
    /// 429.
    #[error("rate limited (HTTP 429)")]
    RateLimited {
        /// `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },
    /// 5xx or another unexpected status.
    #[error("HTTP {0}: {1}")]
    Status(u16, String),
    /// Timeout, refused or reset connection, broken body.
    #[error("request failed: {0}")]
    Transport(String),
    /// A 200 whose body is not what the API documents.
    #[error("the answer is not {0}")]
    Malformed(String),
}

impl UsersError {
    /// The `status` label of the requests metric.
    pub fn status_label(&self) -> String {
        match self {
            Self::CredentialsRefused { status, .. } => status.to_string(),
            Self::Unauthorized(_) => "401".into(),
            Self::Forbidden(_) => "403".into(),
            Self::NotFound(_) => "404".into(),
            Self::BadRequest(_) => "400".into(),
            Self::RateLimited { .. } => "429".into(),
            Self::Status(code, _) => code.to_string(),
            Self::Transport(_) | Self::Secret(_) => "error".into(),
            Self::Malformed(_) => "200".into(),
        }
    }
}

/// One page of `ListUsers`.
#[derive(Debug, Deserialize)]
pub struct UsersPage {
    /// The users.
    #[serde(default)]
    pub results: Vec<User>,
    /// The next page's token; absent or empty on the last page.
    #[serde(default, alias = "nextPageToken")]
    pub next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

/// The access token and when to renew it.
struct Token {
    secret: Secret,
    renew_at: Instant,
}

/// A Users API client for one account.
pub struct UsersClient {
    http: reqwest::Client,
    settings: std::sync::Arc<Settings>,
    token: Option<Token>,
}

impl std::fmt::Debug for UsersClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsersClient").field("base", &self.settings.base.as_str()).finish()
    }
}

impl UsersClient {
    /// A client with no token yet.
    pub fn new(http: reqwest::Client, settings: std::sync::Arc<Settings>) -> Self {
        Self { http, settings, token: None }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base.as_str().trim_end_matches('/'))
    }

    /// `GET {prefix}/accounts/{account}/users`: one page. A 401 renews the
    /// token once.
    pub async fn list_page(&mut self, page_token: Option<&str>) -> Result<UsersPage, UsersError> {
        let mut renewed = false;
        loop {
            let token = self.access_token().await?;
            let mut url = self.url(&format!(
                "{}/accounts/{}/users?max_page_size={}",
                self.settings.path_prefix, self.settings.account_id, self.settings.max_page_size
            ));
            if let Some(page_token) = page_token {
                url.push_str("&page_token=");
                url.push_str(&form_encode(page_token));
            }
            let sent = self
                .http
                .get(url)
                .header(AUTHORIZATION, sensitive_header(&format!("Bearer {}", token.expose())))
                .send()
                .await;
            let (status, headers, body) = answer(sent).await?;
            match status {
                200 => {
                    return serde_json::from_slice(&body)
                        .map_err(|e| UsersError::Malformed(format!("a page of users: {e}")));
                }
                401 if !renewed => {
                    renewed = true;
                    self.token = None;
                }
                _ => return Err(classify(status, &headers, &body)),
            }
        }
    }

    /// A token valid for at least a minute more.
    async fn access_token(&mut self) -> Result<Secret, UsersError> {
        if let Some(token) = &self.token
            && Instant::now() < token.renew_at
        {
            return Ok(token.secret.clone());
        }
        let secret =
            self.settings.client_secret.load().map_err(|e| UsersError::Secret(e.to_string()))?;
        let sent = self
            .http
            .post(self.url(&self.settings.token_path))
            .basic_auth(&self.settings.client_id, Some(secret.expose()))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=openid")
            .send()
            .await;
        let (status, headers, body) = answer(sent).await?;
        match status {
            200 => {}
            400 | 401 | 403 => {
                return Err(UsersError::CredentialsRefused { status, message: reason(&body) });
            }
            _ => return Err(classify(status, &headers, &body)),
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| UsersError::Malformed(format!("a token answer: {e}")))?;
        let lifetime = answer.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let token = Secret::new(answer.access_token);
        self.token = Some(Token {
            secret: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE),
        });
        Ok(token)
    }

    /// Check the credentials now (the preflight): a token, then the first page.
    pub async fn check(&mut self) -> Result<usize, UsersError> {
        self.list_page(None).await.map(|page| page.results.len())
    }

    /// `POST` the revoke endpoint with the token held, if any (at shutdown).
    pub async fn revoke(&mut self) -> Result<(), UsersError> {
        let (Some(token), Some(path)) = (self.token.take(), self.settings.revoke_path.clone())
        else {
            return Ok(());
        };
        let secret =
            self.settings.client_secret.load().map_err(|e| UsersError::Secret(e.to_string()))?;
        let sent = self
            .http
            .post(self.url(&path))
            .basic_auth(&self.settings.client_id, Some(secret.expose()))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("token={}", form_encode(token.secret.expose())))
            .send()
            .await;
        match answer(sent).await? {
            (200, _, _) => Ok(()),
            (status, headers, body) => Err(classify(status, &headers, &body)),
        }
    }
}

/// The status, headers and body of a sent request.
async fn answer(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<(u16, HeaderMap, bytes::Bytes), UsersError> {
    let response = sent.map_err(|e| UsersError::Transport(describe(&e)))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = read_body(response, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| UsersError::Transport(e.to_string()))?;
    Ok((status, headers, body))
}

/// A refusal or failure, by status.
fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> UsersError {
    let message = reason(body);
    match status {
        400 => UsersError::BadRequest(message),
        401 => UsersError::Unauthorized(message),
        403 => UsersError::Forbidden(message),
        404 => UsersError::NotFound(message),
        429 => UsersError::RateLimited { retry_after: retry_after(headers) },
        _ => UsersError::Status(status, message),
    }
}

/// The `message` of a `google.rpc.Status` body, else an excerpt.
fn reason(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Status {
        message: String,
    }
    match serde_json::from_slice::<Status>(body) {
        Ok(status) if !status.message.is_empty() => status.message,
        _ if body.is_empty() => "no body".into(),
        _ => excerpt(body),
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs = headers.get("retry-after")?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(secs).min(MAX_WAIT))
}

/// `application/x-www-form-urlencoded` of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies_give_their_reason() {
        assert_eq!(
            reason(br#"{"code":7,"message":"no_owner_remain","details":[]}"#),
            "no_owner_remain"
        );
        assert_eq!(reason(b""), "no body");
        assert_eq!(reason(b"<html>oops</html>"), excerpt(b"<html>oops</html>"));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().expect("header"));
        assert!(matches!(
            classify(429, &headers, b""),
            UsersError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(7)
        ));
        assert!(matches!(classify(503, &HeaderMap::new(), b"busy"), UsersError::Status(503, _)));
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(form_encode("a+b/c=d e"), "a%2Bb%2Fc%3Dd+e");
    }

    /// Read-only by construction: the crate's code names neither write
    /// action, and its only POSTs go to the token and revoke endpoints.
    #[test]
    fn no_write_action_is_in_the_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut posts = 0;
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for action in [":suspend", ":reactivate", ".put(", ".patch(", ".delete("] {
                assert!(!code.contains(action), "{} holds {action}", path.display());
            }
            posts += code.matches(".post(").count();
        }
        assert_eq!(posts, 2, "only the token and the revoke requests are POSTs");
    }
}
