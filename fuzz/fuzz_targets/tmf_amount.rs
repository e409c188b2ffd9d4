//! The TMF dialect's exact decimal parser: never panics, and every amount it accepts
//! formats back to text that parses to the same amount.

#![no_main]

use libfuzzer_sys::fuzz_target;

// The parser uses nothing outside `std`, so it is included as it is rather than
// through the whole server crate.
#[path = "../../crates/dialect-tmf/src/amount.rs"]
#[allow(dead_code)]
mod amount;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let scale = first % 19;
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(minor) = amount::parse_minor(text, scale) {
        let back = amount::format_minor(minor, scale);
        assert_eq!(amount::parse_minor(&back, scale), Ok(minor), "{text:?} -> {back}");
        assert!(amount::is_decimal(&back));
    }
});
