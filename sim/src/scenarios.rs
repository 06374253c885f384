//! Scripted scenarios: what "the cloud" answers when the user says something, and how it reacts to what
//! the device reports back — enough of each AVS interface's real conversations to exercise it end to end.
//!
//! A scenario is selected by name (`SimHandle::set_scenario`, `POST /admin/scenario?name=…`). The next
//! Recognize is answered with the spoken reply and the scenario's directives, in the same dialog (as AVS
//! puts, say, a Play after the Speak announcing it); later events of the device may trigger more
//! directives on the downchannel (the next song when the current one nearly finished, pairing once a
//! scan found a phone). Directives go only to interfaces the device declared in its capabilities.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::media::SONGS;
use crate::ReceivedEvent;

/// What a scenario may look at: where the sim serves media, and the interfaces the device declared.
pub(crate) struct Cloud<'a> {
    pub base_url: &'a str,
    pub declared: &'a HashMap<String, String>,
}

impl Cloud<'_> {
    fn has(&self, interface: &str) -> bool {
        self.declared.contains_key(interface)
    }
}

pub struct Scenario {
    pub name: &'static str,
    /// What the user says to start it.
    pub utterance: &'static str,
    /// The interfaces it is about (the device needs the first; the others enrich it).
    pub interfaces: &'static [&'static str],
    /// The device event that shows the scenario came through (namespace, name) — or, for an interface
    /// that answers nothing (Notifications, InputController), the directive the device handled.
    pub done_when: (&'static str, &'static str),
    /// Directives answering the Recognize, after the spoken reply (namespace, name, payload).
    answer: fn(&Cloud<'_>) -> Directives,
    /// Directives pushed on the downchannel in reaction to a device event.
    react: fn(&Cloud<'_>, &ReceivedEvent) -> Directives,
}

/// Directives to send: (namespace, name, payload).
type Directives = Vec<(&'static str, &'static str, Value)>;

fn nothing(_: &Cloud<'_>, _: &ReceivedEvent) -> Directives {
    Vec::new()
}

pub static SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "set-timer",
        utterance: "set a timer for 3 seconds",
        interfaces: &["Alerts"],
        done_when: ("Alerts", "AlertStarted"),
        answer: |_| {
            let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
            vec![(
                "Alerts",
                "SetAlert",
                json!({"token": new_token("timer"), "type": "TIMER", "scheduledTime": iso8601(at)}),
            )]
        },
        react: nothing,
    },
    Scenario {
        name: "play-music",
        utterance: "play some music",
        interfaces: &["AudioPlayer", "TemplateRuntime", "PlaybackController"],
        done_when: ("AudioPlayer", "PlaybackStarted"),
        answer: |cloud| play(cloud, 0, "REPLACE_ALL", None),
        react: |cloud, event| {
            let token = event.json["event"]["payload"]["token"].as_str().unwrap_or_default();
            let current = song_of(token);
            match (event.namespace.as_str(), event.name.as_str()) {
                // AVS queues the next item once the device has buffered the current one.
                ("AudioPlayer", "PlaybackNearlyFinished") => match current {
                    Some(n) if n + 1 < SONGS.len() => play(cloud, n + 1, "ENQUEUE", Some(token)),
                    _ => Vec::new(),
                },
                ("PlaybackController", "NextCommandIssued") => {
                    play(cloud, (playing(event).unwrap_or(0) + 1) % SONGS.len(), "REPLACE_ALL", None)
                }
                ("PlaybackController", "PreviousCommandIssued") => {
                    play(cloud, (playing(event).unwrap_or(0) + SONGS.len() - 1) % SONGS.len(), "REPLACE_ALL", None)
                }
                ("PlaybackController", "PauseCommandIssued") => vec![("AudioPlayer", "Stop", json!({}))],
                ("PlaybackController", "PlayCommandIssued") => {
                    play(cloud, playing(event).unwrap_or(0), "REPLACE_ALL", None)
                }
                _ => Vec::new(),
            }
        },
    },
    Scenario {
        name: "weather",
        utterance: "what's the weather",
        interfaces: &["TemplateRuntime"],
        done_when: ("SpeechSynthesizer", "SpeechFinished"),
        answer: |cloud| {
            if !cloud.has("TemplateRuntime") {
                return Vec::new();
            }
            vec![(
                "TemplateRuntime",
                "RenderTemplate",
                json!({
                    "token": new_token("weather"),
                    "type": "WeatherTemplate",
                    "title": {"mainTitle": "Seattle", "subTitle": "Tuesday, December 1"},
                    "currentWeather": "48°",
                    "description": "Light rain, clearing in the evening.",
                    "currentWeatherIcon": {"sources": [{"url": format!("{}/media/rain.png", cloud.base_url)}]},
                    "highTemperature": {"value": "51°", "arrow": {"sources": [{"url": format!("{}/media/up.png", cloud.base_url)}]}},
                    "lowTemperature": {"value": "42°", "arrow": {"sources": [{"url": format!("{}/media/down.png", cloud.base_url)}]}},
                    "weatherForecast": [
                        {"day": "Wed", "date": "Dec 2", "highTemperature": "50°", "lowTemperature": "41°",
                         "image": {"sources": [{"url": format!("{}/media/cloudy.png", cloud.base_url)}]}},
                        {"day": "Thu", "date": "Dec 3", "highTemperature": "53°", "lowTemperature": "44°",
                         "image": {"sources": [{"url": format!("{}/media/sun.png", cloud.base_url)}]}}
                    ]
                }),
            )]
        },
        react: nothing,
    },
    Scenario {
        name: "pair-phone",
        utterance: "pair my phone",
        interfaces: &["Bluetooth"],
        done_when: ("Bluetooth", "ConnectByDeviceIdsSucceeded"),
        answer: |_| vec![("Bluetooth", "ScanDevices", json!({}))],
        react: |_, event| match (event.namespace.as_str(), event.name.as_str()) {
            // Once the scan is over, the phone it found is paired, then connected, as the Alexa app does
            // when the user picks it.
            ("Bluetooth", "ScanDevicesReport") if event.json["event"]["payload"]["hasMore"] == false => phone(event)
                .map(|id| {
                    vec![
                        ("Bluetooth", "ExitDiscoverableMode", json!({})),
                        ("Bluetooth", "PairDevices", json!({"devices": [{"uniqueDeviceId": id}]})),
                    ]
                })
                .unwrap_or_default(),
            ("Bluetooth", "PairDevicesSucceeded") => device_ids(event)
                .map(|ids| vec![("Bluetooth", "ConnectByDeviceIds", json!({"devices": ids}))])
                .unwrap_or_default(),
            _ => Vec::new(),
        },
    },
    Scenario {
        name: "bass-up",
        utterance: "set the bass higher",
        interfaces: &["EqualizerController"],
        done_when: ("EqualizerController", "EqualizerChanged"),
        answer: |_| {
            vec![(
                "EqualizerController",
                "AdjustBands",
                json!({"bands": [{"name": "BASS", "levelDelta": 2, "levelDirection": "UP"}]}),
            )]
        },
        react: nothing,
    },
    Scenario {
        name: "volume-down",
        utterance: "turn it down",
        interfaces: &["Speaker"],
        done_when: ("Speaker", "VolumeChanged"),
        answer: |_| vec![("Speaker", "AdjustVolume", json!({"volume": -10}))],
        react: nothing,
    },
    Scenario {
        name: "notification",
        utterance: "(a package was delivered)",
        interfaces: &["Notifications"],
        done_when: ("Notifications", "SetIndicator"),
        answer: |_| {
            vec![(
                "Notifications",
                "SetIndicator",
                json!({
                    "persistVisualIndicator": true,
                    "playAudioIndicator": true,
                    "asset": {"assetId": new_token("chime"), "url": "tone:400"}
                }),
            )]
        },
        react: nothing,
    },
    Scenario {
        name: "switch-input",
        utterance: "switch to HDMI 1",
        interfaces: &["Alexa.InputController"],
        done_when: ("Alexa.InputController", "SelectInput"),
        answer: |_| vec![("Alexa.InputController", "SelectInput", json!({"input": "HDMI 1"}))],
        react: nothing,
    },
];

impl Scenario {
    pub fn named(name: &str) -> Option<&'static Scenario> {
        SCENARIOS.iter().find(|s| s.name == name)
    }

    /// The directives answering the user's request, for the interfaces the device has: those that go
    /// before the spoken reply (a card, shown while it is spoken, as AVS orders them) and those after.
    pub(crate) fn answer(&self, cloud: &Cloud<'_>) -> (Directives, Directives) {
        (self.answer)(cloud)
            .into_iter()
            .filter(|(namespace, ..)| cloud.has(namespace))
            .partition(|(namespace, name, _)| (*namespace, *name) == ("TemplateRuntime", "RenderTemplate"))
    }

    pub(crate) fn react(&self, cloud: &Cloud<'_>, event: &ReceivedEvent) -> Directives {
        (self.react)(cloud, event).into_iter().filter(|(namespace, ..)| cloud.has(namespace)).collect()
    }
}

fn new_token(kind: &str) -> String {
    format!("sim-{kind}-{}", uuid::Uuid::new_v4().simple())
}

/// AVS's alert time format, e.g. `2026-12-01T10:00:03+0000`.
fn iso8601(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000");
    at.format(&format).expect("a UTC time formats")
}

/// Tokens of songs are `sim-song-<n>-<unique>`, so the cloud knows where in the list it is.
fn song_of(token: &str) -> Option<usize> {
    token.strip_prefix("sim-song-")?.split('-').next()?.parse().ok()
}

/// The song the device reports playing in its context (PlaybackController commands carry context).
fn playing(event: &ReceivedEvent) -> Option<usize> {
    event.json["context"].as_array()?.iter().find_map(|entry| {
        let is_state = entry["header"]["namespace"] == "AudioPlayer" && entry["header"]["name"] == "PlaybackState";
        is_state.then(|| song_of(entry["payload"]["token"].as_str()?)).flatten()
    })
}

fn play(cloud: &Cloud<'_>, n: usize, behavior: &str, previous: Option<&str>) -> Directives {
    let (file, title, artist, _) = SONGS[n];
    let token = format!("sim-song-{n}-{}", uuid::Uuid::new_v4().simple());
    let audio_item_id = format!("sim-item-{n}");
    let mut stream = json!({
        "url": format!("{}/media/{file}", cloud.base_url),
        "offsetInMilliseconds": 0,
        "token": token,
        "progressReport": {"progressReportDelayInMilliseconds": 1000, "progressReportIntervalInMilliseconds": 2000}
    });
    if let Some(previous) = previous {
        stream["expectedPreviousToken"] = json!(previous);
    }
    let mut directives: Directives = vec![(
        "AudioPlayer",
        "Play",
        json!({"playBehavior": behavior, "audioItem": {"audioItemId": audio_item_id, "stream": stream}}),
    )];
    if behavior != "ENQUEUE" {
        directives.push((
            "TemplateRuntime",
            "RenderPlayerInfo",
            json!({
                "audioItemId": audio_item_id,
                "content": {
                    "title": title,
                    "titleSubtext1": artist,
                    "header": "Sim Radio",
                    "provider": {"name": "avs-sim"}
                },
                "controls": [
                    {"type": "BUTTON", "name": "PLAY_PAUSE", "enabled": true, "selected": false},
                    {"type": "BUTTON", "name": "NEXT", "enabled": true, "selected": false},
                    {"type": "BUTTON", "name": "PREVIOUS", "enabled": n > 0, "selected": false}
                ]
            }),
        ));
    }
    directives
}

/// Bluetooth's major device class "Phone" (bits 8–12 of the class of device).
const MAJOR_CLASS_PHONE: u64 = 0x02;

/// The phone among the devices a scan discovered (or else the first one).
fn phone(event: &ReceivedEvent) -> Option<String> {
    let devices = event.json["event"]["payload"]["discoveredDevices"].as_array()?;
    let is_phone = |d: &&Value| {
        d["metadata"]["classOfDevice"].as_u64().is_some_and(|class| (class >> 8) & 0x1f == MAJOR_CLASS_PHONE)
    };
    devices.iter().find(is_phone).or(devices.first())?["uniqueDeviceId"].as_str().map(str::to_string)
}

fn device_ids(event: &ReceivedEvent) -> Option<Vec<Value>> {
    let devices = event.json["event"]["payload"]["devices"].as_array()?;
    Some(devices.iter().map(|d| json!({"uniqueDeviceId": d["uniqueDeviceId"]})).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn song_tokens_say_which_song() {
        assert_eq!(song_of("sim-song-2-abc"), Some(2));
        assert_eq!(song_of("someone-else"), None);
    }

    #[test]
    fn directives_go_only_to_declared_interfaces() {
        let declared = HashMap::from([("AudioPlayer".to_string(), "1.4".to_string())]);
        let cloud = Cloud { base_url: "https://localhost:1", declared: &declared };
        let (before, after) = Scenario::named("play-music").unwrap().answer(&cloud);
        let names: Vec<_> = after.iter().map(|(ns, name, _)| format!("{ns}.{name}")).collect();
        assert_eq!(names, ["AudioPlayer.Play"]);
        assert!(before.is_empty());
        assert_eq!(Scenario::named("bass-up").unwrap().answer(&cloud), (Vec::new(), Vec::new()));
    }

    #[test]
    fn a_card_goes_before_the_spoken_reply() {
        let declared = HashMap::from([("TemplateRuntime".to_string(), "1.2".to_string())]);
        let cloud = Cloud { base_url: "https://localhost:1", declared: &declared };
        let (before, after) = Scenario::named("weather").unwrap().answer(&cloud);
        assert_eq!((before.len(), before[0].1, after.len()), (1, "RenderTemplate", 0));
    }

    #[test]
    fn the_phone_is_picked_from_a_finished_scan() {
        let report = |has_more: bool| ReceivedEvent {
            namespace: "Bluetooth".into(),
            name: "ScanDevicesReport".into(),
            message_id: "m".into(),
            dialog_request_id: None,
            json: json!({"event": {"payload": {"hasMore": has_more, "discoveredDevices": [
                {"uniqueDeviceId": "speaker", "metadata": {"classOfDevice": 0x240414}},
                {"uniqueDeviceId": "phone", "metadata": {"classOfDevice": 0x5a020c}}
            ]}}}),
            audio_bytes: 0,
            connection: 1,
            seq_on_connection: 0,
        };
        let declared = HashMap::from([("Bluetooth".to_string(), "2.0".to_string())]);
        let cloud = Cloud { base_url: "https://localhost:1", declared: &declared };
        let scenario = Scenario::named("pair-phone").unwrap();
        assert!(scenario.react(&cloud, &report(true)).is_empty(), "waits for the scan to finish");
        let pairing = scenario.react(&cloud, &report(false));
        assert_eq!(pairing[1].2, json!({"devices": [{"uniqueDeviceId": "phone"}]}));
    }

    #[test]
    fn alert_times_are_in_the_avs_format() {
        let at = time::macros::datetime!(2026-12-01 10:00:03 UTC);
        assert_eq!(iso8601(at), "2026-12-01T10:00:03+0000");
    }
}
