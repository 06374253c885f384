//! The host services a plugin calls: one instance per plugin, bound to its interface. Every method
//! returns quickly and never waits for a plugin, because plugins call them from inside their own calls.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RStr, RString};
use avs_plugin_api::{HostServices, HostServicesArc, HostServices_TO, LogLevel, PluginResult};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::task::AbortHandle;

use super::slot::{SlotCall, SlotSender};
use crate::devices::{DeviceServices, Notifier};
use crate::directives::sequencer::SequencerHandle;
use crate::events::{new_message_id, EventSender, OutgoingEvent};
use crate::focus::FocusManager;
use crate::media::{AudioSource, CaptureRequest, MediaEvent, PlayOptions, Player};
use crate::observe::{Observer, RuntimeEvent};
use crate::schema::InterfaceSchemas;
use crate::storage::Storage;
use crate::tasks::OwnedTasks;

/// What the core shares with every plugin's services.
pub(crate) struct Hub {
    pub events: EventSender,
    pub sequencer: SequencerHandle,
    pub focus: FocusManager,
    pub player: Player,
    pub storage: Storage,
    pub timers: Timers,
    pub observer: Observer,
    pub devices: DeviceServices,
}

/// Timers started by plugins: each fires `on_timer(id)` on the plugin's slot.
pub(crate) struct Timers {
    tasks: OwnedTasks,
    next_id: AtomicU64,
    running: Mutex<HashMap<u64, AbortHandle>>,
}

impl Timers {
    pub(crate) fn new(runtime: tokio::runtime::Handle) -> Self {
        Timers { tasks: OwnedTasks::new(runtime), next_id: AtomicU64::new(1), running: Mutex::default() }
    }

    fn start(self: &Arc<Self>, delay: Duration, period: Duration, slot: SlotSender) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let timers = Arc::downgrade(self);
        let handle = self.tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            slot.post(SlotCall::Timer(id));
            if period.is_zero() {
                if let Some(timers) = timers.upgrade() {
                    timers.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                }
                return;
            }
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                ticks.tick().await;
                slot.post(SlotCall::Timer(id));
            }
        });
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id, handle);
        id
    }

    fn cancel(&self, id: u64) {
        if let Some(handle) = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            handle.abort();
        }
    }

    pub(crate) fn shutdown(&self) {
        self.tasks.abort_all();
    }
}

#[derive(Clone)]
pub(crate) struct PluginServices {
    interface: Arc<str>,
    schemas: Arc<InterfaceSchemas>,
    must_deliver: Arc<HashSet<String>>,
    slot: SlotSender,
    hub: Arc<Hub>,
    timers: Arc<Timers>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct EventOptions {
    context: bool,
    dialog_request_id: Option<String>,
    new_dialog: bool,
    audio: Option<AudioSource>,
}

impl PluginServices {
    /// The services of one plugin, as the ABI object handed to its `init`.
    pub(crate) fn for_plugin(
        interface: &str,
        schemas: Arc<InterfaceSchemas>,
        must_deliver: HashSet<String>,
        slot: SlotSender,
        hub: Arc<Hub>,
        timers: Arc<Timers>,
    ) -> HostServicesArc {
        let services = PluginServices {
            interface: interface.into(),
            schemas,
            must_deliver: Arc::new(must_deliver),
            slot,
            hub,
            timers,
        };
        HostServices_TO::from_ptr(RArc::new(services), TD_Opaque)
    }

    fn send(&self, name: &str, payload: &str, options: &str) -> Result<String, String> {
        self.schemas.check_event(name, payload).map_err(|v| format!("refusing to send an invalid event: {v}"))?;
        let options: EventOptions = if options.trim().is_empty() {
            EventOptions::default()
        } else {
            serde_json::from_str(options).map_err(|e| format!("event options: {e}"))?
        };
        let payload = RawValue::from_string(payload.to_string()).map_err(|e| e.to_string())?;
        let queue = self.hub.events.reserve().map_err(|e| format!("{name} not sent: {e}"))?;
        let mut event = OutgoingEvent::new(&self.interface, name, payload);
        event.with_context = options.context;
        event.must_deliver = self.must_deliver.contains(name);
        event.dialog_request_id = options.dialog_request_id;
        if options.new_dialog {
            let dialog = new_message_id();
            // Queued before the event itself: the answer's directives find their dialog current.
            self.hub.sequencer.new_dialog(dialog.clone());
            event.dialog_request_id = Some(dialog);
        }
        let mut answer = serde_json::json!({
            "messageId": event.message_id,
            "dialogRequestId": event.dialog_request_id,
        });
        if let Some(source) = options.audio {
            let (id, stop) = self.hub.player.register_capture();
            let slot = self.slot.clone();
            let hub = self.hub.clone();
            let on_end = Box::new(move |end: MediaEvent| {
                hub.player.end_capture(id);
                slot.post(SlotCall::HostEvent("media".into(), end.to_json(id).to_string()));
            });
            event.audio = Some(CaptureRequest { id, source, stop, on_end: Some(on_end) });
            answer["audioStream"] = id.into();
        }
        self.hub.observer.emit(RuntimeEvent::EventQueued {
            namespace: event.namespace.clone(),
            name: name.to_string(),
            message_id: event.message_id.clone(),
        });
        queue.send(event);
        Ok(answer.to_string())
    }
}

fn result<T>(r: Result<T, String>) -> PluginResult<T> {
    match r {
        Ok(v) => RResult::ROk(v),
        Err(e) => RResult::RErr(e.into()),
    }
}

impl HostServices for PluginServices {
    fn send_event(&self, name: RStr<'_>, payload: RStr<'_>, options: RStr<'_>) -> PluginResult<RString> {
        let sent = self.send(name.as_str(), payload.as_str(), options.as_str());
        if let Err(e) = &sent {
            tracing::warn!(interface = %self.interface, event = name.as_str(), "{e}");
        }
        result(sent.map(RString::from))
    }

    fn complete_directive(&self, message_id: RStr<'_>, outcome: RResult<(), RString>) {
        let outcome = outcome.into_result().map_err(RString::into_string);
        self.slot.settled(message_id.as_str());
        self.hub.sequencer.completed(message_id.as_str(), outcome);
    }

    fn start_timer(&self, delay_ms: u64, period_ms: u64) -> u64 {
        self.timers.start(Duration::from_millis(delay_ms), Duration::from_millis(period_ms), self.slot.clone())
    }

    fn cancel_timer(&self, timer: u64) {
        self.timers.cancel(timer)
    }

    fn acquire_focus(&self, channel: RStr<'_>) -> PluginResult<()> {
        result(self.hub.focus.acquire(channel.as_str(), self.slot.clone()).map_err(|e| e.to_string()))
    }

    fn release_focus(&self, channel: RStr<'_>) {
        if let Err(e) = self.hub.focus.release(channel.as_str(), &self.interface) {
            tracing::warn!(interface = %self.interface, "{e}");
        }
    }

    fn play(&self, url: RStr<'_>, options: RStr<'_>) -> PluginResult<u64> {
        let options = match PlayOptions::parse(options.as_str()) {
            Ok(options) => options,
            Err(e) => return result(Err(e.to_string())),
        };
        let slot = self.slot.clone();
        let listener = move |id: u64| -> crate::media::MediaListener {
            Box::new(move |event: MediaEvent| {
                slot.post(SlotCall::HostEvent("media".into(), event.to_json(id).to_string()));
            })
        };
        result(self.hub.player.play(url.as_str(), options, listener).map_err(|e| e.to_string()))
    }

    fn stop_media(&self, media: u64) {
        self.hub.player.stop(media)
    }

    fn storage_get(&self, key: RStr<'_>) -> ROption<RString> {
        match self.hub.storage.get(&self.interface, key.as_str()) {
            Ok(value) => value.map(RString::from).into(),
            Err(e) => {
                tracing::error!(interface = %self.interface, "storage read of {}: {e}", key.as_str());
                ROption::RNone
            }
        }
    }

    fn storage_put(&self, key: RStr<'_>, value: RStr<'_>) -> PluginResult<()> {
        result(self.hub.storage.put(&self.interface, key.as_str(), value.as_str()).map_err(|e| e.to_string()))
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let (interface, message) = (&*self.interface, message.as_str());
        match level {
            LogLevel::Error => tracing::error!(target: "plugin", interface, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", interface, "{message}"),
            LogLevel::Info => tracing::info!(target: "plugin", interface, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", interface, "{message}"),
            LogLevel::Trace => tracing::trace!(target: "plugin", interface, "{message}"),
        }
    }

    fn request(&self, service: RStr<'_>, request: RStr<'_>) -> PluginResult<RString> {
        let slot = self.slot.clone();
        let kind = service.to_string();
        let notify = Notifier::new(move |payload| slot.post(SlotCall::HostEvent(kind.clone(), payload.to_string())));
        let answer = self.hub.devices.request(service.as_str(), request.as_str(), notify);
        if let Err(e) = &answer {
            tracing::warn!(interface = %self.interface, service = service.as_str(), "{e}");
        }
        result(answer.map(|a| a.to_string().into()))
    }
}
