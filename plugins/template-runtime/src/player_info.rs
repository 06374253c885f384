//! RenderPlayerInfo: the now-playing card of an AudioPlayer item (named by its audioItemId) — what plays,
//! from where, how long it is, and the controls the user has, with their state.

use avs_plugin_sdk::PluginError;
use serde::Deserialize;

use crate::text::{self, Layout};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    audio_item_id: String,
    content: Content,
    #[serde(default)]
    controls: Vec<Control>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Content {
    title: String,
    title_subtext1: Option<String>,
    title_subtext2: Option<String>,
    header: Option<String>,
    header_subtext1: Option<String>,
    media_length_in_milliseconds: Option<u64>,
    provider: Option<Provider>,
}

#[derive(Debug, Deserialize)]
struct Provider {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Control {
    #[serde(rename = "type")]
    kind: ControlKind,
    name: String,
    enabled: bool,
    #[serde(default)]
    selected: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum ControlKind {
    Button,
    Toggle,
}

/// A RenderPlayerInfo, parsed and rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPlayerInfo {
    pub audio_item_id: String,
    pub text: String,
}

pub fn render(payload: &str) -> Result<RenderedPlayerInfo, PluginError> {
    let payload: Payload =
        serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("RenderPlayerInfo: {e}")))?;
    let content = &payload.content;
    let provider = content.provider.as_ref().and_then(|p| p.name.as_deref()).filter(|n| !n.is_empty());
    let heading = match provider {
        Some(provider) => format!("Now playing · {provider}"),
        None => "Now playing".to_string(),
    };
    let mut layout = Layout::default();
    layout.text(&heading).section();
    layout.text(&content.title).text_opt(content.title_subtext1.as_deref()).text_opt(content.title_subtext2.as_deref());
    let from = [content.header.as_deref(), content.header_subtext1.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" · ");
    layout.text_opt(Some(&from)).section();
    if let Some(length) = content.media_length_in_milliseconds.filter(|ms| *ms > 0) {
        layout.text(&format!("Length {}", text::duration(length)));
    }
    let controls: Vec<String> = payload.controls.iter().map(control).collect();
    layout.items(&controls);
    Ok(RenderedPlayerInfo { audio_item_id: payload.audio_item_id, text: layout.draw() })
}

/// `[Next]`, `[Previous: disabled]`, `[Shuffle: on]`: a toggle shows whether it is selected, a button only
/// whether it can be pressed.
fn control(control: &Control) -> String {
    let label = match control.name.as_str() {
        "PLAY_PAUSE" => "Play/Pause",
        "NEXT" => "Next",
        "PREVIOUS" => "Previous",
        "SHUFFLE" => "Shuffle",
        "LOOP" => "Loop",
        "THUMBS_UP" => "Thumbs up",
        "THUMBS_DOWN" => "Thumbs down",
        other => other,
    };
    let mut states = Vec::new();
    if control.kind == ControlKind::Toggle {
        states.push(if control.selected { "on" } else { "off" });
    }
    if !control.enabled {
        states.push("disabled");
    }
    match states.is_empty() {
        true => format!("[{label}]"),
        false => format!("[{label}: {}]", states.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::schema_check;

    fn example(file: &str) -> Value {
        let example = schema_check::example(file);
        schema_check::assert_valid("directives/RenderPlayerInfo.json", &example["directive"]["payload"]);
        example["directive"]["payload"].clone()
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(|l| l.trim_matches(|c| "│ ".contains(c)).to_string()).collect()
    }

    #[test]
    fn shows_what_plays_from_where_its_length_and_the_controls_with_their_state() {
        let card = render(&example("RenderPlayerInfo.json").to_string()).unwrap();
        assert_eq!(card.audio_item_id, "item-1");
        let lines = lines(&card.text);
        assert_eq!(lines[1], "Now playing · Example Music");
        assert_eq!(
            lines[3..7],
            ["Float On", "Modest Mouse", "Good News for People Who Love Bad News", "Indie Hits · Playlist"]
        );
        assert_eq!(lines[8], "Length 3:28");
        let controls = lines[9..lines.len() - 1].join(" ");
        assert!(lines[9..lines.len() - 1].iter().all(|l| l.ends_with(']')), "{}", card.text);
        assert_eq!(
            controls,
            "[Previous: disabled] [Play/Pause] [Next] [Shuffle: on] [Loop: off] [Thumbs up: off] [Thumbs down: off]"
        );
    }

    #[test]
    fn a_minimal_item_shows_its_title_only() {
        let card = render(&example("RenderPlayerInfo-minimal.json").to_string()).unwrap();
        let lines = lines(&card.text);
        assert_eq!(lines.len(), 5, "{}", card.text);
        assert_eq!(lines[1], "Now playing");
        assert!(lines[2].starts_with('├'));
        assert_eq!(lines[3], "Morning News");
    }

    #[test]
    fn unknown_control_names_are_shown_as_they_are() {
        let payload = json!({"audioItemId": "a", "content": {"title": "t"},
                             "controls": [{"type": "BUTTON", "name": "SKIP_FORWARD", "enabled": true}]});
        assert!(render(&payload.to_string()).unwrap().text.contains("[SKIP_FORWARD]"));
    }

    #[test]
    fn a_payload_without_its_item_is_invalid() {
        let error = render(&json!({"content": {"title": "t"}}).to_string()).unwrap_err();
        assert!(matches!(&error, PluginError::Invalid(m) if m.contains("audioItemId")), "{error:?}");
    }
}
