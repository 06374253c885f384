//! The slot of one interface: a plugin instance owned by a dedicated thread that runs its calls one at a
//! time, in the order they were queued.
//!
//! A plugin is a synchronous state machine (it cannot use the host's tokio), so its calls must not run on
//! the async runtime's workers; a thread per slot also means a plugin call that hangs stalls only its own
//! interface, and the caller's timeout turns it into an error.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use abi_stable::std_types::{RResult, RString};
use avs_plugin_api::{Directive, FocusState, Handling, HostServicesArc, Manifest, PluginBox};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::loader::LoadedPlugin;
use crate::directives::DirectiveMessage;
use crate::schema::InterfaceSchemas;

/// How a plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{interface}: {kind}: {message}")]
pub struct PluginFailure {
    pub interface: String,
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The plugin found the directive's content wrong.
    Invalid,
    /// The plugin does not support what was asked.
    Unsupported,
    /// The plugin failed to carry it out.
    Internal,
    /// The plugin panicked (caught by the SDK inside the plugin).
    Panic,
    /// The call did not return in time; the slot's thread may still be stuck in it.
    Timeout,
    /// The slot has shut down.
    Gone,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureKind::Invalid => "invalid",
            FailureKind::Unsupported => "unsupported",
            FailureKind::Internal => "failed",
            FailureKind::Panic => "panicked",
            FailureKind::Timeout => "timed out",
            FailureKind::Gone => "shut down",
        })
    }
}

impl FailureKind {
    /// The `error.type` of the `System.ExceptionEncountered` this failure causes.
    pub fn avs_error_type(self) -> &'static str {
        match self {
            FailureKind::Invalid => "UNEXPECTED_INFORMATION_RECEIVED",
            FailureKind::Unsupported => "UNSUPPORTED_OPERATION",
            _ => "INTERNAL_ERROR",
        }
    }
}

impl PluginFailure {
    /// Parses the SDK's wire form `<KIND>: <message>`.
    fn from_wire(interface: &str, error: RString) -> Self {
        let text = error.into_string();
        let (kind, message) = match text.split_once(": ") {
            Some(("UNEXPECTED_INFORMATION_RECEIVED", m)) => (FailureKind::Invalid, m.to_string()),
            Some(("UNSUPPORTED_OPERATION", m)) => (FailureKind::Unsupported, m.to_string()),
            Some(("INTERNAL_ERROR", m)) => (FailureKind::Internal, m.to_string()),
            Some(("PANIC", m)) => (FailureKind::Panic, m.to_string()),
            _ => (FailureKind::Internal, text),
        };
        PluginFailure { interface: interface.to_string(), kind, message }
    }

    fn new(interface: &str, kind: FailureKind, message: impl Into<String>) -> Self {
        PluginFailure { interface: interface.to_string(), kind, message: message.into() }
    }
}

type Reply<T> = oneshot::Sender<Result<T, PluginFailure>>;

/// A directive's outcome and its place in the order in which plugin threads actually executed
/// directives (host-wide, taken on the plugin's thread just before the call).
#[derive(Debug)]
pub(crate) struct Executed {
    pub sequence: u64,
    pub result: Result<Handling, PluginFailure>,
}

/// A call queued for the slot's thread.
pub(crate) enum SlotCall {
    Init(HostServicesArc, Reply<()>),
    Directive(Arc<DirectiveMessage>, oneshot::Sender<Executed>),
    Cancel(String),
    Focus(String, FocusState),
    Timer(u64),
    HostEvent(String, String),
    Context(Reply<Vec<Value>>),
    /// Stop serving (an OTA swap): export the state into the sender and park — notifications are
    /// ignored and directives refused — until an `ImportFrom` makes this slot active again.
    Quiesce(oneshot::Sender<Result<String, PluginFailure>>),
    /// Become active with the state the previous owner of the interface hands over. Queued first on a
    /// slot taking over, so that nothing it serves runs before the old version has finished.
    ImportFrom(oneshot::Receiver<Result<String, PluginFailure>>, Reply<()>),
    Shutdown(Reply<()>),
}

/// The sending side of a slot's queue, handed to the host services that call back into the plugin
/// (timers, media progress, focus changes).
#[derive(Clone)]
pub(crate) struct SlotSender {
    interface: Arc<str>,
    tx: mpsc::UnboundedSender<SlotCall>,
}

impl SlotSender {
    pub(crate) fn post(&self, call: SlotCall) {
        if self.tx.send(call).is_err() {
            tracing::debug!(interface = %self.interface, "call to a slot that has shut down dropped");
        }
    }

    pub(crate) fn interface(&self) -> &str {
        &self.interface
    }

    /// A sender whose calls a test reads from the returned queue instead of a plugin thread.
    #[cfg(test)]
    pub(crate) fn for_test(interface: &str) -> (SlotSender, mpsc::UnboundedReceiver<SlotCall>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (SlotSender { interface: interface.into(), tx }, rx)
    }
}

/// How long the host waits for a plugin call before calling it hung.
#[derive(Debug, Clone, Copy)]
pub struct CallTimeouts {
    pub directive: Duration,
    pub context: Duration,
    pub lifecycle: Duration,
}

impl Default for CallTimeouts {
    fn default() -> Self {
        CallTimeouts {
            directive: Duration::from_secs(5),
            context: Duration::from_secs(2),
            lifecycle: Duration::from_secs(10),
        }
    }
}

pub struct Slot {
    /// Directive calls that failed (error, panic) — what an OTA probation watches.
    pub failures: std::sync::atomic::AtomicU64,
    pub manifest: Manifest,
    pub schemas: Arc<InterfaceSchemas>,
    pub path: std::path::PathBuf,
    pub sha256: String,
    sender: SlotSender,
    timeouts: CallTimeouts,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Slot {
    /// Moves the plugin instance onto its own thread.
    /// `executed` numbers directive executions across all slots (see [`Executed`]).
    pub(crate) fn start(
        plugin: LoadedPlugin,
        timeouts: CallTimeouts,
        executed: Arc<std::sync::atomic::AtomicU64>,
    ) -> std::io::Result<Slot> {
        let LoadedPlugin { path, sha256, manifest, schemas, instance } = plugin;
        let interface: Arc<str> = manifest.interface.as_str().into();
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new().name(format!("plugin-{interface}")).spawn({
            let interface = interface.clone();
            move || run(interface, instance, rx, executed)
        })?;
        Ok(Slot {
            failures: Default::default(),
            manifest,
            schemas: Arc::new(schemas),
            path,
            sha256,
            sender: SlotSender { interface, tx },
            timeouts,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn interface(&self) -> &str {
        &self.manifest.interface
    }

    pub(crate) fn sender(&self) -> SlotSender {
        self.sender.clone()
    }

    pub(crate) fn post(&self, call: SlotCall) {
        self.sender.post(call)
    }

    async fn call<T>(&self, timeout: Duration, make: impl FnOnce(Reply<T>) -> SlotCall) -> Result<T, PluginFailure> {
        let (reply, answer) = oneshot::channel();
        self.sender.post(make(reply));
        self.answer(timeout, answer).await
    }

    async fn answer<T>(
        &self,
        timeout: Duration,
        answer: oneshot::Receiver<Result<T, PluginFailure>>,
    ) -> Result<T, PluginFailure> {
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PluginFailure::new(self.interface(), FailureKind::Gone, "the slot has shut down")),
            Err(_) => Err(PluginFailure::new(
                self.interface(),
                FailureKind::Timeout,
                format!("no answer within {} ms", timeout.as_millis()),
            )),
        }
    }

    pub(crate) async fn init(&self, services: HostServicesArc) -> Result<(), PluginFailure> {
        self.call(self.timeouts.lifecycle, |r| SlotCall::Init(services, r)).await
    }

    /// Queues a directive now (so that directives reach the plugin in the order they were submitted);
    /// `outcome` waits for the plugin's answer.
    pub(crate) fn submit(&self, directive: Arc<DirectiveMessage>) -> oneshot::Receiver<Executed> {
        let (reply, answer) = oneshot::channel();
        self.sender.post(SlotCall::Directive(directive, reply));
        answer
    }

    pub(crate) async fn outcome(&self, answer: oneshot::Receiver<Executed>) -> Executed {
        use std::sync::atomic::Ordering;
        let timeout = self.timeouts.directive;
        let executed = match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(executed)) => executed,
            Ok(Err(_)) => Executed {
                sequence: u64::MAX,
                result: Err(PluginFailure::new(self.interface(), FailureKind::Gone, "the slot has shut down")),
            },
            Err(_) => Executed {
                sequence: u64::MAX,
                result: Err(PluginFailure::new(
                    self.interface(),
                    FailureKind::Timeout,
                    format!("no answer within {} ms", timeout.as_millis()),
                )),
            },
        };
        if let Err(failure) = &executed.result {
            if matches!(failure.kind, FailureKind::Panic | FailureKind::Internal | FailureKind::Timeout) {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        executed
    }

    pub async fn context(&self) -> Result<Vec<Value>, PluginFailure> {
        self.call(self.timeouts.context, SlotCall::Context).await
    }

    /// Queues the takeover's first call: import the state `handover` will carry. Returns the answer.
    pub(crate) fn take_over(
        &self,
        handover: oneshot::Receiver<Result<String, PluginFailure>>,
    ) -> oneshot::Receiver<Result<(), PluginFailure>> {
        let (reply, answer) = oneshot::channel();
        self.post(SlotCall::ImportFrom(handover, reply));
        answer
    }

    /// Waits for the answer of `take_over`, within the lifecycle timeout.
    pub(crate) async fn taken_over(
        &self,
        answer: oneshot::Receiver<Result<(), PluginFailure>>,
    ) -> Result<(), PluginFailure> {
        self.answer(self.timeouts.lifecycle, answer).await
    }

    /// Calls the plugin's `shutdown` and stops the slot's thread. The library itself stays mapped.
    pub async fn shutdown(&self) -> Result<(), PluginFailure> {
        let result = self.call(self.timeouts.lifecycle, SlotCall::Shutdown).await;
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Ok(()), Some(thread)) = (&result, thread) {
            // The thread returns right after answering Shutdown; joining off the runtime keeps a slow
            // exit from stalling a worker.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }
}

fn run(
    interface: Arc<str>,
    mut plugin: PluginBox,
    mut calls: mpsc::UnboundedReceiver<SlotCall>,
    executed: Arc<std::sync::atomic::AtomicU64>,
) {
    let fail = |e: RString| PluginFailure::from_wire(&interface, e);
    let answer = |r: RResult<(), RString>| r.into_result().map_err(fail);
    let report = |what: &str, r: RResult<(), RString>| {
        if let RResult::RErr(e) = r {
            let failure = fail(e);
            tracing::warn!(interface = %interface, "plugin {what} failed: {failure}");
        }
    };
    let mut parked = false;
    while let Some(call) = calls.blocking_recv() {
        if parked {
            match call {
                SlotCall::Directive(_, reply) => {
                    let swapped = PluginFailure::new(&interface, FailureKind::Gone, "swapped out by an OTA update");
                    let _ = reply.send(Executed { sequence: u64::MAX, result: Err(swapped) });
                    continue;
                }
                SlotCall::Cancel(_) | SlotCall::Focus(..) | SlotCall::Timer(_) | SlotCall::HostEvent(..) => continue,
                _ => {}
            }
        }
        match call {
            SlotCall::Init(services, reply) => {
                let _ = reply.send(answer(plugin.init(services)));
            }
            SlotCall::Directive(directive, reply) => {
                let raw = Directive {
                    name: directive.name().into(),
                    message_id: directive.message_id().into(),
                    dialog_request_id: directive.dialog_request_id().unwrap_or("").into(),
                    payload: directive.payload().into(),
                };
                let sequence = executed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let result = plugin.handle_directive(raw).into_result().map_err(fail);
                let _ = reply.send(Executed { sequence, result });
            }
            SlotCall::Cancel(message_id) => report("cancel", plugin.cancel(message_id.as_str().into())),
            SlotCall::Focus(channel, focus) => report("on_focus", plugin.on_focus(channel.as_str().into(), focus)),
            SlotCall::Timer(id) => report("on_timer", plugin.on_timer(id)),
            SlotCall::HostEvent(kind, payload) => {
                report(&kind, plugin.on_host_event(kind.as_str().into(), payload.as_str().into()))
            }
            SlotCall::Context(reply) => {
                let result = plugin.context().into_result().map_err(fail).and_then(|json| {
                    serde_json::from_str(&json).map_err(|e| {
                        PluginFailure::new(
                            &interface,
                            FailureKind::Internal,
                            format!("context is not a JSON array: {e}"),
                        )
                    })
                });
                let _ = reply.send(result);
            }
            SlotCall::Quiesce(handover) => {
                let _ = handover.send(plugin.export_state().into_result().map(RString::into_string).map_err(fail));
                parked = true;
            }
            SlotCall::ImportFrom(state, reply) => {
                let imported = match state.blocking_recv() {
                    Ok(Ok(state)) => answer(plugin.import_state(state.as_str().into())),
                    Ok(Err(failure)) => Err(failure),
                    Err(_) => Err(PluginFailure::new(
                        &interface,
                        FailureKind::Gone,
                        "the previous version handed over no state",
                    )),
                };
                parked = imported.is_err() && parked;
                let _ = reply.send(imported);
            }
            SlotCall::Shutdown(reply) => {
                let _ = reply.send(answer(plugin.shutdown()));
                return;
            }
        }
    }
}
