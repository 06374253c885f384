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
//! A failed directive scrubs the rest of its dialog and is reported with ExceptionEncountered.

use std::collections::VecDeque;
use std::sync::Arc;

use avs_plugin_api::Handling;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::DirectiveMessage;
use crate::events::{exception_encountered, EventSender};
use crate::observe::{Observer, RuntimeEvent};
use crate::plugins::slot::{PluginFailure, Slot, SlotCall};

/// A directive that passed routing and validation, with its plugin's blocking policy.
pub(crate) struct Routed {
    pub directive: Arc<DirectiveMessage>,
    pub slot: Arc<Slot>,
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

struct InFlight {
    routed: Arc<Routed>,
    /// The plugin returned `Pending`: waiting for its completion.
    pending: bool,
}

struct Handled {
    routed: Arc<Routed>,
    in_dialog: bool,
    result: Result<Handling, PluginFailure>,
}

struct Sequencer {
    events: EventSender,
    observer: Observer,
    current_dialog: Option<String>,
    queue: VecDeque<Routed>,
    in_flight: Option<InFlight>,
    calls: JoinSet<Handled>,
}

pub(crate) async fn run(mut inputs: mpsc::UnboundedReceiver<SequencerInput>, events: EventSender, observer: Observer) {
    let mut s = Sequencer {
        events,
        observer,
        current_dialog: None,
        queue: VecDeque::new(),
        in_flight: None,
        calls: JoinSet::new(),
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
        }
    }
    s.calls.abort_all();
}

impl Sequencer {
    fn submit(&mut self, routed: Routed) {
        match routed.directive.dialog_request_id() {
            None => self.dispatch(Arc::new(routed), false),
            Some(dialog) if Some(dialog) == self.current_dialog.as_deref() => {
                self.queue.push_back(routed);
                self.pump();
            }
            Some(_) => self.drop_directive(&routed, "belongs to a dialog that is not the current one"),
        }
    }

    fn dispatch(&mut self, routed: Arc<Routed>, in_dialog: bool) {
        if in_dialog {
            self.in_flight = Some(InFlight { routed: routed.clone(), pending: false });
        }
        self.calls.spawn(async move {
            let result = routed.slot.handle(routed.directive.clone()).await;
            Handled { routed, in_dialog, result }
        });
    }

    /// Starts the next directive of the current dialog unless one is still running.
    fn pump(&mut self) {
        if self.in_flight.is_none() {
            if let Some(next) = self.queue.pop_front() {
                self.dispatch(Arc::new(next), true);
            }
        }
    }

    fn is_in_flight(&self, message_id: &str) -> bool {
        self.in_flight.as_ref().is_some_and(|f| f.routed.directive.message_id() == message_id)
    }

    fn handled(&mut self, Handled { routed, in_dialog, result }: Handled) {
        let directive = &routed.directive;
        let current = in_dialog && self.is_in_flight(directive.message_id());
        if in_dialog && !current {
            return; // cancelled by a new dialog while it ran; already reported
        }
        match result {
            Ok(Handling::Pending) if current && routed.blocking => {
                if let Some(flight) = &mut self.in_flight {
                    flight.pending = true;
                }
                return;
            }
            Ok(_) => self.report(directive, Ok(())),
            Err(failure) => {
                tracing::warn!(directive = %format!("{}.{}", directive.namespace(), directive.name()), "{failure}");
                self.events.send(exception_encountered(
                    directive.raw(),
                    failure.kind.avs_error_type(),
                    &failure.to_string(),
                ));
                self.report(directive, Err(failure.to_string()));
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
        if !self.in_flight.as_ref().is_some_and(|f| f.pending && f.routed.directive.message_id() == message_id) {
            return;
        }
        if let Some(flight) = self.in_flight.take() {
            let failed = outcome.is_err();
            self.report(&flight.routed.directive, outcome);
            if failed {
                self.scrub("a directive before it failed");
            }
        }
        self.pump();
    }

    fn new_dialog(&mut self, dialog: String) {
        if let Some(flight) = self.in_flight.take() {
            let directive = &flight.routed.directive;
            flight.routed.slot.post(SlotCall::Cancel(directive.message_id().to_string()));
            self.report(directive, Err("cancelled by a new dialog".into()));
        }
        self.scrub("a new dialog started");
        self.current_dialog = Some(dialog);
    }

    fn scrub(&mut self, why: &str) {
        for routed in std::mem::take(&mut self.queue) {
            self.drop_directive(&routed, &format!("cancelled: {why}"));
        }
    }

    fn drop_directive(&self, routed: &Routed, reason: &str) {
        let d = &routed.directive;
        tracing::debug!(directive = %format!("{}.{}", d.namespace(), d.name()), message_id = d.message_id(), "dropped: {reason}");
        self.observer.emit(RuntimeEvent::DirectiveDropped {
            namespace: d.namespace().into(),
            name: d.name().into(),
            message_id: d.message_id().into(),
            reason: reason.into(),
        });
    }

    fn report(&self, d: &DirectiveMessage, outcome: Result<(), String>) {
        self.observer.emit(RuntimeEvent::DirectiveHandled {
            namespace: d.namespace().into(),
            name: d.name().into(),
            message_id: d.message_id().into(),
            outcome,
        });
    }
}
