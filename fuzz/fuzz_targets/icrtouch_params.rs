//! TouchTopUp's `/name/value` path parser never panics, keeps to its limits, and every
//! accepted tail re-encodes to a tail that parses to the same pairs; redacting a path
//! never panics and keeps its segments.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The parser uses nothing outside `std`, so it is included as it is rather than
// through the whole server crate.
#[path = "../../crates/dialect-touchtopup/src/params.rs"]
#[allow(dead_code)]
mod params;

use params::{NAME_LEN_MAX, PAIRS_MAX, VALUE_LEN_MAX, parse_tail, redact_path};

fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(tail) = std::str::from_utf8(data) else {
        return;
    };
    let redacted = redact_path(tail);
    assert_eq!(redacted.split('/').count(), tail.split('/').count());
    let prefixed = format!("{}/accounts/auth_user/{tail}", params::PATH_PREFIX);
    let redacted = redact_path(&prefixed);
    assert_eq!(redacted.split('/').count(), prefixed.split('/').count());
    let Ok(pairs) = parse_tail(tail) else {
        return;
    };
    assert!(pairs.len() <= PAIRS_MAX);
    for (name, value) in &pairs {
        assert!(!name.is_empty() && name.len() <= NAME_LEN_MAX);
        assert_eq!(name, &name.to_ascii_lowercase());
        assert!(!value.is_empty() && value.len() <= VALUE_LEN_MAX);
        assert!(!value.chars().any(char::is_control));
    }
    let again: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{n}/{}", encode(v)))
        .collect();
    assert_eq!(parse_tail(&again.join("/")).ok(), Some(pairs));
});
