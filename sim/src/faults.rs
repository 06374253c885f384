//! Fault injection: what goes wrong next between the sim and the device under test.
//!
//! Every fault is a [`Fault`], injected with [`SimHandle::inject`](crate::SimHandle::inject) or over
//! the admin surface. Some act at once on what is open now (connections, downchannels); the others
//! stand until their occasion comes (the next events, pings, connection attempts) or they are healed.
//!
//! # Admin API
//!
//! `POST /admin/fault` with one fault as a JSON object, named by `"fault"` (the variant in snake_case,
//! durations in milliseconds), answers `200 {"reached": n, "message_id": "…" | null}`: how many open
//! connections (downchannels, for the downchannel faults) it reached, and the messageId of the directive
//! it pushed. A body that is no fault gets `400 {"error": …}`. `drop_connections` and `offline` drop
//! the connection that asked too, so their answer may be lost.
//!
//! ```text
//! {"fault": "drop_connections"}                 TCP closed on every open connection, no GOAWAY
//! {"fault": "go_away"}                          graceful GOAWAY (NO_ERROR); open streams may finish,
//!                                               downchannels end
//! {"fault": "reset_downchannel"}                RST_STREAM (CANCEL) on every open downchannel
//! {"fault": "refuse_events", "status": 429, "count": 2}
//!                                               the next 2 events get 429 + System.Exception
//!                                               (400, 403, 429, 500 or 503)
//! {"fault": "stall_next_event_answer"}          the next event is read, its answer never sent
//! {"fault": "ping_delay", "delay_ms": 2000}     /ping answered 2 s late (0: at once again)
//! {"fault": "ping_drop"}                        /ping never answered
//! {"fault": "stall"} / {"fault": "unstall"}     freeze / thaw all I/O of the connections open now
//! {"fault": "offline"}                          open connections dropped, new ones closed at once;
//! {"fault": "offline", "lasting_ms": 5000}      … until "online", or for that long (the admin surface
//! {"fault": "online"}                           shares the listener: offline, it is unreachable too)
//! {"fault": "malformed_multipart"}              a downchannel part whose header line has no colon
//! {"fault": "oversized_directive", "bytes": 1048576}
//!                                               a valid Speaker.SetVolume padded with whitespace
//! {"fault": "invalid_json"}                     a directive with its closing brace cut off
//! {"fault": "schema_violation"}                 Speaker.SetVolume with volume "loud"
//! {"fault": "unknown_directive"}                Foo.Bar
//! {"fault": "revoke_authorization"}             System.RevokeAuthorization
//! {"fault": "duplicate_directive"}              Speaker.AdjustVolume twice with one messageId
//! {"fault": "expire_access_tokens"}             every AVS request gets 403 until a refresh
//! {"fault": "revoke_refresh_tokens"}            the next refresh gets invalid_grant
//! {"fault": "heal"}                             every standing fault cleared, connections thawed
//! ```
//!
//! What the faults did: `GET /admin/refused-events` lists the events answered with a fault
//! ([`RefusedEvent`]; they are not in `GET /admin/events`, which lists accepted events), and
//! `GET /admin/connection-attempts` answers `{"attempts": n}`, every TCP connection accepted so far,
//! refused ones included.

mod valve;

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::dialog::directive;
use crate::downchannel::directive_parts;
use crate::state::{DownchannelMessage, Shared};
use crate::wire::{reply_exception, writer};
pub(crate) use valve::{Valve, Valved};

/// One thing to go wrong. See the [module documentation](self) for the JSON of each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Closes the TCP connection of every open connection, without a GOAWAY.
    DropConnections,
    /// Sends a graceful GOAWAY (NO_ERROR) on every open connection, as AVS does about hourly: streams
    /// already open may finish, new ones are refused, downchannels end, and the device must reconnect.
    GoAway,
    /// Resets (RST_STREAM, CANCEL) every open downchannel; the connection stays up.
    ResetDownchannel,
    /// Answers the next `count` events with `status` and AVS's System.Exception body.
    RefuseEvents {
        status: Refusal,
        count: usize,
    },
    /// Reads the next event and never answers it.
    StallNextEventAnswer,
    /// Answers `/ping` this late from now on (zero: at once, as normal).
    PingDelay {
        #[serde(rename = "delay_ms", with = "millis")]
        delay: Duration,
    },
    /// Never answers `/ping` from now on.
    PingDrop,
    /// Freezes all I/O of every connection open now, HTTP/2 PING acks included.
    Stall,
    /// Thaws every frozen connection.
    Unstall,
    /// Drops every open connection and closes new ones at once, until [`Fault::Online`] or for `lasting`.
    Offline {
        #[serde(default, rename = "lasting_ms", with = "millis::option", skip_serializing_if = "Option::is_none")]
        lasting: Option<Duration>,
    },
    Online,
    /// Pushes a downchannel part whose header line has no colon.
    MalformedMultipart,
    /// Pushes a valid Speaker.SetVolume padded with whitespace to `bytes` (or its own size, if larger).
    OversizedDirective {
        bytes: usize,
    },
    /// Pushes a Speaker.SetVolume directive with its closing brace cut off.
    InvalidJson,
    /// Pushes a Speaker.SetVolume whose volume is "loud".
    SchemaViolation,
    /// Pushes the directive Foo.Bar, of an interface no device has.
    UnknownDirective,
    /// Pushes System.RevokeAuthorization.
    RevokeAuthorization,
    /// Pushes one Speaker.AdjustVolume twice, with the same messageId: doing it twice is visible.
    DuplicateDirective,
    /// Every access token issued so far becomes invalid.
    ExpireAccessTokens,
    /// Every refresh token is revoked: the next refresh gets `invalid_grant`.
    RevokeRefreshTokens,
    /// Clears every standing fault (event refusals and stalls, ping faults, offline) and thaws connections.
    Heal,
}

/// What an injected fault reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultOutcome {
    /// Open connections (downchannels, for the downchannel faults) it reached; 0 for a standing fault.
    pub reached: usize,
    /// The messageId of the directive it pushed.
    pub message_id: Option<String>,
}

/// How AVS refuses an event: the HTTP status and the exception code of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum Refusal {
    /// 400 INVALID_REQUEST_EXCEPTION: do not retry unchanged.
    BadRequest,
    /// 403 UNAUTHORIZED_REQUEST_EXCEPTION: refresh the token.
    Unauthorized,
    /// 429 THROTTLING_EXCEPTION: back off.
    Throttled,
    /// 500 INTERNAL_SERVICE_EXCEPTION: retry later.
    InternalError,
    /// 503, code "N/A": retry with backoff.
    Unavailable,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadRequest => StatusCode::BAD_REQUEST,
            Refusal::Unauthorized => StatusCode::FORBIDDEN,
            Refusal::Throttled => StatusCode::TOO_MANY_REQUESTS,
            Refusal::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `payload.code` of the System.Exception body (AVS "Exceptions" table).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::BadRequest => "INVALID_REQUEST_EXCEPTION",
            Refusal::Unauthorized => "UNAUTHORIZED_REQUEST_EXCEPTION",
            Refusal::Throttled => "THROTTLING_EXCEPTION",
            Refusal::InternalError => "INTERNAL_SERVICE_EXCEPTION",
            Refusal::Unavailable => "N/A",
        }
    }
}

impl TryFrom<u16> for Refusal {
    type Error = String;

    fn try_from(status: u16) -> Result<Self, String> {
        [Refusal::BadRequest, Refusal::Unauthorized, Refusal::Throttled, Refusal::InternalError, Refusal::Unavailable]
            .into_iter()
            .find(|r| r.status().as_u16() == status)
            .ok_or_else(|| format!("AVS refuses events with 400, 403, 429, 500 or 503, not {status}"))
    }
}

impl From<Refusal> for u16 {
    fn from(refusal: Refusal) -> u16 {
        refusal.status().as_u16()
    }
}

/// An event answered with a fault instead of being accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedEvent {
    pub namespace: String,
    pub name: String,
    pub message_id: String,
    /// The status it was answered with; `None`: it was never answered ([`Fault::StallNextEventAnswer`]).
    pub status: Option<u16>,
}

/// What a connection task is told to do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LineOrder {
    Drop,
    GoAway,
    Freeze,
    Thaw,
}

/// What an event meets instead of being accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventFault {
    Refuse(Refusal),
    Stall,
}

/// How the next `/ping` is answered.
pub(crate) enum PingAnswer {
    After(Duration),
    Never,
}

enum Offline {
    No,
    Until(Instant),
    Indefinitely,
}

/// The standing faults, and the line to every connection task.
pub(crate) struct Faults {
    orders: broadcast::Sender<LineOrder>,
    refusals: Mutex<VecDeque<(Refusal, usize)>>,
    stall_next_answer: AtomicBool,
    /// How late `/ping` is answered; `None`: never.
    ping: Mutex<Option<Duration>>,
    offline: Mutex<Offline>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            // Orders are rare and handled at once; a connection that still lags only misses old ones.
            orders: broadcast::channel(16).0,
            refusals: Mutex::default(),
            stall_next_answer: AtomicBool::new(false),
            ping: Mutex::new(Some(Duration::ZERO)),
            offline: Mutex::new(Offline::No),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Faults {
    /// A new connection's line: taken as it is accepted, so that no order passes it by.
    pub(crate) fn line(&self) -> broadcast::Receiver<LineOrder> {
        self.orders.subscribe()
    }

    fn order(&self, order: LineOrder) -> usize {
        self.orders.send(order).unwrap_or(0)
    }

    pub(crate) fn is_offline(&self) -> bool {
        let mut offline = lock(&self.offline);
        if matches!(*offline, Offline::Until(until) if Instant::now() >= until) {
            *offline = Offline::No;
        }
        !matches!(*offline, Offline::No)
    }

    pub(crate) fn ping_answer(&self) -> PingAnswer {
        lock(&self.ping).map_or(PingAnswer::Never, PingAnswer::After)
    }

    /// The fault the next event meets, if any; refusals come before a stalled answer.
    pub(crate) fn next_event_fault(&self) -> Option<EventFault> {
        let mut refusals = lock(&self.refusals);
        if let Some((refusal, left)) = refusals.front_mut() {
            let refusal = *refusal;
            *left -= 1;
            if *left == 0 {
                refusals.pop_front();
            }
            return Some(EventFault::Refuse(refusal));
        }
        self.stall_next_answer.swap(false, Ordering::Relaxed).then_some(EventFault::Stall)
    }

    fn heal(&self) {
        lock(&self.refusals).clear();
        self.stall_next_answer.store(false, Ordering::Relaxed);
        *lock(&self.ping) = Some(Duration::ZERO);
        *lock(&self.offline) = Offline::No;
    }
}

pub(crate) fn inject(shared: &Shared, fault: Fault) -> FaultOutcome {
    let faults = &shared.faults;
    let reached = |reached| FaultOutcome { reached, message_id: None };
    match fault {
        Fault::DropConnections => reached(faults.order(LineOrder::Drop)),
        Fault::GoAway => {
            let reached_connections = faults.order(LineOrder::GoAway);
            // As AVS does: the downchannel ends with the connection going away, so a device that is only
            // listening notices too; events already open on the connection still get their answers.
            shared.broadcast_downchannel(|| DownchannelMessage::End);
            reached(reached_connections)
        }
        Fault::ResetDownchannel => reached(shared.broadcast_downchannel(|| DownchannelMessage::Reset)),
        Fault::RefuseEvents { status, count } => {
            if count > 0 {
                lock(&faults.refusals).push_back((status, count));
            }
            reached(0)
        }
        Fault::StallNextEventAnswer => {
            faults.stall_next_answer.store(true, Ordering::Relaxed);
            reached(0)
        }
        Fault::PingDelay { delay } => {
            *lock(&faults.ping) = Some(delay);
            reached(0)
        }
        Fault::PingDrop => {
            *lock(&faults.ping) = None;
            reached(0)
        }
        Fault::Stall => reached(faults.order(LineOrder::Freeze)),
        Fault::Unstall => reached(faults.order(LineOrder::Thaw)),
        Fault::Offline { lasting } => {
            *lock(&faults.offline) = lasting.map_or(Offline::Indefinitely, |d| Offline::Until(Instant::now() + d));
            reached(faults.order(LineOrder::Drop))
        }
        Fault::Online => {
            *lock(&faults.offline) = Offline::No;
            reached(0)
        }
        Fault::MalformedMultipart => {
            let part = format!("\r\nno colon in this header line\r\n\r\n{{}}\r\n--{}", writer().boundary());
            let part = Bytes::from(part);
            reached(shared.broadcast_downchannel(|| DownchannelMessage::Data(part.clone())))
        }
        Fault::OversizedDirective { bytes } => {
            let set_volume = directive("Speaker", "SetVolume", None, json!({"volume": 50}));
            let mut text = set_volume.to_string();
            text.extend(std::iter::repeat_n(' ', bytes.saturating_sub(text.len())));
            push(shared, &set_volume, writer().stream_json_part(text.as_bytes()))
        }
        Fault::InvalidJson => {
            let set_volume = directive("Speaker", "SetVolume", None, json!({"volume": 50}));
            let text = set_volume.to_string();
            push(shared, &set_volume, writer().stream_json_part(&text.as_bytes()[..text.len() - 1]))
        }
        Fault::SchemaViolation => {
            let set_volume = directive("Speaker", "SetVolume", None, json!({"volume": "loud"}));
            push(shared, &set_volume, directive_parts(&set_volume, &[]))
        }
        Fault::UnknownDirective => {
            let unknown = directive("Foo", "Bar", None, json!({}));
            push(shared, &unknown, directive_parts(&unknown, &[]))
        }
        Fault::RevokeAuthorization => {
            let revoke = directive("System", "RevokeAuthorization", None, json!({}));
            push(shared, &revoke, directive_parts(&revoke, &[]))
        }
        Fault::DuplicateDirective => {
            let adjust = directive("Speaker", "AdjustVolume", None, json!({"volume": 10}));
            let once = directive_parts(&adjust, &[]);
            push(shared, &adjust, [once.clone(), once].concat().into())
        }
        Fault::ExpireAccessTokens => {
            shared.lwa().expire_access_tokens();
            reached(0)
        }
        Fault::RevokeRefreshTokens => {
            shared.lwa().revoke_refresh_tokens();
            reached(0)
        }
        Fault::Heal => {
            faults.heal();
            reached(faults.order(LineOrder::Thaw))
        }
    }
}

/// Pushes `parts` (carrying `directive`, however mangled) on every open downchannel.
fn push(shared: &Shared, directive: &Value, parts: Bytes) -> FaultOutcome {
    FaultOutcome {
        reached: shared.broadcast_downchannel(|| DownchannelMessage::Data(parts.clone())),
        message_id: directive["directive"]["header"]["messageId"].as_str().map(str::to_string),
    }
}

/// Answers an event (its metadata already read) with the fault it met, and records it as refused.
pub(crate) async fn answer_event(
    shared: &Shared,
    metadata: &Value,
    fault: EventFault,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let header = &metadata["event"]["header"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let refusal = match fault {
        EventFault::Refuse(refusal) => Some(refusal),
        EventFault::Stall => None,
    };
    let refused = RefusedEvent {
        namespace: text(&header["namespace"]),
        name: text(&header["name"]),
        message_id: text(&header["messageId"]),
        status: refusal.map(u16::from),
    };
    tracing::info!("fault: {}.{} ({}) meets {fault:?}", refused.namespace, refused.name, refused.message_id);
    shared.record(|r| r.refused_events.push(refused));
    match refusal {
        Some(refusal) => reply_exception(respond, refusal.status(), refusal.code(), "injected by avs-sim"),
        None => hold(respond).await,
    }
}

/// Never answers: holds the stream until the device resets it (or its connection ends).
pub(crate) async fn hold(mut respond: SendResponse<Bytes>) -> Result<(), h2::Error> {
    poll_fn(|cx| respond.poll_reset(cx)).await.map(|_| ())
}

/// Durations as whole milliseconds in the admin JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }

    pub(super) mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Option::<u64>::deserialize(d).map(|ms| ms.map(Duration::from_millis))
        }
    }
}
