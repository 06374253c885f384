//! The capability documents a device publishes: `PUT /v1/devices/@self/capabilities` (legacy
//! Capabilities API) and the Alexa.Discovery.AddOrUpdateReport event (avs-protocol §4). The last one
//! decides which interface versions the device's messages are validated against.

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::routes::authorize;
use crate::state::Shared;
use crate::wire::{read_body, reply, reply_json};

const MAX_DOCUMENT_BYTES: usize = 1 << 20;

fn is_capability_list(capabilities: &Value) -> bool {
    capabilities.as_array().is_some_and(|caps| {
        caps.iter().all(|c| c["type"] == "AlexaInterface" && c["interface"].is_string() && c["version"].is_string())
    })
}

pub(crate) async fn put(
    shared: &Shared,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let respond = match authorize(shared, &request, respond) {
        Ok(respond) => respond,
        Err(answered) => return answered,
    };
    let body = match read_body(&mut request.into_body(), MAX_DOCUMENT_BYTES).await {
        Ok(body) => body,
        Err(e) => return e.reply(respond),
    };
    let document: Value = match serde_json::from_slice(&body) {
        Ok(document) => document,
        Err(e) => return reply_json(respond, StatusCode::BAD_REQUEST, &json!({"error": format!("not JSON: {e}")})),
    };
    if document["envelopeVersion"] != "20160207" || !is_capability_list(&document["capabilities"]) {
        let error = "expected envelopeVersion 20160207 and a list of AlexaInterface capabilities";
        return reply_json(respond, StatusCode::BAD_REQUEST, &json!({ "error": error }));
    }
    shared.record(|r| r.publish_capabilities(document));
    reply(respond, StatusCode::NO_CONTENT, "", Bytes::new())
}

/// The capability document an AddOrUpdateReport event amounts to, in the Capabilities API's shape so
/// both ways of publishing read the same; None when the report carries no capability list.
pub(crate) fn from_discovery(event: &Value) -> Option<Value> {
    let capabilities = &event["event"]["payload"]["endpoints"][0]["capabilities"];
    is_capability_list(capabilities).then(|| json!({"envelopeVersion": "20160207", "capabilities": capabilities}))
}
