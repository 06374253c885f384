//! Every fault of avs-sim's catalogue, as a plain HTTP/2 device observes it: connections dropped or sent
//! away, downchannels reset, events refused or left unanswered, pings late or lost, connections frozen,
//! the sim offline, and broken or unwelcome directives on the downchannel.

mod common;

use std::future::poll_fn;
use std::time::Duration;

use avs_core::multipart::MultipartError;
use avs_sim::{Fault, FaultOutcome, Refusal};
use bytes::Bytes;
use common::{event, schema, start, trusting_only_the_sim, Device, WAIT};
use h2::Ping;
use http::{Request, StatusCode};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// How long a test watches for something that must not happen.
const QUIET: Duration = Duration::from_millis(400);

async fn linked(sim: &avs_sim::SimHandle) -> Device {
    let mut device = Device::connect(sim).await;
    device.link().await;
    device
}

/// Injects a fault through the admin surface (which needs no token), as `avs sim` users do.
async fn admin_fault(device: &mut Device, fault: Value) -> (StatusCode, Value) {
    let answer = device.request("POST", "/admin/fault", &[], Bytes::from(fault.to_string())).await;
    (answer.status, answer.json())
}

fn synchronize_state(message_id: &str) -> Value {
    event("System", "SynchronizeState", message_id, json!({}))
}

#[tokio::test]
async fn the_admin_json_of_every_fault_round_trips() {
    let faults = [
        Fault::DropConnections,
        Fault::GoAway,
        Fault::ResetDownchannel,
        Fault::RefuseEvents { status: Refusal::Throttled, count: 2 },
        Fault::StallNextEventAnswer,
        Fault::PingDelay { delay: Duration::from_millis(1500) },
        Fault::PingDrop,
        Fault::Stall,
        Fault::Unstall,
        Fault::Offline { lasting: None },
        Fault::Offline { lasting: Some(Duration::from_secs(5)) },
        Fault::Online,
        Fault::MalformedMultipart,
        Fault::OversizedDirective { bytes: 1 << 20 },
        Fault::InvalidJson,
        Fault::SchemaViolation,
        Fault::UnknownDirective,
        Fault::RevokeAuthorization,
        Fault::DuplicateDirective,
        Fault::ExpireAccessTokens,
        Fault::RevokeRefreshTokens,
        Fault::Heal,
    ];
    for fault in faults {
        let json = serde_json::to_value(&fault).unwrap();
        assert_eq!(serde_json::from_value::<Fault>(json.clone()).unwrap(), fault, "{json}");
    }
    let documented = json!({"fault": "refuse_events", "status": 503, "count": 1});
    assert_eq!(
        serde_json::from_value::<Fault>(documented).unwrap(),
        Fault::RefuseEvents { status: Refusal::Unavailable, count: 1 }
    );
    let documented = json!({"fault": "ping_delay", "delay_ms": 2000});
    assert_eq!(
        serde_json::from_value::<Fault>(documented).unwrap(),
        Fault::PingDelay { delay: Duration::from_secs(2) }
    );
    let not_avs = json!({"fault": "refuse_events", "status": 404, "count": 1});
    assert!(serde_json::from_value::<Fault>(not_avs).unwrap_err().to_string().contains("404"));
}

#[tokio::test]
async fn drop_connections_closes_the_socket_without_a_goaway() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = linked(&sim).await;
    let mut downchannel = device.open_downchannel().await;
    assert_eq!(sim.inject(Fault::DropConnections), FaultOutcome { reached: 1, message_id: None });

    let error = downchannel.end().await.expect_err("broken, not ended");
    assert!(!error.is_go_away() && !error.is_reset(), "{error:?}");
    let ended = device.closed().await;
    assert!(ended.as_ref().is_err_and(|e| e.is_io()), "the socket closed under the connection: {ended:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn go_away_lets_open_streams_finish_and_refuses_new_ones() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = linked(&sim).await;
    let mut downchannel = device.open_downchannel().await;
    let (status, outcome) = admin_fault(&mut device, json!({"fault": "go_away"})).await;
    assert_eq!((status, outcome), (StatusCode::OK, json!({"reached": 1, "message_id": null})));

    // Requests sent before the GOAWAY arrived are still served; the first one after it is refused.
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            let ping = Request::get("https://localhost/ping")
                .header("authorization", format!("Bearer {}", device.token))
                .body(())
                .unwrap();
            match device.send.send_request(ping, true) {
                Ok((answer, _)) => assert_eq!(answer.await.unwrap().status(), StatusCode::NO_CONTENT),
                Err(refused) => return refused,
            }
        }
    })
    .await
    .expect("the GOAWAY arrives");
    assert!(refused.is_go_away() && refused.is_remote(), "{refused:?}");
    assert_eq!(refused.reason(), Some(h2::Reason::NO_ERROR));

    // The downchannel ends with the connection going away, as AVS's does, so a listening device notices.
    assert!(downchannel.end().await.is_ok(), "ended cleanly");

    // Once its last stream is done, the sim closes the connection cleanly.
    assert!(device.closed().await.is_ok());
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_downchannel_resets_the_stream_and_keeps_the_connection() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = linked(&sim).await;
    let mut downchannel = device.open_downchannel().await;
    assert_eq!(sim.inject(Fault::ResetDownchannel).reached, 1);

    let error = downchannel.end().await.expect_err("reset, not ended");
    assert!(error.is_reset() && error.is_remote(), "{error:?}");
    assert_eq!(error.reason(), Some(h2::Reason::CANCEL));
    assert_eq!(device.request("GET", "/ping", &[], Bytes::new()).await.status, StatusCode::NO_CONTENT);
    assert_eq!(sim.inject(Fault::ResetDownchannel).reached, 0, "no downchannel is open now");
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_events_get_the_status_and_the_exception_body_and_are_not_accepted() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = linked(&sim).await;
    let (status, _) = admin_fault(&mut device, json!({"fault": "refuse_events", "status": 429, "count": 2})).await;
    assert_eq!(status, StatusCode::OK);
    for refusal in [Refusal::BadRequest, Refusal::Unauthorized, Refusal::InternalError, Refusal::Unavailable] {
        assert_eq!(sim.inject(Fault::RefuseEvents { status: refusal, count: 1 }).reached, 0);
    }
    let (status, error) = admin_fault(&mut device, json!({"fault": "refuse_events", "status": 404, "count": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    let expected = [
        (429, "THROTTLING_EXCEPTION"),
        (429, "THROTTLING_EXCEPTION"),
        (400, "INVALID_REQUEST_EXCEPTION"),
        (403, "UNAUTHORIZED_REQUEST_EXCEPTION"),
        (500, "INTERNAL_SERVICE_EXCEPTION"),
        (503, "N/A"),
    ];
    let exception = schema("envelope/exception.json");
    for (n, (status, code)) in expected.into_iter().enumerate() {
        let answer = device.event(&synchronize_state(&format!("sync-{n}")), None).await;
        assert_eq!(answer.status.as_u16(), status);
        assert!(answer.content_type().starts_with("application/json"), "not multipart: {}", answer.content_type());
        let body = answer.json();
        assert!(exception.is_valid(&body), "{body}");
        assert_eq!((&body["header"]["name"], &body["payload"]["code"]), (&json!("Exception"), &json!(code)));
    }
    assert_eq!(device.event(&synchronize_state("sync-6"), None).await.status, StatusCode::NO_CONTENT);

    let accepted: Vec<String> = sim.events().into_iter().map(|e| e.message_id).collect();
    assert_eq!(accepted, ["sync-6"]);
    let refused = sim.refused_events();
    let statuses: Vec<Option<u16>> = refused.iter().map(|r| r.status).collect();
    assert_eq!(statuses, expected.map(|(status, _)| Some(status)));
    assert_eq!((refused[0].namespace.as_str(), refused[0].name.as_str()), ("System", "SynchronizeState"));
    assert_eq!(refused[5].message_id, "sync-5");
    let listed = device.request("GET", "/admin/refused-events", &[], Bytes::new()).await.json();
    assert_eq!(
        listed[2],
        json!({"namespace": "System", "name": "SynchronizeState", "message_id": "sync-2", "status": 400})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_stalled_event_answer_never_comes_while_others_are_answered() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = linked(&sim).await;
    assert_eq!(sim.inject(Fault::StallNextEventAnswer).reached, 0);

    let w = avs_core::multipart::MultipartWriter::random();
    let (answer, mut body) =
        device.start("POST", "/v20160207/events", &[("content-type", &w.form_data_content_type())]);
    let metadata = synchronize_state("stalled").to_string();
    body.send_data(
        [w.form_data_part("metadata", "application/json", metadata.as_bytes()), w.close()].concat().into(),
        true,
    )
    .unwrap();
    let refused = sim.wait_for_refused_event(|r| r.message_id == "stalled", WAIT).await.unwrap();
    assert_eq!(refused.status, None, "read, and never answered");
    tokio::pin!(answer);
    assert!(tokio::time::timeout(QUIET, &mut answer).await.is_err(), "no answer");

    assert_eq!(device.event(&synchronize_state("next"), None).await.status, StatusCode::NO_CONTENT);
    assert!(tokio::time::timeout(QUIET, &mut answer).await.is_err(), "still no answer");
    let accepted: Vec<String> = sim.events().into_iter().map(|e| e.message_id).collect();
    assert_eq!(accepted, ["next"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn ping_answers_come_late_or_never_until_healed() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = linked(&sim).await;
    let (status, _) = admin_fault(&mut device, json!({"fault": "ping_delay", "delay_ms": 300})).await;
    assert_eq!(status, StatusCode::OK);
    let asked = Instant::now();
    assert_eq!(device.request("GET", "/ping", &[], Bytes::new()).await.status, StatusCode::NO_CONTENT);
    assert!(asked.elapsed() >= Duration::from_millis(300), "answered after {:?}", asked.elapsed());

    sim.inject(Fault::PingDrop);
    let (lost, _) = device.start("GET", "/ping", &[]);
    assert!(tokio::time::timeout(QUIET, lost).await.is_err(), "a dropped ping is never answered");

    sim.inject(Fault::Heal);
    let asked = Instant::now();
    assert_eq!(device.request("GET", "/ping", &[], Bytes::new()).await.status, StatusCode::NO_CONTENT);
    assert!(asked.elapsed() < Duration::from_millis(300), "answered at once again: {:?}", asked.elapsed());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_stalled_connection_acks_no_pings_until_thawed_and_new_connections_are_not_frozen() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = linked(&sim).await;
    let mut downchannel = device.open_downchannel().await;
    tokio::time::timeout(WAIT, device.pings.ping(Ping::opaque())).await.expect("a PING ack").unwrap();

    assert_eq!(sim.inject(Fault::Stall).reached, 1);
    device.pings.send_ping(Ping::opaque()).unwrap();
    let pong = tokio::time::timeout(QUIET, poll_fn(|cx| device.pings.poll_pong(cx))).await;
    assert!(pong.is_err(), "no PING ack from a frozen connection");
    assert_eq!(
        sim.push_directive(
            json!({"directive": {"header": {"namespace": "Foo", "name": "Held", "messageId": "held"}, "payload": {}}}),
            vec![]
        ),
        1
    );
    assert!(tokio::time::timeout(QUIET, downchannel.next_part()).await.is_err(), "nothing is written");

    let mut later = Device::connect(&sim).await;
    later.token = device.token.clone();
    assert_eq!(later.request("GET", "/ping", &[], Bytes::new()).await.status, StatusCode::NO_CONTENT);

    assert_eq!(sim.inject(Fault::Unstall).reached, 2);
    tokio::time::timeout(WAIT, poll_fn(|cx| device.pings.poll_pong(cx))).await.expect("the ack, once thawed").unwrap();
    let part = downchannel.next_part().await.expect("what was held");
    assert_eq!(serde_json::from_slice::<Value>(&part.body).unwrap()["directive"]["header"]["messageId"], "held");
    sim.shutdown().await;
}

/// A device's attempt to connect while the sim is offline: TCP is accepted, TLS never completes.
async fn attempt_refused(sim: &avs_sim::SimHandle) {
    let tcp = TcpStream::connect(sim.addr()).await.expect("TCP is accepted");
    let tls = TlsConnector::from(trusting_only_the_sim(sim)).connect(ServerName::try_from("localhost").unwrap(), tcp);
    assert!(tokio::time::timeout(WAIT, tls).await.expect("closed at once").is_err());
}

#[tokio::test]
async fn offline_drops_open_connections_refuses_new_ones_and_counts_every_attempt() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = linked(&sim).await;
    assert_eq!(sim.connection_attempts(), 1);
    assert_eq!(sim.inject(Fault::Offline { lasting: None }).reached, 1);
    assert!(device.closed().await.is_err(), "dropped");

    for _ in 0..3 {
        attempt_refused(&sim).await;
    }
    let times = sim.wait_for_connection_attempts(4, WAIT).await.unwrap();
    assert_eq!(times.len(), 4);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order");
    assert_eq!(sim.connection_attempt_times(), times);

    assert_eq!(sim.inject(Fault::Online).reached, 0);
    let mut device = Device::connect(&sim).await;
    let attempts = device.request("GET", "/admin/connection-attempts", &[], Bytes::new()).await.json();
    assert_eq!(attempts, json!({"attempts": 5}));

    // A timed offline ends by itself (the admin surface is offline too, so this is how it comes back).
    let went_offline = Instant::now();
    assert_eq!(sim.inject(Fault::Offline { lasting: Some(Duration::from_millis(300)) }).reached, 1);
    attempt_refused(&sim).await;
    tokio::time::sleep_until(went_offline + Duration::from_millis(300)).await;
    Device::connect(&sim).await;
    assert_eq!(sim.connection_attempts(), 7);
    sim.shutdown().await;
}

#[tokio::test]
async fn downchannel_content_faults_arrive_with_fresh_message_ids() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = linked(&sim).await;
    let mut downchannel = device.open_downchannel().await;
    let header =
        |part: &[u8]| -> Value { serde_json::from_slice::<Value>(part).unwrap()["directive"]["header"].clone() };

    let oversized = sim.inject(Fault::OversizedDirective { bytes: 1 << 20 });
    assert_eq!(oversized.reached, 1);
    let part = downchannel.next_part().await.unwrap();
    assert_eq!(part.body.len(), 1 << 20);
    let directive: Value = serde_json::from_slice(&part.body).expect("valid JSON, padded");
    assert_eq!(directive["directive"]["header"]["messageId"].as_str(), oversized.message_id.as_deref());
    assert!(schema("Speaker/1.0/directives/SetVolume.json").is_valid(&directive["directive"]["payload"]));

    let invalid = sim.inject(Fault::InvalidJson);
    let part = downchannel.next_part().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&part.body).is_err());
    assert!(String::from_utf8_lossy(&part.body).contains(invalid.message_id.as_deref().unwrap()));

    let violation = sim.inject(Fault::SchemaViolation);
    let part = downchannel.next_part().await.unwrap();
    let directive: Value = serde_json::from_slice(&part.body).unwrap();
    assert_eq!(directive["directive"]["payload"], json!({"volume": "loud"}));
    assert!(!schema("Speaker/1.0/directives/SetVolume.json").is_valid(&directive["directive"]["payload"]));

    let unknown = sim.inject(Fault::UnknownDirective);
    let part = downchannel.next_part().await.unwrap();
    let unknown_header = header(&part.body);
    assert_eq!((&unknown_header["namespace"], &unknown_header["name"]), (&json!("Foo"), &json!("Bar")));
    assert_eq!(unknown_header["messageId"].as_str(), unknown.message_id.as_deref());

    let revoke = sim.inject(Fault::RevokeAuthorization);
    let part = downchannel.next_part().await.unwrap();
    let revoke_header = header(&part.body);
    assert_eq!(
        (&revoke_header["namespace"], &revoke_header["name"]),
        (&json!("System"), &json!("RevokeAuthorization"))
    );
    assert_eq!(revoke_header["messageId"].as_str(), revoke.message_id.as_deref());

    let duplicate = sim.inject(Fault::DuplicateDirective);
    let (first, second) = (downchannel.next_part().await.unwrap(), downchannel.next_part().await.unwrap());
    assert_eq!(first.body, second.body);
    assert_eq!(header(&first.body)["name"], "AdjustVolume");

    let ids = [&oversized, &invalid, &violation, &unknown, &revoke, &duplicate].map(|o| o.message_id.clone().unwrap());
    assert_eq!(header(&first.body)["messageId"].as_str(), Some(ids[5].as_str()));
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), ids.len(), "fresh messageIds: {ids:?}");

    let (status, malformed) = admin_fault(&mut device, json!({"fault": "malformed_multipart"})).await;
    assert_eq!((status, malformed), (StatusCode::OK, json!({"reached": 1, "message_id": null})));
    let error = downchannel.try_next_part().await.unwrap_err();
    assert!(matches!(error, MultipartError::BadHeader { .. }), "{error}");
    sim.shutdown().await;
}

#[tokio::test]
async fn token_faults_are_reachable_from_the_admin_surface() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = Device::connect(&sim).await;
    let tokens = device.link().await;
    let (status, _) = admin_fault(&mut device, json!({"fault": "expire_access_tokens"})).await;
    assert_eq!(status, StatusCode::OK);
    let ping = device.request("GET", "/ping", &[], Bytes::new()).await;
    assert_eq!(
        (ping.status, ping.json()["payload"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("UNAUTHORIZED_REQUEST_EXCEPTION"))
    );

    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ("client_id", "c"),
    ];
    assert_eq!(device.form("/auth/O2/token", &refresh).await.status, StatusCode::OK);
    let (status, _) = admin_fault(&mut device, json!({"fault": "revoke_refresh_tokens"})).await;
    assert_eq!(status, StatusCode::OK);
    let refused = device.form("/auth/O2/token", &refresh).await;
    assert_eq!((refused.status, refused.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    sim.shutdown().await;
}
