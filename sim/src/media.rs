//! `GET /media/<name>`: a small music library for AudioPlayer, served over the same TLS as AVS (as a
//! music service's CDN would be). Songs are the bundled MP3 repeated, so they need no assets of their
//! own; anything else is 404, and `broken.mp3` answers 500, for PlaybackFailed.

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use http::StatusCode;

use crate::dialog::SPEAK_MP3;
use crate::wire::reply;

/// Name, title, artist and how many copies of the bundled MP3 make the song.
pub const SONGS: &[(&str, &str, &str, usize)] = &[
    ("song-1.mp3", "Loopback Blues", "The Simulators", 2),
    ("song-2.mp3", "Downchannel Rain", "The Simulators", 2),
    ("song-3.mp3", "Ping Every Five", "Half Duplex", 3),
];

pub(crate) fn serve(path: &str, respond: SendResponse<Bytes>) -> Result<(), h2::Error> {
    let name = path.trim_start_matches("/media/");
    if name == "broken.mp3" {
        return reply(
            respond,
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            Bytes::from_static(b"media backend down"),
        );
    }
    match SONGS.iter().find(|(song, ..)| *song == name) {
        Some((_, _, _, copies)) => {
            let mut body = BytesMut::with_capacity(SPEAK_MP3.len() * copies);
            for _ in 0..*copies {
                body.extend_from_slice(SPEAK_MP3);
            }
            reply(respond, StatusCode::OK, "audio/mpeg", body.freeze())
        }
        None => reply(respond, StatusCode::NOT_FOUND, "text/plain", Bytes::from(format!("no song {name:?}"))),
    }
}
