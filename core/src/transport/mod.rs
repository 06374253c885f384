//! The one HTTP/2 connection to AVS: connect, open the downchannel, synchronise state, send events,
//! keep the connection alive, and reconnect with backoff when anything breaks — without losing an event.
//!
//! Ownership: `Transport::run` is one task; everything a connection starts (the h2 driver, the
//! downchannel reader, event streams, keep-alive) lives in that connection's `JoinSet` and is aborted
//! when the connection ends. Events in flight on a connection that died go back to the front of the queue.

mod backoff;
mod event_stream;
pub mod http2;
mod receipts;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

pub use backoff::{Backoff, ReconnectPolicy};
use bytes::Bytes;
use h2::client::SendRequest;
use h2::RecvStream;
use rustls::ClientConfig;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::auth::{AuthError, Authorizer};
use crate::config::Limits;
use crate::directives::Router;
use crate::events::{empty_payload, exception_encountered, EventReceiver, EventSender, OutgoingEvent};
use crate::media::AttachmentStore;
use crate::multipart::{self, boundary_from_content_type, MultipartError, MultipartParser, Part};
use crate::observe::{Observer, RuntimeEvent};
use crate::outbox::Outbox;
use crate::plugins::PluginHost;
use crate::protocol;
use event_stream::EventError;
use http2::{Endpoint, Http2Error};
pub(crate) use receipts::Receipts;

/// Timing of the connection; the defaults are AVS's.
#[derive(Debug, Clone)]
pub struct Timing {
    pub connect: Duration,
    /// `GET /ping` after this much inactivity (AVS: at least every 5 minutes).
    pub ping_after_idle: Duration,
    /// HTTP/2 PING frames every this often, so a dead connection is noticed even while idle.
    pub keepalive: Duration,
    /// How long a ping (either kind) may take before the connection counts as dead.
    pub ping_timeout: Duration,
    pub answer: Duration,
    pub reconnect: ReconnectPolicy,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            connect: Duration::from_secs(60),
            ping_after_idle: Duration::from_secs(300),
            // A dead connection is noticed within keepalive + ping_timeout = 25 s, even while idle.
            keepalive: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(10),
            answer: Duration::from_secs(60),
            reconnect: ReconnectPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Http2(#[from] Http2Error),
    #[error("malformed multipart: {0}")]
    Multipart(#[from] MultipartError),
    #[error("an event's answer has more than {0} parts")]
    TooManyParts(usize),
}

/// Directives the runtime holds at once (routed, queued for a dialog or a plugin, running); the next
/// directive part waits for one to finish, and with it the HTTP/2 stream, so that a cloud pushing faster
/// than the plugins work fills its flow-control window instead of this device's memory. An eighth of the
/// event queue: a directive is read only while half the queue is free, and the directives in flight cause
/// a few events each at most (an AudioPlayer.Play replacing a playing item: PlaybackStopped,
/// PlaybackStarted, PlaybackNearlyFinished, a progress report), so what they cause always finds room.
pub(crate) fn directives_in_flight(limits: &Limits) -> usize {
    (limits.max_queued_events / 8).max(1)
}

/// Where directives and attachments arriving on any stream go.
pub(crate) struct Inbound {
    pub router: Router,
    pub attachments: AttachmentStore,
    pub in_flight: Arc<Semaphore>,
    /// Directives wait for room here for the events they will cause.
    pub events: EventSender,
    pub limits: Limits,
}

impl Inbound {
    /// Reads a multipart/related body to its end, delivering each part as soon as it is complete. An
    /// event's answer may hold at most `max_parts` parts; the downchannel, endless, is paced instead.
    pub(crate) async fn read_multipart(
        &self,
        boundary: &str,
        body: &mut RecvStream,
        max_parts: Option<usize>,
    ) -> Result<(), InboundError> {
        let limits = multipart::Limits {
            max_part_bytes: self.limits.max_attachment_bytes.max(self.limits.max_directive_bytes),
            ..multipart::Limits::default()
        };
        let mut parser = MultipartParser::with_limits(boundary, limits);
        let mut parts = 0;
        // Plugins are woken once per chunk read, and before any wait, so never left with work unwoken.
        let _wake = WakePlugins(&self.router);
        while let Some(chunk) = http2::next_chunk(body).await? {
            parser.push(&chunk)?;
            while let Some(part) = parser.next_part()? {
                parts += 1;
                if let Some(max) = max_parts.filter(|max| parts > *max) {
                    return Err(InboundError::TooManyParts(max));
                }
                self.deliver(part).await;
            }
            self.router.wake_plugins();
        }
        parser.finish()?;
        Ok(())
    }

    async fn deliver(&self, part: Part) {
        let content_type = part.headers.content_type.as_deref().unwrap_or("");
        let is_json = content_type.starts_with("application/json")
            || (content_type.is_empty() && part.body.first() == Some(&b'{'));
        if is_json {
            if part.body.len() > self.limits.max_directive_bytes {
                let why = format!(
                    "a directive of {} bytes exceeds the limit of {} bytes",
                    part.body.len(),
                    self.limits.max_directive_bytes
                );
                tracing::warn!("directive refused: {why}");
                self.events.send_or_log(exception_encountered(&part.body, "UNEXPECTED_INFORMATION_RECEIVED", &why));
                return;
            }
            let room = self.limits.max_queued_events / 2;
            if !self.events.has_room(room) {
                self.router.wake_plugins();
                self.events.room_for(room).await;
            }
            let permit = match self.in_flight.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    self.router.wake_plugins();
                    self.in_flight.clone().acquire_owned().await.expect("the in-flight semaphore is never closed")
                }
            };
            self.router.route(part.body, permit);
        } else if let Some(id) = &part.headers.content_id {
            self.attachments.insert(id, part.body);
        } else {
            tracing::warn!(
                content_type,
                bytes = part.body.len(),
                "part that is neither a directive nor an attachment ignored"
            );
        }
    }
}

/// Wakes the plugins a reader queued directives for, however the reading ends.
struct WakePlugins<'a>(&'a Router);

impl Drop for WakePlugins<'_> {
    fn drop(&mut self) {
        self.0.wake_plugins();
    }
}

/// How long an ending connection waits for the answer to the event in flight.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// What a finished connection task means for the connection.
enum AfterTask {
    Continue,
    /// AVS answered an event 429 or 5xx: the next event waits a backoff step, on the same connection.
    Pause,
    End(String),
}

/// Why a connection ended.
enum Ended {
    Shutdown,
    /// No tokens any more (revoked): the runtime must link the device again before reconnecting.
    Unlinked,
    Lost(String),
}

enum ConnectionTask {
    Driver(Result<(), h2::Error>),
    Downchannel(Result<(), InboundError>),
    Keepalive(String),
    Event(Box<OutgoingEvent>, Result<u16, EventError>),
}

pub(crate) struct Transport {
    pub endpoint: Endpoint,
    pub tls: Arc<ClientConfig>,
    pub timing: Timing,
    pub auth: Authorizer,
    pub inbound: Arc<Inbound>,
    pub plugins: Arc<PluginHost>,
    pub observer: Observer,
    pub events: EventReceiver,
    /// Where events AVS refused for good are recorded.
    pub outbox: Outbox,
    /// Must-deliver events leave the outbox once AVS answered them, and the observer hears of it.
    pub receipts: Receipts,
    /// Events to send before any new one: those whose connection died under them.
    pub retry: VecDeque<OutgoingEvent>,
    pub connections: u64,
    /// Once connected, the code that ran to start and connect leaves memory
    /// (`process::trim_executable_code`).
    pub trim_code_pages: bool,
}

impl Transport {
    /// Keeps a connection up until `shutdown` (or until the device is no longer linked); hands itself back (with its unsent events) so that the
    /// runtime can connect again later, e.g. after linking anew.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Self {
        let mut backoff = Backoff::new(self.timing.reconnect.clone());
        loop {
            backoff.attempt();
            let ended = self.connection(&mut shutdown, &mut backoff).await;
            self.receipts.settle().await;
            let reason = match ended {
                Ended::Shutdown => break,
                Ended::Unlinked => {
                    self.observer.emit(RuntimeEvent::Disconnected { reason: "the device is no longer linked".into() });
                    break;
                }
                Ended::Lost(reason) => reason,
            };
            let delay = backoff.next_delay();
            tracing::warn!("disconnected: {reason}; reconnecting in {} ms", delay.as_millis());
            self.observer.emit(RuntimeEvent::Disconnected { reason });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = crate::tasks::raised(&mut shutdown) => break,
            }
        }
        self
    }

    async fn token(&self) -> Result<String, Ended> {
        match self.auth.access_token().await {
            Ok(token) => Ok(token.expose().to_string()),
            Err(AuthError::NotLinked) => Err(Ended::Unlinked),
            Err(e) => Err(Ended::Lost(format!("authorization: {e}"))),
        }
    }

    /// One connection, from dialling to its end.
    async fn connection(&mut self, shutdown: &mut watch::Receiver<bool>, backoff: &mut Backoff) -> Ended {
        let token = match self.token().await {
            Ok(token) => token,
            Err(ended) => return ended,
        };
        let (send_request, mut connection) =
            match http2::connect(&self.endpoint, self.tls.clone(), self.timing.connect).await {
                Ok(c) => c,
                Err(e) => return Ended::Lost(e.to_string()),
            };
        let mut tasks: JoinSet<ConnectionTask> = JoinSet::new();
        let ping_pong = connection.ping_pong();
        tasks.spawn(async move { ConnectionTask::Driver(connection.await) });
        if let Some(mut ping_pong) = ping_pong {
            let (every, timeout) = (self.timing.keepalive, self.timing.ping_timeout);
            tasks.spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match tokio::time::timeout(timeout, ping_pong.ping(h2::Ping::opaque())).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return ConnectionTask::Keepalive(format!("HTTP/2 PING failed: {e}")),
                        Err(_) => {
                            return ConnectionTask::Keepalive(format!("no HTTP/2 PING answer within {timeout:?}"))
                        }
                    }
                }
            });
        }

        if let Err(reason) = self.open_downchannel(&send_request, &token, &mut tasks).await {
            return Ended::Lost(reason);
        }
        self.connections += 1;

        // Nothing else may go out before SynchronizeState has been accepted on this connection.
        let mut sync = OutgoingEvent::new(protocol::SYSTEM, protocol::SYNCHRONIZE_STATE, empty_payload());
        sync.with_context = true;
        let context = self.plugins.context().await;
        let synced = event_stream::send(
            send_request.clone(),
            &self.endpoint,
            &token,
            &mut sync,
            Some(context),
            &self.inbound,
            self.timing.answer,
        )
        .await;
        match synced {
            Ok(status) => self.receipts.answered(&sync, status),
            Err(e) => {
                if e.status() == Some(403) {
                    self.refresh_after_403().await;
                }
                return Ended::Lost(format!("SynchronizeState failed: {e}"));
            }
        }
        backoff.connected();
        if self.trim_code_pages {
            crate::process::trim_executable_code(Vec::new()).await;
        }
        self.observer.emit(RuntimeEvent::Connected { connection: self.connections });
        tracing::info!(connection = self.connections, "connected to {}", self.endpoint.authority);

        let mut last_activity = Instant::now();
        // Events reach AVS in the order plugins sent them (PlaybackStarted before PlaybackNearlyFinished):
        // concurrent streams would be processed in any order, so the next event waits until the one in
        // flight is answered — as the AVS Device SDK does. An event streaming audio (Recognize) is
        // answered only after the user stops speaking, so it goes beside the others, not in their way.
        // A copy of the event in flight: if the connection ends before its answer (GOAWAY, a dead
        // network), it is sent again on the next one rather than lost with the connection's tasks.
        let mut in_flight: Option<OutgoingEvent> = None;
        // After a 429 or 5xx, events wait for a backoff step: reconnecting would only add to AVS's load.
        let mut throttle = Backoff::new(self.timing.reconnect.clone());
        let mut paused_until: Option<Instant> = None;
        let reason = loop {
            if in_flight.is_none() {
                self.receipts.write();
            }
            let ping_due = last_activity + self.timing.ping_after_idle;
            tokio::select! {
                _ = crate::tasks::raised(shutdown) => {
                    if let Some(event) = in_flight {
                        if !self.await_answer(&mut tasks, &event.message_id).await {
                            tracing::info!(event = ?event, "stopping before its answer (a must-deliver event goes again after the restart)");
                        }
                    }
                    return Ended::Shutdown;
                }
                _ = sleep_until_some(paused_until), if paused_until.is_some() => paused_until = None,
                written = self.receipts.written() => self.receipts.done(written),
                event = next_event(&mut self.retry, &mut self.events), if in_flight.is_none() && paused_until.is_none() => {
                    let Some(event) = event else { return Ended::Shutdown };
                    last_activity = Instant::now();
                    in_flight = self.spawn_event(&mut tasks, &send_request, &token, event);
                }
                Some(done) = tasks.join_next() => {
                    // A task that panicked may have been the event in flight: better out of order than stuck.
                    let Ok(done) = done else { in_flight = None; continue };
                    if let ConnectionTask::Event(event, result) = &done {
                        if in_flight.as_ref().is_some_and(|e| e.message_id == event.message_id) {
                            in_flight = None;
                        }
                        // The next event goes out before this one's bookkeeping (`Receipts`): one event
                        // at a time makes the round trip the pace of an event-bound run.
                        if result.is_ok() && in_flight.is_none() && paused_until.is_none() {
                            if let Some(event) = self.retry.pop_front().or_else(|| self.events.try_recv()) {
                                last_activity = Instant::now();
                                in_flight = self.spawn_event(&mut tasks, &send_request, &token, event);
                            }
                        }
                    }
                    let answered = matches!(done, ConnectionTask::Event(_, Ok(_)));
                    match self.task_done(done).await {
                        AfterTask::Continue if answered => throttle.reset(),
                        AfterTask::Continue => {}
                        AfterTask::Pause => {
                            let delay = throttle.next_delay();
                            tracing::warn!("AVS is throttling or failing: the next event waits {} ms", delay.as_millis());
                            paused_until = Some(Instant::now() + delay);
                        }
                        AfterTask::End(reason) => break reason,
                    }
                }
                _ = tokio::time::sleep_until(ping_due) => {
                    if let Err(reason) = self.ping(&send_request, &token).await {
                        break reason;
                    }
                    last_activity = Instant::now();
                }
            }
        };
        // After a GOAWAY the stream in flight may still be answered: only an unanswered event goes again.
        if let Some(event) = in_flight {
            if !self.await_answer(&mut tasks, &event.message_id).await {
                self.requeue(event, &reason);
            }
        }
        Ended::Lost(reason)
    }

    /// Gives the event in flight a moment for its answer when the connection ends or the runtime stops:
    /// one AVS accepted but the device did not hear of would be sent twice. True if it was answered.
    async fn await_answer(&mut self, tasks: &mut JoinSet<ConnectionTask>, message_id: &str) -> bool {
        let answered = async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(ConnectionTask::Event(event, result)) = done {
                    if let Ok(status) = &result {
                        self.receipts.answered(&event, *status);
                    }
                    if event.message_id == message_id {
                        return result.is_ok();
                    }
                }
            }
            false
        };
        match tokio::time::timeout(ANSWER_GRACE, answered).await {
            Ok(answered) => answered,
            Err(_) => {
                tracing::warn!("no answer to event {message_id} before the connection ended");
                false
            }
        }
    }

    async fn open_downchannel(
        &self,
        send_request: &SendRequest<Bytes>,
        token: &str,
        tasks: &mut JoinSet<ConnectionTask>,
    ) -> Result<(), String> {
        let request = http::Request::get(self.endpoint.uri(protocol::DIRECTIVES_PATH))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(())
            .map_err(|e| e.to_string())?;
        let response = async {
            let mut ready = send_request.clone().ready().await?;
            let (response, _) = ready.send_request(request, true)?;
            response.await
        };
        let response = match tokio::time::timeout(self.timing.connect, response).await {
            Err(_) => return Err("the downchannel did not open in time".into()),
            Ok(Err(e)) => return Err(format!("downchannel: {e}")),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if status == 403 {
            self.refresh_after_403().await;
            return Err("downchannel refused (403): access token refreshed".into());
        }
        if status != 200 {
            return Err(format!("downchannel answered HTTP {status}"));
        }
        let content_type =
            response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let Some(boundary) = boundary_from_content_type(content_type) else {
            return Err(format!("downchannel without a multipart boundary ({content_type:?})"));
        };
        let inbound = self.inbound.clone();
        let mut body = response.into_body();
        tasks.spawn(
            async move { ConnectionTask::Downchannel(inbound.read_multipart(&boundary, &mut body, None).await) },
        );
        Ok(())
    }

    /// Sends `event` on its own stream; returns the copy to send again should the connection end before
    /// its answer (none for an event streaming audio).
    fn spawn_event(
        &self,
        tasks: &mut JoinSet<ConnectionTask>,
        send_request: &SendRequest<Bytes>,
        token: &str,
        mut event: OutgoingEvent,
    ) -> Option<OutgoingEvent> {
        let replay = event.replay_copy();
        let (send_request, endpoint, token) = (send_request.clone(), self.endpoint.clone(), token.to_string());
        let (inbound, plugins, timeout) = (self.inbound.clone(), self.plugins.clone(), self.timing.answer);
        tasks.spawn(async move {
            let context = if event.with_context { Some(plugins.context().await) } else { None };
            let result =
                event_stream::send(send_request, &endpoint, &token, &mut event, context, &inbound, timeout).await;
            ConnectionTask::Event(Box::new(event), result)
        });
        replay
    }

    /// Handles a finished connection task: what it means for the connection.
    async fn task_done(&mut self, done: ConnectionTask) -> AfterTask {
        match done {
            ConnectionTask::Driver(Ok(())) => AfterTask::End("the server closed the connection".into()),
            ConnectionTask::Driver(Err(e)) => AfterTask::End(format!("connection error: {e}")),
            ConnectionTask::Downchannel(Ok(())) => AfterTask::End("the server ended the downchannel".into()),
            ConnectionTask::Downchannel(Err(e)) => AfterTask::End(format!("downchannel: {e}")),
            ConnectionTask::Keepalive(reason) => AfterTask::End(reason),
            ConnectionTask::Event(event, Ok(status)) => {
                self.receipts.answered(&event, status);
                AfterTask::Continue
            }
            ConnectionTask::Event(event, Err(error)) => self.event_failed(*event, error).await,
        }
    }

    async fn event_failed(&mut self, event: OutgoingEvent, error: EventError) -> AfterTask {
        let failed = |error: &str| RuntimeEvent::EventFailed {
            namespace: event.namespace.clone(),
            name: event.name.clone(),
            message_id: event.message_id.clone(),
            error: error.to_string(),
        };
        match &error {
            EventError::Status { status: 403, .. } => {
                self.refresh_after_403().await;
                self.requeue(event, "403");
                AfterTask::End("event refused (403): access token refreshed".into())
            }
            EventError::Status { status, .. } if *status == 429 || *status >= 500 => {
                self.requeue(event, &format!("event answered HTTP {status}"));
                AfterTask::Pause
            }
            EventError::Status { status, body } => {
                // 400 and the like: the same event would be refused again, so it is not retried.
                tracing::error!(event = ?event, "AVS refused the event (HTTP {status}), not retried: {body}");
                if event.must_deliver {
                    if let Err(e) = self.outbox.rejected(&event, *status, body) {
                        tracing::error!(event = ?event, "recording the rejected event: {e}");
                    }
                }
                self.observer.emit(failed(&error.to_string()));
                AfterTask::Continue
            }
            EventError::Inbound(e) => {
                // AVS accepted the event (200) and then sent an answer that breaks a limit or the format:
                // the event is delivered, the rest of its answer is lost.
                tracing::error!(event = ?event, "the answer to the event was refused: {e}");
                self.receipts.answered(&event, 200);
                AfterTask::Continue
            }
            EventError::Connection(_) | EventError::Timeout(_) => {
                let reason = error.to_string();
                self.requeue(event, &reason);
                AfterTask::End(reason)
            }
            _ => {
                tracing::error!(event = ?event, "event failed: {error}");
                self.observer.emit(failed(&error.to_string()));
                AfterTask::Continue
            }
        }
    }

    /// Puts an event back at the front of the queue for the next connection. An event whose audio was
    /// already streamed cannot be replayed: the moment has passed, so it is reported as failed.
    fn requeue(&mut self, event: OutgoingEvent, why: &str) {
        if event.name == protocol::SYNCHRONIZE_STATE && event.namespace == protocol::SYSTEM {
            return; // every connection sends its own
        }
        if !event.replayable {
            tracing::warn!(event = ?event, "not resent: its audio was already streamed ({why})");
            self.observer.emit(RuntimeEvent::EventFailed {
                namespace: event.namespace,
                name: event.name,
                message_id: event.message_id,
                error: format!("connection lost while streaming audio: {why}"),
            });
            return;
        }
        tracing::info!(event = ?event, "will resend after reconnecting ({why})");
        self.retry.push_front(event);
    }

    async fn refresh_after_403(&self) {
        if let Err(e) = self.auth.refresh().await {
            tracing::error!("token refresh after 403 failed: {e}");
        }
    }

    async fn ping(&self, send_request: &SendRequest<Bytes>, token: &str) -> Result<(), String> {
        let request = http::Request::get(self.endpoint.uri(protocol::PING_PATH))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(())
            .map_err(|e| e.to_string())?;
        let ping = async {
            let mut ready = send_request.clone().ready().await?;
            let (response, _) = ready.send_request(request, true)?;
            response.await
        };
        match tokio::time::timeout(self.timing.ping_timeout, ping).await {
            Ok(Ok(response)) if response.status().as_u16() == 204 => Ok(()),
            Ok(Ok(response)) if response.status().as_u16() == 403 => {
                self.refresh_after_403().await;
                Err("ping refused (403): access token refreshed".into())
            }
            Ok(Ok(response)) => Err(format!("ping answered HTTP {}", response.status())),
            Ok(Err(e)) => Err(format!("ping failed: {e}")),
            Err(_) => Err(format!("no ping answer within {:?}", self.timing.ping_timeout)),
        }
    }
}

/// Resolves at `until`; never without one (the caller's guard keeps that branch off).
async fn sleep_until_some(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

async fn next_event(retry: &mut VecDeque<OutgoingEvent>, events: &mut EventReceiver) -> Option<OutgoingEvent> {
    if let Some(event) = retry.pop_front() {
        return Some(event);
    }
    events.recv().await
}
