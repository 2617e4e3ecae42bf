//! A local TLS endpoint standing in for DynamoDB and Secrets Manager: a test CA made at start,
//! a certificate for `localhost` and `127.0.0.1` signed by it, and a proxy that terminates TLS and
//! forwards the plaintext to a plain-HTTP upstream (moto). Functions reach it through
//! `AWS_ENDPOINT_URL` and trust it through `SSL_CERT_FILE` (the AWS SDK's rustls client loads its
//! roots with rustls-native-certs, which reads that variable; boto3 reads `AWS_CA_BUNDLE`), so
//! every cold start pays a real handshake, as on Lambda.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The test CA's certificate (PEM, written to a file for `SSL_CERT_FILE`) and the server config
/// of the certificate it signed.
pub struct TestPki {
    pub ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl TestPki {
    pub fn generate() -> Result<Self, TlsError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "byosms bench test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )?;
        Ok(TestPki {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        })
    }

    /// Writes the CA certificate into `dir`, returning the file's path.
    pub fn write_ca(&self, dir: &Path) -> Result<PathBuf, TlsError> {
        let path = dir.join("bench-ca.pem");
        std::fs::write(&path, &self.ca_pem)?;
        Ok(path)
    }
}

/// The running proxy; stops when dropped.
pub struct TlsProxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// Terminates TLS on a free loopback port and forwards each connection to `upstream`.
    pub async fn start(pki: &TestPki, upstream: SocketAddr) -> Result<Self, TlsError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(pki.server.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = forward(acceptor, socket, upstream).await;
                });
            }
        });
        Ok(TlsProxy { addr, task })
    }

    /// `AWS_ENDPOINT_URL`: the host name the certificate was made for.
    pub fn endpoint_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    acceptor: TlsAcceptor,
    socket: TcpStream,
    upstream: SocketAddr,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let mut tls = acceptor.accept(socket).await?;
    let mut plain = TcpStream::connect(upstream).await?;
    plain.set_nodelay(true)?;
    tokio::io::copy_bidirectional(&mut tls, &mut plain).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client that trusts only the test CA reaches the upstream through the proxy.
    #[tokio::test]
    async fn a_client_trusting_the_test_ca_reaches_the_upstream() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf.map(|b| b.to_ascii_uppercase()))
                .await
                .unwrap();
        });
        let pki = TestPki::generate().unwrap();
        let proxy = TlsProxy::start(&pki, upstream_addr).await.unwrap();

        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile_certs(&pki.ca_pem) {
            roots.add(cert).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = TcpStream::connect(proxy.addr).await.unwrap();
        let name = pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"PING");
    }

    fn rustls_pemfile_certs(pem: &str) -> Vec<pki_types::CertificateDer<'static>> {
        use pki_types::pem::PemObject;
        pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|c| c.unwrap())
            .collect()
    }
}
