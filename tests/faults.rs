//! The fault catalogue of avs-sim, one test each: after every fault the device is connected again,
//! SynchronizeState went first on the new connection, a directive sent after the fault is handled, and
//! avs-sim accepted every must-deliver event exactly once.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use avs_core::observe::RuntimeEvent;
use avs_core::outbox::Outbox;
use avs_core::runtime::RuntimeOptions;
use avs_core::storage::Storage;
use avs_core::transport::{ReconnectPolicy, Timing};
use avs_sim::{Fault, Refusal};
use common::{built_plugin_dir, payload, test_options, Device, WAIT};
use serde_json::json;

/// Timing on a faster clock, so that detecting a dead connection takes a second, not 25.
fn fast_options() -> RuntimeOptions {
    RuntimeOptions {
        timing: Timing {
            keepalive: Duration::from_millis(500),
            ping_timeout: Duration::from_millis(500),
            ping_after_idle: Duration::from_secs(300),
            answer: Duration::from_secs(3),
            reconnect: ReconnectPolicy::default().compressed(20),
            ..Timing::default()
        },
        ..test_options()
    }
}

async fn device() -> Device {
    Device::connect_with(built_plugin_dir(), |_| {}, fast_options(), |_| {}).await
}

async fn device_with(options: RuntimeOptions, configure: impl FnOnce(&mut avs_core::config::Config)) -> Device {
    Device::connect_with(built_plugin_dir(), |_| {}, options, configure).await
}

/// The user turns the volume knob: a must-deliver Speaker.VolumeChanged, whatever the downchannel does.
fn turn_knob(device: &Device, volume: i64) {
    device.runtime().user_event("user.volume", &json!({ "volume": volume }));
}

fn set_volume(device: &Device, message_id: &str, volume: i64) {
    device.sim.push_directive(
        json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": message_id},
                             "payload": {"volume": volume}}}),
        vec![],
    );
}

/// The accepted VolumeChanged events carrying `volume`.
fn volume_changes(device: &Device, volume: i64) -> usize {
    device.sim.events().iter().filter(|e| e.name == "VolumeChanged" && payload(e)["volume"] == volume).count()
}

/// What every test ends with: connection `connection` (or a later one) is up, it began with
/// SynchronizeState, a directive is handled on it, and avs-sim accepted no event twice.
async fn recovers(device: &mut Device, connection: u64) {
    if connection > 1 {
        device.wait_for(|e| matches!(e, RuntimeEvent::Connected { connection: c } if *c >= connection)).await;
    }
    let sync = device.sim_event(|e| e.name == "SynchronizeState" && e.connection as usize >= connection as usize).await;
    assert_eq!(sync.seq_on_connection, 0, "SynchronizeState first on connection {}", sync.connection);
    let volume = 40 + connection as i64;
    set_volume(device, &format!("after-fault-{connection}"), volume);
    device.sim_event(|e| e.name == "VolumeChanged" && payload(e)["volume"] == volume).await;
    accepted_once(device);
    assert!(device.sim.violations().is_empty(), "{:?}", device.sim.violations());
}

fn accepted_once(device: &Device) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for event in device.sim.events() {
        *seen.entry(event.message_id).or_default() += 1;
    }
    let twice: Vec<_> = seen.into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "accepted more than once: {twice:?}");
}

async fn disconnected(device: &mut Device) -> String {
    match device.wait_for(|e| matches!(e, RuntimeEvent::Disconnected { .. })).await {
        RuntimeEvent::Disconnected { reason } => reason,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_tcp_connection() {
    let mut device = device().await;
    assert_eq!(device.sim.inject(Fault::DropConnections).reached, 1);
    disconnected(&mut device).await;
    turn_knob(&device, 11);
    recovers(&mut device, 2).await;
    assert_eq!(volume_changes(&device, 11), 1);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_loses_no_event() {
    let mut device = device().await;
    device.sim.inject(Fault::GoAway);
    // Sent into the connection that is going away: refused there, delivered on the next one.
    turn_knob(&device, 12);
    disconnected(&mut device).await;
    recovers(&mut device, 2).await;
    assert_eq!(volume_changes(&device, 12), 1);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_downchannel() {
    let mut device = device().await;
    assert_eq!(device.sim.inject(Fault::ResetDownchannel).reached, 1);
    let reason = disconnected(&mut device).await;
    assert!(reason.contains("downchannel"), "{reason}");
    recovers(&mut device, 2).await;
    device.stop().await;
}

/// 403, 429, 500 and 503: the event is sent again (after a token refresh and a reconnect for 403, after a
/// backoff step on the same connection otherwise) and accepted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_events_are_retried_until_accepted() {
    let mut device = device().await;
    for (n, refusal) in [Refusal::Unauthorized, Refusal::Throttled, Refusal::InternalError, Refusal::Unavailable]
        .into_iter()
        .enumerate()
    {
        let connection = device.sim.events().last().unwrap().connection;
        device.sim.inject(Fault::RefuseEvents { status: refusal, count: 1 });
        let volume = 20 + n as i64;
        turn_knob(&device, volume);
        let accepted = device.sim_event(|e| e.name == "VolumeChanged" && payload(e)["volume"] == volume).await;
        // Only a 403 is about the connection (its token); throttling and failures are waited out on it.
        assert_eq!(accepted.connection == connection, refusal != Refusal::Unauthorized, "{refusal:?}");
        let refused = device.sim.refused_events();
        assert_eq!(refused.len(), n + 1, "{refused:?}");
        assert_eq!(refused[n].status, Some(u16::from(refusal)));
        assert_eq!(volume_changes(&device, volume), 1);
    }
    recovers(&mut device, 2).await;
    device.stop().await;
}

/// 400: the same event would be refused again, so it is not retried; it is recorded as rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_refused_as_malformed_is_recorded_not_retried() {
    let mut device = device().await;
    device.sim.inject(Fault::RefuseEvents { status: Refusal::BadRequest, count: 1 });
    turn_knob(&device, 13);
    let failed = device.wait_for(|e| matches!(e, RuntimeEvent::EventFailed { .. })).await;
    let RuntimeEvent::EventFailed { name, message_id, error, .. } = failed else { unreachable!() };
    assert_eq!(name, "VolumeChanged");
    assert!(error.contains("400"), "{error}");
    turn_knob(&device, 14);
    device.sim_event(|e| e.name == "VolumeChanged" && payload(e)["volume"] == 14).await;
    device.wait_for(|e| matches!(e, RuntimeEvent::EventSent { name, .. } if name == "VolumeChanged")).await;
    assert_eq!(volume_changes(&device, 13), 0, "not retried");
    let outbox = Outbox::open(Storage::open(&device.dir.path().join("device/avs.db")).unwrap()).unwrap();
    let rejected = outbox.rejected_events().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!((rejected[0].message_id.as_str(), rejected[0].status), (message_id.as_str(), 400));
    assert!(rejected[0].answer.contains("INVALID_REQUEST_EXCEPTION"), "{}", rejected[0].answer);
    let left: Vec<_> = outbox.pending().unwrap().into_iter().map(|e| format!("{e:?} {}", e.payload.get())).collect();
    assert!(left.is_empty(), "nothing left to deliver: {left:?}");
    // The connection stayed up throughout.
    recovers(&mut device, 1).await;
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_pings() {
    let mut options = fast_options();
    options.timing.ping_after_idle = Duration::from_millis(300);
    let mut device = device_with(options, |_| {}).await;
    device.sim.inject(Fault::PingDrop);
    let reason = disconnected(&mut device).await;
    assert!(reason.contains("no ping answer"), "{reason}");
    device.sim.inject(Fault::Heal);
    recovers(&mut device, 2).await;
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_pings() {
    let mut options = fast_options();
    options.timing.ping_after_idle = Duration::from_millis(300);
    let mut device = device_with(options, |_| {}).await;
    device.sim.inject(Fault::PingDelay { delay: Duration::from_secs(2) });
    let reason = disconnected(&mut device).await;
    assert!(reason.contains("no ping answer"), "{reason}");
    device.sim.inject(Fault::PingDelay { delay: Duration::ZERO });
    recovers(&mut device, 2).await;
    device.stop().await;
}

/// A connection that silently stops carrying anything (Wi-Fi gone, NAT entry expired) is noticed by
/// HTTP/2 PING while idle, and the device reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_is_noticed_while_idle() {
    let mut device = device().await;
    device.sim.inject(Fault::Stall);
    let reason = disconnected(&mut device).await;
    assert!(reason.contains("PING"), "{reason}");
    recovers(&mut device, 2).await;
    device.sim.inject(Fault::Heal);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_answer_never_comes_is_sent_again() {
    let mut device = device().await;
    device.sim.inject(Fault::StallNextEventAnswer);
    turn_knob(&device, 15);
    let reason = disconnected(&mut device).await;
    assert!(reason.contains("no answer"), "{reason}");
    recovers(&mut device, 2).await;
    assert_eq!(volume_changes(&device, 15), 1);
    let stalled = device.sim.refused_events();
    assert_eq!((stalled.len(), stalled[0].status), (1, None), "{stalled:?}");
    device.stop().await;
}

/// A long outage on a clock running 100 times faster (10 minutes are 6 s): never more than 50 attempts
/// in any 10 minutes, and back at the first attempt once avs-sim is reachable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_keeps_to_the_attempt_budget_and_ends_at_the_first_attempt_after_it() {
    let policy = ReconnectPolicy::default().compressed(100);
    let mut options = fast_options();
    options.timing.reconnect = policy.clone();
    let mut device = device_with(options, |_| {}).await;
    device.sim.inject(Fault::Offline { lasting: None });
    disconnected(&mut device).await;
    // Going on trying for half an hour of the compressed clock: some 90 attempts at the 20 s step.
    let attempts = device.sim.connection_attempts() + 80;
    let attempts = device.sim.wait_for_connection_attempts(attempts, Duration::from_secs(60)).await.unwrap();
    for (i, first) in attempts.iter().enumerate() {
        let in_window = attempts[i..].iter().take_while(|t| **t - *first < policy.window).count();
        assert!(in_window <= policy.max_attempts, "{in_window} attempts within 10 (compressed) minutes");
    }
    // Counted by outcome, not by attempt: one may be on its way while the network comes back.
    let before = device.sim.connections_let_through();
    device.sim.inject(Fault::Online);
    recovers(&mut device, 2).await;
    assert_eq!(device.sim.connections_let_through(), before + 1, "the first attempt after the outage got through");
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_multipart() {
    let mut device = device().await;
    device.sim.inject(Fault::MalformedMultipart);
    let reason = disconnected(&mut device).await;
    assert!(reason.contains("malformed multipart"), "{reason}");
    recovers(&mut device, 2).await;
    device.stop().await;
}

/// A directive over the limit is refused with ExceptionEncountered on the same connection; a part over
/// the attachment limit (whose end cannot be found without holding it) ends the downchannel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_parts() {
    let mut device = device_with(fast_options(), |c| {
        c.limits.max_directive_bytes = 16 << 10;
        c.limits.max_attachment_bytes = 256 << 10;
    })
    .await;
    device.sim.inject(Fault::OversizedDirective { bytes: 64 << 10 });
    let exception = device.sim_event(|e| e.name == "ExceptionEncountered").await;
    let message = payload(&exception)["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("exceeds the limit of 16384 bytes"), "{message}");
    assert!(payload(&exception)["unparsedDirective"].as_str().unwrap().len() <= 4096, "quoted, not copied whole");
    device.sim.inject(Fault::OversizedDirective { bytes: 1 << 20 });
    let reason = disconnected(&mut device).await;
    assert!(reason.contains("larger than the limit"), "{reason}");
    recovers(&mut device, 2).await;
    device.stop().await;
}

/// Invalid JSON, a payload against its schema and a directive of an interface the device lacks: each
/// answered with the right ExceptionEncountered, on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directives_the_device_cannot_handle() {
    let mut device = device().await;
    for (fault, error_type) in [
        (Fault::InvalidJson, "UNEXPECTED_INFORMATION_RECEIVED"),
        (Fault::SchemaViolation, "UNEXPECTED_INFORMATION_RECEIVED"),
        (Fault::UnknownDirective, "UNSUPPORTED_OPERATION"),
    ] {
        let before = device.sim.events().iter().filter(|e| e.name == "ExceptionEncountered").count();
        device.sim.inject(fault);
        let exceptions = device.sim.wait_for_events(|e| e.name == "ExceptionEncountered", before + 1, WAIT).await;
        let exceptions = exceptions.unwrap();
        assert_eq!(payload(&exceptions[before])["error"]["type"], error_type);
    }
    recovers(&mut device, 1).await;
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directive_received_twice_is_handled_once() {
    let mut device = device().await;
    let pushed = device.sim.inject(Fault::DuplicateDirective);
    let message_id = pushed.message_id.expect("the duplicated directive");
    let dropped = device.wait_for(|e| matches!(e, RuntimeEvent::DirectiveDropped { .. })).await;
    let RuntimeEvent::DirectiveDropped { message_id: dropped_id, reason, .. } = dropped else { unreachable!() };
    assert_eq!(dropped_id, message_id);
    assert!(reason.contains("already received"), "{reason}");
    device.sim_event(|e| e.name == "VolumeChanged").await;
    recovers(&mut device, 1).await;
    let adjusted = device.sim.events().iter().filter(|e| e.name == "VolumeChanged").count();
    assert_eq!(adjusted, 2, "one for the AdjustVolume, one for the check in `recovers`");
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token() {
    let mut device = device().await;
    device.sim.inject(Fault::ExpireAccessTokens);
    turn_knob(&device, 16);
    recovers(&mut device, 2).await;
    assert_eq!(volume_changes(&device, 16), 1);
    device.stop().await;
}

/// The refresh token is revoked (invalid_grant) and then the access token expires: the device links
/// again, and what it had to say is still delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_links_the_device_again() {
    let mut device = device().await;
    device.sim.inject(Fault::RevokeRefreshTokens);
    device.sim.inject(Fault::ExpireAccessTokens);
    turn_knob(&device, 17);
    device.wait_for(|e| matches!(e, RuntimeEvent::Linked)).await;
    recovers(&mut device, 2).await;
    assert_eq!(volume_changes(&device, 17), 1);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_authorization_links_the_device_again() {
    let mut device = device().await;
    device.sim.inject(Fault::RevokeAuthorization);
    device.wait_for(|e| matches!(e, RuntimeEvent::Linked)).await;
    recovers(&mut device, 2).await;
    device.stop().await;
}
