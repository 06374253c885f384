//! The `display` device service: the device's screen. A plugin shows a card — its text rendering for a
//! terminal and its JSON for a GUI — and clears it; what the screen shows is reported as
//! [`RuntimeEvent::CardShown`]/[`RuntimeEvent::CardCleared`] and answered on the control socket.
//!
//! Requests: `{"op":"show","token":…,"text":…,"card":{…}}` and `{"op":"clear","token":…}` (clears only
//! if that card is still shown, so a late timeout never removes a newer card).

use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{DeviceService, Notifier};
use crate::observe::{Observer, RuntimeEvent};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub token: String,
    pub text: String,
    pub card: Value,
}

pub struct Display {
    shown: Mutex<Option<Card>>,
    observer: Observer,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum Request {
    Show { token: String, text: String, card: Value },
    Clear { token: String },
}

impl Display {
    pub fn new(observer: Observer) -> Arc<Self> {
        Arc::new(Display { shown: Mutex::new(None), observer })
    }

    /// The card on screen, if any.
    pub fn shown(&self) -> Option<Card> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl DeviceService for Display {
    fn request(&self, request: &Value, _notify: Notifier) -> Result<Value, String> {
        let request = Request::deserialize(request).map_err(|e| format!("display request: {e}"))?;
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        match request {
            Request::Show { token, text, card } => {
                let card = Card { token, text, card };
                self.observer.emit(RuntimeEvent::CardShown {
                    token: card.token.clone(),
                    text: card.text.clone(),
                    card: card.card.clone(),
                });
                *shown = Some(card);
                Ok(json!({"shown": true}))
            }
            Request::Clear { token } => {
                let cleared = shown.as_ref().is_some_and(|c| c.token == token);
                if cleared {
                    *shown = None;
                    self.observer.emit(RuntimeEvent::CardCleared { token });
                }
                Ok(json!({"cleared": cleared}))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(display: &Display, value: Value) -> Result<Value, String> {
        display.request(&value, Notifier::new(|_| {}))
    }

    #[test]
    fn a_stale_clear_leaves_the_newer_card() {
        let display = Display::new(Observer::default());
        request(&display, json!({"op":"show","token":"a","text":"A","card":{}})).unwrap();
        request(&display, json!({"op":"show","token":"b","text":"B","card":{}})).unwrap();
        assert_eq!(request(&display, json!({"op":"clear","token":"a"})).unwrap()["cleared"], false);
        assert_eq!(display.shown().unwrap().token, "b");
        assert_eq!(request(&display, json!({"op":"clear","token":"b"})).unwrap()["cleared"], true);
        assert!(display.shown().is_none());
    }

    #[test]
    fn a_malformed_request_is_refused_with_the_reason() {
        let display = Display::new(Observer::default());
        let error = request(&display, json!({"op":"show","token":"a"})).unwrap_err();
        assert!(error.contains("missing field `text`"), "{error}");
    }
}
