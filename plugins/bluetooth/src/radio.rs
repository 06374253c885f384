//! The host's `bluetooth` device service as this plugin sees it: the requests it makes and the
//! notifications it gets back (the contract is documented in avs-core `devices::bluetooth`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Play,
    Pause,
    Next,
    Previous,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    State,
    Scan { on: bool },
    Discoverable { on: bool },
    Pair { mac: String },
    Unpair { mac: String },
    Connect { mac: String },
    Disconnect { mac: String },
    ConnectByProfile { profile: String },
    Media { mac: String, command: Command },
}

impl Request {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("requests serialise")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub mac: String,
    pub friendly_name: String,
    pub class_of_device: u32,
    pub profiles: Vec<Profile>,
    pub paired: bool,
    pub connected: bool,
    pub streaming: bool,
}

impl Device {
    pub fn supports(&self, profile: &str) -> bool {
        self.profiles.iter().any(|p| p.name == profile)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdapterState {
    pub friendly_name: String,
    pub discoverable: bool,
    pub scanning: bool,
    pub devices: Vec<Device>,
}

impl AdapterState {
    pub fn device(&self, mac: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.mac == mac)
    }
}

/// A `bluetooth` host event.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Note {
    Result {
        request: Request,
        ok: bool,
        error: Option<String>,
        mac: Option<String>,
        state: AdapterState,
    },
    /// A scan found a device (the report lists it from `state`).
    Found {
        state: AdapterState,
    },
    ScanFinished {
        state: AdapterState,
    },
    Streaming {
        mac: String,
        active: bool,
        state: AdapterState,
    },
}

impl Note {
    pub fn state(&self) -> &AdapterState {
        match self {
            Note::Result { state, .. }
            | Note::Found { state }
            | Note::ScanFinished { state }
            | Note::Streaming { state, .. } => state,
        }
    }
}
