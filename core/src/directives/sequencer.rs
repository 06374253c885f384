//! Dialog sequencing: the order in which routed directives reach their plugins.
//!
//! - No dialogRequestId (cloud-initiated, e.g. a volume change from the app): handled at once, in arrival
//!   order per interface.
//! - The current dialog's directives: one after another, in arrival order; a blocking directive (Speak)
//!   holds the ones after it until its plugin reports completion.
//! - Another dialog's directives: dropped (stale).
//! - A new dialog (a Recognize, i.e. barge-in) cancels whatever the previous dialog still had running or
//!   queued.
//!
//! A failed directive scrubs the rest of its dialog and is reported with ExceptionEncountered. A blocking
//! directive is reported handled when its plugin completes it, in a dialog or not.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use avs_plugin_api::Handling;
use tokio::runtime::Handle;
use tokio::task::JoinSet;

use super::DirectiveMessage;
use crate::events::{exception_encountered, EventSender};
use crate::observe::{Observer, RuntimeEvent};
use crate::plugins::slot::{DirectiveReply, Executed, Slot, SlotCall};
use crate::plugins::PluginHost;

/// A directive that passed routing and validation, with its plugin's blocking policy.
pub(crate) struct Routed {
    pub directive: Arc<DirectiveMessage>,
    pub blocking: bool,
}

/// The dialog sequencer: a state machine behind a lock, not a task. The router submits to it on the
/// downchannel's task and plugin threads report to it as their calls return, so a directive costs no
/// hop through a channel and no task of its own — those wake-ups cost more than dispatching it.
#[derive(Clone)]
pub(crate) struct SequencerHandle(Arc<Mutex<Sequencer>>);

impl SequencerHandle {
    /// Rollbacks a failed probation starts run on `runtime`, owned by the sequencer.
    pub(crate) fn new(events: EventSender, observer: Observer, runtime: Handle) -> Self {
        SequencerHandle(Arc::new_cyclic(|this| {
            Mutex::new(Sequencer {
                this: this.clone(),
                plugins: OnceLock::new(),
                runtime,
                events,
                observer,
                current_dialog: None,
                queue: VecDeque::new(),
                in_flight: None,
                detached: HashMap::new(),
                unwoken: Vec::new(),
                unwoken_directives: 0,
                retired: Vec::with_capacity(MAX_RETIRED),
                rollbacks: JoinSet::new(),
            })
        }))
    }

    /// The host whose plugins the directives go to. Held weakly: the host's services hold this handle.
    pub(crate) fn serve(&self, plugins: &Arc<PluginHost>) {
        let _ = self.lock().plugins.set(Arc::downgrade(plugins));
    }

    fn lock(&self) -> MutexGuard<'_, Sequencer> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a routed directive for its plugin, waking the plugin's thread only every [`WAKE_BATCH`]
    /// directives: the router calls [`SequencerHandle::wake_plugins`] once it has queued what it read.
    pub(crate) fn submit(&self, routed: Routed) {
        self.lock().submit(routed)
    }

    /// Wakes the threads of the plugins [`SequencerHandle::submit`] queued directives for.
    pub(crate) fn wake_plugins(&self) {
        let unwoken = {
            let mut sequencer = self.lock();
            sequencer.unwoken_directives = 0;
            std::mem::take(&mut sequencer.unwoken)
        };
        for slot in unwoken {
            slot.wake();
        }
    }

    /// A new dialog (a Recognize, i.e. barge-in) cancels whatever the previous one still had.
    pub(crate) fn new_dialog(&self, dialog: String) {
        self.lock().new_dialog(dialog)
    }

    /// A plugin completed a blocking directive it had answered `Pending`.
    pub(crate) fn completed(&self, message_id: &str, outcome: Result<(), String>) {
        self.lock().completed(message_id, outcome)
    }

    /// Stops the rollbacks still running.
    pub(crate) fn shutdown(&self) {
        self.lock().rollbacks.abort_all();
    }
}

/// A directive handed to a plugin, with the slot that got it. The slot is looked up when the
/// directive is dispatched, not when it was routed: across an OTA swap, what is dispatched after the
/// swap runs on the new version. It is also how the plugin's answer comes back (see [`DirectiveReply`]).
struct Dispatched {
    routed: Routed,
    slot: Arc<Slot>,
    in_dialog: bool,
    /// The plugin's answer and the host's verdict that the call hung race; the first one counts.
    answered: AtomicBool,
    sequencer: Weak<Mutex<Sequencer>>,
}

impl DirectiveReply for Dispatched {
    fn directive(&self) -> &Arc<DirectiveMessage> {
        &self.routed.directive
    }

    fn executed(self: Arc<Self>, executed: Executed) {
        if self.answered.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(sequencer) = self.sequencer.upgrade() {
            let mut sequencer = sequencer.lock().unwrap_or_else(|e| e.into_inner());
            sequencer.handled(self.clone(), executed);
            sequencer.retire(self);
        }
    }
}

struct InFlight {
    dispatched: Arc<Dispatched>,
    /// Set once the plugin ran it.
    sequence: u64,
    /// The plugin returned `Pending`: waiting for its completion.
    pending: bool,
}

/// A blocking directive outside any dialog, from dispatch to its completion. Its plugin may complete it
/// before the sequencer hears that the call returned `Pending`, so either may come first.
enum Detached {
    Running,
    Completed(Result<(), String>),
    Pending(Arc<Dispatched>, u64),
}

struct Sequencer {
    this: Weak<Mutex<Sequencer>>,
    plugins: OnceLock<Weak<PluginHost>>,
    runtime: Handle,
    events: EventSender,
    observer: Observer,
    current_dialog: Option<String>,
    queue: VecDeque<Routed>,
    in_flight: Option<InFlight>,
    detached: HashMap<String, Detached>,
    /// Slots the router queued directives for and whose threads it has not woken yet, and how many
    /// directives wait for that.
    unwoken: Vec<Arc<Slot>>,
    unwoken_directives: usize,
    /// Handled directives, freed by the router's thread (see [`Sequencer::retire`]).
    retired: Vec<Arc<Dispatched>>,
    rollbacks: JoinSet<()>,
}

/// At most this many directives the router queued wait for their plugins' threads to be woken.
const WAKE_BATCH: usize = 16;

/// Handled directives kept for the router's thread to free; beyond it, in a burst no router call
/// follows, a plugin thread frees them itself.
const MAX_RETIRED: usize = 4 * WAKE_BATCH;

/// Whether a directive queued for a plugin wakes the plugin's thread at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wake {
    Now,
    /// At the router's next [`SequencerHandle::wake_plugins`].
    Later,
}

impl Sequencer {
    /// Keeps a handled directive for the router's thread to free. Its memory came from that thread's
    /// allocator arena; freed on a plugin thread, every directive took the arena's lock while the router
    /// allocated from it, and the two threads woke each other on that lock.
    fn retire(&mut self, dispatched: Arc<Dispatched>) {
        if self.retired.len() < MAX_RETIRED {
            self.retired.push(dispatched);
        }
    }

    fn submit(&mut self, routed: Routed) {
        self.retired.clear();
        match routed.directive.dialog_request_id() {
            None => self.dispatch(routed, false, Wake::Later),
            Some(dialog) if Some(dialog) == self.current_dialog.as_deref() => {
                self.queue.push_back(routed);
                self.pump(Wake::Later);
            }
            Some(_) => self.drop_directive(&routed.directive, "belongs to a dialog that is not the current one"),
        }
    }

    fn plugins(&self) -> Option<Arc<PluginHost>> {
        self.plugins.get().and_then(Weak::upgrade)
    }

    fn dispatch(&mut self, routed: Routed, in_dialog: bool, wake: Wake) {
        // A slot closes only while the host switches the interface to another one, under the lock that
        // `slot()` takes, so the second lookup finds the slot that took over.
        let Some(plugins) = self.plugins() else {
            return self.drop_directive(&routed.directive, "the runtime is stopping");
        };
        let blocking = routed.blocking;
        let mut routed = Some(routed);
        for _ in 0..2 {
            let Some(slot) = plugins.slot(routed.as_ref().expect("held until queued").directive.namespace()) else {
                break;
            };
            let dispatched = Arc::new(Dispatched {
                routed: routed.take().expect("held until queued"),
                slot: slot.clone(),
                in_dialog,
                answered: AtomicBool::new(false),
                sequencer: self.this.clone(),
            });
            match slot.submit(dispatched.clone(), wake == Wake::Now) {
                Ok(()) => {
                    if wake == Wake::Later {
                        self.wake_later(slot);
                    }
                    if in_dialog {
                        self.in_flight = Some(InFlight { dispatched, sequence: u64::MAX, pending: false });
                    } else if blocking {
                        self.detached.insert(dispatched.routed.directive.message_id().to_string(), Detached::Running);
                    }
                    return;
                }
                Err(refused) => {
                    drop(refused);
                    let refused = Arc::into_inner(dispatched).expect("a refused directive has no other owner");
                    routed = Some(refused.routed);
                }
            }
        }
        if let Some(routed) = routed {
            self.drop_directive(&routed.directive, "its interface is no longer served");
        }
    }

    /// Defers waking `slot`'s thread, for at most [`WAKE_BATCH`] directives: fewer wake-ups, and a
    /// directive waits for the routing of a few others at most, not of a whole chunk.
    fn wake_later(&mut self, slot: Arc<Slot>) {
        if !self.unwoken.iter().any(|s| Arc::ptr_eq(s, &slot)) {
            self.unwoken.push(slot);
        }
        self.unwoken_directives += 1;
        if self.unwoken_directives >= WAKE_BATCH {
            self.unwoken_directives = 0;
            for slot in self.unwoken.drain(..) {
                slot.wake();
            }
        }
    }

    /// Starts the next directive of the current dialog unless one is still running.
    fn pump(&mut self, wake: Wake) {
        while self.in_flight.is_none() {
            let Some(next) = self.queue.pop_front() else { return };
            self.dispatch(next, true, wake);
        }
    }

    fn is_in_flight(&self, message_id: &str) -> bool {
        self.in_flight.as_ref().is_some_and(|f| f.dispatched.routed.directive.message_id() == message_id)
    }

    fn handled(&mut self, dispatched: Arc<Dispatched>, Executed { sequence, result }: Executed) {
        let in_dialog = dispatched.in_dialog;
        dispatched.slot.count_failure(&result);
        let plugins = self.plugins();
        if let Some((plugins, interface)) =
            plugins.and_then(|p| p.probation_failed(&dispatched.slot).map(|interface| (p, interface)))
        {
            while self.rollbacks.try_join_next().is_some() {}
            self.rollbacks.spawn_on(
                async move {
                    if let Err(e) = plugins.rollback(&interface, "a directive failed during probation").await {
                        tracing::error!("OTA rollback of {interface}: {e}");
                    }
                },
                &self.runtime,
            );
        }
        let directive = &dispatched.routed.directive;
        let current = in_dialog && self.is_in_flight(directive.message_id());
        if in_dialog && !current {
            return; // cancelled by a new dialog while it ran; already reported
        }
        if !in_dialog && dispatched.routed.blocking {
            let early = self.detached.remove(directive.message_id());
            if let (Ok(Handling::Pending), Some(Detached::Running)) = (&result, &early) {
                let message_id = directive.message_id().to_string();
                self.detached.insert(message_id, Detached::Pending(dispatched, sequence));
                return;
            }
            if let (Ok(Handling::Pending), Some(Detached::Completed(outcome))) = (&result, early) {
                return self.report(&dispatched, sequence, outcome);
            }
        }
        match result {
            Ok(Handling::Pending) if current && dispatched.routed.blocking => {
                if let Some(flight) = &mut self.in_flight {
                    flight.pending = true;
                    flight.sequence = sequence;
                }
                return;
            }
            Ok(_) => self.report(&dispatched, sequence, Ok(())),
            Err(failure) => {
                tracing::warn!(directive = %format!("{}.{}", directive.namespace(), directive.name()), "{failure}");
                self.events.send_or_log(exception_encountered(
                    directive.raw(),
                    failure.kind.avs_error_type(),
                    &failure.to_string(),
                ));
                self.report(&dispatched, sequence, Err(failure.to_string()));
                if current {
                    self.scrub("a directive before it failed");
                }
            }
        }
        if current {
            self.in_flight = None;
            self.pump(Wake::Now);
        }
    }

    fn completed(&mut self, message_id: &str, outcome: Result<(), String>) {
        match self.detached.remove(message_id) {
            Some(Detached::Pending(dispatched, sequence)) => return self.report(&dispatched, sequence, outcome),
            Some(Detached::Running | Detached::Completed(_)) => {
                self.detached.insert(message_id.to_string(), Detached::Completed(outcome));
                return;
            }
            None => {}
        }
        if !self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.pending && f.dispatched.routed.directive.message_id() == message_id)
        {
            return;
        }
        if let Some(flight) = self.in_flight.take() {
            let failed = outcome.is_err();
            self.report(&flight.dispatched, flight.sequence, outcome);
            if failed {
                self.scrub("a directive before it failed");
            }
        }
        self.pump(Wake::Now);
    }

    fn new_dialog(&mut self, dialog: String) {
        if let Some(flight) = self.in_flight.take() {
            let directive = &flight.dispatched.routed.directive;
            flight.dispatched.slot.post(SlotCall::Cancel(directive.message_id().to_string()));
            self.report(&flight.dispatched, flight.sequence, Err("cancelled by a new dialog".into()));
        }
        self.scrub("a new dialog started");
        self.current_dialog = Some(dialog);
    }

    fn scrub(&mut self, why: &str) {
        for routed in std::mem::take(&mut self.queue) {
            self.drop_directive(&routed.directive, &format!("cancelled: {why}"));
        }
    }

    fn drop_directive(&self, d: &DirectiveMessage, reason: &str) {
        tracing::debug!(directive = %format!("{}.{}", d.namespace(), d.name()), message_id = d.message_id(), "dropped: {reason}");
        self.observer.emit(RuntimeEvent::DirectiveDropped {
            namespace: d.namespace().into(),
            name: d.name().into(),
            message_id: d.message_id().into(),
            reason: reason.into(),
        });
    }

    fn report(&self, dispatched: &Dispatched, sequence: u64, outcome: Result<(), String>) {
        let [namespace, name, message_id] = dispatched.routed.directive.shared_ids();
        self.observer.emit(RuntimeEvent::DirectiveHandled {
            namespace,
            name,
            message_id,
            plugin: dispatched.slot.path_text().clone(),
            sequence,
            outcome,
        });
    }
}
