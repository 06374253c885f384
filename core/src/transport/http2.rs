//! The HTTP/2-over-TLS plumbing the AVS connection is made of: dialling a base URL, and moving bodies
//! through h2 streams while honouring flow control (h2 buffers without limit if a sender ignores it).

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::{Connection, SendRequest};
use h2::{RecvStream, SendStream};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum Http2Error {
    #[error("{0} is not an https URL")]
    BadUrl(String),
    #[error("cannot reach {authority}: {source}")]
    Unreachable { authority: String, source: std::io::Error },
    #[error("TLS with {authority} failed: {source}")]
    Tls { authority: String, source: std::io::Error },
    #[error("{authority} did not agree to HTTP/2 (ALPN h2)")]
    NoHttp2 { authority: String },
    #[error("connecting to {authority} timed out after {timeout:?}")]
    Timeout { authority: String, timeout: Duration },
    #[error("HTTP/2: {0}")]
    Protocol(#[from] h2::Error),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
}

/// Where to connect: the scheme/authority part of a base URL such as `https://alexa.na.gateway.devices.a2z.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub authority: String,
}

impl Endpoint {
    pub fn parse(base_url: &str) -> Result<Self, Http2Error> {
        let bad = || Http2Error::BadUrl(base_url.to_string());
        let uri: http::Uri = base_url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("https") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        Ok(Endpoint {
            host: authority.host().trim_start_matches('[').trim_end_matches(']').to_string(),
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_string(),
        })
    }

    pub fn uri(&self, path: &str) -> String {
        format!("https://{}{}", self.authority, path)
    }
}

pub type H2Connection = Connection<TlsStream<TcpStream>, Bytes>;

/// TCP + TLS (ALPN h2) + the HTTP/2 handshake, bounded by `timeout`.
pub async fn connect(
    endpoint: &Endpoint,
    tls: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<(SendRequest<Bytes>, H2Connection), Http2Error> {
    let authority = endpoint.authority.clone();
    let dial = async {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|source| Http2Error::Unreachable { authority: authority.clone(), source })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(endpoint.host.clone()).map_err(|_| Http2Error::BadUrl(authority.clone()))?;
        let tls = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|source| Http2Error::Tls { authority: authority.clone(), source })?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Http2Error::NoHttp2 { authority: authority.clone() });
        }
        let (send, connection) = h2::client::Builder::new()
            // Directive bursts and audio attachments: a larger window than the 64 KiB default keeps the
            // server from stalling on our acknowledgements.
            .initial_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .handshake(tls)
            .await?;
        Ok((send, connection))
    };
    tokio::time::timeout(timeout, dial)
        .await
        .map_err(|_| Http2Error::Timeout { authority: endpoint.authority.clone(), timeout })?
}

/// Sends `data` on `stream`, waiting for flow-control capacity as needed.
pub async fn send_all(stream: &mut SendStream<Bytes>, mut data: Bytes, end_of_stream: bool) -> Result<(), Http2Error> {
    if data.is_empty() {
        if end_of_stream {
            stream.send_data(Bytes::new(), true)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(granted) => granted?,
            None => return Err(Http2Error::Protocol(h2::Error::from(h2::Reason::STREAM_CLOSED))),
        };
        let chunk = data.split_to(granted.min(data.len()));
        stream.send_data(chunk, end_of_stream && data.is_empty())?;
    }
    Ok(())
}

/// The next chunk of a response body, returning its flow-control capacity to the peer.
pub async fn next_chunk(body: &mut RecvStream) -> Result<Option<Bytes>, Http2Error> {
    match body.data().await {
        None => Ok(None),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(chunk)) => {
            let _ = body.flow_control().release_capacity(chunk.len());
            Ok(Some(chunk))
        }
    }
}

/// A whole (small) response body, refusing more than `limit` bytes.
pub async fn read_to_end(body: &mut RecvStream, limit: usize) -> Result<Bytes, Http2Error> {
    let mut all = BytesMut::new();
    while let Some(chunk) = next_chunk(body).await? {
        if all.len() + chunk.len() > limit {
            return Err(Http2Error::TooLarge(limit));
        }
        all.extend_from_slice(&chunk);
    }
    Ok(all.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_base_urls() {
        let e = Endpoint::parse("https://alexa.na.gateway.devices.a2z.com").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("alexa.na.gateway.devices.a2z.com", 443));
        let e = Endpoint::parse("https://localhost:8443/").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.authority.as_str()), ("localhost", 8443, "localhost:8443"));
        assert_eq!(e.uri("/ping"), "https://localhost:8443/ping");
        assert!(Endpoint::parse("http://localhost:80").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }
}
