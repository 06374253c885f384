//! Bad input gets a clear error and the runtime keeps running: malformed multipart on the downchannel,
//! a CA the server's certificate does not chain to, an endpoint nobody listens on.

mod common;

use avs_core::observe::{Observer, RuntimeEvent};
use avs_core::runtime::Runtime;
use avs_sim::{Sim, SimConfig};
use common::{built_plugin_dir, device_config, test_options, Device};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_multipart_on_the_downchannel_reconnects_and_resynchronises() {
    let mut device = Device::connect(built_plugin_dir()).await;
    assert_eq!(device.sim.push_raw(bytes::Bytes::from_static(b"this is not a multipart delimiter line")), 1);
    let lost = device.wait_for(|e| matches!(e, RuntimeEvent::Disconnected { .. })).await;
    let RuntimeEvent::Disconnected { reason } = lost else { unreachable!() };
    assert!(reason.contains("malformed multipart"), "{reason}");
    device.wait_for(|e| matches!(e, RuntimeEvent::Connected { connection: 2 })).await;
    let first = device.sim_event(|e| e.name == "SynchronizeState").await;
    device.sim_event(|e| e.name == "SynchronizeState" && e.connection != first.connection).await;

    // And it serves on the new connection.
    device.sim.push_directive(
        serde_json::json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": "after"}, "payload": {"volume": 7}}}),
        vec![],
    );
    device.sim_event(|e| e.name == "VolumeChanged").await;
    device.stop().await;
}

/// Starts a runtime against `sim` with `change` applied to its configuration.
async fn start_with(
    sim: &avs_sim::SimHandle,
    dir: &tempfile::TempDir,
    change: impl FnOnce(&mut avs_core::config::Config),
) -> (Runtime, tokio::sync::broadcast::Receiver<RuntimeEvent>) {
    let mut config = device_config(sim, dir, built_plugin_dir());
    change(&mut config);
    let observer = Observer::default();
    let events = observer.subscribe();
    (Runtime::start_observed(config, test_options(), observer).await.unwrap(), events)
}

async fn next_retry(events: &mut tokio::sync::broadcast::Receiver<RuntimeEvent>) -> (String, String) {
    loop {
        match tokio::time::timeout(common::WAIT, events.recv())
            .await
            .expect("a retry within the wait")
            .expect("runtime alive")
        {
            RuntimeEvent::Retrying { what, error, .. } => return (what, error),
            RuntimeEvent::Linked | RuntimeEvent::Connected { .. } => panic!("must not get through"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused_clearly_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim"))).await.unwrap();
    let other = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("other"))).await.unwrap();
    let foreign_ca = other.ca_pem_path();
    let (runtime, mut events) = start_with(&sim, &dir, |c| c.ca_file = Some(foreign_ca)).await;
    let (what, error) = next_retry(&mut events).await;
    assert_eq!(what, "linking");
    assert!(error.contains("TLS") && error.contains(&format!("localhost:{}", sim.addr().port())), "{error}");
    // Backoff, then the same clear error again: the runtime keeps trying and keeps running.
    let (_, again) = next_retry(&mut events).await;
    assert!(again.contains("TLS"), "{again}");
    runtime.shutdown().await;
    sim.shutdown().await;
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_named_in_the_error_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim"))).await.unwrap();
    // A port that was free a moment ago: nobody listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (runtime, mut events) =
        start_with(&sim, &dir, |c| c.lwa_url = Some(format!("https://localhost:{closed}"))).await;
    let (what, error) = next_retry(&mut events).await;
    assert_eq!(what, "linking");
    assert!(error.contains("cannot reach") && error.contains(&closed.to_string()), "{error}");
    runtime.shutdown().await;
    sim.shutdown().await;
}
