//! What the `bluetooth` service needs of a Bluetooth radio, shaped after BlueZ's D-Bus API (an
//! `org.bluez.Adapter1` with `org.bluez.Device1` objects and `org.bluez.MediaPlayer1` for AVRCP): every
//! operation is asynchronous and reports its completion, and what the radio notices by itself (a device
//! found, a stream starting) arrives at a listener.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A Bluetooth profile a device offers, named after the role the *remote* device plays
/// (a phone streaming to us is an `A2DP-SOURCE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub version: String,
}

impl Profile {
    pub fn new(name: &str, version: &str) -> Self {
        Profile { name: name.into(), version: version.into() }
    }
}

pub const A2DP_SOURCE: &str = "A2DP-SOURCE";
pub const A2DP_SINK: &str = "A2DP-SINK";
pub const AVRCP: &str = "AVRCP";
pub const HFP: &str = "HFP";

/// A remote device the adapter knows: found by a scan, or paired earlier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    /// `XX:XX:XX:XX:XX:XX`, upper case: the device's identity on the radio.
    pub mac: String,
    pub friendly_name: String,
    /// The 24-bit Class of Device the remote advertises (major/minor class and service bits).
    pub class_of_device: u32,
    pub profiles: Vec<Profile>,
    pub paired: bool,
    pub connected: bool,
    /// An A2DP stream with this device is running.
    pub streaming: bool,
}

impl DeviceInfo {
    /// Whether the device offers `profile`; `A2DP` stands for either A2DP role.
    pub fn supports(&self, profile: &str) -> bool {
        self.profiles
            .iter()
            .any(|p| p.name == profile || (profile == "A2DP" && (p.name == A2DP_SOURCE || p.name == A2DP_SINK)))
    }
}

/// The adapter and the devices it knows, at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdapterState {
    pub friendly_name: String,
    pub discoverable: bool,
    pub scanning: bool,
    /// Most recently connected first, then the others in the order they were found.
    pub devices: Vec<DeviceInfo>,
}

/// AVRCP commands sent to a connected device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaCommand {
    Play,
    Pause,
    Next,
    Previous,
}

/// What the radio reports by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterEvent {
    DeviceFound(DeviceInfo),
    /// A scan ended by itself (not because it was asked to stop).
    ScanFinished,
    StreamingChanged {
        mac: String,
        active: bool,
    },
}

/// Called once with the outcome of an operation; `Err` carries the reason for the log.
pub type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

pub type Listener = Arc<dyn Fn(AdapterEvent) + Send + Sync>;

/// A Bluetooth radio. Implementations call completions and the listener without holding their own
/// locks, since both may call back into [`BluetoothAdapter::state`].
pub trait BluetoothAdapter: Send + Sync + 'static {
    fn state(&self) -> AdapterState;
    /// Sets the one listener of unsolicited events.
    fn listen(&self, listener: Listener);
    fn set_scanning(&self, on: bool, done: Completion);
    fn set_discoverable(&self, on: bool, done: Completion);
    fn pair(&self, mac: &str, done: Completion);
    /// Unpairing a connected device disconnects it first.
    fn unpair(&self, mac: &str, done: Completion);
    fn connect(&self, mac: &str, done: Completion);
    fn disconnect(&self, mac: &str, done: Completion);
    fn media(&self, mac: &str, command: MediaCommand, done: Completion);
}
