//! `tls.server_name` for the HTTP clients: the server's certificate is
//! checked as usual (the platform's roots plus `tls.ca_file`, its chain, its
//! dates) but against the configured name instead of the URL's host, as
//! `openssl s_client -verify_hostname` or Vector's `tls.server_name` do.
//! reqwest offers no such setting, so the client gets a rustls config of its
//! own whose verifier hands the configured name to the platform verifier.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::HttpError;

/// `name` as a server name, or why it is not one.
pub(super) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| format!("tls.server_name `{name}` is not a DNS name or an IP address"))
}

/// A verifier that checks every certificate against one name.
#[derive(Debug)]
struct Named {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for Named {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _url_host: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A rustls config that trusts the platform's roots and the PEM
/// certificates in `ca_pem`, and checks certificates against `name`; ALPN as
/// reqwest's own (h2, then HTTP/1.1).
pub(super) fn named_config(ca_pem: &[u8], name: &str) -> Result<rustls::ClientConfig, HttpError> {
    let build = |message: String| HttpError::Build(message);
    let name = server_name(name).map_err(build)?;
    let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| build(format!("tls.ca_file: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let platform =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| build(format!("cannot load the platform's certificates: {e}")))?;
    let verifier = Named { inner: Arc::new(platform), name };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| build(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
