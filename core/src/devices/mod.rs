//! Device services: hardware the host owns (a screen, a Bluetooth radio…) that plugins reach by name
//! through `HostServices::request`. They are named after the device, never after an AVS interface: the
//! TemplateRuntime plugin draws on the `display`, the Bluetooth plugin drives the `bluetooth` adapter,
//! and a device maker swaps a simulated device for a real one without touching a plugin.

pub mod bluetooth;
pub mod display;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

/// One device service. Requests come from plugin threads and must not block on a plugin.
pub trait DeviceService: Send + Sync + 'static {
    /// Handles `request` for a plugin; `notify` delivers that plugin later results (as the host
    /// event named after the service) for as long as the plugin instance lives.
    fn request(&self, request: &Value, notify: Notifier) -> Result<Value, String>;
}

/// Delivers later results of a device service to the plugin that asked.
#[derive(Clone)]
pub struct Notifier {
    post: Arc<dyn Fn(Value) + Send + Sync>,
}

impl Notifier {
    pub fn new(post: impl Fn(Value) + Send + Sync + 'static) -> Self {
        Notifier { post: Arc::new(post) }
    }

    pub fn notify(&self, payload: Value) {
        (self.post)(payload)
    }
}

/// The device services of one runtime, by name.
#[derive(Clone, Default)]
pub struct DeviceServices {
    services: HashMap<String, Arc<dyn DeviceService>>,
}

impl DeviceServices {
    pub fn with(mut self, name: &str, service: Arc<dyn DeviceService>) -> Self {
        self.services.insert(name.to_string(), service);
        self
    }

    pub(crate) fn request(&self, service: &str, request: &str, notify: Notifier) -> Result<Value, String> {
        let device = self.services.get(service).ok_or_else(|| format!("this device has no `{service}` service"))?;
        let request: Value =
            serde_json::from_str(request).map_err(|e| format!("`{service}` request is not JSON: {e}"))?;
        device.request(&request, notify)
    }
}
