//! Accepting connections: TLS (ALPN h2), the HTTP/2 handshake, and one task per stream. The accept
//! loop owns the connection tasks and each connection owns its stream tasks, so stopping the sim ends
//! every one of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::faults::{LineOrder, Valve, Valved};
use crate::routes;
use crate::state::Shared;

/// AVS allows a device ten concurrent streams (the downchannel is one of them).
const MAX_CONCURRENT_STREAMS: u32 = 10;
/// How long a stopping sim waits for its GOAWAY to reach a client before dropping the connection.
const GOAWAY_FLUSH: Duration = Duration::from_secs(1);

/// One client connection, as events see it.
pub(crate) struct Connection {
    /// 1, 2, … in the order connections were accepted.
    pub id: u64,
    /// Events received on this connection so far.
    pub events: AtomicU64,
}

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
                    // Decided before it is recorded, and recorded with its outcome: a test counting the
                    // attempts that got through must not see one going online between the two.
                    let offline = shared.faults.is_offline();
                    shared.record(|r| {
                        r.connection_attempts.push(tokio::time::Instant::now());
                        r.refused_connection_attempts += usize::from(offline);
                    });
                    if offline {
                        // Offline: the device's connection is accepted and closed at once.
                        drop(tcp);
                        continue;
                    }
                    let id = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
                    let line = shared.faults.line();
                    connections.spawn(connection(tcp, acceptor.clone(), shared.clone(), id, line, stop.clone()));
                }
                Err(e) => tracing::warn!("accept: {e}"),
            },
            Some(_) = connections.join_next() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    // Each connection sees the stop too and says GOAWAY; this only waits for them to finish.
    while connections.join_next().await.is_some() {}
}

/// Resolves once the sim is stopping: asked to, or every handle is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard wait_for returns must not live across the caller's awaits.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    id: u64,
    mut line: broadcast::Receiver<LineOrder>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    // Below TLS, so that a stall freezes everything, the TLS handshake and HTTP/2 PING acks included.
    let valve = Arc::new(Valve::default());
    let tcp = Valved::new(tcp, valve.clone());
    let handshake = async {
        let tls = acceptor.accept(tcp).await.map_err(|e| format!("TLS handshake: {e}"))?;
        h2::server::Builder::new()
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .initial_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .handshake(tls)
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))
    };
    let mut h2 = tokio::select! {
        handshake = handshake => match handshake {
            Ok(h2) => h2,
            Err(e) => return tracing::debug!(connection = id, "{e}"),
        },
        _ = stopped(&mut stop) => return,
    };
    let connection = Arc::new(Connection { id, events: AtomicU64::new(0) });
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            // Orders first: a fault injected before the device's next frame arrived must act on that frame.
            biased;
            order = line.recv() => match order {
                // No GOAWAY: dropping the connection closes the socket; dropping `streams` aborts its tasks.
                Ok(LineOrder::Drop) => return tracing::debug!(connection = id, "fault: dropped"),
                Ok(LineOrder::GoAway) => h2.graceful_shutdown(),
                Ok(LineOrder::Freeze) => valve.close(),
                Ok(LineOrder::Thaw) => valve.open(),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(connection = id, "missed {missed} fault orders");
                }
                // The sender lives as long as the shared state this task holds.
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = stopped(&mut stop) => {
                // Open streams (downchannels) are reset; the GOAWAY tells the client not to retry here.
                streams.shutdown().await;
                h2.abrupt_shutdown(h2::Reason::NO_ERROR);
                let _ = tokio::time::timeout(GOAWAY_FLUSH, async { while let Some(Ok(_)) = h2.accept().await {} }).await;
                return;
            }
            Some(_) = streams.join_next() => {}
            request = h2.accept() => match request {
                Some(Ok((request, respond))) => {
                    streams.spawn(routes::route(shared.clone(), connection.clone(), request, respond));
                }
                Some(Err(e)) => {
                    tracing::debug!(connection = id, "connection error: {e}");
                    break;
                }
                None => break,
            },
        }
    }
    streams.shutdown().await;
}
