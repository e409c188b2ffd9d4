//! Talkdesk filter parsing never panics, its errors point inside the query, and every
//! accepted filter renders to a filter that parses back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prepaid_query::{ErrorKind, QUERY_LEN_MAX, talkdesk};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    match talkdesk::parse(query) {
        Err(error) => {
            assert!(error.offset <= query.len());
            let _ = error.render(query);
        }
        Ok(expr) => {
            let text = talkdesk::render(&expr).expect("a parsed tree renders");
            match talkdesk::parse(&text) {
                Ok(again) => {
                    assert_eq!(again.to_string(), expr.to_string());
                    assert_eq!(talkdesk::render(&again).as_deref(), Some(text.as_str()));
                }
                // Rendering may lengthen a query past the limit, and only that.
                Err(error) => assert!(
                    text.len() > QUERY_LEN_MAX
                        && matches!(error.kind, ErrorKind::QueryTooLong { .. })
                ),
            }
        }
    }
});
