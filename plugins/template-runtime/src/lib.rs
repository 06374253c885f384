//! TemplateRuntime 1.2: display cards. RenderTemplate (an answer's card: body text, list, weather) and
//! RenderPlayerInfo (the now-playing card of an AudioPlayer item) are rendered as text for a terminal and
//! shown, with their payload for a GUI, on the host's `display` device service; a card goes a fixed time
//! after the speech or the audio it accompanies. TemplateRuntime sends no events and reports no context.

mod player_info;
#[cfg(test)]
mod schema_check;
mod screen;
mod template;
mod text;

use avs_plugin_sdk::{
    Directive, DirectiveSpec, FocusState, Handling, Host, HostCell, Interface, Manifest, Medium, PluginError,
};
use serde::Deserialize;
use serde_json::{json, Value};

use screen::{Card, Screen, CHANNEL};

const INTERFACE: &str = "TemplateRuntime";

/// The `focus.changed` host event.
#[derive(Deserialize)]
struct FocusChanged {
    channel: String,
    focus: String,
}

#[derive(Default)]
pub struct TemplateRuntime {
    host: HostCell,
    screen: Screen,
}

/// The card JSON for a GUI: which directive, and its payload as AVS sent it.
fn gui_card(name: &str, payload: &str) -> Result<Value, PluginError> {
    let payload: Value =
        serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("{name}.payload: {e}")))?;
    Ok(json!({"namespace": INTERFACE, "name": name, "payload": payload}))
}

impl TemplateRuntime {
    fn render_template(&mut self, payload: &str) -> Result<(), PluginError> {
        let rendered = template::render(payload)?;
        let card = Card { token: rendered.token, text: rendered.text, card: gui_card("RenderTemplate", payload)? };
        self.screen.show_template(self.host.get()?, card)
    }

    fn render_player_info(&mut self, payload: &str) -> Result<(), PluginError> {
        let rendered = player_info::render(payload)?;
        let card =
            Card { token: rendered.audio_item_id, text: rendered.text, card: gui_card("RenderPlayerInfo", payload)? };
        self.screen.show_player_info(self.host.get()?, card)
    }
}

impl Interface for TemplateRuntime {
    fn manifest() -> Manifest {
        // Non-blocking on the visual medium, as in the AVS Device SDK: a card never holds back the speech it
        // accompanies.
        let visual =
            |name: &str| DirectiveSpec { medium: Medium::Visual, ..DirectiveSpec::new(name).on_channel(CHANNEL) };
        Manifest {
            directives: vec![visual("RenderTemplate"), visual("RenderPlayerInfo")],
            ..avs_plugin_sdk::manifest!(INTERFACE, "1.2")
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        match directive.name {
            "RenderTemplate" => self.render_template(directive.payload)?,
            "RenderPlayerInfo" => self.render_player_info(directive.payload)?,
            other => return Err(PluginError::unsupported(format!("TemplateRuntime 1.2 has no directive {other}"))),
        }
        Ok(Handling::Completed)
    }

    fn on_focus(&mut self, channel: &str, focus: FocusState) -> Result<(), PluginError> {
        if channel != CHANNEL {
            return Ok(());
        }
        self.screen.on_visual_focus(self.host.get()?, focus)
    }

    fn on_timer(&mut self, timer: u64) -> Result<(), PluginError> {
        self.screen.on_timer(self.host.get()?, timer)
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != "focus.changed" {
            return Ok(());
        }
        let change: FocusChanged =
            serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("focus.changed: {e}")))?;
        let busy = change.focus != "NONE";
        self.screen.on_channel_activity(self.host.get()?, &change.channel, busy)
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        match self.host.get() {
            Ok(host) => self.screen.clear(host),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_declares_two_visual_non_blocking_directives_and_nothing_else() {
        let m = TemplateRuntime::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("TemplateRuntime", "1.2"));
        assert_eq!(m.plugin, "avs-plugin-template-runtime");
        let names: Vec<&str> = m.directives.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["RenderTemplate", "RenderPlayerInfo"]);
        for d in &m.directives {
            assert!(!d.blocking);
            assert_eq!(d.medium, Medium::Visual);
            assert_eq!(d.channel.as_deref(), Some("Visual"));
        }
        assert!(m.events.is_empty() && m.context.is_empty() && m.configurations.is_none());
    }

    #[test]
    fn the_gui_card_carries_the_directive_and_its_payload() {
        let card = gui_card("RenderTemplate", r#"{"token":"t"}"#).unwrap();
        assert_eq!(card, json!({"namespace": "TemplateRuntime", "name": "RenderTemplate", "payload": {"token": "t"}}));
    }

    #[test]
    fn other_host_events_are_ignored_and_a_bad_focus_change_is_refused() {
        let mut t = TemplateRuntime::default();
        assert!(t.on_host_event("display", "{}").is_ok());
        assert!(t.on_host_event("device.info", "not json").is_ok());
        assert!(matches!(t.on_host_event("focus.changed", "{}"), Err(PluginError::Invalid(_))));
    }

    #[test]
    fn a_directive_before_init_is_an_internal_error_after_its_payload_is_checked() {
        let mut t = TemplateRuntime::default();
        let unknown = r#"{"token":"t","type":"Nope","title":{"mainTitle":"x"}}"#;
        assert!(matches!(t.render_template(unknown), Err(PluginError::Unsupported(_))));
        let ok = r#"{"token":"t","type":"BodyTemplate1","title":{"mainTitle":"x"},"textField":"y"}"#;
        assert!(matches!(t.render_template(ok), Err(PluginError::Internal(_))));
    }
}
