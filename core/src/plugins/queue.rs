//! The queue of calls waiting for one slot's thread.
//!
//! Hand-written over `Mutex` + `Condvar` because neither tokio's nor std's channels let anyone but the
//! receiver take queued messages out, and recovering from a hung plugin call needs exactly that: the
//! receiving thread is stuck inside the plugin, and the directives queued behind it must move to the
//! version that takes over.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::slot::SlotCall;

pub(crate) enum Popped {
    Call(SlotCall),
    TimedOut,
    Closed,
}

#[derive(Default)]
pub(crate) struct CallQueue {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    calls: VecDeque<SlotCall>,
    closed: bool,
    /// The slot's thread is blocked in `pop`: only then does a push need to wake it. std's `Condvar`
    /// makes a futex system call on every notify, waiter or not, which cost more than a fast plugin call.
    waiting: bool,
}

impl CallQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a call; hands it back if the queue is closed.
    pub(crate) fn push(&self, call: SlotCall) -> Result<(), SlotCall> {
        self.push_unwoken(call)?;
        self.wake();
        Ok(())
    }

    /// Appends a call without waking the slot's thread: the caller queues more and calls [`wake`]
    /// once, so that a burst of directives costs one wake-up rather than one each.
    ///
    /// [`wake`]: CallQueue::wake
    pub(crate) fn push_unwoken(&self, call: SlotCall) -> Result<(), SlotCall> {
        let mut state = self.lock();
        if state.closed {
            return Err(call);
        }
        state.calls.push_back(call);
        Ok(())
    }

    /// Wakes the slot's thread if it waits for a call.
    pub(crate) fn wake(&self) {
        let waiting = self.lock().waiting;
        if waiting {
            self.ready.notify_one();
        }
    }

    /// The next call, waiting for one until `deadline` (forever without one).
    pub(crate) fn pop(&self, deadline: Option<Instant>) -> Popped {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Popped::Closed;
            }
            if let Some(call) = state.calls.pop_front() {
                return Popped::Call(call);
            }
            let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if left.is_some_and(|left| left.is_zero()) {
                return Popped::TimedOut;
            }
            state.waiting = true;
            state = match left {
                None => self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(left) => self.ready.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0,
            };
            state.waiting = false;
        }
    }

    /// Whether directives wait in the queue (not merely timers, focus changes and the like).
    pub(crate) fn holds_directives(&self) -> bool {
        self.lock().calls.iter().any(|call| matches!(call, SlotCall::Directive(_)))
    }

    /// Closes the queue and returns what was still in it, in order.
    pub(crate) fn close(&self) -> Vec<SlotCall> {
        let mut state = self.lock();
        state.closed = true;
        let left = state.calls.drain(..).collect();
        drop(state);
        self.ready.notify_all();
        left
    }

    #[cfg(test)]
    pub(crate) fn try_pop(&self) -> Option<SlotCall> {
        self.lock().calls.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(popped: Popped) -> Option<u64> {
        match popped {
            Popped::Call(SlotCall::Timer(id)) => Some(id),
            _ => None,
        }
    }

    #[test]
    fn calls_come_out_in_order_and_a_closed_queue_returns_the_rest_and_refuses_more() {
        let queue = CallQueue::default();
        for id in 1..=3 {
            assert!(queue.push(SlotCall::Timer(id)).is_ok());
        }
        assert_eq!(timer(queue.pop(None)), Some(1));
        let left: Vec<Option<u64>> = queue.close().into_iter().map(|c| timer(Popped::Call(c))).collect();
        assert_eq!(left, [Some(2), Some(3)]);
        assert!(queue.push(SlotCall::Timer(4)).is_err());
        assert!(matches!(queue.pop(None), Popped::Closed));
    }

    #[test]
    fn an_empty_queue_gives_up_at_the_deadline() {
        let queue = CallQueue::default();
        assert!(matches!(queue.pop(Some(Instant::now())), Popped::TimedOut));
        queue.push(SlotCall::Timer(1)).ok();
        assert_eq!(timer(queue.pop(Some(Instant::now()))), Some(1), "a queued call comes before the deadline check");
    }

    #[test]
    fn a_waiting_receiver_wakes_for_a_call_and_for_close() {
        let queue = std::sync::Arc::new(CallQueue::default());
        let (first_taken, taken) = std::sync::mpsc::channel();
        let receiver = std::thread::spawn({
            let queue = queue.clone();
            move || {
                first_taken.send(timer(queue.pop(None))).unwrap();
                matches!(queue.pop(None), Popped::Closed)
            }
        });
        queue.push(SlotCall::Timer(7)).ok();
        assert_eq!(taken.recv().unwrap(), Some(7));
        assert!(queue.close().is_empty());
        assert!(receiver.join().unwrap(), "close wakes a receiver waiting for the next call");
    }
}
