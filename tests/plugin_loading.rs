//! Plugin files that are not plugins are refused with a clear error naming the file; the others load.

mod common;

use avs_core::observe::RuntimeEvent;
use common::{built_plugin_dir, Device};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_plugin_file_is_refused_by_name_and_the_rest_still_load_and_serve() {
    let plugins = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(built_plugin_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("libavs_") && name.ends_with(".so") {
            std::fs::copy(&path, plugins.path().join(&name)).unwrap();
        }
    }
    std::fs::write(plugins.path().join("libbroken.so"), b"\x7fELF but not really").unwrap();

    let mut device = Device::launch(plugins.path().to_path_buf()).await;
    let rejected = device.wait_for(|e| matches!(e, RuntimeEvent::PluginRejected { .. })).await;
    let RuntimeEvent::PluginRejected { path, error } = rejected else { unreachable!() };
    assert!(path.ends_with("libbroken.so") && error.contains("not an avs-runtime plugin"), "{path}: {error}");
    device.wait_for(|e| matches!(e, RuntimeEvent::Connected { .. })).await;
    assert_eq!(device.runtime().plugins().slots().len(), 4, "the four real plugins load despite the broken file");
    device.sim.push_directive(
        serde_json::json!({"directive": {"header": {"namespace": "Speaker", "name": "SetMute", "messageId": "m"}, "payload": {"mute": true}}}),
        vec![],
    );
    device
        .wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, outcome: Ok(()), .. } if name == "SetMute"))
        .await;
    device.stop().await;
}

#[test]
fn the_loader_names_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libbroken.so");
    std::fs::write(&path, b"\x7fELF but not really").unwrap();
    let error = avs_core::plugins::loader::load(&path).err().expect("not a plugin").to_string();
    assert!(error.contains("libbroken.so") && error.contains("not an avs-runtime plugin"), "{error}");
}
