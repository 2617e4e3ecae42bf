//! A local TLS endpoint standing in for DynamoDB and Secrets Manager: a test CA made at start,
//! a certificate for `localhost` and `127.0.0.1` signed by it, and a server that terminates TLS
//! and answers with the in-memory stand-in itself, or forwards each HTTP request to a plain-HTTP
//! upstream (moto), keeping the TLS side alive. Functions reach it through
//! `AWS_ENDPOINT_URL` and trust it through `SSL_CERT_FILE` (the AWS SDK's rustls client loads its
//! roots with rustls-native-certs, which reads that variable; boto3 reads `AWS_CA_BUNDLE`), so
//! every cold start pays a real handshake, as on Lambda.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
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

    /// Writes the trust store the started processes get through `SSL_CERT_FILE` into `dir`,
    /// returning the file's path: this machine's CA bundle (as on Lambda, where the SDK loads
    /// and parses the image's ~140 roots at every cold start) followed by the test CA. Without
    /// the bundle a cold start would parse one certificate, and the echo's init would look
    /// 2 ms cheaper than it is on Lambda.
    pub fn write_ca(&self, dir: &Path) -> Result<PathBuf, TlsError> {
        let path = dir.join("bench-ca.pem");
        let mut trusted = SYSTEM_BUNDLES
            .iter()
            .find_map(|bundle| std::fs::read_to_string(bundle).ok())
            .unwrap_or_default();
        if !trusted.is_empty() && !trusted.ends_with('\n') {
            trusted.push('\n');
        }
        trusted.push_str(&self.ca_pem);
        std::fs::write(&path, trusted)?;
        Ok(path)
    }
}

/// Where Linux distributions keep the system CA bundle (Debian/Ubuntu, then Amazon Linux/RHEL,
/// whose `ca-bundle.crt` is what a function on `provided.al2023` loads).
const SYSTEM_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The running TLS endpoint; stops when dropped.
pub struct TlsEndpoint {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsEndpoint {
    /// Terminates TLS on a free loopback port and answers each HTTP request with `app` itself:
    /// the in-memory stand-in, reached as DynamoDB and Secrets Manager are, one TLS connection
    /// kept alive across requests and nothing between it and the store.
    pub async fn serving(pki: &TestPki, app: axum::Router) -> Result<Self, TlsError> {
        let service = hyper_util::service::TowerToHyperService::new(app);
        Self::start(pki, service).await
    }

    /// Terminates TLS on a free loopback port and forwards each HTTP request to `upstream`.
    ///
    /// HTTP-aware on purpose: moto (werkzeug's server) answers every request with `Connection:
    /// close`, so a byte-level proxy would make every store call pay a new TCP connection and TLS
    /// handshake, and the connections a function opened at init would never be reused, as they
    /// are on DynamoDB and Secrets Manager (keep-alive). Here the TLS side stays alive across
    /// requests, as AWS's endpoints do, and each request takes a fresh plain connection to moto
    /// (cheap on loopback, and outside what the function pays for).
    pub async fn forwarding_to(pki: &TestPki, upstream: SocketAddr) -> Result<Self, TlsError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| TlsError::Io(std::io::Error::other(e)))?;
        let upstream = Arc::new(Upstream {
            base: format!("http://{upstream}"),
            client,
        });
        let service = hyper::service::service_fn(move |request| forward(upstream.clone(), request));
        Self::start(pki, service).await
    }

    async fn start<S, B>(pki: &TestPki, service: S) -> Result<Self, TlsError>
    where
        S: hyper::service::Service<
                http::Request<hyper::body::Incoming>,
                Response = http::Response<B>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(pki.server.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(acceptor, socket, service).await;
                });
            }
        });
        Ok(TlsEndpoint { addr, task })
    }

    /// `AWS_ENDPOINT_URL`: the host name the certificate was made for.
    pub fn endpoint_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

impl Drop for TlsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Upstream {
    base: String,
    client: reqwest::Client,
}

/// One TLS connection: HTTP/1.1 with keep-alive.
async fn serve_connection<S, B>(
    acceptor: TlsAcceptor,
    socket: TcpStream,
    service: S,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        >,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    socket.set_nodelay(true)?;
    let tls = acceptor.accept(socket).await?;
    hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .await?;
    Ok(())
}

/// Headers that describe one hop's connection, not the message: never forwarded.
fn is_hop_header(name: &http::HeaderName) -> bool {
    use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    name == CONNECTION || name == CONTENT_LENGTH || name == TRANSFER_ENCODING
}

async fn forward(
    upstream: Arc<Upstream>,
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return Ok(bad_gateway(&format!("reading the request: {err}"))),
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outbound = upstream
        .client
        .request(parts.method, format!("{}{target}", upstream.base))
        .body(body);
    for (name, value) in parts.headers.iter().filter(|(n, _)| !is_hop_header(n)) {
        outbound = outbound.header(name, value);
    }
    let answer = match outbound.send().await {
        Ok(answer) => answer,
        Err(err) => return Ok(bad_gateway(&format!("upstream: {err}"))),
    };
    let mut response = http::Response::builder().status(answer.status());
    for (name, value) in answer.headers().iter().filter(|(n, _)| !is_hop_header(n)) {
        response = response.header(name, value);
    }
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(err) => return Ok(bad_gateway(&format!("upstream body: {err}"))),
    };
    Ok(response
        .body(Full::new(body))
        .unwrap_or_else(|err| bad_gateway(&format!("response: {err}"))))
}

fn bad_gateway(reason: &str) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from(reason.to_owned())));
    *response.status_mut() = http::StatusCode::BAD_GATEWAY;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client that trusts only the test CA reaches the upstream through the proxy, and sends
    /// two requests over one TLS connection although the upstream closes after each answer.
    #[tokio::test]
    async fn a_client_trusting_the_test_ca_reaches_the_upstream_over_one_connection() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let shout = axum::Router::new().fallback(|body: String| async move {
            ([(http::header::CONNECTION, "close")], body.to_uppercase())
        });
        tokio::spawn(async move { axum::serve(upstream, shout).await.unwrap() });
        let pki = TestPki::generate().unwrap();
        let proxy = TlsEndpoint::forwarding_to(&pki, upstream_addr)
            .await
            .unwrap();

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
        for word in ["ping", "pong"] {
            let request =
                format!("POST /x HTTP/1.1\r\nhost: localhost\r\ncontent-length: 4\r\n\r\n{word}");
            tls.write_all(request.as_bytes()).await.unwrap();
            let answer = read_response(&mut tls).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(
                !answer.to_ascii_lowercase().contains("connection: close"),
                "{answer}"
            );
            assert!(answer.ends_with(&word.to_uppercase()), "{answer}");
        }
    }

    #[test]
    fn the_trust_store_ends_with_the_test_ca_after_the_system_bundle() {
        let pki = TestPki::generate().unwrap();
        let dir = tempfile::TempDir::new().unwrap();
        let written = std::fs::read_to_string(pki.write_ca(dir.path()).unwrap()).unwrap();
        assert!(written.ends_with(&pki.ca_pem));
        let system = SYSTEM_BUNDLES
            .iter()
            .find_map(|b| std::fs::read_to_string(b).ok())
            .unwrap_or_default();
        assert!(written.starts_with(system.trim_end()));
        let certs = rustls_pemfile_certs(&written);
        assert_eq!(certs.len(), rustls_pemfile_certs(&system).len() + 1);
    }

    /// One HTTP/1.1 response with a content-length, read off the stream.
    async fn read_response<S: AsyncReadExt + Unpin>(stream: &mut S) -> String {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            seen.push(byte[0]);
        }
        let head = String::from_utf8(seen.clone()).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        head + std::str::from_utf8(&body).unwrap()
    }

    fn rustls_pemfile_certs(pem: &str) -> Vec<pki_types::CertificateDer<'static>> {
        use pki_types::pem::PemObject;
        pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|c| c.unwrap())
            .collect()
    }
}
