//! How TMF `units` strings map to prepaid units, and which `usageType` a unit has.
//!
//! A bucket's `units` string *is* its wallet's unit code, compared exactly (`USD` is not
//! `usd`), so it must be a valid unit code: 1 to 16 characters of `A-Z a-z 0-9 _ -`.
//! The scale (decimal places of the smallest step) is chosen when the bucket is made:
//! the ISO 4217 minor units for a currency code (`USD` 2, `JPY` 0, `KWD` 3), 0 for
//! anything else (`minutes`, `SMS`, `GB`), unless `POST /bucket` names another with the
//! prepaid extension `unitScale` (0 to 18; `GB` with scale 3 counts megabytes, say).
//!
//! The `usageType` of a bucket, when its creator did not give one, follows from the
//! unit: a currency is `monetary`; minutes and seconds are `voice`; SMS and MMS `sms`;
//! byte counts `data`; anything else `other`.

pub use prepaid_ledger::{default_scale, is_currency};

const VOICE: &[&str] = &[
    "min", "mins", "minute", "minutes", "sec", "secs", "second", "seconds",
];
const SMS: &[&str] = &["sms", "mms", "message", "messages"];
const DATA: &[&str] = &[
    "b", "byte", "bytes", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib",
];

/// TMF `UsageType` values.
pub const USAGE_TYPES: &[&str] = &["monetary", "voice", "data", "sms", "other"];

/// The `usageType` of a bucket counting `code`, when its creator gave none.
pub fn usage_type(code: &str) -> &'static str {
    let lower = code.to_ascii_lowercase();
    if is_currency(code) {
        "monetary"
    } else if VOICE.contains(&lower.as_str()) {
        "voice"
    } else if SMS.contains(&lower.as_str()) {
        "sms"
    } else if DATA.contains(&lower.as_str()) {
        "data"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_have_scales_and_usage_types() {
        assert_eq!(default_scale("USD"), 2);
        assert_eq!(default_scale("KWD"), 3);
        assert_eq!(default_scale("JPY"), 0);
        assert_eq!(default_scale("minutes"), 0);
        assert_eq!(usage_type("USD"), "monetary");
        assert_eq!(usage_type("JPY"), "monetary");
        assert_eq!(usage_type("minutes"), "voice");
        assert_eq!(usage_type("SMS"), "sms");
        assert_eq!(usage_type("GB"), "data");
        assert_eq!(usage_type("CREDIT"), "other");
        assert_eq!(usage_type("usd"), "other");
    }
}
