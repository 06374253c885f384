//! What AVS is told when an item cannot be played: the host's error text, read back into the AVS error
//! types of PlaybackFailed. The texts are those of the host's player (avs-core `media`) and of its HTTPS
//! client (`https`, `transport::http2`).

/// The AVS `error.type` for a host playback error.
pub fn error_type(message: &str) -> &'static str {
    if let Some(status) = http_status(message) {
        return match status {
            400..=499 => "MEDIA_ERROR_INVALID_REQUEST",
            500..=599 => "MEDIA_ERROR_INTERNAL_SERVER_ERROR",
            _ => "MEDIA_ERROR_UNKNOWN",
        };
    }
    const UNREACHABLE: [&str; 5] = ["cannot reach", "timed out", "TLS with", "did not agree to HTTP/2", "HTTP/2:"];
    const ON_THE_DEVICE: [&str; 6] =
        ["did not arrive", "unsupported media URL", "cannot read", "PCM WAV", "audio sink", "bad play options"];
    if UNREACHABLE.iter().any(|m| message.contains(m)) {
        "MEDIA_ERROR_SERVICE_UNAVAILABLE"
    } else if ON_THE_DEVICE.iter().any(|m| message.contains(m)) {
        "MEDIA_ERROR_INTERNAL_DEVICE_ERROR"
    } else {
        "MEDIA_ERROR_UNKNOWN"
    }
}

/// The status of a failed fetch (`fetching <url>: HTTP 404 Not Found`).
fn http_status(message: &str) -> Option<u16> {
    let at = message.rfind("HTTP ")?;
    let digits = message.get(at + 5..at + 8)?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::error_type;

    #[test]
    fn host_errors_map_to_avs_media_error_types() {
        let url = "https://localhost:4443/media/nope.mp3";
        let cases = [
            (format!("fetching {url}: HTTP 404 Not Found"), "MEDIA_ERROR_INVALID_REQUEST"),
            (format!("fetching {url}: HTTP 403 Forbidden"), "MEDIA_ERROR_INVALID_REQUEST"),
            (format!("fetching {url}: HTTP 500 Internal Server Error"), "MEDIA_ERROR_INTERNAL_SERVER_ERROR"),
            (
                format!("fetching {url}: GET {url}: cannot reach localhost:4443: refused"),
                "MEDIA_ERROR_SERVICE_UNAVAILABLE",
            ),
            (
                format!("fetching {url}: GET {url}: connecting to localhost:4443 timed out after 10s"),
                "MEDIA_ERROR_SERVICE_UNAVAILABLE",
            ),
            (format!("fetching {url}: GET {url}: HTTP/2: stream reset"), "MEDIA_ERROR_SERVICE_UNAVAILABLE"),
            ("attachment song-1 did not arrive within 10s".to_string(), "MEDIA_ERROR_INTERNAL_DEVICE_ERROR"),
            (
                "unsupported media URL http://example.com/a.mp3 (supported: cid:, https://, file paths, tone:<ms>)"
                    .to_string(),
                "MEDIA_ERROR_INTERNAL_DEVICE_ERROR",
            ),
            (
                "cannot write to the audio sink /x/0001-a.mp3: disk full".to_string(),
                "MEDIA_ERROR_INTERNAL_DEVICE_ERROR",
            ),
            ("something nobody expected".to_string(), "MEDIA_ERROR_UNKNOWN"),
        ];
        for (message, expected) in cases {
            assert_eq!(error_type(&message), expected, "{message}");
        }
    }
}
