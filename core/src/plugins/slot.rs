//! The slot of one interface: a plugin instance owned by a dedicated thread that runs its calls one at a
//! time, in the order they were queued.
//!
//! A plugin is a synchronous state machine (it cannot use the host's tokio), so its calls must not run on
//! the async runtime's workers; a thread per slot also means a plugin call that hangs stalls only its own
//! interface. The slot records which call is running since when, so that the host can tell a hung call
//! from a long queue, give up on the slot and move the calls queued behind the hung one elsewhere.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use abi_stable::std_types::{RResult, RString};
use arcstr::{ArcStr, Substr};
use avs_plugin_api::{Directive, FocusState, Handling, HostServicesArc, Manifest, PluginBox};
use serde_json::Value;
use tokio::sync::oneshot;

use super::loader::LoadedPlugin;
use super::queue::{CallQueue, Popped};
use crate::directives::{DirectiveMessage, DispatchStats};
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

/// A slot stuck in a call (see [`Slot::hung`]), and the directive it is stuck in if it is one.
pub(crate) struct Hung(Option<Arc<dyn DirectiveReply>>);

/// Who hears a directive's outcome: the sequencer that dispatched it. The slot's thread answers once
/// the plugin returned; the host answers instead (a timeout) if the call hangs, and the first answer is
/// the one that counts.
pub(crate) trait DirectiveReply: Send + Sync {
    fn directive(&self) -> &Arc<DirectiveMessage>;
    fn executed(self: Arc<Self>, executed: Executed);
}

/// A call queued for the slot's thread.
pub(crate) enum SlotCall {
    Init(HostServicesArc, Reply<()>),
    Directive(Arc<dyn DirectiveReply>),
    Cancel(String),
    Focus(String, FocusState),
    Timer(u64),
    HostEvent(String, String),
    Context(Reply<Vec<Value>>),
    /// Stop serving (an OTA swap): let the directives still pending finish (a Speak playing), within the
    /// drain time, then export the state into the sender and park — notifications are ignored and
    /// directives refused — until a `Resume` or an `ImportFrom` makes this slot active again.
    Quiesce(oneshot::Sender<Result<Handover, PluginFailure>>),
    /// Become active with the state the previous owner of the interface hands over. Queued first on a
    /// slot taking over, so that nothing it serves runs before the old version has finished. If the
    /// state does not come or is refused, the slot shuts its plugin down, closes and hands back every
    /// call queued after this one, so that the old version can serve them.
    ImportFrom(oneshot::Receiver<Result<String, PluginFailure>>, oneshot::Sender<TakeOver>),
    /// Serve again with the state kept since the `Quiesce` (a take-over failed).
    Resume,
    Shutdown(Reply<()>),
}

/// What a quiesced slot hands over: its exported state, and the directives it left unfinished because
/// the drain time ran out (the host fails them, so that their dialog does not wait forever).
#[derive(Debug, Clone)]
pub(crate) struct Handover {
    pub state: String,
    pub unfinished: Vec<String>,
}

/// The answer to [`SlotCall::ImportFrom`].
pub(crate) type TakeOver = Result<(), (PluginFailure, Vec<SlotCall>)>;

/// The sending side of a slot's queue, handed to the host services that call back into the plugin
/// (timers, media progress, focus changes).
#[derive(Clone)]
pub(crate) struct SlotSender {
    interface: Arc<str>,
    queue: Arc<CallQueue>,
    /// Directives the plugin has been handed and has not finished: each is entered before its call and
    /// leaves when the call returns, or, if it answered `Pending`, once the plugin completes it or the
    /// host cancels it. Touched twice per directive, so hashed with foldhash rather than SipHash.
    pending: Arc<Mutex<HashSet<Substr, foldhash::fast::RandomState>>>,
}

impl SlotSender {
    pub(crate) fn post(&self, call: SlotCall) {
        if !self.try_post(call) {
            tracing::debug!(interface = %self.interface, "call to a slot that has shut down dropped");
        }
    }

    /// Queues a call; false if the slot has shut down.
    pub(crate) fn try_post(&self, call: SlotCall) -> bool {
        self.queue.push(call).is_ok()
    }

    pub(crate) fn interface(&self) -> &str {
        &self.interface
    }

    /// The plugin completed a directive it had answered `Pending`.
    pub(crate) fn settled(&self, message_id: &str) {
        lock(&self.pending).remove(message_id);
    }

    /// A sender whose calls a test reads from the returned queue instead of a plugin thread.
    #[cfg(test)]
    pub(crate) fn for_test(interface: &str) -> (SlotSender, Arc<CallQueue>) {
        let queue = Arc::new(CallQueue::default());
        (SlotSender { interface: interface.into(), queue: queue.clone(), pending: Default::default() }, queue)
    }
}

/// How long the host waits for a plugin call before calling it hung, and how long it watches a new
/// version after an OTA swap.
#[derive(Debug, Clone, Copy)]
pub struct CallTimeouts {
    pub directive: Duration,
    pub context: Duration,
    pub lifecycle: Duration,
    /// After a swap, a directive that fails (error, panic, hang) within this time rolls the interface
    /// back to the version the swap replaced.
    pub probation: Duration,
    /// How long a swap lets the old version finish the directives it is still carrying out (a Speak
    /// playing) before it takes the state anyway and fails them.
    pub drain: Duration,
}

impl Default for CallTimeouts {
    fn default() -> Self {
        CallTimeouts {
            directive: Duration::from_secs(5),
            context: Duration::from_secs(2),
            lifecycle: Duration::from_secs(10),
            probation: Duration::from_secs(60),
            drain: Duration::from_secs(60),
        }
    }
}

/// The plugin call a slot's thread is in: since when, and which directive if it is one.
#[derive(Clone)]
struct Running {
    since: Instant,
    directive: Option<Arc<dyn DirectiveReply>>,
}

pub struct Slot {
    /// Directive calls that failed (error, panic, hang) — what an OTA probation watches.
    pub failures: std::sync::atomic::AtomicU64,
    pub manifest: Manifest,
    pub schemas: Arc<InterfaceSchemas>,
    pub path: std::path::PathBuf,
    /// `path` as text, for what is reported per directive.
    path_text: ArcStr,
    pub sha256: String,
    sender: SlotSender,
    timeouts: CallTimeouts,
    running: Arc<Mutex<Option<Running>>>,
    /// Given up on: a call hung, the queue is closed and its calls went elsewhere.
    abandoned: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Slot {
    /// Moves the plugin instance onto its own thread.
    /// `dispatch` numbers directive executions across all slots (see [`Executed`]) and times them.
    pub(crate) fn start(
        plugin: LoadedPlugin,
        timeouts: CallTimeouts,
        dispatch: Arc<DispatchStats>,
        cpus: Arc<[usize]>,
    ) -> std::io::Result<Slot> {
        let LoadedPlugin { path, sha256, manifest, schemas, instance } = plugin;
        let interface: Arc<str> = manifest.interface.as_str().into();
        let sender =
            SlotSender { interface: interface.clone(), queue: Default::default(), pending: Default::default() };
        let running = Arc::new(Mutex::new(None));
        let thread = std::thread::Builder::new().name(format!("plugin-{interface}")).spawn({
            let (sender, running) = (sender.clone(), running.clone());
            move || {
                if !cpus.is_empty() {
                    if let Err(e) = crate::process::pin_thread(0, &cpus) {
                        tracing::warn!(interface = %sender.interface, "plugin thread not pinned to CPUs {cpus:?}: {e}");
                    }
                }
                run(instance, &sender, &running, timeouts.drain, &dispatch)
            }
        })?;
        Ok(Slot {
            failures: Default::default(),
            manifest,
            schemas: Arc::new(schemas),
            path_text: path.display().to_string().into(),
            path,
            sha256,
            sender,
            timeouts,
            running,
            abandoned: AtomicBool::new(false),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn interface(&self) -> &str {
        &self.manifest.interface
    }

    pub(crate) fn path_text(&self) -> &ArcStr {
        &self.path_text
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

    /// Queues a directive; its outcome goes to `reply`. Unless `wake`, the slot's thread is woken only
    /// by [`Slot::wake`] (or the next call queued). A slot that has closed (given up on, or its
    /// take-over failed) hands the directive back: the interface has another slot by then.
    pub(crate) fn submit(&self, reply: Arc<dyn DirectiveReply>, wake: bool) -> Result<(), Arc<dyn DirectiveReply>> {
        let call = SlotCall::Directive(reply);
        let queued = if wake { self.sender.queue.push(call) } else { self.sender.queue.push_unwoken(call) };
        match queued {
            Ok(()) => Ok(()),
            Err(SlotCall::Directive(reply)) => Err(reply),
            Err(_) => unreachable!("the queue hands back the call it was given"),
        }
    }

    pub(crate) fn wake(&self) {
        self.sender.queue.wake()
    }

    /// Counts a directive's failure (error, panic, hang): what an OTA probation watches.
    pub(crate) fn count_failure(&self, result: &Result<Handling, PluginFailure>) {
        if let Err(failure) = result {
            if matches!(failure.kind, FailureKind::Panic | FailureKind::Internal | FailureKind::Timeout) {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether this slot's thread has been in one call for longer than the directive timeout and must
    /// be recovered: the call is a directive, or directives wait behind it.
    pub(crate) fn hung(&self) -> Option<Hung> {
        let running = self.stuck(self.timeouts.directive)?;
        match running.directive {
            Some(reply) => Some(Hung(Some(reply))),
            None => self.sender.queue.holds_directives().then_some(Hung(None)),
        }
    }

    /// Answers the directive a hung call is stuck in, if it is one, with a timeout.
    pub(crate) fn fail_hung(&self, Hung(directive): Hung) {
        if let Some(reply) = directive {
            let hung =
                format!("no answer within {} ms: the plugin is stuck in it", self.timeouts.directive.as_millis());
            let failure = PluginFailure::new(self.interface(), FailureKind::Timeout, hung);
            reply.executed(Executed { sequence: u64::MAX, result: Err(failure) });
        }
    }

    /// Whether this slot's thread has been in one call for longer than `limit`.
    pub(crate) fn is_stuck(&self, limit: Duration) -> bool {
        self.stuck(limit).is_some()
    }

    /// The call this slot's thread has been in for longer than `limit`, if any.
    fn stuck(&self, limit: Duration) -> Option<Running> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        (running.since.elapsed() > limit).then_some(running)
    }

    /// What the slot's thread is stuck in, for the log.
    pub(crate) fn stuck_in(&self) -> String {
        match self.stuck(Duration::ZERO) {
            Some(Running { directive: Some(reply), since }) => {
                format!("directive {} for {} ms", reply.directive().message_id(), since.elapsed().as_millis())
            }
            Some(Running { directive: None, since }) => format!("a call for {} ms", since.elapsed().as_millis()),
            None => "nothing".into(),
        }
    }

    /// Gives up on this slot: closes its queue and returns the calls still in it, in order. Only the
    /// first caller gets them (`None` after that). The thread stays in its stuck call; the library
    /// stays mapped, as every one does.
    pub(crate) fn abandon(&self) -> Option<Vec<SlotCall>> {
        if self.abandoned.swap(true, Ordering::SeqCst) {
            return None;
        }
        self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        Some(self.sender.queue.close())
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    pub async fn context(&self) -> Result<Vec<Value>, PluginFailure> {
        self.call(self.timeouts.context, SlotCall::Context).await
    }

    /// Queues the takeover's first call: import the state `handover` will carry. Returns the answer.
    pub(crate) fn take_over(
        &self,
        handover: oneshot::Receiver<Result<String, PluginFailure>>,
    ) -> oneshot::Receiver<TakeOver> {
        let (reply, answer) = oneshot::channel();
        self.post(SlotCall::ImportFrom(handover, reply));
        answer
    }

    /// Waits for the answer of `take_over`, within the lifecycle timeout once the state was sent.
    pub(crate) async fn taken_over(&self, answer: oneshot::Receiver<TakeOver>) -> TakeOver {
        let limit = self.timeouts.lifecycle;
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(taken)) => taken,
            Ok(Err(_)) => {
                Err((PluginFailure::new(self.interface(), FailureKind::Gone, "the slot has shut down"), vec![]))
            }
            Err(_) => {
                let hung = format!("import_state gave no answer within {} ms", limit.as_millis());
                Err((PluginFailure::new(self.interface(), FailureKind::Timeout, hung), Vec::new()))
            }
        }
    }

    /// The lifecycle timeout: how long the old version may take to hand over its state.
    pub(crate) fn lifecycle_timeout(&self) -> Duration {
        self.timeouts.lifecycle
    }

    /// Calls the plugin's `shutdown` and stops the slot's thread. The library itself stays mapped. A slot
    /// stuck in a call is abandoned instead: its thread cannot be stopped.
    pub async fn shutdown(&self) -> Result<(), PluginFailure> {
        if let Some(running) = self.stuck(self.timeouts.lifecycle) {
            self.abandon();
            let stuck = format!("abandoned: stuck in a call for {} ms", running.since.elapsed().as_millis());
            return Err(PluginFailure::new(self.interface(), FailureKind::Timeout, stuck));
        }
        let result = self.call(self.timeouts.lifecycle, SlotCall::Shutdown).await;
        if matches!(&result, Err(PluginFailure { kind: FailureKind::Timeout, .. })) {
            self.abandon();
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Ok(()), Some(thread)) = (&result, thread) {
            // The thread returns right after answering Shutdown; joining off the runtime keeps a slow
            // exit from stalling a worker.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(
    mut plugin: PluginBox,
    slot: &SlotSender,
    running: &Mutex<Option<Running>>,
    drain: Duration,
    dispatch: &DispatchStats,
) {
    let interface = &*slot.interface;
    let fail = |e: RString| PluginFailure::from_wire(interface, e);
    let answer = |r: RResult<(), RString>| r.into_result().map_err(fail);
    let report = |what: &str, r: RResult<(), RString>| {
        if let RResult::RErr(e) = r {
            let failure = fail(e);
            tracing::warn!(interface = %interface, "plugin {what} failed: {failure}");
        }
    };
    // Every call into the plugin goes through here, so that a hung one is visible to the host.
    let timed = |directive: Option<&Arc<dyn DirectiveReply>>| {
        *lock(running) = Some(Running { since: Instant::now(), directive: directive.cloned() });
        Done(running)
    };
    let mut parked = false;
    // A Quiesce waiting for the pending directives to finish, and until when it waits.
    let mut draining: Option<(oneshot::Sender<Result<Handover, PluginFailure>>, Instant)> = None;
    loop {
        let call = match slot.queue.pop(draining.as_ref().map(|(_, until)| *until)) {
            Popped::Call(call) => Some(call),
            Popped::TimedOut => None,
            Popped::Closed => return,
        };
        let call = match call {
            Some(SlotCall::Directive(reply)) if parked => {
                let swapped = PluginFailure::new(interface, FailureKind::Gone, "swapped out by an OTA update");
                reply.executed(Executed { sequence: u64::MAX, result: Err(swapped) });
                continue;
            }
            Some(SlotCall::Cancel(_) | SlotCall::Focus(..) | SlotCall::Timer(_) | SlotCall::HostEvent(..))
                if parked =>
            {
                continue
            }
            call => call,
        };
        match call {
            None => {}
            Some(SlotCall::Init(services, reply)) => {
                let _done = timed(None);
                let _ = reply.send(answer(plugin.init(services)));
            }
            Some(SlotCall::Directive(reply)) => {
                let directive = reply.directive().clone();
                let raw = Directive {
                    name: directive.name().into(),
                    message_id: directive.message_id().into(),
                    dialog_request_id: directive.dialog_request_id().unwrap_or("").into(),
                    payload: directive.payload().into(),
                };
                let sequence = dispatch.next_execution();
                // Counted as pending before the call: a plugin may complete it before returning.
                let [_, _, message_id] = directive.shared_ids();
                lock(&slot.pending).insert(message_id);
                let result = {
                    let _done = timed(Some(&reply));
                    plugin.handle_directive(raw).into_result().map_err(fail)
                };
                dispatch.record(directive.arrived());
                if !matches!(result, Ok(Handling::Pending)) {
                    slot.settled(directive.message_id());
                }
                reply.executed(Executed { sequence, result });
            }
            Some(SlotCall::Cancel(message_id)) => {
                {
                    let _done = timed(None);
                    report("cancel", plugin.cancel(message_id.as_str().into()));
                }
                // The host reported it cancelled; the plugin owes it nothing more.
                slot.settled(&message_id);
            }
            Some(SlotCall::Focus(channel, focus)) => {
                let _done = timed(None);
                report("on_focus", plugin.on_focus(channel.as_str().into(), focus))
            }
            Some(SlotCall::Timer(id)) => {
                let _done = timed(None);
                report("on_timer", plugin.on_timer(id))
            }
            Some(SlotCall::HostEvent(kind, payload)) => {
                let _done = timed(None);
                report(&kind, plugin.on_host_event(kind.as_str().into(), payload.as_str().into()))
            }
            Some(SlotCall::Context(reply)) => {
                let context = {
                    let _done = timed(None);
                    plugin.context().into_result()
                };
                let result = context.map_err(fail).and_then(|json| {
                    serde_json::from_str(&json).map_err(|e| {
                        PluginFailure::new(
                            interface,
                            FailureKind::Internal,
                            format!("context is not a JSON array: {e}"),
                        )
                    })
                });
                let _ = reply.send(result);
            }
            Some(SlotCall::Quiesce(handover)) => draining = Some((handover, Instant::now() + drain)),
            Some(SlotCall::ImportFrom(state, reply)) => {
                // Waiting for the old version to finish is not a plugin call: not timed.
                let imported = match state.blocking_recv() {
                    Ok(Ok(state)) => {
                        let _done = timed(None);
                        answer(plugin.import_state(state.as_str().into()))
                    }
                    Ok(Err(failure)) => Err(failure),
                    Err(_) => Err(PluginFailure::new(
                        interface,
                        FailureKind::Gone,
                        "the previous version handed over no state",
                    )),
                };
                match imported {
                    Ok(()) => {
                        parked = false;
                        let _ = reply.send(Ok(()));
                    }
                    Err(failure) => {
                        // This version will not serve: nothing queued here may be lost or refused.
                        {
                            let _done = timed(None);
                            report("shutdown", plugin.shutdown());
                        }
                        let _ = reply.send(Err((failure, slot.queue.close())));
                        return;
                    }
                }
            }
            Some(SlotCall::Resume) => parked = false,
            Some(SlotCall::Shutdown(reply)) => {
                let _done = timed(None);
                let _ = reply.send(answer(plugin.shutdown()));
                slot.queue.close();
                return;
            }
        }
        // A Quiesce completes once nothing is pending any more, or when the drain time is up.
        let drained =
            draining.as_ref().is_some_and(|(_, until)| lock(&slot.pending).is_empty() || Instant::now() >= *until);
        if let Some((handover, _)) = draining.take_if(|_| drained) {
            let state = {
                let _done = timed(None);
                plugin.export_state().into_result()
            };
            let unfinished: Vec<String> = lock(&slot.pending).drain().map(|id| id.to_string()).collect();
            let _ = handover.send(state.map(|state| Handover { state: state.into_string(), unfinished }).map_err(fail));
            parked = true;
        }
    }
}

/// Clears the running-call record when the call returns.
struct Done<'a>(&'a Mutex<Option<Running>>);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
