//! TLS on both ends of the hop: the sink's `tls` (a CA to trust, a client
//! certificate for mutual TLS) and the source's `tls` (its certificate, and
//! the CA whose client certificates it requires). Paths resolve against the
//! config file's directory at validation; files are read when the
//! component starts, and every error names the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sluice_core::config::FieldError;

/// A TLS file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read or holds no usable PEM.
    #[error("cannot use {what} {}: {problem}", path.display())]
    File {
        /// What the file should hold.
        what: &'static str,
        /// Its setting.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why not.
        problem: String,
    },
    /// The files do not make a TLS configuration.
    #[error("invalid TLS settings: {0}")]
    Config(String),
}

impl TlsError {
    /// The setting it is about, for `sluice validate`'s file:line.
    pub fn key(&self) -> &'static str {
        match self {
            Self::File { key, .. } => key,
            Self::Config(_) => "tls",
        }
    }

    /// As a config error at its key.
    pub fn field_error(&self) -> FieldError {
        FieldError::new(self.key(), self.to_string())
    }
}

/// A TLS file setting: what it holds (for messages) and its key.
#[derive(Clone, Copy)]
struct TlsFile(&'static str, &'static str);

const CA_FILE: TlsFile = TlsFile("the CA file", "tls.ca_file");
const CLIENT_CA_FILE: TlsFile = TlsFile("the client CA file", "tls.client_ca_file");
const CLIENT_CRT_FILE: TlsFile = TlsFile("the client certificate", "tls.crt_file");
const CRT_FILE: TlsFile = TlsFile("the certificate", "tls.crt_file");
const KEY_FILE: TlsFile = TlsFile("the private key", "tls.key_file");

fn file_error(file: TlsFile, path: &Path, problem: impl ToString) -> TlsError {
    let TlsFile(what, key) = file;
    TlsError::File { what, key, path: path.to_owned(), problem: problem.to_string() }
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(file, path, e))
}

fn certificates(file: TlsFile, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(file, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(file, path, e))?;
    if certs.is_empty() {
        return Err(file_error(file, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(KEY_FILE, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| file_error(KEY_FILE, path, e))
}

/// `tls` of the `sluice` sink (the edge).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// A PEM CA to trust for the aggregator's certificate (default: the
    /// system's roots).
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate, for an aggregator that requires mutual TLS.
    pub crt_file: Option<PathBuf>,
    /// The client certificate's PEM private key.
    pub key_file: Option<PathBuf>,
    /// The name the aggregator's certificate must carry, when it is not the
    /// endpoint's host.
    pub server_name: Option<String>,
}

impl ClientTlsConfig {
    /// Whether anything is set.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.crt_file.is_some() || self.key_file.is_some()
    }

    /// Resolve paths against `dir`; a certificate needs its key.
    pub fn validate(self, dir: &Path) -> Result<Self, FieldError> {
        if self.crt_file.is_some() != self.key_file.is_some() {
            return Err(FieldError::new(
                "tls",
                "tls.crt_file and tls.key_file go together (a client certificate and its key)",
            ));
        }
        Ok(Self {
            ca_file: self.ca_file.map(|p| dir.join(p)),
            crt_file: self.crt_file.map(|p| dir.join(p)),
            key_file: self.key_file.map(|p| dir.join(p)),
            server_name: self.server_name,
        })
    }

    /// tonic's client TLS settings, reading the files.
    pub fn load(&self) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
        let mut tls = tonic::transport::ClientTlsConfig::new();
        match &self.ca_file {
            Some(path) => {
                // Checked here so a bad file is named, not reported by the handshake.
                certificates(CA_FILE, path)?;
                tls = tls
                    .ca_certificate(tonic::transport::Certificate::from_pem(read(CA_FILE, path)?));
            }
            None => tls = tls.with_native_roots(),
        }
        if let (Some(crt), Some(key)) = (&self.crt_file, &self.key_file) {
            certificates(CLIENT_CRT_FILE, crt)?;
            private_key(key)?;
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(CLIENT_CRT_FILE, crt)?,
                read(KEY_FILE, key)?,
            ));
        }
        if let Some(name) = &self.server_name {
            tls = tls.domain_name(name.clone());
        }
        Ok(tls)
    }
}

/// `tls` of the `sluice` source (the aggregator).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The aggregator's PEM certificate (chain).
    pub crt_file: PathBuf,
    /// Its PEM private key.
    pub key_file: PathBuf,
    /// A PEM CA: when set, every edge must present a client certificate it
    /// signed (mutual TLS); edges without one are refused at the handshake.
    pub client_ca_file: Option<PathBuf>,
}

impl ServerTlsConfig {
    /// Resolve paths against `dir`.
    pub fn validate(self, dir: &Path) -> Self {
        Self {
            crt_file: dir.join(self.crt_file),
            key_file: dir.join(self.key_file),
            client_ca_file: self.client_ca_file.map(|p| dir.join(p)),
        }
    }

    /// The rustls server configuration, reading the files (HTTP/2 only).
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(CLIENT_CA_FILE, path)? {
                    roots.add(cert).map_err(|e| file_error(CLIENT_CA_FILE, path, e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| file_error(CLIENT_CA_FILE, path, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certificates(CRT_FILE, &self.crt_file)?, private_key(&self.key_file)?)
            .map_err(|e| TlsError::Config(format!("the certificate and key do not match: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}
