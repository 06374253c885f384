//! One-off HTTPS requests (Login with Amazon, the Capabilities API): rare calls to hosts other than
//! the AVS gateway, so each gets a fresh HTTP/2 connection rather than a pool.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use rustls::ClientConfig;

use crate::transport::http2::{self, Endpoint, Http2Error};

/// What went wrong, with the request it went wrong for: the cause says which step failed (unreachable,
/// TLS or certificate, HTTP/2, timeout).
#[derive(Debug, thiserror::Error)]
#[error("{method} {url}: {source}")]
pub struct HttpsError {
    method: String,
    url: String,
    source: Http2Error,
}

impl HttpsError {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server never answered in time (or the connection could not be made in time).
    pub fn is_timeout(&self) -> bool {
        matches!(self.source, Http2Error::Timeout { .. })
    }
}

#[derive(Clone)]
pub struct HttpsClient {
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

/// Answers to these calls are small JSON documents.
const MAX_ANSWER: usize = 1 << 20;

impl HttpsClient {
    /// A client whose requests each take at most 30 s, connection included.
    pub fn new(tls: Arc<ClientConfig>) -> Self {
        HttpsClient { tls, timeout: Duration::from_secs(30) }
    }

    /// The bound on a whole request: connecting, TLS, sending and reading the answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `request` (absolute https URL) over a new connection and reads the whole answer.
    pub async fn send(&self, request: Request<Bytes>) -> Result<(StatusCode, HeaderMap, Bytes), HttpsError> {
        let (method, url) = (request.method().to_string(), request.uri().to_string());
        let wrap = |source| HttpsError { method: method.clone(), url: url.clone(), source };
        let endpoint = Endpoint::parse(&url).map_err(wrap)?;
        tokio::time::timeout(self.timeout, self.exchange(&endpoint, request))
            .await
            .map_err(|_| wrap(Http2Error::Timeout { authority: endpoint.authority.clone(), timeout: self.timeout }))?
            .map_err(wrap)
    }

    async fn exchange(
        &self,
        endpoint: &Endpoint,
        request: Request<Bytes>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Http2Error> {
        let (send_request, connection) = http2::connect(endpoint, self.tls.clone(), self.timeout).await?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("one-off HTTPS connection: {e}");
            }
        });
        // The driver must not outlive this call, whatever happens to it.
        let _abort_driver = AbortOnDrop(driver);
        let (mut parts, body) = request.into_parts();
        // Form posts to Login with Amazon go through load balancers that expect a length.
        if !body.is_empty() && !parts.headers.contains_key(http::header::CONTENT_LENGTH) {
            parts.headers.insert(http::header::CONTENT_LENGTH, body.len().into());
        }
        let end_of_stream = body.is_empty();
        let mut ready = send_request.ready().await?;
        let (answer, mut stream) = ready.send_request(Request::from_parts(parts, ()), end_of_stream)?;
        if !end_of_stream {
            http2::send_all(&mut stream, body, true).await?;
        }
        let (parts, mut body) = answer.await?.into_parts();
        let body = http2::read_to_end(&mut body, MAX_ANSWER).await?;
        Ok((parts.status, parts.headers, body))
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A local HTTPS (h2) server for `localhost` with a self-signed certificate, answering every request
/// through a handler: for tests of the clients built on `HttpsClient` (Login with Amazon, capabilities).
#[cfg(test)]
pub(crate) mod testing {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::net::TcpListener;

    use super::*;

    /// What the server received.
    #[derive(Debug, Clone)]
    pub struct Received {
        pub method: http::Method,
        pub path: String,
        pub headers: HeaderMap,
        pub body: Bytes,
    }

    pub struct Server {
        pub addr: SocketAddr,
        /// The certificate to trust (`tls::client_config(Some(&ca))`).
        pub ca: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Server {
        pub fn url(&self, path: &str) -> String {
            format!("https://localhost:{}{path}", self.addr.port())
        }
    }

    pub async fn serve<F>(handler: F) -> Server
    where
        F: Fn(Received) -> (u16, HeaderMap, Bytes) + Send + Sync + 'static,
    {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert.cert.der().to_vec())], key)
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(handler);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let Ok(tls) = acceptor.accept(tcp).await else { continue };
                let Ok(mut h2) = h2::server::handshake(tls).await else { continue };
                let handler = handler.clone();
                tokio::spawn(async move {
                    // The connection only makes progress while `accept` is polled: each request gets a task.
                    while let Some(Ok((request, respond))) = h2.accept().await {
                        tokio::spawn(answer(request, respond, handler.clone()));
                    }
                });
            }
        });
        Server { addr, ca, _dir: dir }
    }

    async fn answer<F>(request: Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>, handler: Arc<F>)
    where
        F: Fn(Received) -> (u16, HeaderMap, Bytes),
    {
        let (parts, mut body) = request.into_parts();
        let Ok(body) = http2::read_to_end(&mut body, 1 << 20).await else { return };
        let received =
            Received { method: parts.method, path: parts.uri.path().to_string(), headers: parts.headers, body };
        let (status, headers, body) = handler(received);
        let mut answer = http::Response::new(());
        *answer.status_mut() = StatusCode::from_u16(status).unwrap();
        *answer.headers_mut() = headers;
        if let Ok(mut stream) = respond.send_response(answer, body.is_empty()) {
            if !body.is_empty() {
                let _ = stream.send_data(body, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;
    use crate::tls::client_config;

    /// Answers 201 with the request's method, path, content type and length in headers, its body echoed.
    async fn echo_server() -> testing::Server {
        testing::serve(|received| {
            let mut headers = HeaderMap::new();
            headers.insert("x-method", received.method.as_str().parse().unwrap());
            headers.insert("x-path", received.path.parse().unwrap());
            for (name, copy) in [("content-type", "x-content-type"), ("content-length", "x-content-length")] {
                if let Some(value) = received.headers.get(name) {
                    headers.insert(copy, value.clone());
                }
            }
            (201, headers, received.body)
        })
        .await
    }

    fn post(url: String) -> Request<Bytes> {
        Request::post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from("a=1&b=2"))
            .unwrap()
    }

    #[tokio::test]
    async fn a_request_reaches_a_trusted_server_and_its_answer_comes_back() {
        let server = echo_server().await;
        let client = HttpsClient::new(client_config(Some(&server.ca)).unwrap());
        let (status, headers, body) = client.send(post(server.url("/auth/O2/token"))).await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body, "a=1&b=2");
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(header("x-method").as_deref(), Some("POST"));
        assert_eq!(header("x-path").as_deref(), Some("/auth/O2/token"));
        assert_eq!(header("x-content-type").as_deref(), Some("application/x-www-form-urlencoded"));
        assert_eq!(header("x-content-length").as_deref(), Some("7"));
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_refused_and_named() {
        let server = echo_server().await;
        let client = HttpsClient::new(client_config(None).unwrap());
        let url = server.url("/auth/O2/token");
        let err = client.send(post(url.clone())).await.unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with(&format!("POST {url}: TLS with localhost:")), "{message}");
        assert!(message.contains("certificate"), "{message}");
        assert_eq!(err.url(), url);
    }

    #[tokio::test]
    async fn unreachable_hosts_silent_servers_and_bad_urls_are_clear_errors() {
        let client = HttpsClient::new(client_config(None).unwrap()).with_timeout(Duration::from_millis(300));
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let err = client.send(post(format!("https://127.0.0.1:{}/x", closed.port()))).await.unwrap_err();
        assert!(err.to_string().contains("cannot reach 127.0.0.1:"), "{err}");

        // Accepts TCP, never speaks TLS.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}/x", silent.local_addr().unwrap().port());
        let err = client.send(post(url)).await.unwrap_err();
        assert!(err.is_timeout() && err.to_string().contains("timed out"), "{err}");

        let err = client.send(post("http://api.amazon.com/x".into())).await.unwrap_err();
        assert!(err.to_string().contains("not an https URL"), "{err}");
    }
}
