//! The downchannel: `GET /v20160207/directives` answered with a multipart/related body that never
//! closes; directives pushed through the handle are written to every open one.

use std::future::poll_fn;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::Request;
use serde_json::Value;

use crate::routes::authorize;
use crate::state::{DownchannelMessage, Shared};
use crate::wire::{start_related, writer};

/// A directive and its attachments for the downchannel. The body never closes, so each part is followed
/// by its delimiter: the device can act on a part as soon as it arrives.
pub(crate) fn directive_parts(directive: &Value, attachments: &[(String, Bytes)]) -> Bytes {
    let w = writer();
    let mut out = BytesMut::from(&w.stream_json_part(directive.to_string().as_bytes())[..]);
    for (content_id, body) in attachments {
        out.extend_from_slice(&w.stream_attachment_part(content_id, body));
    }
    out.freeze()
}

pub(crate) async fn open(
    shared: &Shared,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let mut respond = match authorize(shared, &request, respond) {
        Ok(respond) => respond,
        Err(answered) => return answered,
    };
    // Registered before the 200 goes out: a client that saw the 200 can rely on getting what is pushed next.
    let mut messages = shared.open_downchannel();
    let mut stream = start_related(&mut respond)?;
    stream.send_data(writer().open_stream(), false)?;
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Some(DownchannelMessage::Data(bytes)) => stream.send_data(bytes, false)?,
                Some(DownchannelMessage::Load(spec)) => crate::load::stream(&spec, &mut stream).await?,
                Some(DownchannelMessage::End) | None => return stream.send_data(Bytes::new(), true),
                Some(DownchannelMessage::Reset) => {
                    stream.send_reset(h2::Reason::CANCEL);
                    return Ok(());
                }
            },
            // The client gave up on the stream: stop holding it (and stop counting it as open).
            reset = poll_fn(|cx| stream.poll_reset(cx)) => {
                tracing::debug!("downchannel reset by the client: {:?}", reset);
                return Ok(());
            }
        }
    }
}
