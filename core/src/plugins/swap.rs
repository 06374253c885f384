//! OTA: replacing the plugin of an interface while the runtime serves, without losing or reordering a
//! directive, and going back if the new version misbehaves.
//!
//! The transaction: verify + load + check (signature before anything runs) → init → self-test on the
//! plugin's own schema examples → hand over: the new slot's first queued call waits for the old slot's
//! exported state, and the old slot exports it only after every call queued before the swap has run;
//! routing switches to the new slot at that same instant, so everything before the swap runs on the old
//! version and everything after on the new → commit (capabilities re-published) → probation, during
//! which a failing directive rolls the interface back to the old version, which stayed loaded and parked.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::slot::{Executed, FailureKind, PluginFailure, Slot, SlotCall};
use super::{InstallError, PluginHost};
use crate::observe::RuntimeEvent;
use crate::schema::InterfaceSchemas;

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("no plugin serves {0}: nothing to swap")]
    NotLoaded(String),
    #[error(transparent)]
    Load(#[from] InstallError),
    #[error("self-test of {path} failed: {reason}")]
    SelfTest { path: String, reason: String },
    #[error("state hand-over to {path} failed, {interface} stays on the old version: {failure}")]
    Handover { path: String, interface: String, failure: PluginFailure },
    #[error("{0} has no previous version to roll back to")]
    NoPrevious(String),
}

/// What a committed swap changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapReport {
    pub interface: String,
    pub from_version: String,
    pub to_version: String,
    pub path: String,
}

pub(crate) struct Probation {
    until: Instant,
    failures_at_start: u64,
}

impl PluginHost {
    /// Swaps the plugin serving `interface` for the library at `path`. On any failure the old version
    /// keeps serving and the error says why.
    pub async fn swap(&self, interface: &str, path: &Path) -> Result<SwapReport, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        let old = self.slot(interface).ok_or_else(|| SwapError::NotLoaded(interface.to_string()))?;
        let new = self
            .start(path, |found| match found == interface {
                true => Ok(()),
                false => Err(format!("its manifest names {found}, not {interface}")),
            })
            .await?;
        let shown = path.display().to_string();
        if let Err(reason) = self_test(&new).await {
            let _ = new.shutdown().await;
            return Err(SwapError::SelfTest { path: shown, reason });
        }
        if let Err(failure) = self.hand_over(&old, &new).await {
            let _ = new.shutdown().await;
            return Err(SwapError::Handover { path: shown, interface: interface.to_string(), failure });
        }
        let replaced =
            self.previous.write().unwrap_or_else(|e| e.into_inner()).insert(interface.to_string(), old.clone());
        if let Some(older) = replaced {
            // Two versions back is beyond rollback: stop it (its library stays mapped, as every one does).
            let _ = older.shutdown().await;
        }
        self.probation.lock().unwrap_or_else(|e| e.into_inner()).insert(
            interface.to_string(),
            Probation {
                until: Instant::now() + self.timeouts.probation,
                failures_at_start: new.failures.load(Ordering::Relaxed),
            },
        );
        new.post(SlotCall::HostEvent("device.info".into(), self.device_info.to_string()));
        if let Some(store) = &self.store {
            let kept = store.keep(path, interface, &new.manifest.version, &new.sha256);
            if let Err(e) = kept.and_then(|stored| store.set_active(interface, Some(&stored))) {
                tracing::error!(
                    "OTA: {interface} swapped but not persisted, a restart will load the previous version: {e}"
                );
            }
        }
        if self.trim_code_pages {
            // Verifying, loading and self-testing ran code that the next swap is the next to need; the
            // replaced version's code runs again only on a rollback.
            crate::process::trim_executable_code(vec![old.path.clone()]).await;
        }
        let report = SwapReport {
            interface: interface.to_string(),
            from_version: old.manifest.version.clone(),
            to_version: new.manifest.version.clone(),
            path: shown,
        };
        tracing::info!("OTA: {interface} {} → {} committed ({})", report.from_version, report.to_version, report.path);
        self.observer.emit(RuntimeEvent::PluginSwapped {
            interface: interface.to_string(),
            from_version: report.from_version.clone(),
            to_version: report.to_version.clone(),
            path: report.path.clone(),
        });
        self.capabilities_changed.notify_one();
        Ok(report)
    }

    /// Goes back to the version the last swap replaced (still loaded, so this is immediate).
    pub async fn rollback(&self, interface: &str, why: &str) -> Result<SwapReport, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        let current = self.slot(interface).ok_or_else(|| SwapError::NotLoaded(interface.to_string()))?;
        let previous = self
            .previous
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(interface)
            .ok_or_else(|| SwapError::NoPrevious(interface.to_string()))?;
        self.probation.lock().unwrap_or_else(|e| e.into_inner()).remove(interface);
        if let Err(failure) = self.hand_over(&current, &previous).await {
            return Err(SwapError::Handover {
                path: previous.path.display().to_string(),
                interface: interface.to_string(),
                failure,
            });
        }
        let _ = current.shutdown().await;
        if let Some(store) = &self.store {
            let persisted = store.is_stored(&previous.path).then_some(previous.path.as_path());
            if let Err(e) = store.set_active(interface, persisted) {
                tracing::error!("OTA: rollback of {interface} not persisted: {e}");
            }
        }
        let report = SwapReport {
            interface: interface.to_string(),
            from_version: current.manifest.version.clone(),
            to_version: previous.manifest.version.clone(),
            path: previous.path.display().to_string(),
        };
        tracing::warn!("OTA: {interface} rolled back to {} ({why})", report.to_version);
        self.observer.emit(RuntimeEvent::PluginRolledBack {
            interface: interface.to_string(),
            to_version: report.to_version.clone(),
            reason: why.to_string(),
        });
        self.capabilities_changed.notify_one();
        Ok(report)
    }

    /// Moves `interface` from `from` to `to` between two queued calls. If `to` cannot take over, `from`
    /// serves again with the state it kept, followed by every directive that reached `to` meanwhile.
    async fn hand_over(&self, from: &Arc<Slot>, to: &Arc<Slot>) -> Result<(), PluginFailure> {
        let (exported_tx, mut exported) = oneshot::channel();
        let (state_tx, state_rx) = oneshot::channel();
        let answer = to.take_over(state_rx);
        {
            let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
            slots.insert(to.interface().to_string(), to.clone());
            from.post(SlotCall::Quiesce(exported_tx));
        }
        // The old version first runs everything queued before the swap, however long that takes; only a
        // call stuck for longer than the lifecycle timeout ends the wait.
        let limit = from.lifecycle_timeout();
        let state = loop {
            match tokio::time::timeout(limit, &mut exported).await {
                Ok(Ok(Ok(handover))) => {
                    for message_id in handover.unfinished {
                        let outcome = Err(format!("interrupted by the OTA update of {}", from.interface()));
                        self.hub.sequencer.completed(&message_id, outcome);
                    }
                    break Ok(handover.state);
                }
                Ok(Ok(Err(failure))) => break Err(failure),
                Ok(Err(_)) => {
                    break Err(handover_failure(from, FailureKind::Gone, "the old version exported no state"))
                }
                Err(_) if from.is_stuck(limit) => {
                    let why = format!("the old version is stuck in {} and cannot hand over its state", from.stuck_in());
                    break Err(handover_failure(from, FailureKind::Timeout, &why));
                }
                Err(_) => {}
            }
        };
        let _ = state_tx.send(state);
        match to.taken_over(answer).await {
            Ok(()) => Ok(()),
            Err((failure, mut queued)) => {
                let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
                queued.extend(to.abandon().unwrap_or_default());
                from.post(SlotCall::Resume);
                for call in queued.into_iter().filter(|c| matches!(c, SlotCall::Directive(..))) {
                    from.post(call);
                }
                slots.insert(from.interface().to_string(), from.clone());
                Err(failure)
            }
        }
    }

    /// Watches every slot for a plugin call that hangs: the directive it is stuck in fails with a
    /// timeout, and the interface is recovered (see [`PluginHost::recover_hung`]) so that the directives
    /// queued behind the hung call are answered by the version that took over. One watcher for all
    /// slots, rather than a timer per directive: a timer per directive cost more than dispatching it.
    pub(crate) async fn watch_for_hung_calls(self: Arc<Self>) {
        let every = (self.timeouts.directive / 4).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for slot in self.slots() {
                if let Some(hung) = slot.hung() {
                    self.recover_hung(&slot).await;
                    slot.fail_hung(hung);
                }
            }
        }
    }

    /// Gives up on a slot stuck in a plugin call (its thread cannot be stopped): during probation the
    /// interface goes back to the previous version, otherwise a fresh instance of the same library takes
    /// over. Either way the directives queued behind the hung call move to it, in order. The state the
    /// hung instance held is lost with it: a rolled-back version serves with the state it handed over.
    pub(crate) async fn recover_hung(&self, hung: &Arc<Slot>) {
        let _one_at_a_time = self.swapping.lock().await;
        let interface = hung.interface().to_string();
        let serving = self.slot(&interface).is_some_and(|s| Arc::ptr_eq(&s, hung));
        if hung.is_abandoned() || !serving {
            return; // recovered already, or swapped out meanwhile
        }
        let stuck = hung.stuck_in();
        let watched = self.probation.lock().unwrap_or_else(|e| e.into_inner()).remove(&interface);
        let in_probation = watched.is_some_and(|p| Instant::now() <= p.until);
        let previous = match in_probation {
            true => self.previous.write().unwrap_or_else(|e| e.into_inner()).remove(&interface),
            false => None,
        };
        let rolled_back = previous.is_some();
        let successor = match previous {
            Some(previous) => previous,
            None => match self.start(&hung.path, |_| Ok(())).await {
                Ok(fresh) => {
                    fresh.post(SlotCall::HostEvent("device.info".into(), self.device_info.to_string()));
                    fresh
                }
                Err(e) => {
                    tracing::error!("{interface} is stuck in {stuck} and could not be restarted: {e}");
                    let gone = format!("{interface} is stuck and could not be restarted: {e}");
                    for call in hung.abandon().unwrap_or_default() {
                        if let SlotCall::Directive(reply) = call {
                            let failure = PluginFailure {
                                interface: interface.clone(),
                                kind: FailureKind::Gone,
                                message: gone.clone(),
                            };
                            reply.executed(Executed { sequence: u64::MAX, result: Err(failure) });
                        }
                    }
                    return;
                }
            },
        };
        {
            let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
            if rolled_back {
                successor.post(SlotCall::Resume);
            }
            for call in hung.abandon().unwrap_or_default() {
                if matches!(call, SlotCall::Directive(..)) {
                    successor.post(call);
                }
            }
            slots.insert(interface.clone(), successor.clone());
        }
        let reason = format!("stuck in {stuck}");
        if rolled_back {
            if let Some(store) = &self.store {
                let persisted = store.is_stored(&successor.path).then_some(successor.path.as_path());
                if let Err(e) = store.set_active(&interface, persisted) {
                    tracing::error!("OTA: rollback of {interface} not persisted: {e}");
                }
            }
            tracing::error!(
                "OTA: {interface} {} {reason}; rolled back to {}",
                hung.manifest.version,
                successor.manifest.version
            );
            self.observer.emit(RuntimeEvent::PluginRolledBack {
                interface: interface.clone(),
                to_version: successor.manifest.version.clone(),
                reason,
            });
            self.capabilities_changed.notify_one();
        } else {
            tracing::error!("{interface} {reason}; a fresh instance of {} took over", hung.path.display());
            self.observer.emit(RuntimeEvent::PluginRestarted { interface, reason });
        }
    }

    /// Called after each directive a slot handled: a failure of a version in probation rolls it back.
    /// Returns the interface to roll back, if any.
    pub(crate) fn probation_failed(&self, slot: &Slot) -> Option<String> {
        let mut probation = self.probation.lock().unwrap_or_else(|e| e.into_inner());
        let interface = slot.interface();
        let watched = probation.get(interface)?;
        let is_current = self.slot(interface).is_some_and(|s| std::ptr::eq(&*s, slot));
        if !is_current || Instant::now() > watched.until {
            probation.remove(interface);
            return None;
        }
        (slot.failures.load(Ordering::Relaxed) > watched.failures_at_start).then(|| {
            probation.remove(interface);
            interface.to_string()
        })
    }

    /// Resolves when the set of interfaces or versions changed since the last call.
    pub async fn capabilities_changed(&self) {
        self.capabilities_changed.notified().await
    }
}

/// A new version proves it is consistent before it serves: each of its example messages is judged by
/// its own schemas as the example's folder says, every directive it declares has a valid example, and
/// its context validates.
async fn self_test(slot: &Slot) -> Result<(), String> {
    let schemas: &InterfaceSchemas = &slot.schemas;
    let examples: Vec<(&str, serde_json::Value)> = schemas.examples().collect();
    for (path, example) in &examples {
        let expect_valid = path.starts_with("examples/valid/");
        let judged = schemas.judge_example(example).map_err(|e| format!("{path}: {e}"))?;
        if judged != expect_valid {
            return Err(format!(
                "{path} is judged {} by the plugin's own schemas",
                if judged { "valid" } else { "invalid" }
            ));
        }
    }
    for directive in &slot.manifest.directives {
        let has_example = examples.iter().any(|(path, example)| {
            path.starts_with("examples/valid/") && example["directive"]["header"]["name"] == directive.name.as_str()
        });
        if !has_example {
            return Err(format!("directive {} has no valid example to test", directive.name));
        }
    }
    let context = slot.context().await.map_err(|e| e.to_string())?;
    for entry in context {
        let name = entry["header"]["name"].as_str().unwrap_or("");
        schemas.check_context(name, &entry["payload"].to_string()).map_err(|v| format!("its context: {v}"))?;
    }
    Ok(())
}

fn handover_failure(from: &Slot, kind: FailureKind, message: &str) -> PluginFailure {
    PluginFailure { interface: from.interface().to_string(), kind, message: message.to_string() }
}
