//! A set of tasks owned by one component: spawned from any thread (plugins call host services from their
//! own threads), reaped as they finish, and aborted together when the owner shuts down — so no detached
//! task outlives the runtime.

use std::future::Future;
use std::sync::Mutex;

use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinSet};

pub(crate) struct OwnedTasks {
    runtime: Handle,
    tasks: Mutex<JoinSet<()>>,
}

impl OwnedTasks {
    pub(crate) fn new(runtime: Handle) -> Self {
        OwnedTasks { runtime, tasks: Mutex::new(JoinSet::new()) }
    }

    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> AbortHandle {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(task, &self.runtime)
    }

    pub(crate) fn abort_all(&self) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).abort_all();
    }
}

impl Drop for OwnedTasks {
    fn drop(&mut self) {
        self.abort_all();
    }
}

/// Resolves once `flag` is (or becomes) true, or its sender is gone: the shape of every shutdown wait.
pub(crate) async fn raised(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}
