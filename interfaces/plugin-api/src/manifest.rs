//! The manifest (JSON, not ABI) a plugin reports through `Plugin::manifest`: everything the host needs to route to it,
//! sequence its directives, deliver its events and publish its capability.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// AVS namespace, e.g. `Speaker`.
    pub interface: String,
    /// AVS interface version, `major.minor`, as published in the capability document.
    pub version: String,
    /// The plugin artifact's own name and semver (distinct from the interface version).
    pub plugin: String,
    pub plugin_version: String,
    #[serde(default)]
    pub directives: Vec<DirectiveSpec>,
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// Names of the context states this interface reports (e.g. `VolumeState`).
    #[serde(default)]
    pub context: Vec<String>,
    /// The capability's `configurations` object, if the interface has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configurations: Option<Value>,
}

/// The medium a directive occupies while it runs, for dialog sequencing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Medium {
    None,
    Audio,
    Visual,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectiveSpec {
    pub name: String,
    /// A blocking directive holds the directives after it in its dialog until it completes.
    #[serde(default)]
    pub blocking: bool,
    #[serde(default = "medium_none")]
    pub medium: Medium,
    /// The focus channel it acquires, if any (`Dialog`, `Alert`, `Content`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

fn medium_none() -> Medium {
    Medium::None
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSpec {
    pub name: String,
    /// Must reach AVS even across disconnects and restarts (persisted in the outbox until accepted).
    #[serde(default)]
    pub must_deliver: bool,
}

impl Manifest {
    /// A manifest with no directives, events, context or configurations yet.
    pub fn new(interface: &str, version: impl Into<String>, plugin: &str, plugin_version: &str) -> Self {
        Manifest {
            interface: interface.to_string(),
            version: version.into(),
            plugin: plugin.to_string(),
            plugin_version: plugin_version.to_string(),
            directives: Vec::new(),
            events: Vec::new(),
            context: Vec::new(),
            configurations: None,
        }
    }
}

impl DirectiveSpec {
    pub fn new(name: &str) -> Self {
        DirectiveSpec { name: name.to_string(), blocking: false, medium: Medium::None, channel: None }
    }

    pub fn blocking(mut self, medium: Medium) -> Self {
        self.blocking = true;
        self.medium = medium;
        self
    }

    pub fn on_channel(mut self, channel: &str) -> Self {
        self.channel = Some(channel.to_string());
        self
    }
}

impl EventSpec {
    pub fn new(name: &str) -> Self {
        EventSpec { name: name.to_string(), must_deliver: false }
    }

    pub fn must_deliver(mut self) -> Self {
        self.must_deliver = true;
        self
    }
}
