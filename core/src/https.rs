//! One-off HTTPS requests (Login with Amazon, the Capabilities API): rare calls to hosts other than
//! the AVS gateway, so each gets a fresh HTTP/2 connection rather than a pool.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use rustls::ClientConfig;

use crate::transport::http2::{self, Endpoint, Http2Error};

#[derive(Debug, thiserror::Error)]
#[error("{method} {url}: {source}")]
pub struct HttpsError {
    method: String,
    url: String,
    source: Http2Error,
}

#[derive(Clone)]
pub struct HttpsClient {
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

/// Answers to these calls are small JSON documents.
const MAX_ANSWER: usize = 1 << 20;

impl HttpsClient {
    pub fn new(tls: Arc<ClientConfig>) -> Self {
        HttpsClient { tls, timeout: Duration::from_secs(30) }
    }

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
        let (parts, body) = request.into_parts();
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
