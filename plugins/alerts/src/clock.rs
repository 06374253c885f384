//! AVS scheduled times: ISO 8601 with an offset. AVS writes `2017-08-07T09:02:58+0000` (basic offset);
//! RFC 3339 forms (`Z`, `+00:00`, fractions) are accepted too.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Seconds since the Unix epoch of an AVS scheduled time.
pub fn parse(text: &str) -> Result<i64, String> {
    let basic_offset =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]");
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, basic_offset))
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("scheduledTime {text:?} is not ISO 8601 with an offset: {e}"))
}

/// Now, in Unix milliseconds: alerts are wall-clock appointments, not intervals.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avs_basic_offsets_and_rfc_3339_agree() {
        let expected = 1_502_096_578; // 2017-08-07T09:02:58Z
        for text in [
            "2017-08-07T09:02:58+0000",
            "2017-08-07T09:02:58Z",
            "2017-08-07T11:02:58+02:00",
            "2017-08-07T11:02:58+0200",
        ] {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
        assert!(parse("2017-08-07 09:02:58").unwrap_err().contains("2017-08-07 09:02:58"));
    }
}
