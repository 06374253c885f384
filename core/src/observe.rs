//! What the runtime reports about itself as it works: the demo prints it, tests await it, a device's UI
//! can show it (connection state, the code to enter when linking).

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
    Connected {
        connection: u64,
    },
    Disconnected {
        reason: String,
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
    DirectiveHandled {
        namespace: String,
        name: String,
        message_id: String,
        outcome: Result<(), String>,
    },
    DirectiveDropped {
        namespace: String,
        name: String,
        message_id: String,
        reason: String,
    },
}

/// A cheap, clonable broadcaster; slow subscribers miss old events rather than slowing the runtime.
#[derive(Clone)]
pub struct Observer {
    tx: broadcast::Sender<RuntimeEvent>,
}

impl Default for Observer {
    fn default() -> Self {
        Observer { tx: broadcast::channel(4096).0 }
    }
}

impl Observer {
    pub fn emit(&self, event: RuntimeEvent) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.tx.subscribe()
    }
}
