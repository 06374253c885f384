//! Each directive is handled once. A cloud that re-sends a directive (after a broken answer, or a
//! reconnect mid-stream) must not make the device act twice: the last messageIds are remembered.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

// foldhash, not std's SipHash: this set is looked up on every directive, and SipHash was a tenth of
// routing one. foldhash keeps a random seed per set.
use foldhash::fast::RandomState;

/// How many recent messageIds are remembered.
pub(crate) const WINDOW: usize = 4096;

pub(crate) struct RecentDirectives {
    /// One allocation per directive, shared by the set and the order.
    seen: HashSet<Arc<str>, RandomState>,
    order: VecDeque<Arc<str>>,
    capacity: usize,
}

impl RecentDirectives {
    pub(crate) fn new(capacity: usize) -> Self {
        RecentDirectives { seen: HashSet::default(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// True the first time `message_id` is seen within the window.
    pub(crate) fn first_time(&mut self, message_id: &str) -> bool {
        if self.seen.contains(message_id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        let id: Arc<str> = message_id.into();
        self.seen.insert(id.clone());
        self.order.push_back(id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_counts_once_within_the_window_and_the_window_slides() {
        let mut recent = RecentDirectives::new(3);
        assert!(recent.first_time("a"));
        assert!(!recent.first_time("a"));
        for id in ["b", "c", "d"] {
            assert!(recent.first_time(id));
        }
        assert!(recent.first_time("a"), "a left the window when d came");
        assert!(!recent.first_time("d"));
    }
}
