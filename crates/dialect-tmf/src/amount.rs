//! Exact decimal amounts: the text of a TMF `Quantity.amount` (a JSON number or a
//! string) read into a whole number of a unit's smallest steps, and back.
//!
//! No floating point is involved: the digits are read as text, shifted by the unit's
//! scale and the exponent, and accumulated in an integer.
//!
//! # Grammar (EBNF)
//!
//! ```text
//! decimal  = [ "-" ] , digits , [ "." , digits ] , [ exponent ] ;
//! exponent = ( "e" | "E" ) , [ "+" | "-" ] , digits ;
//! digits   = digit , { digit } ;
//! digit    = "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" ;
//! ```
//!
//! This is JSON's number grammar, except that leading zeros are allowed (`"007"` is 7),
//! so that every JSON number and the usual spellings of amounts in strings are read
//! alike. White space, `+` signs, thousands separators and `.5` are refused.
//!
//! - An amount with non-zero digits below the unit's smallest step (`2.001` of a unit of
//!   scale 2) is refused, never rounded; trailing zeros are fine (`2.000` is 200 cents).
//! - The text is at most [`DECIMAL_LEN_MAX`] bytes and its exponent at most
//!   [`EXPONENT_ABS_MAX`] in magnitude, so the work is bounded before it starts.
//!
//! This module uses nothing outside `std`, so that the fuzz target can include it.

use std::fmt;

/// The longest amount text accepted, in bytes.
pub const DECIMAL_LEN_MAX: usize = 64;
/// The largest exponent magnitude accepted (`1e40`, `5e-40`).
pub const EXPONENT_ABS_MAX: i64 = 40;

/// Why an amount text was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecimalError {
    Empty,
    TooLong {
        len: usize,
    },
    /// The text does not follow the grammar; `at` is the byte offset of the first
    /// character that does not fit.
    Syntax {
        at: usize,
    },
    /// Non-zero digits below the unit's smallest step.
    TooManyDecimals {
        scale: u8,
    },
    /// The amount does not fit a 64-bit count of the unit's smallest steps.
    TooLarge,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("must not be empty"),
            Self::TooLong { len } => write!(
                f,
                "must be at most {DECIMAL_LEN_MAX} characters long, got {len}"
            ),
            Self::Syntax { at } => write!(
                f,
                "is not a decimal number (unexpected character at position {at})"
            ),
            Self::TooManyDecimals { scale } => {
                write!(f, "has more than {scale} decimal places for this unit")
            }
            Self::TooLarge => f.write_str("is too large"),
        }
    }
}

impl std::error::Error for DecimalError {}

/// Reads `text` as a number of steps of a unit with `scale` decimal places: `"2.5"`
/// at scale 2 is 250.
pub fn parse_minor(text: &str, scale: u8) -> Result<i64, DecimalError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(DecimalError::Empty);
    }
    if bytes.len() > DECIMAL_LEN_MAX {
        return Err(DecimalError::TooLong { len: bytes.len() });
    }
    let mut at = 0;
    let negative = bytes[0] == b'-';
    if negative {
        at += 1;
    }
    let int_start = at;
    while at < bytes.len() && bytes[at].is_ascii_digit() {
        at += 1;
    }
    if at == int_start {
        return Err(DecimalError::Syntax { at });
    }
    let int_digits = &bytes[int_start..at];
    let mut frac_digits: &[u8] = &[];
    if at < bytes.len() && bytes[at] == b'.' {
        at += 1;
        let frac_start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        if at == frac_start {
            return Err(DecimalError::Syntax { at });
        }
        frac_digits = &bytes[frac_start..at];
    }
    let mut exponent: i64 = 0;
    if at < bytes.len() && (bytes[at] == b'e' || bytes[at] == b'E') {
        at += 1;
        let mut exp_negative = false;
        if at < bytes.len() && (bytes[at] == b'+' || bytes[at] == b'-') {
            exp_negative = bytes[at] == b'-';
            at += 1;
        }
        let exp_start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            // The text is at most DECIMAL_LEN_MAX bytes, but its exponent is checked
            // as it grows so that it never overflows.
            exponent = exponent * 10 + i64::from(bytes[at] - b'0');
            if exponent > EXPONENT_ABS_MAX {
                return Err(if exp_negative {
                    DecimalError::TooManyDecimals { scale }
                } else {
                    DecimalError::TooLarge
                });
            }
            at += 1;
        }
        if at == exp_start {
            return Err(DecimalError::Syntax { at });
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if at != bytes.len() {
        return Err(DecimalError::Syntax { at });
    }
    // The value is digits × 10^(shift) steps, with digits = int ++ frac.
    let shift = exponent - frac_digits.len() as i64 + i64::from(scale);
    let digits: Vec<u8> = int_digits.iter().chain(frac_digits).copied().collect();
    let first_nonzero = digits.iter().position(|&d| d != b'0');
    let Some(first) = first_nonzero else {
        return Ok(0);
    };
    let mut significant = &digits[first..];
    let mut zeros_to_append: i64 = shift;
    if shift < 0 {
        let drop = usize::try_from(-shift).unwrap_or(usize::MAX);
        if drop > significant.len() {
            return Err(DecimalError::TooManyDecimals { scale });
        }
        let (kept, dropped) = significant.split_at(significant.len() - drop);
        if dropped.iter().any(|&d| d != b'0') {
            return Err(DecimalError::TooManyDecimals { scale });
        }
        significant = kept;
        zeros_to_append = 0;
        if significant.is_empty() {
            return Ok(0);
        }
    }
    // i64 has 19 digits at most; anything longer is too large before any arithmetic.
    if significant.len() as i64 + zeros_to_append > 19 {
        return Err(DecimalError::TooLarge);
    }
    let mut value: i128 = 0;
    for &d in significant {
        value = value * 10 + i128::from(d - b'0');
    }
    for _ in 0..zeros_to_append {
        value *= 10;
    }
    if negative {
        value = -value;
    }
    i64::try_from(value).map_err(|_| DecimalError::TooLarge)
}

/// Writes `minor` steps of a unit with `scale` decimal places as a decimal with
/// exactly `scale` decimal places: 250 at scale 2 is `2.50`, 7 at scale 0 is `7`.
pub fn format_minor(minor: impl Into<i128>, scale: u8) -> String {
    let minor: i128 = minor.into();
    let digits = minor.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let mut out = String::with_capacity(digits.len() + scale + 3);
    if minor < 0 {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
        return out;
    }
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    out.push_str(int);
    out.push('.');
    out.push_str(frac);
    out
}

/// Whether `text` follows the grammar (any scale, any size): what may be written
/// into a JSON document as a number as it is.
pub fn is_decimal(text: &str) -> bool {
    !matches!(
        parse_minor(text, 0),
        Err(DecimalError::Syntax { .. } | DecimalError::Empty | DecimalError::TooLong { .. })
    )
}

/// The value of a decimal text in one form per value (`3`, `3.00`, `300e-2` and `0.3e1`
/// are all `(false, "3", 0)`): its sign, its significant digits and the power of ten
/// they are multiplied by. Zero is `(false, "", 0)`. `None` when `text` is no decimal.
pub fn canonical(text: &str) -> Option<(bool, String, i64)> {
    if !is_decimal(text) {
        return None;
    }
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let mut power = exponent - i64::try_from(frac.len()).ok()?;
    let digits = digits.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    power += i64::try_from(digits.len() - trimmed.len()).ok()?;
    if trimmed.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((negative, trimmed.to_owned(), power))
}

/// How two decimal texts compare by value; `None` when either is no decimal.
pub fn compare(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let (a, b) = (canonical(a)?, canonical(b)?);
    // Zero is the empty digit string; it sits between the signs.
    let sign = |(negative, digits, _): &(bool, String, i64)| match (digits.is_empty(), negative) {
        (true, _) => 0,
        (false, true) => -1,
        (false, false) => 1,
    };
    let (sa, sb) = (sign(&a), sign(&b));
    if sa != sb || sa == 0 {
        return Some(sa.cmp(&sb));
    }
    // Same sign: compare magnitudes by their count of digits before the point, then
    // digit by digit.
    let magnitude = |(_, digits, power): &(bool, String, i64)| {
        (
            i64::try_from(digits.len()).unwrap_or(i64::MAX) + power,
            digits.clone(),
        )
    };
    let ((la, da), (lb, db)) = (magnitude(&a), magnitude(&b));
    let by_magnitude = la.cmp(&lb).then_with(|| {
        let width = da.len().max(db.len());
        format!("{da:0<width$}").cmp(&format!("{db:0<width$}"))
    });
    Some(if sa < 0 {
        by_magnitude.reverse()
    } else {
        by_magnitude
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_compare_by_value() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        for (a, b, want) in [
            ("3", "3.00", Equal),
            ("3.01", "3", Greater),
            ("-3", "2", Less),
            ("-3", "-2", Less),
            ("-0", "0", Equal),
            ("0", "-0.1", Greater),
            ("100", "99.999", Greater),
            ("1e3", "999", Greater),
            ("0.001", "1e-3", Equal),
            ("12.5", "125e-1", Equal),
            ("9", "10", Less),
        ] {
            assert_eq!(compare(a, b), Some(want), "{a} vs {b}");
        }
        assert_eq!(compare("x", "1"), None);
    }

    #[test]
    fn equal_values_have_one_canonical_form() {
        let three = Some((false, "3".to_owned(), 0));
        for text in ["3", "3.00", "300e-2", "0.3e1", "003.0"] {
            assert_eq!(canonical(text), three, "{text}");
        }
        let zero = Some((false, String::new(), 0));
        for text in ["0", "-0", "0.000", "0e5"] {
            assert_eq!(canonical(text), zero, "{text}");
        }
        assert_eq!(canonical("-12.50"), Some((true, "125".to_owned(), -1)));
        assert_eq!(canonical("1200"), Some((false, "12".to_owned(), 2)));
        assert_ne!(canonical("3"), canonical("3.01"));
        assert_eq!(canonical("abc"), None);
        assert_eq!(canonical(""), None);
    }

    #[test]
    fn parses_exactly() {
        let ok: &[(&str, u8, i64)] = &[
            ("2", 2, 200),
            ("2.0", 2, 200),
            ("2.5", 2, 250),
            ("2.50", 2, 250),
            ("2.500", 2, 250),
            ("0.01", 2, 1),
            ("-0.01", 2, -1),
            ("-0", 2, 0),
            ("0.000", 0, 0),
            ("007", 0, 7),
            ("1e2", 0, 100),
            ("1E+2", 2, 10_000),
            ("25e-1", 1, 25),
            ("2.675", 3, 2675),
            ("0.1", 1, 1),
            ("0.3", 18, 300_000_000_000_000_000),
            ("9223372036854775807", 0, i64::MAX),
            ("-9223372036854775808", 0, i64::MIN),
            ("92233720368547758.07", 2, i64::MAX),
            ("1000e-3", 0, 1),
            ("0e40", 0, 0),
        ];
        for &(text, scale, want) in ok {
            assert_eq!(
                parse_minor(text, scale),
                Ok(want),
                "{text} at scale {scale}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_exact_or_not_a_number() {
        use DecimalError::*;
        let bad: &[(&str, u8, DecimalError)] = &[
            ("", 2, Empty),
            ("2.001", 2, TooManyDecimals { scale: 2 }),
            ("0.5", 0, TooManyDecimals { scale: 0 }),
            ("1e-3", 2, TooManyDecimals { scale: 2 }),
            ("1e-41", 2, TooManyDecimals { scale: 2 }),
            ("1e41", 0, TooLarge),
            ("9223372036854775808", 0, TooLarge),
            ("92233720368547758.08", 2, TooLarge),
            ("1e19", 0, TooLarge),
            ("+1", 0, Syntax { at: 0 }),
            (" 1", 0, Syntax { at: 0 }),
            ("1 ", 0, Syntax { at: 1 }),
            (".5", 0, Syntax { at: 0 }),
            ("5.", 0, Syntax { at: 2 }),
            ("1,000", 0, Syntax { at: 1 }),
            ("1e", 0, Syntax { at: 2 }),
            ("1e+", 0, Syntax { at: 3 }),
            ("-", 0, Syntax { at: 1 }),
            ("--1", 0, Syntax { at: 1 }),
            ("NaN", 0, Syntax { at: 0 }),
            ("Infinity", 0, Syntax { at: 0 }),
            ("0x10", 0, Syntax { at: 1 }),
        ];
        for (text, scale, want) in bad {
            assert_eq!(parse_minor(text, *scale).as_ref(), Err(want), "{text}");
        }
    }

    #[test]
    fn length_is_bounded_at_the_limit() {
        let at = format!("1.{}", "0".repeat(DECIMAL_LEN_MAX - 2));
        assert_eq!(parse_minor(&at, 2), Ok(100));
        let over = format!("{at}0");
        assert_eq!(
            parse_minor(&over, 2),
            Err(DecimalError::TooLong {
                len: DECIMAL_LEN_MAX + 1
            })
        );
        assert_eq!(parse_minor("1e40", 0), Err(DecimalError::TooLarge));
        assert_eq!(parse_minor("0e40", 0), Ok(0));
        assert_eq!(parse_minor("0e41", 0), Err(DecimalError::TooLarge));
    }

    #[test]
    fn formats_with_the_scale() {
        let cases: &[(i64, u8, &str)] = &[
            (200, 2, "2.00"),
            (250, 2, "2.50"),
            (1, 2, "0.01"),
            (-1, 2, "-0.01"),
            (0, 2, "0.00"),
            (7, 0, "7"),
            (-19_400, 2, "-194.00"),
            (i64::MIN, 0, "-9223372036854775808"),
            (i64::MAX, 18, "9.223372036854775807"),
        ];
        for &(minor, scale, want) in cases {
            assert_eq!(format_minor(minor, scale), want);
            assert_eq!(parse_minor(want, scale), Ok(minor), "round trip of {want}");
            assert!(is_decimal(want));
        }
        assert!(!is_decimal("1 2"));
        assert!(!is_decimal("}"));
    }
}
