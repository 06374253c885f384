//! avs-sim driven by a minimal HTTP/2 client of its own (tokio-rustls trusting only the sim's ca.pem,
//! h2 client, one connection per device as AVS wants): the downchannel, events, the scripted dialog,
//! token checks, capability documents, the HTTP admin surface and shutdown.

mod common;

use std::time::Duration;

use avs_core::multipart::MultipartWriter;
use bytes::Bytes;
use common::{event, schema, start, trusting_only_the_sim, Device, WAIT};
use http::StatusCode;
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const SPEAK_MP3: &[u8] = include_bytes!("../assets/speak.mp3");
const UTTERANCE_WAV: &[u8] = include_bytes!("../../assets/utterance.wav");

#[tokio::test]
async fn the_connection_is_h2_with_ten_streams_and_linking_issues_tokens() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = Device::connect(&sim).await;
    assert_eq!(device.max_streams, 10);
    let tokens = device.link().await;
    assert!(tokens["access_token"].as_str().unwrap().starts_with("Atza|"));
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(device.request("GET", "/ping", &[], Bytes::new()).await.status, StatusCode::NO_CONTENT);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_certificate_names_127_0_0_1_too() {
    let (sim, _dir) = start(|_| {}).await;
    let tcp = TcpStream::connect(sim.addr()).await.unwrap();
    let ip = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let tls = TlsConnector::from(trusting_only_the_sim(&sim)).connect(ip, tcp).await;
    assert!(tls.is_ok(), "{:?}", tls.err());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_downchannel_carries_pushed_directives_and_attachments_until_dropped() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = Device::connect(&sim).await;
    device.link().await;
    let mut downchannel = device.open_downchannel().await;
    assert_eq!(sim.downchannel_count(), 1);

    let set_volume = json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": "v-1"}, "payload": {"volume": 25}}});
    // Binary that looks like multipart framing must come through untouched.
    let cue = Bytes::from_static(b"\r\n--not-the-boundary\r\n\x00\xff binary");
    assert_eq!(sim.push_directive(set_volume.clone(), vec![("cue-1".into(), cue.clone())]), 1);
    let json_part = downchannel.next_part().await.expect("the directive");
    assert!(json_part.headers.content_type.as_deref().unwrap().starts_with("application/json"));
    assert_eq!(serde_json::from_slice::<Value>(&json_part.body).unwrap(), set_volume);
    let attachment = downchannel.next_part().await.expect("the attachment");
    assert_eq!(attachment.headers.content_id.as_deref(), Some("cue-1"));
    assert_eq!(attachment.body, cue);

    // The HTTP admin surface pushes the same way (and needs no token).
    let mute = json!({"directive": {"header": {"namespace": "Speaker", "name": "SetMute", "messageId": "m-1"}, "payload": {"mute": true}}});
    device.token.clear();
    let pushed = device.request("POST", "/admin/directive", &[], Bytes::from(mute.to_string())).await;
    assert_eq!((pushed.status, pushed.json()), (StatusCode::OK, json!({"downchannels": 1})));
    let part = downchannel.next_part().await.expect("the admin's directive");
    assert_eq!(serde_json::from_slice::<Value>(&part.body).unwrap(), mute);

    sim.drop_downchannels();
    assert!(downchannel.next_part().await.is_none(), "the stream ends");
    assert_eq!(downchannel.parser.finish(), Ok(()), "between parts");
    sim.shutdown().await;
}

#[tokio::test]
async fn events_are_recorded_in_order_and_schema_violations_counted() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = Device::connect(&sim).await;
    device.link().await;
    let good = event("Speaker", "VolumeChanged", "good", json!({"volume": 30, "muted": false}));
    assert_eq!(device.event(&good, None).await.status, StatusCode::NO_CONTENT);
    let bad = event("Speaker", "VolumeChanged", "bad", json!({"volume": 500, "muted": false}));
    assert_eq!(device.event(&bad, None).await.status, StatusCode::NO_CONTENT, "lenient, but counted");

    let recorded = sim.wait_for_event(|e| e.message_id == "bad", WAIT).await.unwrap();
    let first = sim.events().into_iter().find(|e| e.message_id == "good").unwrap();
    assert_eq!((first.seq_on_connection, recorded.seq_on_connection), (0, 1));
    assert_eq!(first.connection, recorded.connection);
    assert_eq!((first.namespace.as_str(), first.name.as_str(), first.json.clone()), ("Speaker", "VolumeChanged", good));
    let violations = sim.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].message.contains("(bad)"), "{violations:?}");

    // A broken envelope is refused with the System.Exception body, and still counted.
    let anonymous = json!({"event": {"header": {"namespace": "Speaker", "name": "VolumeChanged"}, "payload": {"volume": 1, "muted": false}}});
    let refused = device.event(&anonymous, None).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(schema("envelope/exception.json").is_valid(&refused.json()), "{}", refused.json());
    assert_eq!(refused.json()["payload"]["code"], "INVALID_REQUEST_EXCEPTION");
    assert_eq!(sim.violations().len(), 2);
    let not_multipart = device
        .request("POST", "/v20160207/events", &[("content-type", "application/json")], Bytes::from(bad.to_string()))
        .await;
    assert_eq!(not_multipart.status, StatusCode::BAD_REQUEST);

    // Tolerated, with a deviation: a metadata part under another name.
    let w = MultipartWriter::random();
    let odd = event("System", "UserInactivityReport", "odd", json!({"inactiveTimeInSeconds": 5}));
    let body = [w.form_data_part("meta", "application/json", odd.to_string().as_bytes()), w.close()].concat();
    let answer = device
        .request("POST", "/v20160207/events", &[("content-type", &w.form_data_content_type())], Bytes::from(body))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(sim.deviations().iter().any(|d| d.contains("\"meta\"")), "{:?}", sim.deviations());

    device.token.clear();
    let events = device.request("GET", "/admin/events", &[], Bytes::new()).await.json();
    assert_eq!(events.as_array().unwrap().len(), 4, "{events}");
    let last = device.request("GET", "/admin/events?last=1", &[], Bytes::new()).await.json();
    assert_eq!(last.as_array().unwrap().len(), 1, "{last}");
    assert_eq!(last[0]["json"]["event"]["header"]["messageId"], "odd", "the most recent: {last}");
    let bad_query = device.request("GET", "/admin/events?last=some", &[], Bytes::new()).await;
    assert_eq!(bad_query.status, StatusCode::BAD_REQUEST);
    let violations = device.request("GET", "/admin/violations", &[], Bytes::new()).await.json();
    assert_eq!(violations.as_array().unwrap().len(), 2, "{violations}");
    sim.shutdown().await;
}

#[tokio::test]
async fn recognize_is_answered_with_speak_its_mp3_and_by_script_expect_speech() {
    let (sim, _dir) = start(|c| {
        c.expect_speech_after_speak = true;
        c.expect_speech_timeout = Duration::from_millis(8000);
    })
    .await;
    let mut device = Device::connect(&sim).await;
    device.link().await;
    let pcm = &UTTERANCE_WAV[44..];
    let mut recognize = event(
        "SpeechRecognizer",
        "Recognize",
        "r-1",
        json!({"profile": "CLOSE_TALK", "format": "AUDIO_L16_RATE_16000_CHANNELS_1"}),
    );
    recognize["event"]["header"]["dialogRequestId"] = json!("d-1");
    let answer = device.event(&recognize, Some(pcm)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.content_type().starts_with("multipart/related"), "{}", answer.content_type());
    let parts = answer.parts();
    assert_eq!(parts.len(), 3, "Speak, its MP3, ExpectSpeech");

    let speak: Value = serde_json::from_slice(&parts[0].body).unwrap();
    assert!(schema("envelope/directive.json").is_valid(&speak), "{speak}");
    assert!(schema("SpeechSynthesizer/1.3/directives/Speak.json").is_valid(&speak["directive"]["payload"]), "{speak}");
    let header = &speak["directive"]["header"];
    assert_eq!((header["namespace"].as_str(), header["name"].as_str()), (Some("SpeechSynthesizer"), Some("Speak")));
    assert_eq!(header["dialogRequestId"], "d-1");
    assert_eq!(speak["directive"]["payload"]["format"], "AUDIO_MPEG");
    let content_id = parts[1].headers.content_id.as_deref().unwrap();
    assert_eq!(speak["directive"]["payload"]["url"], format!("cid:{content_id}"));
    assert_eq!(parts[1].body, SPEAK_MP3);

    let expect: Value = serde_json::from_slice(&parts[2].body).unwrap();
    assert_eq!(expect["directive"]["header"]["name"], "ExpectSpeech");
    assert_eq!(expect["directive"]["header"]["dialogRequestId"], "d-1");
    assert_eq!(expect["directive"]["payload"]["timeoutInMilliseconds"], 8000);
    assert!(schema("SpeechRecognizer/2.3/directives/ExpectSpeech.json").is_valid(&expect["directive"]["payload"]));

    let received = sim.wait_for_event(|e| e.name == "Recognize", WAIT).await.unwrap();
    assert_eq!((received.audio_bytes, received.dialog_request_id.as_deref()), (pcm.len(), Some("d-1")));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());

    sim.set_expect_speech_after_speak(false);
    recognize["event"]["header"]["messageId"] = json!("r-2");
    let parts = device.event(&recognize, Some(pcm)).await.parts();
    assert_eq!(parts.len(), 2, "Speak and its MP3 only");
    sim.shutdown().await;
}

#[tokio::test]
async fn every_avs_path_wants_a_live_token() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = Device::connect(&sim).await;
    let forbidden = device.event(&event("System", "SynchronizeState", "s", json!({})), None).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.json()["payload"]["code"], "UNAUTHORIZED_REQUEST_EXCEPTION");

    let tokens = device.link().await;
    assert_eq!(
        device.event(&event("System", "SynchronizeState", "s", json!({})), None).await.status,
        StatusCode::NO_CONTENT
    );
    sim.expire_access_tokens();
    for (method, path) in
        [("GET", "/ping"), ("GET", "/v20160207/directives"), ("PUT", "/v1/devices/@self/capabilities")]
    {
        let answer = device.request(method, path, &[], Bytes::new()).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(answer.json()["payload"]["code"], "UNAUTHORIZED_REQUEST_EXCEPTION", "{method} {path}");
    }
    assert_eq!(
        device.event(&event("System", "SynchronizeState", "s2", json!({})), None).await.status,
        StatusCode::FORBIDDEN
    );

    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ("client_id", "c"),
    ];
    let fresh = device.form("/auth/O2/token", &refresh).await;
    assert_eq!(fresh.status, StatusCode::OK);
    device.token = fresh.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(device.request("GET", "/ping", &[], Bytes::new()).await.status, StatusCode::NO_CONTENT);
    let unknown = [("grant_type", "refresh_token"), ("refresh_token", "Atzr|forged"), ("client_id", "c")];
    let refused = device.form("/auth/O2/token", &unknown).await;
    assert_eq!((refused.status, refused.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    sim.shutdown().await;
}

#[tokio::test]
async fn published_capabilities_are_recorded_and_choose_the_schema_versions() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = Device::connect(&sim).await;
    device.link().await;
    let document = json!({"envelopeVersion": "20160207", "capabilities": [{"type": "AlexaInterface", "interface": "Speaker", "version": "1.0"}]});
    let put = device
        .request(
            "PUT",
            "/v1/devices/@self/capabilities",
            &[("content-type", "application/json")],
            Bytes::from(document.to_string()),
        )
        .await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    assert_eq!(sim.wait_for_capabilities(1, WAIT).await.unwrap(), document);

    let capabilities = json!([{"type": "AlexaInterface", "interface": "Speaker", "version": "1.0"}, {"type": "AlexaInterface", "interface": "System", "version": "1.1"}]);
    let mut report = event(
        "Alexa.Discovery",
        "AddOrUpdateReport",
        "disc-1",
        json!({
            "scope": {"type": "BearerToken", "token": device.token},
            "endpoints": [{"endpointId": "c::p::d", "capabilities": capabilities}],
        }),
    );
    report["event"]["header"]["payloadVersion"] = json!("3");
    assert_eq!(device.event(&report, None).await.status, StatusCode::ACCEPTED);
    let latest = sim.wait_for_capabilities(2, WAIT).await.unwrap();
    assert_eq!(latest["capabilities"], capabilities);

    // Declaring a version the workspace has no schemas for still validates, against the highest present.
    let future = json!({"envelopeVersion": "20160207", "capabilities": [{"type": "AlexaInterface", "interface": "Speaker", "version": "9.9"}]});
    device.request("PUT", "/v1/devices/@self/capabilities", &[], Bytes::from(future.to_string())).await;
    let bad = event("Speaker", "VolumeChanged", "bad", json!({"volume": 500, "muted": false}));
    device.event(&bad, None).await;
    let violations = sim.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].error.contains("500"), "the payload is what failed: {violations:?}");

    device.token.clear();
    let listed = device.request("GET", "/admin/capabilities", &[], Bytes::new()).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(sim.capability_documents().len(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_stops_listening() {
    let (sim, _dir) = start(|_| {}).await;
    let mut device = Device::connect(&sim).await;
    device.link().await;
    let mut downchannel = device.open_downchannel().await;
    let addr = sim.addr();
    tokio::time::timeout(WAIT, sim.shutdown()).await.expect("shutdown completes");
    assert!(downchannel.next_part().await.is_none(), "the downchannel ended");
    assert!(TcpStream::connect(addr).await.is_err(), "nobody listens any more");
}
