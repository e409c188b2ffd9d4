//! TouchTopUp's wire values: numeric ids, money as decimal strings of the company
//! currency, dates and times as TouchTopUp writes them, and the checks of user fields.
//!
//! Money never passes through a float: `"25.00"` in a `GBP`/2 company is 2500 minor
//! units, parsed digit by digit, and a value with more decimals than the currency has
//! is refused rather than rounded.

use super::errors::Fail;
use chrono::{DateTime, NaiveDate, Utc};
use prepaid_ledger::{AMOUNT_MAX, Timestamp};

/// The largest company number (`coid`) and customer number (`custid`): six digits, as
/// in the account link key `000001-000001-...`.
pub const COMPANY_ID_MAX: u32 = 999_999;
/// See [`COMPANY_ID_MAX`].
pub const CUSTOMER_ID_MAX: u32 = 999_999;
/// The largest number of any other id (user, wallet, charge, transaction, payment).
pub const NUMBER_ID_MAX: u32 = 999_999_999;
/// The longest decimal amount accepted, in bytes.
pub const DECIMAL_LEN_MAX: usize = 24;
/// The longest free text of a user, customer or wallet field, in bytes.
pub const TEXT_LEN_MAX: usize = 255;
/// The longest email address, in bytes (RFC 5321's path limit).
pub const EMAIL_LEN_MAX: usize = 254;
/// The shortest password accepted at user creation or change.
pub const PASSWORD_LEN_MIN: usize = 8;
/// The longest password accepted, in bytes (hashing cost grows with it).
pub const PASSWORD_LEN_MAX: usize = 256;

/// What TouchTopUp writes for a time that never happened (a till payment's receipt).
pub const NO_TIME: &str = "0000-00-00 00:00:00";

/// A numeric id parameter from 1 to `max`.
pub fn number(name: &str, value: &str, max: u32) -> Result<u32, Fail> {
    let bad = || {
        Fail::bad(format!(
            "{name} must be a whole number from 1 to {max}, got {value:?}"
        ))
    };
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match value.parse::<u64>() {
        Ok(n) if n >= 1 && n <= u64::from(max) => Ok(n as u32),
        _ => Err(bad()),
    }
}

/// Parses a positive decimal amount (`"5"`, `"5.5"`, `"25.00"`) of a currency with
/// `scale` decimals into minor units.
pub fn decimal(name: &str, value: &str, scale: u8) -> Result<i64, Fail> {
    let bad = |why: &str| Fail::bad(format!("{name} {why}, got {value:?}"));
    if value.is_empty() || value.len() > DECIMAL_LEN_MAX {
        return Err(bad("must be an amount such as 25.00"));
    }
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("must be an amount such as 25.00"));
    }
    if value.contains('.') && frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("must be an amount such as 25.00"));
    }
    if frac.len() > usize::from(scale) {
        return Err(bad(&format!("has more than {scale} decimals")));
    }
    let too_large = || bad("is too large");
    let mut minor: i64 = 0;
    for b in whole.bytes().chain(frac.bytes()) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    for _ in frac.len()..usize::from(scale) {
        minor = minor.checked_mul(10).ok_or_else(too_large)?;
    }
    if minor == 0 {
        return Err(bad("must be more than zero"));
    }
    if minor > AMOUNT_MAX {
        return Err(too_large());
    }
    Ok(minor)
}

/// Formats minor units as a decimal of `scale` places (`2500`, 2 -> `"25.00"`).
pub fn format_decimal(minor: i64, scale: u8) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{abs}");
    }
    let div = 10u64.pow(u32::from(scale));
    format!(
        "{sign}{}.{:0width$}",
        abs / div,
        abs % div,
        width = usize::from(scale)
    )
}

/// A calendar date parameter, `YYYY-MM-DD`, returned in that form.
pub fn date(name: &str, value: &str) -> Result<String, Fail> {
    let ok = value.len() == 10
        && NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
        && value.as_bytes()[4] == b'-';
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Fail::bad(format!(
            "{name} must be a date such as 2017-09-30, got {value:?}"
        )))
    }
}

fn utc(t: Timestamp) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(t.as_micros()).unwrap_or_default()
}

/// `2014-05-06 12:44:19` (UTC).
pub fn datetime(t: Timestamp) -> String {
    utc(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The `DATE` and `TIME` of a transaction in a history: `2014-03-31`, `10:39:07`.
pub fn history_date_time(t: Timestamp) -> (String, String) {
    let dt = utc(t);
    (
        dt.format("%Y-%m-%d").to_string(),
        dt.format("%H:%M:%S").to_string(),
    )
}

/// The `DATE` and `TIME` of a transaction's detail, as the document shows them there:
/// `31032014`, `1039`.
pub fn detail_date_time(t: Timestamp) -> (String, String) {
    let dt = utc(t);
    (
        dt.format("%d%m%Y").to_string(),
        dt.format("%H%M").to_string(),
    )
}

/// Free text of at most [`TEXT_LEN_MAX`] bytes without control characters.
pub fn text(name: &str, value: &str) -> Result<String, Fail> {
    prepaid_ledger::bounded_text(value, TEXT_LEN_MAX).map_err(|e| Fail::bad(format!("{name} {e}")))
}

/// An email address: one `@` with text on both sides, no spaces, at most
/// [`EMAIL_LEN_MAX`] bytes. Kept as given; compared lower-cased.
pub fn email(name: &str, value: &str) -> Result<String, Fail> {
    let value = value.trim();
    let ok = value.len() <= EMAIL_LEN_MAX
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(value.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Fail::bad(format!("{name} must be an email address")))
    }
}

/// A new password: [`PASSWORD_LEN_MIN`] to [`PASSWORD_LEN_MAX`] bytes.
pub fn new_password(name: &str, value: &str) -> Result<(), Fail> {
    if value.chars().count() < PASSWORD_LEN_MIN || value.len() > PASSWORD_LEN_MAX {
        return Err(Fail::bad(format!(
            "{name} must be {PASSWORD_LEN_MIN} to {PASSWORD_LEN_MAX} characters long"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(number("coid", "1", COMPANY_ID_MAX), Ok(1));
        assert_eq!(number("coid", "999999", COMPANY_ID_MAX), Ok(999_999));
        for bad in ["0", "1000000", "-1", "1.0", "abc", "", "99999999999", " 1"] {
            let f = number("coid", bad, COMPANY_ID_MAX).unwrap_err();
            assert!(f.msg.contains("coid must be a whole number"), "{bad}");
        }
    }

    #[test]
    fn decimals_parse_exactly() {
        let ok = [
            ("25.00", 2, 2500),
            ("5", 2, 500),
            ("5.5", 2, 550),
            ("0.01", 2, 1),
            ("7", 0, 7),
            ("1.234", 3, 1234),
            ("10000000000000.00", 2, AMOUNT_MAX),
        ];
        for (s, scale, want) in ok {
            assert_eq!(decimal("amt", s, scale), Ok(want), "{s}");
        }
        let bad = [
            ("5.001", 2),
            ("5.", 2),
            (".5", 2),
            ("-5", 2),
            ("5e2", 2),
            ("0.00", 2),
            ("1.5", 0),
            ("10000000000000.01", 2),
            ("99999999999999999999.00", 2),
            ("", 2),
            ("1,00", 2),
        ];
        for (s, scale) in bad {
            assert!(decimal("amt", s, scale).is_err(), "{s}");
        }
    }

    #[test]
    fn decimals_format() {
        assert_eq!(format_decimal(2500, 2), "25.00");
        assert_eq!(format_decimal(1, 2), "0.01");
        assert_eq!(format_decimal(-1050, 2), "-10.50");
        assert_eq!(format_decimal(7, 0), "7");
        assert_eq!(format_decimal(AMOUNT_MAX, 2), "10000000000000.00");
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date("paybydate", "2017-09-01").unwrap(), "2017-09-01");
        for bad in ["2017-02-30", "2017-9-1", "01-09-2017", "2017/09/01", ""] {
            assert!(date("paybydate", bad).is_err(), "{bad}");
        }
        let t = Timestamp::from_secs(1_399_380_259); // 2014-05-06 12:44:19 UTC
        assert_eq!(datetime(t), "2014-05-06 12:44:19");
        assert_eq!(
            history_date_time(t),
            ("2014-05-06".into(), "12:44:19".into())
        );
        assert_eq!(detail_date_time(t), ("06052014".into(), "1244".into()));
    }

    #[test]
    fn emails_and_passwords() {
        assert!(email("email", "someone@example.com").is_ok());
        for bad in ["someone", "@x", "a@", "a b@c", "a@b@c"] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
        assert!(email("email", &format!("{}@x", "a".repeat(EMAIL_LEN_MAX - 2))).is_ok());
        assert!(email("email", &format!("{}@x", "a".repeat(EMAIL_LEN_MAX - 1))).is_err());
        assert!(new_password("password", &"p".repeat(PASSWORD_LEN_MIN)).is_ok());
        assert!(new_password("password", &"p".repeat(PASSWORD_LEN_MIN - 1)).is_err());
        assert!(new_password("password", &"p".repeat(PASSWORD_LEN_MAX)).is_ok());
        assert!(new_password("password", &"p".repeat(PASSWORD_LEN_MAX + 1)).is_err());
    }
}
