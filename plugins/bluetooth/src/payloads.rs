//! The payloads of Bluetooth 2.0 events and of the BluetoothState context, in the shapes the AVS Device
//! SDK builds them (acsdkBluetooth Bluetooth.cpp; see each schema's description).

use serde_json::{json, Value};

use crate::ids::{DeviceIds, UNKNOWN_CATEGORY};
use crate::radio::{AdapterState, Device};

pub const A2DP_SOURCE: &str = "A2DP-SOURCE";
pub const A2DP_SINK: &str = "A2DP-SINK";
pub const AVRCP: &str = "AVRCP";
pub const CLOUD: &str = "CLOUD";

/// The profiles AVS knows; others a device offers are not reported.
const AVS_PROFILES: [&str; 6] = [A2DP_SOURCE, A2DP_SINK, AVRCP, "HFP", "HID", "SPP"];

/// How AVS sees the A2DP stream of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    Inactive,
    Paused,
    Active,
}

impl Streaming {
    fn as_str(self) -> &'static str {
        match self {
            Streaming::Inactive => "INACTIVE",
            Streaming::Paused => "PAUSED",
            Streaming::Active => "ACTIVE",
        }
    }
}

/// `XX:XX:XX:XX:22:33`: AVS sees only the last two octets of a MAC address.
pub fn truncated_mac(mac: &str) -> String {
    let tail = mac.rsplit(':').take(2).collect::<Vec<_>>();
    match tail.as_slice() {
        [last, before] => format!("XX:XX:XX:XX:{before}:{last}"),
        _ => "XX:XX:XX:XX:XX:XX".into(),
    }
}

fn id(ids: &DeviceIds, device: &Device) -> Option<String> {
    ids.get(&device.mac).map(|k| k.unique_device_id.clone())
}

fn category(ids: &DeviceIds, device: &Device) -> String {
    ids.get(&device.mac).map_or(UNKNOWN_CATEGORY.into(), |k| k.device_category.clone())
}

/// The AVS profiles of `device`; the A2DP ones carry the stream's state.
pub fn profiles(device: &Device, streaming: Streaming) -> Vec<Value> {
    device
        .profiles
        .iter()
        .filter(|p| AVS_PROFILES.contains(&p.name.as_str()))
        .map(|p| match p.name.as_str() {
            A2DP_SOURCE | A2DP_SINK => {
                json!({"name": p.name, "version": p.version, "state": {"streaming": streaming.as_str()}})
            }
            _ => json!({"name": p.name, "version": p.version}),
        })
        .collect()
}

/// ScanDevicesReport: the devices found that are not paired.
pub fn scan_report(state: &AdapterState, ids: &DeviceIds, has_more: bool) -> Value {
    let found: Vec<Value> = state
        .devices
        .iter()
        .filter(|d| !d.paired)
        .filter_map(|d| {
            Some(json!({
                "uniqueDeviceId": id(ids, d)?,
                "friendlyName": d.friendly_name,
                "truncatedMacAddress": truncated_mac(&d.mac),
                "metadata": {"classOfDevice": d.class_of_device},
            }))
        })
        .collect();
    json!({"discoveredDevices": found, "hasMore": has_more})
}

/// PairDevicesSucceeded.
pub fn paired(device: &Device, ids: &DeviceIds, streaming: Streaming) -> Option<Value> {
    Some(json!({"devices": [{
        "uniqueDeviceId": id(ids, device)?,
        "friendlyName": device.friendly_name,
        "deviceCategory": category(ids, device),
        "profiles": profiles(device, streaming),
    }]}))
}

/// PairDevicesFailed, UnpairDevicesSucceeded/Failed.
pub fn ids_only(unique_device_id: &str) -> Value {
    json!({"devices": [{"uniqueDeviceId": unique_device_id}]})
}

/// ConnectByDeviceIdsSucceeded/Failed, DisconnectDevicesSucceeded/Failed; a failure names no device
/// (the SDK sends an empty friendlyName).
pub fn connection(unique_device_id: &str, friendly_name: &str, requester: &str) -> Value {
    json!({"devices": [{"uniqueDeviceId": unique_device_id, "friendlyName": friendly_name}], "requester": requester})
}

pub fn connect_by_profile_succeeded(unique_device_id: &str, profile: &str) -> Value {
    json!({"device": {"uniqueDeviceId": unique_device_id}, "profileName": profile, "requester": CLOUD})
}

pub fn connect_by_profile_failed(profile: &str) -> Value {
    json!({"profileName": profile, "requester": CLOUD})
}

/// MediaControl*Succeeded/Failed.
pub fn media_control(unique_device_id: &str) -> Value {
    json!({"device": {"uniqueDeviceId": unique_device_id}})
}

/// StreamingStarted/Ended: the SDK names A2DP-SINK when the device offers it, else A2DP-SOURCE.
pub fn streaming(device: &Device, unique_device_id: &str) -> Value {
    let mut payload = json!({"device": {"uniqueDeviceId": unique_device_id}});
    for profile in [A2DP_SINK, A2DP_SOURCE] {
        if device.supports(profile) {
            payload["device"]["profileName"] = profile.into();
            break;
        }
    }
    payload
}

pub fn categories_succeeded(set: &[(String, String)]) -> Value {
    let devices: Vec<Value> =
        set.iter().map(|(id, category)| json!({"uniqueDeviceId": id, "deviceCategory": category})).collect();
    json!({"devices": devices})
}

/// SetDeviceCategoriesFailed, with the metadata of the devices the adapter knows.
pub fn categories_failed(unknown: &[String], state: &AdapterState, ids: &DeviceIds) -> Value {
    let devices: Vec<Value> = unknown
        .iter()
        .map(|unique_device_id| {
            let device = ids.mac_of(unique_device_id).and_then(|mac| state.device(mac));
            match device {
                Some(d) => {
                    json!({"uniqueDeviceId": unique_device_id, "metadata": {"classOfDevice": d.class_of_device}})
                }
                None => json!({"uniqueDeviceId": unique_device_id}),
            }
        })
        .collect();
    json!({"devices": devices})
}

/// The BluetoothState context payload.
pub fn bluetooth_state(state: &AdapterState, ids: &DeviceIds, streaming: impl Fn(&Device) -> Streaming) -> Value {
    let paired: Vec<Value> = state
        .devices
        .iter()
        .filter(|d| d.paired)
        .filter_map(|d| {
            Some(json!({
                "uniqueDeviceId": id(ids, d)?,
                "deviceCategory": category(ids, d),
                "friendlyName": d.friendly_name,
                "supportedProfiles": profiles(d, streaming(d)),
                "connectionState": if d.connected { "CONNECTED" } else { "DISCONNECTED" },
            }))
        })
        .collect();
    json!({"alexaDevice": {"friendlyName": state.friendly_name}, "pairedDevices": paired})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radio::Profile;
    use crate::schema_check::assert_valid;

    const PHONE: &str = "F4:60:E2:11:22:33";
    const SPEAKER: &str = "00:1A:7D:44:55:66";

    fn device(mac: &str, name: &str, profiles: &[&str], paired: bool, connected: bool) -> Device {
        Device {
            mac: mac.into(),
            friendly_name: name.into(),
            class_of_device: 0x5A020C,
            profiles: profiles.iter().map(|p| Profile { name: p.to_string(), version: "1.3".into() }).collect(),
            paired,
            connected,
            streaming: false,
        }
    }

    fn fixture() -> (AdapterState, DeviceIds) {
        let state = AdapterState {
            friendly_name: "avs-runtime".into(),
            discoverable: false,
            scanning: true,
            devices: vec![
                device(PHONE, "Pixel Phone", &[A2DP_SOURCE, AVRCP, "HFP", "PBAP"], true, true),
                device(SPEAKER, "Kitchen Speaker", &[A2DP_SINK, AVRCP], false, false),
            ],
        };
        let mut ids = DeviceIds::default();
        ids.id_for(PHONE);
        ids.id_for(SPEAKER);
        (state, ids)
    }

    #[test]
    fn a_mac_is_truncated_to_its_last_two_octets() {
        assert_eq!(truncated_mac(PHONE), "XX:XX:XX:XX:22:33");
        assert_eq!(truncated_mac("garbage"), "XX:XX:XX:XX:XX:XX");
    }

    #[test]
    fn the_scan_report_lists_only_unpaired_devices() {
        let (state, ids) = fixture();
        let report = scan_report(&state, &ids, true);
        assert_valid("events/ScanDevicesReport.json", &report);
        let found = report["discoveredDevices"].as_array().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["friendlyName"], "Kitchen Speaker");
        assert_eq!(found[0]["truncatedMacAddress"], "XX:XX:XX:XX:55:66");
        assert_valid("events/ScanDevicesReport.json", &scan_report(&AdapterState::default(), &ids, false));
    }

    #[test]
    fn the_context_reports_paired_devices_with_their_avs_profiles_and_stream() {
        let (state, mut ids) = fixture();
        let phone_id = ids.get(PHONE).unwrap().unique_device_id.clone();
        ids.set_category(&phone_id, "PHONE");
        let context = bluetooth_state(&state, &ids, |_| Streaming::Active);
        assert_valid("context/BluetoothState.json", &context);
        let phone = &context["pairedDevices"][0];
        assert_eq!(context["pairedDevices"].as_array().unwrap().len(), 1);
        assert_eq!(phone["uniqueDeviceId"], phone_id.as_str());
        assert_eq!(phone["deviceCategory"], "PHONE");
        assert_eq!(phone["connectionState"], "CONNECTED");
        let names: Vec<&str> =
            phone["supportedProfiles"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, [A2DP_SOURCE, AVRCP, "HFP"], "PBAP is no AVS profile");
        assert_eq!(phone["supportedProfiles"][0]["state"]["streaming"], "ACTIVE");
    }

    #[test]
    fn every_event_payload_passes_its_schema() {
        let (state, ids) = fixture();
        let phone = &state.devices[0];
        let id = ids.get(PHONE).unwrap().unique_device_id.clone();
        assert_valid("events/PairDevicesSucceeded.json", &paired(phone, &ids, Streaming::Inactive).unwrap());
        for event in ["PairDevicesFailed", "UnpairDevicesSucceeded", "UnpairDevicesFailed"] {
            assert_valid(&format!("events/{event}.json"), &ids_only(&id));
        }
        for event in ["ConnectByDeviceIds", "DisconnectDevices"] {
            assert_valid(&format!("events/{event}Succeeded.json"), &connection(&id, "Pixel Phone", CLOUD));
            assert_valid(&format!("events/{event}Failed.json"), &connection(&id, "", CLOUD));
        }
        assert_valid("events/ConnectByProfileSucceeded.json", &connect_by_profile_succeeded(&id, A2DP_SOURCE));
        assert_valid("events/ConnectByProfileFailed.json", &connect_by_profile_failed("HFP"));
        for command in ["Play", "Stop", "Next", "Previous"] {
            for outcome in ["Succeeded", "Failed"] {
                assert_valid(&format!("events/MediaControl{command}{outcome}.json"), &media_control(&id));
            }
        }
        let started = streaming(phone, &id);
        assert_eq!(started["device"]["profileName"], A2DP_SOURCE);
        assert_valid("events/StreamingStarted.json", &started);
        assert_valid("events/StreamingEnded.json", &streaming(&state.devices[1], "x"));
        assert_valid(
            "events/SetDeviceCategoriesSucceeded.json",
            &categories_succeeded(&[(id.clone(), "PHONE".into())]),
        );
        let failed = categories_failed(&[id, "unknown-id".into()], &state, &ids);
        assert_eq!(failed["devices"][0]["metadata"]["classOfDevice"], 0x5A020C);
        assert_valid("events/SetDeviceCategoriesFailed.json", &failed);
        for empty in ["ScanDevicesFailed", "EnterDiscoverableModeSucceeded", "EnterDiscoverableModeFailed"] {
            assert_valid(&format!("events/{empty}.json"), &json!({}));
        }
    }
}
