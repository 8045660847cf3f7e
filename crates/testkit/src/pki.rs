//! A throwaway PKI written as PEM files: a CA, a server certificate for
//! `localhost` and 127.0.0.1, a client certificate it signed, and a second
//! CA with its own client certificate (one the server must not trust).

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
    let (client_crt, client_key) =
        leaf(dir, "edge", &["edge"], ExtendedKeyUsagePurpose::ClientAuth, &ca);
    let (stranger_crt, stranger_key) =
        leaf(dir, "stranger", &["stranger"], ExtendedKeyUsagePurpose::ClientAuth, &stranger_ca);
    Pki { ca: ca_path, server_crt, server_key, client_crt, client_key, stranger_crt, stranger_key }
}

/// A TLS listener on a free loopback port that presents the PKI's server
/// certificate (`localhost`, 127.0.0.1) and then drops the connection: a
/// client that does not trust `pki.ca` fails the handshake with "invalid
/// peer certificate", as it would against a real server with that
/// certificate.
pub async fn tls_listener(pki: &Pki) -> std::net::SocketAddr {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_crt)
        .expect("certificate file")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).expect("key");
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(stream).await;
            });
        }
    });
    address
}
