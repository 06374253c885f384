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
use std::sync::Arc;

use avs_plugin_api::Handling;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::DirectiveMessage;
use crate::events::{exception_encountered, EventSender};
use crate::observe::{Observer, RuntimeEvent};
use crate::plugins::slot::{Executed, PluginFailure, Slot, SlotCall};
use crate::plugins::PluginHost;

/// A directive that passed routing and validation, with its plugin's blocking policy.
pub(crate) struct Routed {
    pub directive: Arc<DirectiveMessage>,
    pub blocking: bool,
}

pub(crate) enum SequencerInput {
    Directive(Routed),
    NewDialog(String),
    Completed { message_id: String, outcome: Result<(), String> },
}

#[derive(Clone)]
pub(crate) struct SequencerSender(mpsc::UnboundedSender<SequencerInput>);

impl SequencerSender {
    pub(crate) fn send(&self, input: SequencerInput) {
        let _ = self.0.send(input);
    }
}

pub(crate) fn channel() -> (SequencerSender, mpsc::UnboundedReceiver<SequencerInput>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (SequencerSender(tx), rx)
}

/// A directive handed to a plugin, with the slot that got it. The slot is looked up when the
/// directive is dispatched, not when it was routed: across an OTA swap, what is dispatched after the
/// swap runs on the new version.
struct Dispatched {
    routed: Routed,
    slot: Arc<Slot>,
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

struct Handled {
    dispatched: Arc<Dispatched>,
    in_dialog: bool,
    sequence: u64,
    result: Result<Handling, PluginFailure>,
}

struct Sequencer {
    plugins: Arc<PluginHost>,
    events: EventSender,
    observer: Observer,
    current_dialog: Option<String>,
    queue: VecDeque<Routed>,
    in_flight: Option<InFlight>,
    detached: HashMap<String, Detached>,
    calls: JoinSet<Handled>,
    rollbacks: JoinSet<()>,
}

pub(crate) async fn run(
    mut inputs: mpsc::UnboundedReceiver<SequencerInput>,
    plugins: Arc<PluginHost>,
    events: EventSender,
    observer: Observer,
) {
    let mut s = Sequencer {
        plugins,
        events,
        observer,
        current_dialog: None,
        queue: VecDeque::new(),
        in_flight: None,
        detached: HashMap::new(),
        calls: JoinSet::new(),
        rollbacks: JoinSet::new(),
    };
    loop {
        tokio::select! {
            input = inputs.recv() => match input {
                Some(SequencerInput::Directive(routed)) => s.submit(routed),
                Some(SequencerInput::NewDialog(id)) => s.new_dialog(id),
                Some(SequencerInput::Completed { message_id, outcome }) => s.completed(&message_id, outcome),
                None => break,
            },
            Some(joined) = s.calls.join_next() => {
                if let Ok(handled) = joined {
                    s.handled(handled);
                }
            }
            Some(_) = s.rollbacks.join_next() => {}
        }
    }
    s.calls.abort_all();
    s.rollbacks.abort_all();
}

impl Sequencer {
    fn submit(&mut self, routed: Routed) {
        match routed.directive.dialog_request_id() {
            None => self.dispatch(routed, false),
            Some(dialog) if Some(dialog) == self.current_dialog.as_deref() => {
                self.queue.push_back(routed);
                self.pump();
            }
            Some(_) => self.drop_directive(&routed.directive, "belongs to a dialog that is not the current one"),
        }
    }

    fn dispatch(&mut self, routed: Routed, in_dialog: bool) {
        // Queued before the task starts: spawned tasks may run in any order, the slot's queue may not. A
        // slot closes only while the host switches the interface to another one, under the lock that
        // `slot()` takes, so the second lookup finds the slot that took over.
        let mut queued = None;
        for _ in 0..2 {
            let Some(slot) = self.plugins.slot(routed.directive.namespace()) else { break };
            if let Ok(answer) = slot.submit(routed.directive.clone()) {
                queued = Some((slot, answer));
                break;
            }
        }
        let Some((slot, answer)) = queued else {
            return self.drop_directive(&routed.directive, "its interface is no longer served");
        };
        let dispatched = Arc::new(Dispatched { routed, slot });
        if in_dialog {
            self.in_flight = Some(InFlight { dispatched: dispatched.clone(), sequence: u64::MAX, pending: false });
        } else if dispatched.routed.blocking {
            self.detached.insert(dispatched.routed.directive.message_id().to_string(), Detached::Running);
        }
        let plugins = self.plugins.clone();
        self.calls.spawn(async move {
            let message_id = dispatched.routed.directive.message_id();
            let Executed { sequence, result } = plugins.outcome(&dispatched.slot, message_id, answer).await;
            Handled { dispatched, in_dialog, sequence, result }
        });
    }

    /// Starts the next directive of the current dialog unless one is still running.
    fn pump(&mut self) {
        while self.in_flight.is_none() {
            let Some(next) = self.queue.pop_front() else { return };
            self.dispatch(next, true);
        }
    }

    fn is_in_flight(&self, message_id: &str) -> bool {
        self.in_flight.as_ref().is_some_and(|f| f.dispatched.routed.directive.message_id() == message_id)
    }

    fn handled(&mut self, Handled { dispatched, in_dialog, sequence, result }: Handled) {
        if let Some(interface) = self.plugins.probation_failed(&dispatched.slot) {
            let plugins = self.plugins.clone();
            self.rollbacks.spawn(async move {
                if let Err(e) = plugins.rollback(&interface, "a directive failed during probation").await {
                    tracing::error!("OTA rollback of {interface}: {e}");
                }
            });
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
            self.pump();
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
        self.pump();
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
        let d = &dispatched.routed.directive;
        self.observer.emit(RuntimeEvent::DirectiveHandled {
            namespace: d.namespace().into(),
            name: d.name().into(),
            message_id: d.message_id().into(),
            plugin: dispatched.slot.path.display().to_string(),
            sequence,
            outcome,
        });
    }
}
