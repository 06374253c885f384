//! Each built-in device template, loaded as `template = NAME` says: the capability document avs-sim
//! records lists exactly the template's interfaces at its versions, with the configurations it gives.

mod common;

use avs_core::template::DeviceTemplate;
use common::{built_plugin_dir, test_options, Device, WAIT};

async fn publishes_exactly(template: &str) {
    let name = template.to_string();
    let device =
        Device::connect_with(built_plugin_dir(), |_| {}, test_options(), move |config| config.template = name).await;
    let document = device.sim.wait_for_capabilities(1, WAIT).await.unwrap();
    let capabilities = document["capabilities"].as_array().unwrap();
    let mut published: Vec<String> = capabilities
        .iter()
        .map(|c| format!("{} {}", c["interface"].as_str().unwrap(), c["version"].as_str().unwrap()))
        .collect();
    published.sort();
    let expected_template = DeviceTemplate::resolve(template).unwrap();
    let mut expected: Vec<String> =
        expected_template.plugins.iter().map(|p| format!("{} {}", p.interface, p.version)).collect();
    expected.sort();
    assert_eq!(published, expected, "template {template}");
    for plugin in &expected_template.plugins {
        if let Some(configurations) = &plugin.configurations {
            let capability = capabilities.iter().find(|c| c["interface"] == plugin.interface.as_str()).unwrap();
            assert_eq!(&capability["configurations"], configurations, "{} in {template}", plugin.interface);
        }
    }
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_publishes_exactly_its_interfaces() {
    publishes_exactly("minimal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_speaker_publishes_exactly_its_interfaces() {
    publishes_exactly("headless-speaker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_device_publishes_exactly_its_interfaces() {
    publishes_exactly("screen-device").await;
}
