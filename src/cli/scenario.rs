//! `avs demo --scenario NAME|all`: the device maker's tour of the interfaces — each avs-sim scenario
//! started by the user speaking, what the cloud and the device said to each other, and what the user
//! then did (stopped the alarm, skipped a song).

use std::time::Duration;

use anyhow::{bail, Context};
use avs_core::observe::RuntimeEvent;
use avs_core::runtime::Runtime;
use avs_sim::{ReceivedEvent, Scenario, SimHandle, SCENARIOS};
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// Long enough for a song to buffer and an alert to come due.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(30);

/// The scenarios `name` stands for, checked before anything starts.
pub fn selected(name: &str) -> anyhow::Result<Vec<&'static Scenario>> {
    if name == "all" {
        return Ok(SCENARIOS.iter().collect());
    }
    match Scenario::named(name) {
        Some(scenario) => Ok(vec![scenario]),
        None => {
            let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            bail!("no scenario {name:?}: choose one of {} or all", known.join(", "))
        }
    }
}

/// Follows the conversation: prints every event avs-sim receives, every directive the device handled
/// and every card its screen shows, until one of them is the message awaited.
struct Follower<'a> {
    sim: &'a SimHandle,
    runtime: broadcast::Receiver<RuntimeEvent>,
    printed: usize,
    step: &'a dyn Fn(&str),
}

impl Follower<'_> {
    /// Waits for the device event (or, for an interface that answers nothing, the handled directive)
    /// `namespace.name`.
    async fn until(&mut self, namespace: &str, name: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
        loop {
            let events = self.sim.events();
            for event in &events[self.printed..] {
                self.printed += 1;
                (self.step)(&format!("  device → cloud: {}.{} {}", event.namespace, event.name, brief(event)));
                if event.namespace == namespace && event.name == name {
                    return Ok(());
                }
            }
            tokio::select! {
                arrived = self.sim.wait_for_events(|_| true, self.printed + 1, SCENARIO_TIMEOUT) => {
                    arrived.with_context(|| format!("waiting for {namespace}.{name}"))?;
                }
                event = self.runtime.recv() => match event {
                    Ok(event) => if self.show(event, namespace, name) {
                        return Ok(());
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => bail!("the runtime stopped"),
                },
                _ = tokio::time::sleep_until(deadline) => bail!("no {namespace}.{name} within {SCENARIO_TIMEOUT:?}"),
            }
        }
    }

    /// Prints what the device did; true if it handled the directive `namespace.name`.
    fn show(&self, event: RuntimeEvent, namespace: &str, name: &str) -> bool {
        match event {
            RuntimeEvent::CardShown { text, .. } => {
                (self.step)("  screen shows:");
                text.lines().for_each(|line| (self.step)(&format!("    {line}")));
            }
            RuntimeEvent::CardCleared { token } => (self.step)(&format!("  screen cleared ({token})")),
            RuntimeEvent::DirectiveHandled { namespace: ns, name: n, outcome, .. } => {
                let outcome = match outcome {
                    Ok(()) => "handled".to_string(),
                    Err(e) => format!("FAILED: {e}"),
                };
                (self.step)(&format!("  cloud → device: {ns}.{n} {outcome}"));
                return ns == namespace && n == name;
            }
            RuntimeEvent::DirectiveDropped { namespace: ns, name: n, reason, .. } => {
                (self.step)(&format!("  cloud → device: {ns}.{n} dropped: {reason}"))
            }
            _ => {}
        }
        false
    }
}

/// The payload fields that tell the story, not the whole JSON.
fn brief(event: &ReceivedEvent) -> String {
    let payload = &event.json["event"]["payload"];
    let shown: Vec<String> = payload
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .filter(|(_, v)| !v.is_object() || v.as_object().is_some_and(|o| o.len() <= 3))
                .map(|(k, v)| format!("{k}={}", compact(v)))
                .collect()
        })
        .unwrap_or_default();
    if shown.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", shown.join(", "))
    }
}

fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 60 {
        format!("{}…", &text[..text.char_indices().nth(57).map_or(text.len(), |(i, _)| i)])
    } else {
        text
    }
}

pub async fn run(
    sim: &SimHandle,
    runtime: &Runtime,
    scenarios: &[&'static Scenario],
    utterance: &std::path::Path,
    step: &dyn Fn(&str),
) -> anyhow::Result<()> {
    let declared: Vec<String> = sim
        .capability_documents()
        .last()
        .and_then(|d| d["capabilities"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["interface"].as_str().map(str::to_string))
        .collect();
    let mut follower = Follower { sim, runtime: runtime.observer().subscribe(), printed: sim.events().len(), step };
    for scenario in scenarios {
        let needed = scenario.interfaces[0];
        if !declared.iter().any(|i| i == needed) {
            step(&format!("scenario {}: skipped, this device template has no {needed}", scenario.name));
            continue;
        }
        sim.set_scenario(Some(scenario.name)).map_err(anyhow::Error::msg)?;
        step(&format!("scenario {}: the user says \"{}\"", scenario.name, scenario.utterance));
        runtime.user_event("user.recognize", &json!({"profile": "CLOSE_TALK", "audio": {"file": utterance}}));
        let (namespace, name) = scenario.done_when;
        follower.until(namespace, name).await?;
        follow_up(scenario.name, runtime, &mut follower).await?;
        sim.set_scenario(None).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// What the user does next, where a scenario invites it.
async fn follow_up(name: &str, runtime: &Runtime, follower: &mut Follower<'_>) -> anyhow::Result<()> {
    match name {
        "set-timer" => {
            (follower.step)("  the timer rings; the user says \"stop\" (avs ctl stop)");
            runtime.user_event("user.stop", &json!({}));
            follower.until("Alerts", "AlertStopped").await?;
        }
        "play-music" => {
            (follower.step)("  the user presses NEXT (avs ctl press next)");
            runtime.user_event("user.button", &json!({"name": "NEXT"}));
            follower.until("AudioPlayer", "PlaybackStarted").await?;
            (follower.step)("  the user presses PAUSE (avs ctl press pause)");
            runtime.user_event("user.button", &json!({"name": "PAUSE"}));
            follower.until("AudioPlayer", "PlaybackStopped").await?;
        }
        _ => {}
    }
    Ok(())
}
