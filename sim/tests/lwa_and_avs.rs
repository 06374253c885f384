//! avs-sim over real TLS + HTTP/2, driven by plain requests: the LWA emulation's grants and errors,
//! token checks on the AVS paths, and the Capabilities API.

use std::time::Duration;

use avs_core::https::HttpsClient;
use avs_sim::{Approval, Sim, SimConfig, SimHandle};
use bytes::Bytes;
use serde_json::{json, Value};

async fn start_sim(change: impl FnOnce(&mut SimConfig)) -> (SimHandle, HttpsClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    change(&mut config);
    let sim = Sim::start(config).await.unwrap();
    let client = HttpsClient::new(avs_core::tls::client_config(Some(&sim.ca_pem_path())).unwrap());
    (sim, client, dir)
}

async fn send(client: &HttpsClient, request: http::request::Builder, body: Bytes) -> (u16, Value) {
    let (status, _, body) = client.send(request.body(body).unwrap()).await.unwrap();
    (status.as_u16(), serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn form(client: &HttpsClient, sim: &SimHandle, path: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let request = http::Request::post(format!("{}{path}", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded");
    send(client, request, Bytes::from(body)).await
}

const SCOPE_DATA: &str = r#"{"alexa:all":{"productID":"p","productInstanceAttributes":{"deviceSerialNumber":"d"}}}"#;

async fn code_pair(client: &HttpsClient, sim: &SimHandle) -> Value {
    let fields =
        [("response_type", "device_code"), ("client_id", "c"), ("scope", "alexa:all"), ("scope_data", SCOPE_DATA)];
    let (status, pair) = form(client, sim, "/auth/O2/create/codepair", &fields).await;
    assert_eq!(status, 200, "{pair}");
    pair
}

async fn poll(client: &HttpsClient, sim: &SimHandle, pair: &Value) -> (u16, Value) {
    let fields = [
        ("grant_type", "device_code"),
        ("device_code", pair["device_code"].as_str().unwrap()),
        ("user_code", pair["user_code"].as_str().unwrap()),
    ];
    form(client, sim, "/auth/O2/token", &fields).await
}

#[tokio::test]
async fn code_based_linking_pending_then_approved_then_used_up() {
    let (sim, client, _dir) = start_sim(|c| {
        c.approval = Approval::Manual;
        c.poll_interval = Duration::ZERO;
    })
    .await;
    let pair = code_pair(&client, &sim).await;
    assert_eq!(pair["user_code"].as_str().unwrap().len(), 6);
    assert!(pair["expires_in"].as_u64().unwrap() > 0);
    let (status, answer) = poll(&client, &sim, &pair).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("authorization_pending")));
    assert!(sim.approve(pair["user_code"].as_str().unwrap()));
    assert!(!sim.approve("NOSUCH"));
    let (status, tokens) = poll(&client, &sim, &pair).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["access_token"].as_str().unwrap().starts_with("Atza|"));
    assert!(tokens["refresh_token"].as_str().unwrap().starts_with("Atzr|"));
    assert_eq!(tokens["token_type"], "bearer");
    let (status, again) = poll(&client, &sim, &pair).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")), "a code pair is used once");
    sim.shutdown().await;
}

#[tokio::test]
async fn polling_too_fast_gets_slow_down_and_an_old_code_pair_expired_token() {
    let (sim, client, _dir) = start_sim(|c| c.poll_interval = Duration::from_secs(30)).await;
    let pair = code_pair(&client, &sim).await;
    assert_eq!(pair["interval"], 30);
    poll(&client, &sim, &pair).await;
    let (_, answer) = poll(&client, &sim, &pair).await;
    assert_eq!(answer["error"], "slow_down");
    sim.shutdown().await;

    let (sim, client, _dir) = start_sim(|c| c.code_pair_lifetime = Duration::ZERO).await;
    let pair = code_pair(&client, &sim).await;
    let (status, answer) = poll(&client, &sim, &pair).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("expired_token")));
    sim.shutdown().await;
}

async fn linked_tokens(client: &HttpsClient, sim: &SimHandle) -> Value {
    let pair = code_pair(client, sim).await;
    sim.approve(pair["user_code"].as_str().unwrap());
    let (status, tokens) = poll(client, sim, &pair).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

#[tokio::test]
async fn refresh_works_until_revoked_and_avs_paths_check_the_access_token() {
    let (sim, client, _dir) = start_sim(|c| {
        c.approval = Approval::Manual;
        c.poll_interval = Duration::ZERO;
    })
    .await;
    let tokens = linked_tokens(&client, &sim).await;
    let ping = |token: &str| {
        http::Request::get(format!("{}/ping", sim.base_url())).header("authorization", format!("Bearer {token}"))
    };
    assert_eq!(send(&client, ping(tokens["access_token"].as_str().unwrap()), Bytes::new()).await.0, 204);
    let (status, body) = send(&client, ping("Atza|forged"), Bytes::new()).await;
    assert_eq!((status, body["payload"]["code"].as_str()), (403, Some("UNAUTHORIZED_REQUEST_EXCEPTION")));

    sim.expire_access_tokens();
    assert_eq!(send(&client, ping(tokens["access_token"].as_str().unwrap()), Bytes::new()).await.0, 403);
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ("client_id", "c"),
    ];
    let (status, fresh) = form(&client, &sim, "/auth/O2/token", &refresh).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(send(&client, ping(fresh["access_token"].as_str().unwrap()), Bytes::new()).await.0, 204);

    sim.revoke_refresh_tokens();
    let (status, answer) = form(&client, &sim, "/auth/O2/token", &refresh).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_grant")));
    sim.shutdown().await;
}

#[tokio::test]
async fn json_token_requests_are_tolerated_but_counted_as_deviations() {
    let (sim, client, _dir) = start_sim(|_| {}).await;
    let body =
        json!({"response_type": "device_code", "client_id": "c", "scope": "alexa:all", "scope_data": SCOPE_DATA});
    let request = http::Request::post(format!("{}/auth/O2/create/codepair", sim.base_url()))
        .header("content-type", "application/json");
    let (status, pair) = send(&client, request, Bytes::from(body.to_string())).await;
    assert_eq!(status, 200, "{pair}");
    assert!(sim.deviations().iter().any(|d| d.contains("JSON")), "{:?}", sim.deviations());
    sim.shutdown().await;
}

#[tokio::test]
async fn capability_documents_are_recorded_and_malformed_ones_refused() {
    let (sim, client, _dir) = start_sim(|c| {
        c.approval = Approval::Manual;
        c.poll_interval = Duration::ZERO;
    })
    .await;
    let token = linked_tokens(&client, &sim).await["access_token"].as_str().unwrap().to_string();
    let put = || {
        http::Request::put(format!("{}/v1/devices/@self/capabilities", sim.base_url()))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
    };
    let document = json!({"envelopeVersion": "20160207", "capabilities": [{"type": "AlexaInterface", "interface": "Speaker", "version": "1.0"}]});
    assert_eq!(send(&client, put(), Bytes::from(document.to_string())).await.0, 204);
    assert_eq!(sim.wait_for_capabilities(1, Duration::from_secs(5)).await.unwrap(), document);
    let (status, _) = send(&client, put(), Bytes::from_static(b"{\"capabilities\": 3}")).await;
    assert_eq!(status, 400);
    assert_eq!(sim.capability_documents().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_ca_is_kept_across_restarts_with_the_same_data_dir() {
    let (sim, _client, dir) = start_sim(|_| {}).await;
    let first = std::fs::read(sim.ca_pem_path()).unwrap();
    sim.shutdown().await;
    let again = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf())).await.unwrap();
    assert_eq!(std::fs::read(again.ca_pem_path()).unwrap(), first);
    again.shutdown().await;
}
