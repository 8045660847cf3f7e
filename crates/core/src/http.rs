//! HTTP plumbing shared by the 1Password source and every HTTP sink, behind
//! core's `http` feature (only crates that speak HTTP pull in reqwest): one
//! client builder (timeouts, proxy, TLS `ca_file`, `verify`, `server_name`
//! and `verify_hostname`, no redirects),
//! the sensitive `Authorization` header, bodies read with a size cap, and
//! error descriptions that carry neither credentials nor URLs.

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::secret::Secret;

mod tls;

/// `tls` settings of an HTTP client.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA certificates (PEM) to trust, e.g. Elasticsearch's `http_ca.crt`
    /// or a TLS-inspecting proxy's.
    pub ca_file: Option<PathBuf>,
    /// Verify the server's certificate (default true). `false` is for tests
    /// only: anyone on the path can then read the credentials.
    /// `verify_certificate` (Vector's name) is accepted for it.
    #[serde(default = "yes", alias = "verify_certificate")]
    pub verify: bool,
    /// The name the server's certificate must carry in its subjectAltName,
    /// when it is not the URL's host (an address, a load balancer's name).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Check that the certificate names the server (default true). `false`
    /// still checks its chain against `ca_file`, but not its name: for a
    /// certificate that names no host, such as Splunk's default
    /// `SplunkServerDefaultCert` (a subject CN and no subjectAltName).
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { ca_file: None, verify: true, server_name: None, verify_hostname: true }
    }
}

impl TlsConfig {
    /// The settings as a component uses them: an empty `ca_file` or
    /// `server_name` (an unset `${VAR:-}`) is none, `ca_file` is resolved
    /// against the config's folder `dir`, and contradictions are errors at
    /// their `tls.*` keys (pure: no file is read).
    pub fn resolve(
        mut self,
        dir: &std::path::Path,
    ) -> Result<Self, Vec<crate::config::FieldError>> {
        self.ca_file = self.ca_file.filter(|f| !f.as_os_str().is_empty()).map(|f| dir.join(f));
        self.server_name = self.server_name.filter(|name| !name.is_empty());
        let errors = self.validate();
        if errors.is_empty() { Ok(self) } else { Err(errors) }
    }

    fn validate(&self) -> Vec<crate::config::FieldError> {
        use crate::config::FieldError;
        let mut errors = Vec::new();
        if let Some(name) = &self.server_name {
            if let Err(err) = tls::server_name(name) {
                errors.push(FieldError::new("tls.server_name", err));
            }
            if !self.verify_hostname {
                errors.push(FieldError::new("tls.server_name", "tls.server_name names the host to check, and tls.verify_hostname: false checks none; keep one"));
            }
        }
        if !self.verify_hostname && self.ca_file.is_none() {
            errors.push(FieldError::new("tls.verify_hostname", "tls.verify_hostname: false needs tls.ca_file, the CA the certificate must chain to (without it, any public certificate would do)"));
        }
        errors
    }
}

/// Why a client cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The CA file cannot be read or parsed.
    #[error("tls.ca_file {}: {message}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The proxy URL is unusable.
    #[error("proxy is not usable: {0}")]
    Proxy(String),
    /// reqwest refused the settings.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// What a client needs.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TLS settings.
    pub tls: TlsConfig,
    /// A proxy URL (may hold credentials, hence a secret).
    pub proxy: Option<Secret>,
}

/// A client with sluice's defaults: the given timeout (connecting at most
/// 10 s), `sluice/<version>` as user agent, redirects never followed (a
/// redirected POST would turn into a GET, and a redirected page into an
/// answer from elsewhere), and the TLS and proxy settings.
pub fn build_client(settings: &ClientSettings) -> Result<reqwest::Client, HttpError> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(!settings.tls.verify);
    if let Some(proxy) = &settings.proxy {
        let proxy =
            reqwest::Proxy::all(proxy.expose()).map_err(|e| HttpError::Proxy(describe(&e)))?;
        builder = builder.proxy(proxy);
    }
    let tls_settings = &settings.tls;
    let ca = match &tls_settings.ca_file {
        Some(path) => ca_certificates(path)?,
        None => Vec::new(),
    };
    if !tls_settings.verify {
        // Nothing is checked; the warning says so.
    } else if let Some(name) = &tls_settings.server_name {
        let pem = match &tls_settings.ca_file {
            Some(path) => std::fs::read(path).map_err(|e| HttpError::CaFile {
                path: path.clone(),
                message: format!("cannot read it: {e}"),
            })?,
            None => Vec::new(),
        };
        builder = builder.tls_backend_preconfigured(tls::named_config(&pem, name)?);
    } else if !tls_settings.verify_hostname {
        builder = builder.tls_certs_only(ca).tls_danger_accept_invalid_hostnames(true);
    } else {
        builder = builder.tls_certs_merge(ca);
    }
    builder.build().map_err(|e| HttpError::Build(describe(&e)))
}

/// The certificates of a `tls.ca_file` (a bundle of one or more; a file
/// with none is an error, not a client that trusts nothing more).
fn ca_certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, HttpError> {
    let ca_error = |message: String| HttpError::CaFile { path: path.to_owned(), message };
    let pem = std::fs::read(path).map_err(|e| ca_error(format!("cannot read it: {e}")))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ca_error(format!("not a PEM certificate: {}", describe(&e))))?;
    if certificates.is_empty() {
        return Err(ca_error("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

/// The offline check of `tls.ca_file` (`sluice validate`): an error at that
/// key when it cannot be read or holds no PEM certificate.
pub fn check_ca_file(tls: &TlsConfig) -> Option<crate::config::FieldError> {
    let path = tls.ca_file.as_ref()?;
    ca_certificates(path)
        .err()
        .map(|err| crate::config::FieldError::new("tls.ca_file", err.to_string()))
}

/// Warn loudly about `tls.verify: false` (at validate and at start).
pub fn warn_if_unverified(component: &str, tls: &TlsConfig) {
    if !tls.verify {
        tracing::warn!(
            component,
            "tls.verify is false: the server's certificate is not checked, so anyone on the network path can read the credentials; use tls.ca_file instead"
        );
    }
}

/// An `Authorization` value that the HTTP stack never prints.
pub fn sensitive_header(value: &str) -> HeaderValue {
    let mut header = HeaderValue::from_str(value)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid-credential-characters"));
    header.set_sensitive(true);
    header
}

/// A request error on one line, with its causes, without the URL (which may
/// carry a query or userinfo).
pub fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_body() || err.is_decode() {
        "the answer broke off"
    } else if err.is_redirect() {
        "redirected"
    } else {
        "failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether `err` is this side refusing the server's TLS certificate (not
/// trusted, another name, expired). That is a setting to fix, not a
/// transient fault: sinks wait for the operator on it and say so on
/// `/health` at once (review L6, reliability 2026-12).
pub fn certificate_refused(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.to_string().contains("invalid peer certificate") {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the cap.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The transfer failed.
    #[error("{0}")]
    Transport(String),
}

/// Read a response body, at most `cap` bytes.
pub async fn read_body(mut response: reqwest::Response, cap: usize) -> Result<Bytes, BodyError> {
    if response.content_length().is_some_and(|len| len > cap as u64) {
        return Err(BodyError::TooLarge(cap));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| BodyError::Transport(describe(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Request body compression, as every HTTP sink offers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip (default): about a tenth of the bytes for JSON events.
    #[default]
    Gzip,
    /// Uncompressed.
    None,
}

impl Compression {
    /// The body made of `parts`, compressed, and its `Content-Encoding`.
    pub fn body<'a>(
        self,
        parts: impl Iterator<Item = &'a [u8]>,
        size_hint: usize,
    ) -> std::io::Result<(Vec<u8>, Option<&'static str>)> {
        use std::io::Write;
        match self {
            Self::Gzip => {
                let mut gzip = flate2::write::GzEncoder::new(
                    Vec::with_capacity(size_hint / 4),
                    flate2::Compression::fast(),
                );
                for part in parts {
                    gzip.write_all(part)?;
                }
                Ok((gzip.finish()?, Some("gzip")))
            }
            Self::None => {
                let mut body = Vec::with_capacity(size_hint);
                parts.for_each(|part| body.extend_from_slice(part));
                Ok((body, None))
            }
        }
    }
}

/// A request body made of `parts` themselves, one frame each, with its exact
/// length: an uncompressed bulk request holds no second copy of its
/// items, which matters when many requests are in flight to a slow cluster.
pub fn parts_body(parts: Vec<Bytes>) -> reqwest::Body {
    let remaining = parts.iter().map(|part| part.len() as u64).sum();
    reqwest::Body::wrap(Parts { parts: parts.into(), remaining })
}

/// The size of the frames [`parts_body`] joins small parts into.
const FRAME_BYTES: usize = 64 * 1024;

struct Parts {
    parts: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl http_body::Body for Parts {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        // Small parts are joined into frames of about 64 KiB as they are
        // sent: few writes, and never more than one frame copied at a time.
        let Some(first) = self.parts.pop_front() else { return std::task::Poll::Ready(None) };
        let frame = if first.len() >= FRAME_BYTES {
            first
        } else {
            let mut frame = BytesMut::with_capacity(FRAME_BYTES + first.len());
            frame.extend_from_slice(&first);
            while frame.len() < FRAME_BYTES
                && let Some(next) = self.parts.pop_front()
            {
                frame.extend_from_slice(&next);
            }
            frame.freeze()
        };
        self.remaining -= frame.len() as u64;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// A short, printable excerpt of a body for an error message.
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    fn tls(yaml: &str) -> Result<TlsConfig, Vec<crate::config::FieldError>> {
        serde_yaml_ng::from_str::<TlsConfig>(yaml)
            .expect("tls")
            .resolve(std::path::Path::new("/etc/sluice"))
    }

    #[test]
    fn tls_settings_resolve_and_refuse_their_contradictions() {
        let ok =
            tls("{ca_file: ca.pem, verify_certificate: false, server_name: ''}").expect("valid");
        assert_eq!(ok.ca_file.as_deref(), Some(std::path::Path::new("/etc/sluice/ca.pem")));
        assert!(!ok.verify, "verify_certificate is verify");
        assert_eq!(ok.server_name, None, "an empty server_name is none");
        assert!(tls("{ca_file: '', server_name: hec.internal}").expect("valid").ca_file.is_none());
        let fields = |yaml| -> Vec<_> {
            tls(yaml).expect_err("invalid").into_iter().map(|e| (e.field, e.message)).collect()
        };
        let no_ca = fields("{verify_hostname: false}");
        assert_eq!(no_ca[0].0, Some("tls.verify_hostname"));
        assert!(no_ca[0].1.contains("needs tls.ca_file"), "{no_ca:?}");
        let both = fields("{ca_file: ca.pem, verify_hostname: false, server_name: a.b}");
        assert_eq!(both[0].0, Some("tls.server_name"));
        let bad = fields("{server_name: 'not a name'}");
        assert!(bad[0].1.contains("not a DNS name or an IP address"), "{bad:?}");
    }

    #[test]
    fn a_parts_body_sends_every_byte_in_order_with_its_exact_length() {
        let parts: Vec<Bytes> = [10, 70_000, 5, 5, 3]
            .iter()
            .enumerate()
            .map(|(n, len)| Bytes::from(vec![b'a' + n as u8; *len]))
            .collect();
        let expected: Vec<u8> = parts.iter().flat_map(|p| p.to_vec()).collect();
        let remaining = expected.len() as u64;
        let mut body = Parts { parts: parts.into(), remaining };
        assert_eq!(body.size_hint().exact(), Some(remaining));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let (mut sent, mut frames) = (Vec::new(), Vec::new());
        while let std::task::Poll::Ready(Some(frame)) =
            std::pin::Pin::new(&mut body).poll_frame(&mut context)
        {
            let data = frame.expect("infallible").into_data().expect("a data frame");
            frames.push(data.len());
            sent.extend_from_slice(&data);
            assert_eq!(body.size_hint().exact(), Some(remaining - sent.len() as u64));
        }
        assert_eq!(sent, expected);
        assert_eq!(frames, [70_010, 13], "small parts joined, a large one not split");
        assert!(body.is_end_stream());
    }
}
