//! uniqueDeviceIds: AVS knows a peer only by a UUID this device generates for its MAC address and must
//! keep (the AVS Device SDK keeps them in SQLite), so the map is persisted and travels in the exported
//! state. The category SetDeviceCategories gives a device is kept with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The storage key of the persisted [`DeviceIds`].
pub const STORE_KEY: &str = "devices";

/// The category of a device AVS has not categorised (the SDK's default).
pub const UNKNOWN_CATEGORY: &str = "UNKNOWN";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Known {
    pub unique_device_id: String,
    pub device_category: String,
}

/// MAC address → its uniqueDeviceId and category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceIds {
    by_mac: BTreeMap<String, Known>,
}

impl DeviceIds {
    /// The id of `mac`, generated on first sight; `true` when the map changed and must be stored.
    pub fn id_for(&mut self, mac: &str) -> (String, bool) {
        if let Some(known) = self.by_mac.get(mac) {
            return (known.unique_device_id.clone(), false);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let known = Known { unique_device_id: id.clone(), device_category: UNKNOWN_CATEGORY.into() };
        self.by_mac.insert(mac.to_string(), known);
        (id, true)
    }

    pub fn get(&self, mac: &str) -> Option<&Known> {
        self.by_mac.get(mac)
    }

    pub fn mac_of(&self, unique_device_id: &str) -> Option<&str> {
        self.by_mac.iter().find(|(_, k)| k.unique_device_id == unique_device_id).map(|(mac, _)| mac.as_str())
    }

    /// Records `category` for the device with that id; `false` if the id is unknown.
    pub fn set_category(&mut self, unique_device_id: &str, category: &str) -> bool {
        match self.by_mac.values_mut().find(|k| k.unique_device_id == unique_device_id) {
            Some(known) => {
                known.device_category = category.to_string();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_generated_once_per_mac_and_found_again() {
        let mut ids = DeviceIds::default();
        let (phone, new) = ids.id_for("F4:60:E2:11:22:33");
        assert!(new);
        assert_eq!(ids.id_for("F4:60:E2:11:22:33"), (phone.clone(), false));
        let (speaker, _) = ids.id_for("00:1A:7D:44:55:66");
        assert_ne!(phone, speaker);
        assert!(uuid::Uuid::parse_str(&phone).is_ok(), "{phone}");
        assert_eq!(ids.mac_of(&phone), Some("F4:60:E2:11:22:33"));
        assert_eq!(ids.mac_of("no-such-id"), None);
    }

    #[test]
    fn the_map_round_trips_through_json_with_its_categories() {
        let mut ids = DeviceIds::default();
        let (phone, _) = ids.id_for("F4:60:E2:11:22:33");
        assert_eq!(ids.get("F4:60:E2:11:22:33").unwrap().device_category, UNKNOWN_CATEGORY);
        assert!(ids.set_category(&phone, "PHONE"));
        assert!(!ids.set_category("no-such-id", "PHONE"));
        let json = serde_json::to_value(&ids).unwrap();
        assert_eq!(json["F4:60:E2:11:22:33"]["uniqueDeviceId"], phone.as_str());
        assert_eq!(serde_json::from_value::<DeviceIds>(json).unwrap(), ids);
    }
}
