//! What the runtime reports about itself as it works: the demo prints it, tests await it, a device's UI
//! can show it (connection state, the code to enter when linking).

use arcstr::{ArcStr, Substr};
use tokio::sync::broadcast;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    PluginLoaded {
        interface: String,
        version: String,
        path: String,
    },
    PluginRejected {
        path: String,
        error: String,
    },
    /// Code-based linking: the user enters `user_code` at `verification_uri`.
    LinkingCode {
        user_code: String,
        verification_uri: String,
    },
    Linked,
    /// Something the runtime needs failed and will be tried again after `delay_ms` (linking,
    /// publishing capabilities).
    Retrying {
        what: String,
        error: String,
        delay_ms: u64,
    },
    CapabilitiesPublished {
        interfaces: Vec<(String, String)>,
    },
    /// An OTA swap committed: `interface` now runs `to_version` from `path`.
    PluginSwapped {
        interface: String,
        from_version: String,
        to_version: String,
        path: String,
    },
    PluginRolledBack {
        interface: String,
        to_version: String,
        reason: String,
    },
    /// A plugin hung in a call outside probation; a fresh instance of the same library took over.
    PluginRestarted {
        interface: String,
        reason: String,
    },
    Connected {
        connection: u64,
    },
    Disconnected {
        reason: String,
    },
    /// A plugin's event is queued for AVS (it is sent once connected; `EventSent` follows).
    EventQueued {
        namespace: String,
        name: String,
        message_id: String,
    },
    EventSent {
        namespace: String,
        name: String,
        message_id: String,
        status: u16,
    },
    EventFailed {
        namespace: String,
        name: String,
        message_id: String,
        error: String,
    },
    /// `plugin` is the library file of the version that handled it; `sequence` the place of its
    /// execution among all directives plugins executed (`u64::MAX` if it never ran). Reported for every
    /// directive, so its strings are shared with the directive and the plugin's slot, not copied (and
    /// each subscriber's clone costs reference counts, not allocations).
    DirectiveHandled {
        namespace: Substr,
        name: Substr,
        message_id: Substr,
        plugin: ArcStr,
        sequence: u64,
        outcome: Result<(), String>,
    },
    DirectiveDropped {
        namespace: String,
        name: String,
        message_id: String,
        reason: String,
    },
    /// The device's display shows a card: `text` for a terminal, `card` (JSON) for a GUI.
    CardShown {
        token: String,
        text: String,
        card: serde_json::Value,
    },
    CardCleared {
        token: String,
    },
}

/// A cheap, clonable broadcaster; slow subscribers miss old events rather than slowing the runtime.
#[derive(Clone)]
pub struct Observer {
    tx: broadcast::Sender<RuntimeEvent>,
}

impl Default for Observer {
    fn default() -> Self {
        Observer::with_capacity(4096)
    }
}

impl Observer {
    /// `capacity` events are kept for a subscriber that falls behind before it misses some.
    pub fn with_capacity(capacity: usize) -> Self {
        Observer { tx: broadcast::channel(capacity).0 }
    }

    pub fn emit(&self, event: RuntimeEvent) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.tx.subscribe()
    }
}
