//! A throwaway PKI written as PEM files: a CA, a server certificate for
//! `localhost` and 127.0.0.1, two server certificates that do not name the
//! address (one shaped like Splunk's default, one for another name), a
//! client certificate it signed, and a second CA with its own client
//! certificate (one the server must not trust). [`tls_proxy`] puts any
//! emulator behind TLS with one of them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The files of a [`Pki`].
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA that signed the server and the trusted client.
    pub ca: PathBuf,
    /// The server's certificate (`localhost`, 127.0.0.1).
    pub server_crt: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// A client certificate the CA signed.
    pub client_crt: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A server certificate shaped like Splunk's default one: subject
    /// `CN=SplunkServerDefaultCert`, no subjectAltName, so it names no host
    /// a verifier can match (what ../shared/reviews/newcomer-2026-12.md row
    /// 40 met: "certificate is not valid for any names").
    pub splunk_default_crt: PathBuf,
    /// Its key.
    pub splunk_default_key: PathBuf,
    /// A server certificate for `hec.internal` only (not the address).
    pub named_crt: PathBuf,
    /// Its key.
    pub named_key: PathBuf,
    /// A client certificate signed by another CA.
    pub stranger_crt: PathBuf,
    /// Its key.
    pub stranger_key: PathBuf,
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

fn leaf(
    dir: &Path,
    name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> (PathBuf, PathBuf) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("signed");
    let (crt_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&crt_path, cert.pem()).expect("write certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (crt_path, key_path)
}

/// Write a fresh PKI into `dir`.
pub fn write(dir: &Path) -> Pki {
    let ca = authority("sluice test CA");
    let stranger_ca = authority("another CA");
    let ca_path = dir.join("ca.crt");
    std::fs::write(&ca_path, ca.pem()).expect("write CA");
    let (server_crt, server_key) =
        leaf(dir, "server", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, &ca);
    let (splunk_default_crt, splunk_default_key) =
        leaf(dir, "SplunkServerDefaultCert", &[], ExtendedKeyUsagePurpose::ServerAuth, &ca);
    let (named_crt, named_key) =
        leaf(dir, "hec.internal", &["hec.internal"], ExtendedKeyUsagePurpose::ServerAuth, &ca);
    let (client_crt, client_key) =
        leaf(dir, "edge", &["edge"], ExtendedKeyUsagePurpose::ClientAuth, &ca);
    let (stranger_crt, stranger_key) =
        leaf(dir, "stranger", &["stranger"], ExtendedKeyUsagePurpose::ClientAuth, &stranger_ca);
    Pki {
        ca: ca_path,
        server_crt,
        server_key,
        splunk_default_crt,
        splunk_default_key,
        named_crt,
        named_key,
        client_crt,
        client_key,
        stranger_crt,
        stranger_key,
    }
}

/// A TLS listener on a free loopback port that presents the PKI's server
/// certificate (`localhost`, 127.0.0.1) and then drops the connection: a
/// client that does not trust `pki.ca` fails the handshake with "invalid
/// peer certificate", as it would against a real server with that
/// certificate.
pub async fn tls_listener(pki: &Pki) -> std::net::SocketAddr {
    serve(&pki.server_crt, &pki.server_key, None).await
}

/// A TLS listener on a free loopback port that presents `crt` (with `key`)
/// and relays each connection's plaintext to `backend`: an emulator behind
/// TLS, as Splunk's HEC port or an Elasticsearch cluster serves it.
pub async fn tls_proxy(
    crt: &Path,
    key: &Path,
    backend: std::net::SocketAddr,
) -> std::net::SocketAddr {
    serve(crt, key, Some(backend)).await
}

/// Accept TLS with `crt` on a free port; relay to `backend`, or drop.
async fn serve(
    crt: &Path,
    key: &Path,
    backend: Option<std::net::SocketAddr>,
) -> std::net::SocketAddr {
    let acceptor = acceptor(crt, key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let Some(backend) = backend else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    address
}

fn acceptor(crt: &Path, key: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(crt)
        .expect("certificate file")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}
