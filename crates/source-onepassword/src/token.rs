//! The Events API token: where it comes from, and what it says about
//! itself. Like 1Password's own clients, sluice decodes the JWT without
//! verifying it (only the API can) to learn its audience, features and expiry.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sluice_core::Secret;

use crate::Error;

/// What the token says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// `aud[0]`: the events host.
    pub audience: String,
    /// `1password.com/fts`.
    pub features: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires_at: Option<i64>,
    /// `1password.com/auuid`: the account the token belongs to, when it says.
    pub account: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    aud: Audience,
    #[serde(rename = "1password.com/fts", default)]
    features: Vec<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(rename = "1password.com/auuid", default)]
    account: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Decode the token's claims without verifying its signature. The errors
/// never contain the token.
pub fn decode(token: &Secret) -> Result<TokenClaims, Error> {
    let parts: Vec<&str> = token.expose().split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return Err(Error::Token("the token is not a JWT (three dot-separated parts)".into()));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| Error::Token("the token's payload is not base64url".into()))?;
    let raw: RawClaims = serde_json::from_slice(&bytes).map_err(|_| {
        Error::Token("the token's payload is not the claims of an Events API token".into())
    })?;
    let audience = match raw.aud {
        Audience::One(aud) => aud,
        Audience::Many(auds) => auds.into_iter().next().unwrap_or_default(),
    };
    if audience.is_empty() {
        return Err(Error::Token("the token has no audience".into()));
    }
    if audience == "com.1password.streamingservice" {
        return Err(Error::Token(
            "the token uses a deprecated audience; issue a new Events Reporting token".into(),
        ));
    }
    Ok(TokenClaims { audience, features: raw.features, expires_at: raw.exp, account: raw.account })
}

/// Hosts the source sends tokens to without `allow_custom_url`.
pub const ALLOWED_HOSTS: [&str; 4] = [
    "events.1password.com",
    "events.1password.ca",
    "events.1password.eu",
    "events.ent.1password.com",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> Secret {
        Secret::new(format!("eyJhbGciOiJFUzI1NiJ9.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(claims)))
    }

    #[test]
    fn reads_audience_features_and_expiry() {
        let token = jwt(
            r#"{"aud":["events.1password.eu"],"1password.com/fts":["itemusages"],"exp":1800000000}"#,
        );
        let claims = decode(&token).expect("valid");
        assert_eq!(claims.audience, "events.1password.eu");
        assert_eq!(claims.features, ["itemusages"]);
        assert_eq!(claims.expires_at, Some(1_800_000_000));
        let single = decode(&jwt(r#"{"aud":"events.1password.com"}"#)).expect("string audience");
        assert_eq!(single.audience, "events.1password.com");
    }

    #[test]
    fn errors_describe_the_problem_without_the_token() {
        let secret_part = "very-secret-token-material";
        for (token, message) in [
            (Secret::new(secret_part), "not a JWT"),
            (Secret::new(format!("a.{secret_part}!.c")), "not base64url"),
            (jwt(r#"{"aud":"com.1password.streamingservice"}"#), "deprecated audience"),
            (jwt(r#"{"sub":"x"}"#), "not the claims"),
        ] {
            let error = decode(&token).expect_err("invalid").to_string();
            assert!(error.contains(message), "{error}");
            assert!(!error.contains(secret_part), "{error}");
        }
    }
}
