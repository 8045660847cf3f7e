//! Event API tokens: ES256 JWTs the simulator mints and verifies, with the
//! claims 1Password's own clients read (`aud`, `1password.com/fts`) and the
//! standard ones (`iss`, `sub`, `iat`, `exp`, `jti`).
//!
//! The JWT compact form is a few lines over `p256`'s ECDSA, which does the
//! cryptography; a general JWT crate would bring a second crypto backend.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The issuer 1Password's service-account tokens carry.
pub const ISSUER: &str = "com.1password.b5";

/// The claims of an Events API token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// The token's own uuid (introspection returns it).
    pub sub: String,
    /// `[events host]`: clients build the URL as `https://` + `aud[0]`.
    pub aud: Vec<String>,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds, when the admin chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Token id.
    pub jti: String,
    /// The account.
    #[serde(rename = "1password.com/auuid")]
    pub account_uuid: String,
    /// Granted features: `signinattempts`, `itemusages`, `auditevents`.
    #[serde(rename = "1password.com/fts")]
    pub features: Vec<String>,
}

/// Why a token was refused (the API answers 401 to all of them).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts with JSON inside.
    #[error("the token is malformed")]
    Malformed,
    /// Not ES256, or not signed by this simulator.
    #[error("the token signature is invalid")]
    BadSignature,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// Issued for another host.
    #[error("the token is for another audience")]
    WrongAudience,
}

/// The simulator's signing key, derived from its seed so tokens survive a restart.
#[derive(Clone, Debug)]
pub struct Keys {
    signing: SigningKey,
    verifying: VerifyingKey,
}

impl Keys {
    /// The key of a simulator seeded with `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut material = Sha256::digest(format!("sluice-sim-jwt-{seed}").as_bytes());
        loop {
            // A digest is a valid scalar with overwhelming probability; rehash if not.
            if let Ok(signing) = SigningKey::from_slice(&material) {
                let verifying = *signing.verifying_key();
                return Self { signing, verifying };
            }
            material = Sha256::digest(material);
        }
    }

    /// A signed token for `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","kid":"sluice-sim","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let input = format!("{header}.{payload}");
        let signature: Signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// Check the signature, `exp` at `now` (Unix seconds) and the audience.
    pub fn verify(&self, token: &str, audience: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed);
        let header: serde_json::Value =
            serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
        if header["alg"] != "ES256" {
            return Err(TokenError::BadSignature);
        }
        let signature =
            Signature::from_slice(&decode(signature)?).map_err(|_| TokenError::BadSignature)?;
        let input_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
        self.verifying
            .verify(&token.as_bytes()[..input_len], &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims =
            serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
        if claims.exp.is_some_and(|exp| exp <= now) {
            return Err(TokenError::Expired);
        }
        if claims.aud.first().map(String::as_str) != Some(audience) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: Option<i64>) -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "SUB".into(),
            aud: vec!["127.0.0.1:8080".into()],
            iat: 1_700_000_000,
            exp,
            jti: "JTI".into(),
            account_uuid: "ACCOUNT".into(),
            features: vec!["itemusages".into()],
        }
    }

    #[test]
    fn minted_tokens_verify_and_carry_their_claims() {
        let keys = Keys::from_seed(1);
        let token = keys.mint(&claims(None));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(keys.verify(&token, "127.0.0.1:8080", 1_800_000_000), Ok(claims(None)));
        assert_eq!(
            Keys::from_seed(1).verify(&token, "127.0.0.1:8080", 0),
            Ok(claims(None)),
            "same seed, same key"
        );
    }

    #[test]
    fn refuses_other_keys_tampering_expiry_audience_and_garbage() {
        let keys = Keys::from_seed(1);
        let token = keys.mint(&claims(Some(1_700_000_100)));
        assert_eq!(
            Keys::from_seed(2).verify(&token, "127.0.0.1:8080", 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(keys.verify(&token, "127.0.0.1:8080", 1_700_000_100), Err(TokenError::Expired));
        assert_eq!(keys.verify(&token, "events.1password.com", 0), Err(TokenError::WrongAudience));
        let mut forged = claims(None);
        forged.features = vec!["signinattempts".into(), "itemusages".into(), "auditevents".into()];
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(keys.verify(&tampered, "127.0.0.1:8080", 0), Err(TokenError::BadSignature));
        assert_eq!(keys.verify("not-a-jwt", "127.0.0.1:8080", 0), Err(TokenError::Malformed));
    }
}
