//! Times on the wire: RFC 3339, always UTC with six fractional digits on output
//! (`2026-11-25T10:00:00.000000Z`), any offset on input.

use chrono::{DateTime, SecondsFormat, Utc};
use prepaid_ledger::Timestamp;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use std::fmt;

/// The longest time string accepted on input, in bytes.
pub const TIME_LEN_MAX: usize = 64;

fn to_datetime(t: Timestamp) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(t.as_micros())
}

/// Formats `t` for output.
pub fn format(t: Timestamp) -> String {
    match to_datetime(t) {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
        // Only a corrupt row holds a time chrono cannot represent; show the raw value
        // rather than failing the whole answer.
        None => t.as_micros().to_string(),
    }
}

/// Parses an RFC 3339 time with any offset.
pub fn parse(s: &str) -> Result<Timestamp, String> {
    if s.len() > TIME_LEN_MAX {
        return Err(format!("must be at most {TIME_LEN_MAX} bytes long"));
    }
    let dt = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("not an RFC 3339 time ({e}): {s:?}"))?;
    let micros = dt.timestamp_micros();
    Ok(Timestamp::from_micros(micros))
}

/// A time as it travels on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireTime(pub Timestamp);

/// The output form of a time, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
const OUTPUT_LEN: usize = 27;

/// Writes `t` in the output form without allocating; `None` for years outside
/// 0..=9999, which the fixed form cannot show.
fn write_output(t: Timestamp, buf: &mut [u8; OUTPUT_LEN]) -> Option<&str> {
    use chrono::{Datelike as _, Timelike as _};
    let dt = to_datetime(t)?;
    let year = u32::try_from(dt.year()).ok().filter(|y| *y <= 9999)?;
    let micros = u32::try_from(t.as_micros().rem_euclid(1_000_000)).ok()?;
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, dt.month());
    put(8, 2, dt.day());
    put(11, 2, dt.hour());
    put(14, 2, dt.minute());
    put(17, 2, dt.second());
    put(20, 6, micros);
    for (at, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        buf[at] = sep;
    }
    std::str::from_utf8(buf).ok()
}

impl Serialize for WireTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; OUTPUT_LEN];
        if let Some(s) = write_output(self.0, &mut buf) {
            return serializer.serialize_str(s);
        }
        match to_datetime(self.0) {
            Some(dt) => serializer.collect_str(&dt.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
            None => serializer.serialize_i64(self.0.as_micros()),
        }
    }
}

impl<'de> Deserialize<'de> for WireTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WireTime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time such as \"2026-11-25T10:00:00Z\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WireTime, E> {
                parse(s).map(WireTime).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_utc_with_micros() {
        let t = parse("2026-11-25T11:00:00.5+01:00").unwrap();
        assert_eq!(format(t), "2026-11-25T10:00:00.500000Z");
        assert_eq!(
            serde_json::to_string(&WireTime(t)).unwrap(),
            "\"2026-11-25T10:00:00.500000Z\""
        );
        let back: WireTime = serde_json::from_str("\"2026-11-25T10:00:00.500000Z\"").unwrap();
        assert_eq!(back.0, t);
    }

    #[test]
    fn fast_output_matches_chrono() {
        for micros in [
            0,
            1,
            -1,
            999_999,
            1_795_000_123_456_789,
            -62_135_596_800_000_000,
            253_402_300_799_999_999,
        ] {
            let t = Timestamp::from_micros(micros);
            let mut buf = [0u8; OUTPUT_LEN];
            let fast = write_output(t, &mut buf).unwrap().to_owned();
            assert_eq!(fast, format(t), "{micros}");
        }
        let mut buf = [0u8; OUTPUT_LEN];
        assert!(write_output(Timestamp::from_micros(253_402_300_800_000_000), &mut buf).is_none());
    }

    #[test]
    fn bad_times_are_refused() {
        assert!(parse("2026-11-25").is_err());
        assert!(parse("yesterday").is_err());
        assert!(parse(&"9".repeat(TIME_LEN_MAX + 1)).is_err());
        assert!(serde_json::from_str::<WireTime>("12").is_err());
    }
}
