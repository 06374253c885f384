//! The Alerts state machine over [`HostApi`]: alerts kept (and persisted) by token, one sounding at a
//! time on the Alert channel, the rest waiting for their time.
//!
//! Rules from the AVS Device SDK's acsdkAlerts: an alert more than 30 minutes past due is discarded
//! rather than sounded; an alert sounds for at most an hour unless stopped; SetAlert with the token of
//! the sounding alert is a snooze; an alert whose assets cannot be played sounds the device's own tone.
//! Time is wall-clock milliseconds passed in by the caller, so that tests control it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

use avs_plugin_sdk::{FocusState, HostApi, LogLevel, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::clock;

pub const CHANNEL: &str = "Alert";
/// The storage key of the persisted alerts.
pub const STATE_KEY: &str = "alerts";
/// SDK ALERT_PAST_DUE_CUTOFF_MINUTES.
pub const PAST_DUE_MS: i64 = 30 * 60 * 1000;
/// The SDK's default maximum time an alert sounds.
pub const MAX_SOUNDING_MS: i64 = 60 * 60 * 1000;
/// The device's own alert sound, one loop of it.
pub const TONE: &str = "tone:2000";
/// Timers are re-armed at least this often, so that a change of the wall clock is noticed.
const RECHECK_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertType {
    Timer,
    Alarm,
    Reminder,
}

/// A SetAlert payload, read in place: the scheduler keeps only what it needs of it, and the payload itself.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetAlert<'a> {
    #[serde(borrow)]
    token: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: AlertType,
    #[serde(borrow)]
    scheduled_time: Cow<'a, str>,
    #[serde(default, borrow)]
    assets: Vec<Asset<'a>>,
    #[serde(default, borrow)]
    asset_play_order: Vec<Text<'a>>,
    #[serde(default)]
    loop_count: Option<u32>,
    #[serde(default)]
    loop_pause_in_milli_seconds: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Asset<'a> {
    #[serde(borrow)]
    asset_id: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
}

/// A string that borrows from the payload unless it holds escapes (serde borrows a `Cow` only when it is
/// a field of its own).
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// A scheduled alert: what the scheduler needs of its SetAlert, when it is due, and the payload as AVS
/// wrote it, which is what is persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub token: String,
    pub kind: AlertType,
    /// As AVS wrote it: the context echoes it.
    pub scheduled_time: String,
    /// The URL of the asset that sounds first in play order; none: the device's tone.
    pub sound: Option<String>,
    pub loop_count: Option<u32>,
    pub loop_pause_ms: u64,
    pub due_ms: i64,
    payload: String,
}

impl Alert {
    /// Reads a SetAlert payload; `Err` is what makes no sense in it, for SetAlertFailed and the exception.
    /// The token is returned with an error whenever the payload has one, so that the failure can name it.
    fn parse(payload: &str) -> Result<Alert, (Option<String>, String)> {
        let set: SetAlert =
            serde_json::from_str(payload).map_err(|e| (token_of(payload), format!("SetAlert.payload: {e}")))?;
        let due_ms = clock::parse(&set.scheduled_time).map_err(|e| (Some(set.token.to_string()), e))? * 1000;
        let first = set.asset_play_order.first().map(|id| &id.0);
        let sound = set.assets.iter().find(|a| Some(&a.asset_id) == first).or(set.assets.first());
        Ok(Alert {
            token: set.token.into_owned(),
            kind: set.kind,
            scheduled_time: set.scheduled_time.into_owned(),
            sound: sound.map(|a| a.url.to_string()),
            loop_count: set.loop_count,
            loop_pause_ms: set.loop_pause_in_milli_seconds,
            due_ms,
            payload: payload.to_owned(),
        })
    }
}

/// A payload that names one alert (DeleteAlert's, and the token of any SetAlert).
#[derive(Deserialize)]
pub struct Token {
    pub token: String,
}

/// The token of a payload that is not a SetAlert, if it has one.
fn token_of(payload: &str) -> Option<String> {
    serde_json::from_str::<Token>(payload).ok().map(|t| t.token)
}

/// What survives a restart, as stored: `{"alerts":[…],"volume":…}`, the alerts' SetAlert payloads as AVS
/// wrote them, in token order. When an alert is due follows from its payload. (Earlier builds stored each
/// payload's fields with its `dueMs` beside them, which reads as the same payload.)
#[derive(Debug, Deserialize)]
pub struct Persisted {
    pub alerts: Vec<Box<RawValue>>,
    pub volume: u8,
}

impl Persisted {
    /// The alerts in it; one that no longer reads is logged and left out, so that it costs no other.
    fn restore<'a>(&'a self, host: &'a impl HostApi) -> impl Iterator<Item = Alert> + 'a {
        self.alerts.iter().filter_map(move |payload| {
            Alert::parse(payload.get())
                .map_err(|(_, e)| host.log(LogLevel::Warn, &format!("a stored alert is unreadable, left out: {e}")))
                .ok()
        })
    }
}

/// `maximumAlerts` of the capability configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub overall: usize,
    pub alarms: usize,
    pub timers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { overall: 30, alarms: 15, timers: 15 }
    }
}

/// The alert sounding now.
#[derive(Debug)]
struct Sounding {
    token: String,
    since_ms: i64,
    focus: FocusState,
    /// AlertStarted was sent (it is sent once, when the alert first gets the foreground).
    started: bool,
    media: Option<u64>,
    loops: u32,
    /// The assets failed: the rest of this alert sounds the device's tone.
    tone_only: bool,
    pause: Option<u64>,
}

#[derive(Debug)]
pub struct Scheduler {
    alerts: BTreeMap<String, Alert>,
    volume: u8,
    limits: Limits,
    sounding: Option<Sounding>,
    timer: Option<u64>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler { alerts: BTreeMap::new(), volume: 50, limits: Limits::default(), sounding: None, timer: None }
    }
}

fn token_payload(token: &str) -> Value {
    json!({"token": token})
}

impl Scheduler {
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Takes back what was persisted (and, after an OTA swap, the alert the previous version was
    /// sounding, which goes on sounding without a second AlertStarted): alerts that came due more than
    /// 30 minutes ago while the device was off are discarded (AlertStopped), the others are scheduled.
    pub fn take_over(
        &mut self,
        host: &impl HostApi,
        persisted: Persisted,
        handed_over: &Value,
        now_ms: i64,
    ) -> Result<(), PluginError> {
        self.volume = persisted.volume;
        self.alerts = persisted.restore(host).map(|a| (a.token.clone(), a)).collect();
        if let Some(token) = handed_over["sounding"].as_str().filter(|t| self.alerts.contains_key(*t)) {
            self.start_sounding(host, token.to_string(), now_ms, true)?;
        }
        self.schedule(host, now_ms)
    }

    /// SetAlert, with its payload as AVS wrote it.
    pub fn set_alert(&mut self, host: &impl HostApi, payload: &str, now_ms: i64) -> Result<(), PluginError> {
        let failed = |token: &str| host.send_event("SetAlertFailed", &token_payload(token)).map(drop);
        let alert = match Alert::parse(payload) {
            Ok(alert) => alert,
            // A malformed directive: AVS hears of it twice, as SetAlertFailed (when it names an alert)
            // and as an exception.
            Err((token, e)) => return token.map_or(Ok(()), |t| failed(&t)).and(Err(PluginError::invalid(e))),
        };
        let refusal = if alert.due_ms < now_ms - PAST_DUE_MS {
            Some(format!("{} is more than 30 minutes past", alert.scheduled_time))
        } else if !self.alerts.contains_key(&alert.token) && !self.has_room_for(alert.kind) {
            Some(format!("maximumAlerts reached ({} scheduled)", self.alerts.len()))
        } else {
            None
        };
        if let Some(why) = refusal {
            host.log(LogLevel::Info, &format!("SetAlert {} refused: {why}", alert.token));
            return failed(&alert.token);
        }
        // The sounding alert set again is a snooze: it stops now and sounds again at its new time.
        if self.sounding.as_ref().is_some_and(|s| s.token == alert.token) {
            self.silence(host);
            host.send_event("AlertStopped", &token_payload(&alert.token))?;
        }
        let token = alert.token.clone();
        self.alerts.insert(token.clone(), alert);
        self.persist(host)?;
        host.send_event("SetAlertSucceeded", &token_payload(&token))?;
        self.schedule(host, now_ms)
    }

    fn has_room_for(&self, kind: AlertType) -> bool {
        let of_kind = self.alerts.values().filter(|a| a.kind == kind).count();
        let limit = match kind {
            AlertType::Alarm => self.limits.alarms,
            AlertType::Timer => self.limits.timers,
            AlertType::Reminder => self.limits.overall,
        };
        self.alerts.len() < self.limits.overall && of_kind < limit
    }

    /// Deletes one alert; an unknown token is already deleted.
    pub fn delete_alert(&mut self, host: &impl HostApi, token: &str, now_ms: i64) -> Result<(), PluginError> {
        self.remove(host, token)?;
        self.persist(host)?;
        host.send_event("DeleteAlertSucceeded", &token_payload(token))?;
        self.schedule(host, now_ms)
    }

    pub fn delete_alerts(&mut self, host: &impl HostApi, tokens: &[String], now_ms: i64) -> Result<(), PluginError> {
        for token in tokens {
            self.remove(host, token)?;
        }
        self.persist(host)?;
        host.send_event("DeleteAlertsSucceeded", &json!({"tokens": tokens}))?;
        self.schedule(host, now_ms)
    }

    pub fn set_volume(&mut self, host: &impl HostApi, volume: i64) -> Result<(), PluginError> {
        self.volume = volume.clamp(0, 100) as u8;
        self.persist(host)?;
        host.send_event("VolumeChanged", &json!({"volume": self.volume})).map(drop)
    }

    pub fn adjust_volume(&mut self, host: &impl HostApi, delta: i64) -> Result<(), PluginError> {
        self.set_volume(host, self.volume as i64 + delta)
    }

    /// The user said stop: the sounding alert stops and is gone.
    pub fn stop_by_user(&mut self, host: &impl HostApi, now_ms: i64) -> Result<(), PluginError> {
        match self.sounding.as_ref().map(|s| s.token.clone()) {
            Some(token) => self.finish(host, &token, now_ms),
            None => Ok(()),
        }
    }

    pub fn on_timer(&mut self, host: &impl HostApi, timer: u64, now_ms: i64) -> Result<(), PluginError> {
        if self.timer == Some(timer) {
            self.timer = None;
            return self.schedule(host, now_ms);
        }
        let paused = self.sounding.as_mut().filter(|s| s.pause == Some(timer));
        if let Some(sounding) = paused {
            sounding.pause = None;
            return self.play_loop(host, now_ms);
        }
        Ok(())
    }

    pub fn on_focus(&mut self, host: &impl HostApi, focus: FocusState, now_ms: i64) -> Result<(), PluginError> {
        let Some(sounding) = self.sounding.as_mut() else {
            if focus != FocusState::None {
                host.release_focus(CHANNEL); // granted after the alert was stopped
            }
            return Ok(());
        };
        let (was, token) = (sounding.focus, sounding.token.clone());
        sounding.focus = focus;
        if focus == FocusState::None {
            // Another alert or a notification took the channel: this one is over.
            return self.finish(host, &token, now_ms);
        }
        if !sounding.started {
            sounding.started = true;
            host.send_event("AlertStarted", &token_payload(&token))?;
        }
        match (was, focus) {
            (FocusState::Background, FocusState::Foreground) => {
                host.send_event("AlertEnteredForeground", &token_payload(&token))?;
            }
            // A dialog has the foreground: the alert sounds on underneath it.
            (FocusState::Foreground | FocusState::None, FocusState::Background) => {
                host.send_event("AlertEnteredBackground", &token_payload(&token))?;
            }
            _ => {}
        }
        let sounding = self.sounding.as_ref().expect("still sounding");
        if sounding.media.is_none() && sounding.pause.is_none() {
            return self.play_loop(host, now_ms);
        }
        Ok(())
    }

    /// A `media` host event of the player.
    pub fn on_media(&mut self, host: &impl HostApi, media: u64, state: &str, now_ms: i64) -> Result<(), PluginError> {
        let Some(sounding) = self.sounding.as_mut().filter(|s| s.media == Some(media)) else {
            return Ok(());
        };
        match state {
            "finished" => {
                sounding.media = None;
                sounding.loops += 1;
                let token = sounding.token.clone();
                let loop_count = self.alerts.get(&token).and_then(|a| a.loop_count);
                let pause = self.alerts.get(&token).map_or(0, |a| a.loop_pause_ms);
                let sounding = self.sounding.as_mut().expect("checked above");
                let done_looping = loop_count.is_some_and(|n| n > 0 && sounding.loops >= n);
                if done_looping || now_ms - sounding.since_ms >= MAX_SOUNDING_MS {
                    return self.finish(host, &token, now_ms);
                }
                if pause > 0 {
                    sounding.pause = Some(host.start_timer(pause, 0));
                    return Ok(());
                }
                self.play_loop(host, now_ms)
            }
            "failed" if !sounding.tone_only => {
                host.log(
                    LogLevel::Info,
                    &format!("alert {}: its sound failed, the device's tone takes over", sounding.token),
                );
                sounding.tone_only = true;
                sounding.media = None;
                self.play_loop(host, now_ms)
            }
            "failed" => {
                let token = sounding.token.clone();
                self.finish(host, &token, now_ms)
            }
            _ => Ok(()),
        }
    }

    /// The AlertsState context.
    pub fn context(&self) -> Value {
        let entry = |a: &Alert| json!({"token": a.token, "type": a.kind, "scheduledTime": a.scheduled_time});
        let mut all: Vec<&Alert> = self.alerts.values().collect();
        all.sort_by_key(|a| a.due_ms);
        let active: Vec<Value> = self
            .sounding
            .as_ref()
            .filter(|s| s.started)
            .and_then(|s| self.alerts.get(&s.token))
            .map(entry)
            .into_iter()
            .collect();
        json!({"allAlerts": all.into_iter().map(entry).collect::<Vec<_>>(), "activeAlerts": active})
    }

    /// For an OTA swap: the alerts themselves are persisted; what the next version needs is which one is
    /// sounding (see [`Scheduler::take_over`]).
    pub fn export(&self) -> Value {
        json!({"sounding": self.sounding.as_ref().filter(|s| s.started).map(|s| &s.token)})
    }

    /// Stops every sound and timer, for shutdown. The alerts stay persisted.
    pub fn stop(&mut self, host: &impl HostApi) {
        self.silence(host);
        if let Some(timer) = self.timer.take() {
            host.cancel_timer(timer);
        }
    }

    /// Sounds what is due, discards what is long past due, and arms the timer for what comes next.
    fn schedule(&mut self, host: &impl HostApi, now_ms: i64) -> Result<(), PluginError> {
        let stale: Vec<String> =
            self.alerts.values().filter(|a| a.due_ms < now_ms - PAST_DUE_MS).map(|a| a.token.clone()).collect();
        for token in stale {
            if self.sounding.as_ref().is_some_and(|s| s.token == token) {
                continue; // sounding: its own maximum duration ends it
            }
            host.log(LogLevel::Info, &format!("alert {token} is more than 30 minutes past due: discarded"));
            self.alerts.remove(&token);
            self.persist(host)?;
            host.send_event("AlertStopped", &token_payload(&token))?;
        }
        if self.sounding.is_none() {
            let due = self.alerts.values().filter(|a| a.due_ms <= now_ms).min_by_key(|a| a.due_ms);
            if let Some(token) = due.map(|a| a.token.clone()) {
                self.start_sounding(host, token, now_ms, false)?;
            }
        }
        if let Some(timer) = self.timer.take() {
            host.cancel_timer(timer);
        }
        let sounding = self.sounding.as_ref().map(|s| s.token.as_str());
        let next = self.alerts.values().filter(|a| Some(a.token.as_str()) != sounding).map(|a| a.due_ms).min();
        let ends = self.sounding.as_ref().map(|s| s.since_ms + MAX_SOUNDING_MS);
        if let Some(at) = next.into_iter().chain(ends).min() {
            let delay = (at - now_ms).clamp(0, RECHECK_MS);
            self.timer = Some(host.start_timer(delay as u64, 0));
        }
        Ok(())
    }

    fn start_sounding(
        &mut self,
        host: &impl HostApi,
        token: String,
        now_ms: i64,
        started: bool,
    ) -> Result<(), PluginError> {
        self.sounding = Some(Sounding {
            token,
            since_ms: now_ms,
            focus: FocusState::None,
            started,
            media: None,
            loops: 0,
            tone_only: false,
            pause: None,
        });
        host.acquire_focus(CHANNEL)
    }

    /// Plays one loop of the sounding alert: its first asset in play order, or the tone.
    fn play_loop(&mut self, host: &impl HostApi, now_ms: i64) -> Result<(), PluginError> {
        let Some(sounding) = self.sounding.as_mut() else { return Ok(()) };
        let sound = self.alerts.get(&sounding.token).and_then(|a| a.sound.as_deref());
        let url = match (sounding.tone_only, sound) {
            (false, Some(url)) => url.to_string(),
            _ => TONE.to_string(),
        };
        match host.play(&url, &json!({})) {
            Ok(media) => {
                sounding.media = Some(media);
                Ok(())
            }
            Err(e) if url != TONE => {
                host.log(
                    LogLevel::Info,
                    &format!("alert {}: {url} cannot be played ({e}); the device's tone takes over", sounding.token),
                );
                sounding.tone_only = true;
                self.play_loop(host, now_ms)
            }
            Err(e) => {
                let token = sounding.token.clone();
                host.log(LogLevel::Info, &format!("alert {token}: even the tone failed: {e}"));
                self.finish(host, &token, now_ms)
            }
        }
    }

    /// The sounding alert is over: silence, AlertStopped, and it is gone.
    fn finish(&mut self, host: &impl HostApi, token: &str, now_ms: i64) -> Result<(), PluginError> {
        self.silence(host);
        self.alerts.remove(token);
        self.persist(host)?;
        host.send_event("AlertStopped", &token_payload(token))?;
        self.schedule(host, now_ms)
    }

    fn remove(&mut self, host: &impl HostApi, token: &str) -> Result<(), PluginError> {
        if self.sounding.as_ref().is_some_and(|s| s.token == token) {
            self.silence(host);
            host.send_event("AlertStopped", &token_payload(token))?;
        }
        self.alerts.remove(token);
        Ok(())
    }

    /// Stops the sounding alert's media and gives the channel back, keeping the alert.
    fn silence(&mut self, host: &impl HostApi) {
        let Some(sounding) = self.sounding.take() else { return };
        if let Some(media) = sounding.media {
            host.stop_media(media);
        }
        if let Some(pause) = sounding.pause {
            host.cancel_timer(pause);
        }
        host.release_focus(CHANNEL);
    }

    /// Stores [`Persisted`]. Written by hand because the payloads are JSON already (checked against the
    /// schema when they arrived): serialising each alert again was most of the cost of a SetAlert.
    fn persist(&self, host: &impl HostApi) -> Result<(), PluginError> {
        let size = self.alerts.values().map(|a| a.payload.len() + 1).sum::<usize>() + 32;
        let mut json = String::with_capacity(size);
        json.push_str(r#"{"alerts":["#);
        for (i, alert) in self.alerts.values().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&alert.payload);
        }
        write!(json, r#"],"volume":{}}}"#, self.volume).expect("writing to a String");
        host.store_raw(STATE_KEY, &json)
    }
}

#[cfg(test)]
mod tests {
    use avs_plugin_sdk::testing::{Call, FakeHost};

    use super::*;
    use crate::schema_check::SCHEMAS;

    const T0: i64 = 1_764_064_800_000; // 2025-11-25T10:00:00Z

    /// A SetAlert payload.
    fn set(token: &str, kind: AlertType, at: &str) -> String {
        json!({"token": token, "type": kind, "scheduledTime": at}).to_string()
    }

    /// `payload` with more fields.
    fn with(payload: String, fields: Value) -> String {
        let mut payload: Value = serde_json::from_str(&payload).unwrap();
        payload.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        payload.to_string()
    }

    fn event(name: &str, token: &str) -> (String, Value) {
        (name.to_string(), json!({"token": token}))
    }

    /// A scheduler with one timer due at T0 + 5 s, which has started sounding in the foreground.
    fn sounding(host: &FakeHost) -> Scheduler {
        let mut s = Scheduler::default();
        s.set_alert(host, &set("t1", AlertType::Timer, "2025-11-25T10:00:05+0000"), T0).unwrap();
        let timer = host.last_timer();
        s.on_timer(host, timer, T0 + 5_000).unwrap();
        s.on_focus(host, FocusState::Foreground, T0 + 5_000).unwrap();
        host.take();
        s
    }

    #[test]
    fn a_timer_is_acknowledged_persisted_and_armed_for_its_time() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        s.set_alert(&host, &set("t1", AlertType::Timer, "2025-11-25T10:00:05+0000"), T0).unwrap();
        assert_eq!(
            host.take(),
            [Call::Event("SetAlertSucceeded".into(), json!({"token": "t1"})), Call::Timer(5_000, 0)]
        );
        let persisted = host.load::<Persisted>(STATE_KEY).unwrap();
        assert_eq!(persisted.restore(&host).map(|a| a.due_ms).collect::<Vec<_>>(), [T0 + 5_000]);
        let context = s.context();
        crate::schema_check::assert_valid("context/AlertsState.json", &context);
        assert_eq!(context["allAlerts"][0]["scheduledTime"], "2025-11-25T10:00:05+0000");
        assert_eq!(context["activeAlerts"], json!([]));
    }

    #[test]
    fn the_payloads_are_stored_as_avs_wrote_them_and_restored_alike() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        // Fields the scheduler has no use for, escapes and spacing are kept too.
        let alarm = r#"{ "token" : "a1", "type": "ALARM", "scheduledTime": "2025-11-26T07:30:00+0000",
            "assets": [{"assetId": "x", "url": "https:\/\/example.com\/alarm.mp3"}, {"assetId": "y", "url": "u"}],
            "assetPlayOrder": ["y", "x"], "backgroundAlertAsset": "x", "loopCount": 3 }"#;
        s.set_alert(&host, alarm, T0).unwrap();
        s.set_alert(&host, &set("t1", AlertType::Timer, "2025-11-25T10:00:05+0000"), T0).unwrap();
        s.set_volume(&host, 42).unwrap();
        let stored = host.load_raw(STATE_KEY).unwrap();
        let persisted: Persisted = serde_json::from_str(&stored).unwrap();
        let payloads: Vec<&str> = persisted.alerts.iter().map(|p| p.get()).collect();
        assert_eq!(payloads, [alarm, set("t1", AlertType::Timer, "2025-11-25T10:00:05+0000").as_str()]);
        assert_eq!(persisted.volume, 42);

        let mut restored = Scheduler::default();
        restored.take_over(&host, persisted, &Value::Null, T0).unwrap();
        assert_eq!(restored.alerts, s.alerts);
        assert_eq!(restored.alerts["a1"].sound.as_deref(), Some("u"), "the first asset in play order sounds");
        assert_eq!(restored.alerts["a1"].due_ms, 1_764_142_200_000);
    }

    #[test]
    fn alerts_stored_by_earlier_builds_still_load_and_an_unreadable_one_costs_no_other() {
        let host = FakeHost::new(SCHEMAS);
        // Earlier builds stored each alert's fields with its dueMs beside them.
        let stored = json!({"alerts": [
            {"token": "a1", "type": "ALARM", "scheduledTime": "2025-11-26T07:30:00+0000",
             "assets": [{"assetId": "x", "url": "https://example.com/alarm.mp3"}], "assetPlayOrder": ["x"],
             "loopCount": 3, "loopPauseInMilliSeconds": 0, "dueMs": 1_764_142_200_000_i64},
            {"token": "t1", "type": "TIMER", "scheduledTime": "not a time", "dueMs": 0}
        ], "volume": 30});
        let mut s = Scheduler::default();
        s.take_over(&host, serde_json::from_value(stored).unwrap(), &Value::Null, T0).unwrap();
        let a1 = &s.alerts["a1"];
        assert_eq!(
            (a1.due_ms, a1.loop_count, a1.sound.as_deref()),
            (1_764_142_200_000, Some(3), Some("https://example.com/alarm.mp3"))
        );
        assert_eq!(s.alerts.len(), 1);
        assert_eq!(s.volume, 30);
        let warnings = host.logs(LogLevel::Warn);
        assert!(warnings.iter().any(|w| w.contains("unreadable") && w.contains("not a time")), "{warnings:?}");
    }

    #[test]
    fn a_payload_that_is_no_set_alert_fails_by_its_token_when_it_has_one() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        let err = s.set_alert(&host, r#"{"token":"t9","type":"NAP","scheduledTime":"2025-11-26T07:30:00+0000"}"#, T0);
        assert!(err.unwrap_err().to_string().contains("NAP"));
        assert_eq!(host.take_events(), [event("SetAlertFailed", "t9")]);
        assert!(s.set_alert(&host, r#"{"type":"TIMER"}"#, T0).is_err());
        assert_eq!(host.take_events(), [], "no token, nothing to name in a SetAlertFailed");
        assert!(s.alerts.is_empty());
    }

    #[test]
    fn far_alerts_are_rechecked_every_minute_so_clock_changes_are_noticed() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        s.set_alert(&host, &set("a1", AlertType::Alarm, "2025-11-26T07:30:00+0000"), T0).unwrap();
        assert_eq!(host.take().last(), Some(&Call::Timer(60_000, 0)));
    }

    #[test]
    fn a_due_alert_takes_the_alert_channel_starts_and_loops_the_tone_until_the_user_stops_it() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        s.set_alert(&host, &set("t1", AlertType::Timer, "2025-11-25T10:00:05+0000"), T0).unwrap();
        host.take();
        s.on_timer(&host, 1, T0 + 5_000).unwrap();
        assert_eq!(host.take()[0], Call::Acquire(CHANNEL.into()), "nothing sounds before the channel is granted");
        s.on_focus(&host, FocusState::Foreground, T0 + 5_000).unwrap();
        assert_eq!(
            host.take(),
            [Call::Event("AlertStarted".into(), json!({"token": "t1"})), Call::Play(TONE.into(), json!({}))]
        );
        assert_eq!(s.context()["activeAlerts"][0]["token"], "t1");
        s.on_media(&host, 3, "finished", T0 + 7_000).unwrap();
        assert_eq!(host.take(), [Call::Play(TONE.into(), json!({}))], "it loops");
        s.stop_by_user(&host, T0 + 8_000).unwrap();
        let calls = host.take();
        assert_eq!(
            &calls[..3],
            [Call::Stop(4), Call::Release(CHANNEL.into()), Call::Event("AlertStopped".into(), json!({"token": "t1"}))]
        );
        assert!(host.load::<Persisted>(STATE_KEY).unwrap().alerts.is_empty(), "a stopped alert is gone");
        assert_eq!(s.context(), json!({"allAlerts": [], "activeAlerts": []}));
    }

    #[test]
    fn assets_that_cannot_be_played_give_way_to_the_devices_tone() {
        let host = FakeHost::new(SCHEMAS).unplayable("https://example.com/alarm.mp3");
        let mut s = Scheduler::default();
        let alarm = with(
            set("a1", AlertType::Alarm, "2025-11-25T10:00:00+0000"),
            json!({"assets": [{"assetId": "x", "url": "https://example.com/alarm.mp3"}]}),
        );
        s.set_alert(&host, &alarm, T0).unwrap();
        s.on_focus(&host, FocusState::Foreground, T0).unwrap();
        let calls = host.take();
        assert!(calls.contains(&Call::Play(TONE.into(), json!({}))), "{calls:?}");
    }

    #[test]
    fn a_dialog_sends_the_alert_to_the_background_and_back() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = sounding(&host);
        s.on_focus(&host, FocusState::Background, T0 + 6_000).unwrap();
        assert_eq!(host.take_events(), [event("AlertEnteredBackground", "t1")]);
        s.on_focus(&host, FocusState::Foreground, T0 + 7_000).unwrap();
        assert_eq!(host.take_events(), [event("AlertEnteredForeground", "t1")]);
    }

    #[test]
    fn an_alert_stops_after_its_loop_count_or_after_an_hour() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        let twice = with(set("t1", AlertType::Timer, "2025-11-25T10:00:00+0000"), json!({"loopCount": 2}));
        s.set_alert(&host, &twice, T0).unwrap();
        s.on_focus(&host, FocusState::Foreground, T0).unwrap();
        host.take();
        s.on_media(&host, 2, "finished", T0 + 2_000).unwrap();
        assert_eq!(host.take(), [Call::Play(TONE.into(), json!({}))]);
        s.on_media(&host, 3, "finished", T0 + 4_000).unwrap();
        assert!(host.take_events().contains(&event("AlertStopped", "t1")));

        let mut s = sounding(&host);
        s.on_media(&host, host.last_media(), "finished", T0 + 5_000 + MAX_SOUNDING_MS).unwrap();
        assert!(host.take_events().contains(&event("AlertStopped", "t1")), "an hour is the most an alert sounds");
    }

    #[test]
    fn long_past_due_alerts_are_refused_or_discarded() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        s.set_alert(&host, &set("old", AlertType::Timer, "2025-11-25T09:00:00+0000"), T0).unwrap();
        assert_eq!(host.take_events(), [event("SetAlertFailed", "old")]);
        // Stored while the device was on; it is off for two hours.
        let stored = json!({"alerts": [{"token": "t1", "type": "TIMER", "scheduledTime": "2025-11-25T10:00:05+0000"}], "volume": 30});
        let stored: Persisted = serde_json::from_value(stored).unwrap();
        s.take_over(&host, stored, &Value::Null, T0 + 2 * 3_600_000).unwrap();
        assert_eq!(host.take_events(), [event("AlertStopped", "t1")]);
        assert!(host.load::<Persisted>(STATE_KEY).unwrap().alerts.is_empty());
    }

    #[test]
    fn a_time_that_is_not_iso_8601_is_a_failure_and_an_exception() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        let err = s.set_alert(&host, &set("t1", AlertType::Timer, "tomorrow"), T0).unwrap_err();
        assert!(err.to_string().contains("tomorrow"), "{err}");
        assert_eq!(host.take_events(), [event("SetAlertFailed", "t1")]);
    }

    #[test]
    fn maximum_alerts_are_enforced_per_kind_and_overall() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        s.set_limits(Limits { overall: 3, alarms: 1, timers: 2 });
        s.set_alert(&host, &set("a1", AlertType::Alarm, "2025-11-26T07:30:00+0000"), T0).unwrap();
        s.set_alert(&host, &set("a2", AlertType::Alarm, "2025-11-26T08:30:00+0000"), T0).unwrap();
        s.set_alert(&host, &set("t1", AlertType::Timer, "2025-11-26T08:30:00+0000"), T0).unwrap();
        s.set_alert(&host, &set("t2", AlertType::Timer, "2025-11-26T08:30:00+0000"), T0).unwrap();
        s.set_alert(&host, &set("r1", AlertType::Reminder, "2025-11-26T08:30:00+0000"), T0).unwrap();
        let answers: Vec<(String, Value)> = host.take_events();
        assert_eq!(
            answers,
            [
                event("SetAlertSucceeded", "a1"),
                event("SetAlertFailed", "a2"),
                event("SetAlertSucceeded", "t1"),
                event("SetAlertSucceeded", "t2"),
                event("SetAlertFailed", "r1"),
            ]
        );
        // Updating an existing alert needs no room.
        s.set_alert(&host, &set("a1", AlertType::Alarm, "2025-11-26T09:30:00+0000"), T0).unwrap();
        assert_eq!(host.take_events(), [event("SetAlertSucceeded", "a1")]);
    }

    #[test]
    fn setting_the_sounding_alert_again_snoozes_it() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = sounding(&host);
        s.set_alert(&host, &set("t1", AlertType::Timer, "2025-11-25T10:09:05+0000"), T0 + 6_000).unwrap();
        let calls = host.take();
        assert!(calls.contains(&Call::Release(CHANNEL.into())), "{calls:?}");
        let events: Vec<&Call> = calls.iter().filter(|c| matches!(c, Call::Event(..))).collect();
        assert_eq!(
            events,
            [
                &Call::Event("AlertStopped".into(), json!({"token": "t1"})),
                &Call::Event("SetAlertSucceeded".into(), json!({"token": "t1"}))
            ]
        );
        assert_eq!(s.context()["allAlerts"][0]["scheduledTime"], "2025-11-25T10:09:05+0000");
    }

    #[test]
    fn deletes_stop_a_sounding_alert_and_are_idempotent() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = sounding(&host);
        s.delete_alerts(&host, &["t1".to_string(), "unknown".to_string()], T0 + 6_000).unwrap();
        assert_eq!(
            host.take_events(),
            [event("AlertStopped", "t1"), ("DeleteAlertsSucceeded".into(), json!({"tokens": ["t1", "unknown"]}))]
        );
        s.delete_alert(&host, "t1", T0 + 6_000).unwrap();
        assert_eq!(host.take_events(), [event("DeleteAlertSucceeded", "t1")]);
    }

    #[test]
    fn the_alerts_volume_is_clamped_reported_and_kept() {
        let host = FakeHost::new(SCHEMAS);
        let mut s = Scheduler::default();
        s.set_volume(&host, 80).unwrap();
        s.adjust_volume(&host, 50).unwrap();
        assert_eq!(
            host.take_events(),
            [("VolumeChanged".into(), json!({"volume": 80})), ("VolumeChanged".into(), json!({"volume": 100}))]
        );
        assert_eq!(host.load::<Persisted>(STATE_KEY).unwrap().volume, 100);
    }

    #[test]
    fn after_an_ota_swap_the_sounding_alert_goes_on_without_a_second_alert_started() {
        let host = FakeHost::new(SCHEMAS);
        let old = sounding(&host);
        let handed_over = old.export();
        let persisted = host.load::<Persisted>(STATE_KEY).unwrap();
        let mut new = Scheduler::default();
        new.take_over(&host, persisted, &handed_over, T0 + 6_000).unwrap();
        new.on_focus(&host, FocusState::Foreground, T0 + 6_000).unwrap();
        let calls = host.take();
        assert!(calls.contains(&Call::Play(TONE.into(), json!({}))), "it keeps sounding: {calls:?}");
        assert!(!calls.iter().any(|c| matches!(c, Call::Event(..))), "no event for a hand-over: {calls:?}");
        assert_eq!(new.context()["activeAlerts"][0]["token"], "t1");
    }
}
