//! Which cores the bench's threads run on (Linux CPU affinity).
//!
//! The event ceiling E is a ping-pong between a bare client and the sim, and on this project's 2-core
//! VM its pace depended on where the scheduler happened to put the two, which then stays put for a
//! whole run: most runs measured 14–17k events/s, some 10k, and a few had passes of 25.7k–49.8k, when
//! the client and the sim shared a core and each step was a switch on that core rather than a wake-up
//! across cores. A ceiling that is a lottery cannot judge a run, so E's client and the sim are put on
//! cores of their own ([`Apart`]): 15.6k–17.5k in each of 50 runs. That is also the real device's
//! case: its round trip to AVS crosses a network, never a switch on one core.

use std::io;

use avs_core::process;

/// Pins the calling thread to `core`.
pub fn pin_this_thread(core: usize) -> io::Result<()> {
    process::pin_thread(0, &[core])
}

/// Pins every thread of process `pid` to `cores`; threads it starts later inherit it from their starter.
fn pin_process(pid: u32, cores: &[usize]) -> io::Result<()> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = task?.file_name().to_str().and_then(|tid| tid.parse().ok()) else { continue };
        match process::pin_thread(tid, cores) {
            // A thread that ended since the listing.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            result => result?,
        }
    }
    Ok(())
}

/// A client thread and the sim on cores of their own, while this lives; the sim may use every core
/// again once it is dropped.
pub struct Apart {
    sim: u32,
    /// Where the client thread goes.
    pub client_core: usize,
    pub sim_core: usize,
    all: Vec<usize>,
}

impl Apart {
    /// `None` with a single core, or if the sim's threads cannot be pinned (then nothing was changed
    /// that matters: a pinned thread keeps running, just on its core).
    pub fn sim_and_client(sim: u32) -> Option<Apart> {
        let all = process::allowed_cpus();
        let (&sim_core, &client_core) = (all.first()?, all.last()?);
        if sim_core == client_core {
            return None;
        }
        let apart = Apart { sim, client_core, sim_core, all };
        match pin_process(sim, &[sim_core]) {
            Ok(()) => Some(apart),
            Err(e) => {
                tracing::warn!("the event ceiling runs without pinning the sim to a core: {e}");
                None
            }
        }
    }
}

impl Drop for Apart {
    fn drop(&mut self) {
        if let Err(e) = pin_process(self.sim, &self.all) {
            tracing::warn!("the sim stays on core {}: {e}", self.sim_core);
        }
    }
}
