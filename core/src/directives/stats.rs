//! Dispatch statistics: how many directives plugins executed, and how long each took from the arrival of
//! its multipart part to the plugin's return — the figure a device maker benchmarks (`avs bench`).
//! Recorded on the plugin threads, always on: one clock read and one short lock per directive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Width of one step of the time series.
pub const SERIES_STEP: Duration = Duration::from_millis(100);

/// Latencies above this are recorded as this (an hour: a hung plugin is not a data point).
const HIGHEST_NS: u64 = 3_600_000_000_000;
const LOWEST_NS: u64 = 1_000;

pub struct DispatchStats {
    executed: AtomicU64,
    /// How many latencies `recorded` holds, readable without its lock.
    recorded_count: AtomicU64,
    recorded: Mutex<Recorded>,
}

struct Recorded {
    since: Instant,
    latency: Histogram<u64>,
    series: Vec<SeriesStep>,
}

/// One [`SERIES_STEP`] of the run: directives completed in it, and their worst and total latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesStep {
    pub completed: u64,
    pub max_ns: u64,
    pub total_ns: u64,
}

/// What [`DispatchStats::snapshot`] reports.
#[derive(Debug, Clone)]
pub struct DispatchSnapshot {
    pub executed: u64,
    pub recorded: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// Since the statistics were created or last reset, one entry per [`SERIES_STEP`].
    pub series: Vec<SeriesStep>,
}

impl Default for DispatchStats {
    fn default() -> Self {
        DispatchStats {
            executed: AtomicU64::new(0),
            recorded_count: AtomicU64::new(0),
            recorded: Mutex::new(Recorded { since: Instant::now(), latency: new_histogram(), series: Vec::new() }),
        }
    }
}

/// Microsecond resolution, two significant digits (1 % error): a tenth of the memory of nanoseconds
/// and three digits, and no dispatch is faster than a microsecond anyway.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, 2).expect("static histogram bounds are valid")
}

impl DispatchStats {
    fn recorded(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers a directive execution; the numbers order executions across every plugin.
    pub(crate) fn next_execution(&self) -> u64 {
        self.executed.fetch_add(1, Ordering::Relaxed)
    }

    /// A directive whose part arrived at `arrived` has returned from its plugin.
    pub(crate) fn record(&self, arrived: Instant) {
        let now = Instant::now();
        let latency = u64::try_from(now.saturating_duration_since(arrived).as_nanos()).unwrap_or(u64::MAX);
        let mut recorded = self.recorded();
        let step = (now.saturating_duration_since(recorded.since).as_millis() / SERIES_STEP.as_millis()) as usize;
        recorded.latency.saturating_record(latency.clamp(LOWEST_NS, HIGHEST_NS));
        if recorded.series.len() <= step {
            recorded.series.resize(step + 1, SeriesStep::default());
        }
        let at = &mut recorded.series[step];
        at.completed += 1;
        at.max_ns = at.max_ns.max(latency);
        at.total_ns = at.total_ns.saturating_add(latency);
        self.recorded_count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many directives returned from their plugins since the last reset: a progress reading that
    /// does not take the lock the plugin threads record under.
    pub fn completed(&self) -> u64 {
        self.recorded_count.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> DispatchSnapshot {
        let recorded = self.recorded();
        let quantile = |q: f64| if recorded.latency.is_empty() { 0 } else { recorded.latency.value_at_quantile(q) };
        DispatchSnapshot {
            executed: self.executed.load(Ordering::Relaxed),
            recorded: recorded.latency.len(),
            p50_ns: quantile(0.5),
            p99_ns: quantile(0.99),
            p999_ns: quantile(0.999),
            max_ns: recorded.latency.max(),
            series: recorded.series.clone(),
        }
    }

    /// Forgets the latencies and the time series (the execution numbering goes on), so that a
    /// measurement starts clean after warm-up.
    pub fn reset(&self) {
        let mut recorded = self.recorded();
        recorded.latency.reset();
        recorded.series.clear();
        recorded.since = Instant::now();
        self.recorded_count.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_measured_from_arrival_and_bucketed_in_time() {
        let stats = DispatchStats::default();
        let arrived = Instant::now() - Duration::from_millis(2);
        for _ in 0..1000 {
            stats.record(arrived);
        }
        stats.record(Instant::now() - Duration::from_millis(50));
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.recorded, 1001);
        assert!(snapshot.p50_ns >= 2_000_000 && snapshot.p50_ns < 3_000_000, "{}", snapshot.p50_ns);
        assert!(snapshot.max_ns >= 50_000_000, "the slow one is the max");
        assert_eq!(snapshot.series.iter().map(|s| s.completed).sum::<u64>(), 1001);
    }

    #[test]
    fn a_reset_starts_the_measurement_afresh() {
        let stats = DispatchStats::default();
        stats.record(Instant::now());
        stats.reset();
        assert_eq!(stats.snapshot().recorded, 0);
        stats.record(Instant::now());
        assert_eq!((stats.snapshot().recorded, stats.snapshot().executed), (1, 0));
        assert_eq!(stats.completed(), 1);
    }
}
