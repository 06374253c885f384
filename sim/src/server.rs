//! Accepting connections: TLS (ALPN h2), the HTTP/2 handshake, and one task per stream, all owned by
//! the server task so that shutting the sim down ends every one of them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, Response, StatusCode};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::{admin, avs, lwa, Shared};

/// AVS allows a device ten concurrent streams (the downchannel is one of them).
const MAX_CONCURRENT_STREAMS: u32 = 10;

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let id = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
                    connections.spawn(connection(tcp, acceptor.clone(), shared.clone(), id));
                }
                Err(e) => tracing::warn!("accept: {e}"),
            },
            Some(_) = connections.join_next() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    connections.shutdown().await;
}

async fn connection(tcp: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>, id: u64) {
    let _ = tcp.set_nodelay(true);
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(e) => return tracing::debug!(connection = id, "TLS handshake failed: {e}"),
    };
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .handshake(tls)
        .await;
    let mut h2 = match handshake {
        Ok(h2) => h2,
        Err(e) => return tracing::debug!(connection = id, "HTTP/2 handshake failed: {e}"),
    };
    let connection = Arc::new(avs::Connection::new(id));
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            request = h2.accept() => match request {
                Some(Ok((request, respond))) => {
                    streams.spawn(route(shared.clone(), connection.clone(), request, respond));
                }
                Some(Err(e)) => {
                    tracing::debug!(connection = id, "connection error: {e}");
                    break;
                }
                None => break,
            },
            Some(_) = streams.join_next() => {}
        }
    }
    streams.shutdown().await;
}

async fn route(
    shared: Arc<Shared>,
    connection: Arc<avs::Connection>,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let result = match (method.as_str(), path.as_str()) {
        ("POST", "/auth/O2/create/codepair") => lwa::code_pair(&shared, request, respond).await,
        ("POST", "/auth/O2/token") => lwa::token(&shared, request, respond).await,
        ("GET", "/v20160207/directives") => avs::downchannel(&shared, &connection, request, respond).await,
        ("POST", "/v20160207/events") => avs::event(&shared, &connection, request, respond).await,
        ("GET", "/ping") => avs::ping(&shared, request, respond).await,
        ("PUT", "/v1/devices/@self/capabilities") => avs::capabilities(&shared, request, respond).await,
        (_, p) if p.starts_with("/admin/") => admin::route(&shared, request, respond).await,
        _ => reply(respond, StatusCode::NOT_FOUND, "text/plain", Bytes::from(format!("no route for {method} {path}"))),
    };
    if let Err(e) = result {
        tracing::debug!("{method} {path}: {e}");
    }
}

/// A complete response with a body (or none).
pub(crate) fn reply(
    mut respond: SendResponse<Bytes>,
    status: StatusCode,
    content_type: &str,
    body: Bytes,
) -> Result<(), h2::Error> {
    let mut response = Response::builder().status(status);
    if !body.is_empty() {
        response = response.header(http::header::CONTENT_TYPE, content_type);
    }
    let response = response.body(()).expect("static response parts are valid");
    let mut stream = respond.send_response(response, body.is_empty())?;
    if !body.is_empty() {
        stream.send_data(body, true)?;
    }
    Ok(())
}

pub(crate) fn reply_json(
    respond: SendResponse<Bytes>,
    status: StatusCode,
    json: &serde_json::Value,
) -> Result<(), h2::Error> {
    reply(respond, status, "application/json", Bytes::from(json.to_string()))
}

/// Reads a whole (small) request body.
pub(crate) async fn read_body(body: &mut RecvStream, limit: usize) -> Result<Bytes, h2::Error> {
    let mut all = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if all.len() + chunk.len() > limit {
            return Err(h2::Error::from(h2::Reason::REFUSED_STREAM));
        }
        all.extend_from_slice(&chunk);
    }
    Ok(all.freeze())
}
