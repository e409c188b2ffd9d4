//! Thousands of random and mutated inputs through both parsers: no input panics, every
//! error points inside the query and renders, and every accepted query renders back to
//! a query that parses to the same tree. The fuzz targets check the same properties
//! with coverage guidance; this runs on every test run.

use prepaid_query::{ErrorKind, Language, QUERY_LEN_MAX};

const ROUNDS: usize = 6000;

/// Pieces that make up queries of both languages, and a few that break them.
const PIECES: [&str; 48] = [
    "a",
    "name",
    "on.type",
    "_links.for.href",
    "x1",
    ".",
    "==",
    "!=",
    "=gt=",
    "=ge=",
    "=lt=",
    "=le=",
    "=sw=",
    "=in=",
    "=out=",
    "=xx=",
    "=",
    "!",
    "~",
    "<",
    ";",
    ",",
    "(",
    ")",
    "'",
    "\"",
    "\\",
    "''",
    "null",
    "1",
    "-5",
    "2024-01-01T00:00:00Z",
    " ",
    "\t",
    "\n",
    "\u{0}",
    " eq ",
    " and ",
    " or ",
    "not ",
    "contains(",
    ", ",
    "ü",
    "日本",
    "🎉",
    "%",
    "_",
    "é",
];

const FIQL_SEEDS: [&str; 4] = [
    "amountOfMinutes==600;on.type==EXTERNAL",
    "a=in=(1,'2',\"3\"),(b=sw='x\\'y';c!=null)",
    "modificationDate=gt=2024-01-01T00:00:00.000+01:00,x=out=(a,b)",
    "((a==1;b==2),c=le=3)",
];

const TALKDESK_SEEDS: [&str; 4] = [
    "name eq 'saas_licenses' and (product_name eq 'Talkdesk Fax' or name eq 'guardian')",
    "not contains(product_name, 'it''s') or not (a eq 'b' and c eq '')",
    "not not (x eq 'ü🎉') and contains ( y , '%_' )",
    "a eq '1' or b eq '2' and c eq '3'",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Parses `query` and checks the properties; returns whether it parsed.
fn check(language: Language, query: &str) -> bool {
    match language.parse(query) {
        Err(error) => {
            assert!(error.offset <= query.len(), "{query:?}: {error}");
            let rendered = error.render(query);
            assert!(rendered.contains('^'));
            false
        }
        Ok(expr) => {
            let text = language
                .render(&expr)
                .unwrap_or_else(|| panic!("{query:?} parsed but does not render"));
            match language.parse(&text) {
                Ok(again) => {
                    assert_eq!(again.to_string(), expr.to_string(), "{query:?} -> {text:?}");
                    assert_eq!(language.render(&again).as_deref(), Some(text.as_str()));
                }
                Err(error) => {
                    // Rendering may lengthen a query (quotes, parentheses, spaces), and
                    // that is the one way its text may fail to parse again.
                    assert!(
                        text.len() > QUERY_LEN_MAX
                            && matches!(error.kind, ErrorKind::QueryTooLong { .. }),
                        "{query:?} -> {text:?}: {error}"
                    );
                }
            }
            true
        }
    }
}

fn random_query(rng: &mut XorShift) -> String {
    let pieces = rng.below(24);
    (0..pieces)
        .map(|_| PIECES[rng.below(PIECES.len())])
        .collect()
}

/// A seed with a piece or two deleted, replaced or inserted.
fn mutated_query(rng: &mut XorShift, seeds: &[&str]) -> String {
    let mut chars: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
    for _ in 0..=rng.below(2) {
        let at = rng.below(chars.len() + 1);
        let piece: Vec<char> = PIECES[rng.below(PIECES.len())].chars().collect();
        match rng.below(3) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 if at < chars.len() => {
                chars.splice(at..=at, piece);
            }
            _ => {
                chars.splice(at..at, piece);
            }
        }
    }
    chars.into_iter().collect()
}

/// Arbitrary bytes, kept where they are UTF-8 (the parsers take text).
fn random_bytes(rng: &mut XorShift) -> String {
    let len = rng.below(32);
    let bytes: Vec<u8> = (0..len).map(|_| (rng.next() >> 24) as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn random_and_mutated_inputs_never_break_the_parsers() {
    let mut rng = XorShift(0x0dd_ba11_5ca1_ab1e);
    for (language, seeds) in [
        (Language::Fiql, FIQL_SEEDS),
        (Language::Talkdesk, TALKDESK_SEEDS),
    ] {
        let mut parsed = 0;
        for round in 0..ROUNDS {
            let query = match round % 4 {
                0 => random_query(&mut rng),
                1 | 2 => mutated_query(&mut rng, &seeds),
                _ => random_bytes(&mut rng),
            };
            parsed += usize::from(check(language, &query));
        }
        // Mutations of valid seeds stay valid often enough that the round trip is
        // exercised, not just the error path.
        assert!(parsed >= ROUNDS / 20, "{language:?}: only {parsed} parsed");
    }
}

#[test]
fn seeds_parse_in_their_language() {
    for seed in FIQL_SEEDS {
        assert!(check(Language::Fiql, seed), "{seed}");
    }
    for seed in TALKDESK_SEEDS {
        assert!(check(Language::Talkdesk, seed), "{seed}");
    }
}
