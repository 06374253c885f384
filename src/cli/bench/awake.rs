//! Cores that never go idle while the bench measures. On a virtual machine, waking a thread whose
//! core went idle (a halted vCPU) costs tens of microseconds, more than the sim's work for an event;
//! on hardware it costs a few. One event at a time is a ping-pong between two processes that leaves
//! the cores idle between the steps, so on this project's 2-core VM:
//! - the event ceiling E, a bare client alone, measured 6–8k events/s with idle cores and 9–16k with
//!   these threads;
//! - the default mix ran at 12.3k–13.4k directives/s with idle cores and 18.4k–19.1k with them, and its
//!   CPU time fell from 56–58 to 42 µs per directive: waking a halted vCPU is charged to the waker.
//!
//! A ceiling must not depend on that, and a run judged against it must be measured on the same
//! machine state, so both run with a spinning thread pinned to each core at the lowest priority
//! (nice 19). Their CPU time is the bench's, not the runtime's: [`KeepCoresAwake::cpu_ns`] is taken
//! from the run's. `avs bench --idle-cores` runs the device without them.
//!
//! They run only while a run's pace is the event round trip: a full-speed run whose warm-up caused an
//! event per ten directives or more. A run without events keeps both cores busy on its own, and there
//! they only take CPU time: Play-only went from 333k to 279k–304k directives/s with them (threads
//! calling `sched_yield` instead of spinning: 309k, and E fell to 13k). A paced run (`--rate`), judged
//! on latency, runs without them: a woken thread does not always take the core from a nice-19 one at
//! once, and at 9,000 directives/s on the default mix p99 was 3.7–4.5 ms with them and 0.63 ms
//! without. `SCHED_IDLE` threads did worse on both counts (E 10–12k events/s in two runs of three;
//! p99 6.8 ms).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use avs_core::process;

use super::cores;

pub struct KeepCoresAwake {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Kernel thread ids of the threads that spin.
    tids: Vec<i32>,
}

impl KeepCoresAwake {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (spinning, tids) = mpsc::channel();
        let threads = avs_core::process::allowed_cpus()
            .into_iter()
            .map(|core| {
                let (stop, spinning) = (stop.clone(), spinning.clone());
                std::thread::spawn(move || {
                    // Pinned: at nice 19 the threads weigh so little that the scheduler may put two on
                    // one core and let the other go idle (runs then came out as slow as without them).
                    // SAFETY: reads this thread's own id and sets its own nice value.
                    let tid = unsafe { libc::gettid() };
                    let pinned = cores::pin_this_thread(core).is_ok();
                    if !pinned || unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) } != 0 {
                        return; // never compete with the measured threads at normal priority
                    }
                    let _ = spinning.send(tid);
                    drop(spinning);
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        drop(spinning);
        // Every thread drops its sender once it has sent its id, or ends without: this never hangs.
        let tids = tids.iter().collect();
        KeepCoresAwake { stop, threads, tids }
    }

    /// CPU time the spinning threads have taken so far, in the unit of [`process::cpu_ns`].
    pub fn cpu_ns(&self) -> u64 {
        self.tids.iter().map(|tid| process::thread_cpu_ns(*tid)).sum()
    }
}

impl Drop for KeepCoresAwake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
