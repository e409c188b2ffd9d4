//! ISO 8601 dates and date-times as microseconds since the Unix epoch (UTC).
//!
//! Accepted forms (the profile of ISO 8601 that APIs use, RFC 3339 included):
//!
//! ```text
//! datetime = date , [ "T" , time , [ zone ] ] ;
//! date     = year , "-" , month , "-" , day ;                 (* 2024-02-29 *)
//! time     = hour , ":" , minute , [ ":" , second , [ "." , digit , { digit } ] ] ;
//! zone     = "Z" | ( "+" | "-" ) , hour , [ [ ":" ] , minute ] ;
//! ```
//!
//! - Years have four digits (0000–9999); every field is range-checked, leap years
//!   included; a leap second (`:60`) is rejected.
//! - A date alone means its midnight in UTC; a time without a zone is UTC.
//! - At most nine fraction digits; digits past the sixth (below a microsecond) are
//!   dropped, rounding towards the past.

/// Parses an ISO 8601 date or date-time into microseconds since 1970-01-01T00:00:00Z.
pub fn parse_micros(text: &str) -> Option<i64> {
    let mut r = Reader {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let year = r.digits(4)?;
    r.byte(b'-')?;
    let month = r.digits(2)?;
    r.byte(b'-')?;
    let day = r.digits(2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut seconds_of_day = 0;
    let mut micros = 0;
    let mut offset_seconds = 0;
    if r.byte(b'T').is_some() {
        let hour = r.digits(2)?;
        r.byte(b':')?;
        let minute = r.digits(2)?;
        let mut second = 0;
        if r.byte(b':').is_some() {
            second = r.digits(2)?;
            if r.byte(b'.').is_some() {
                let start = r.pos;
                let mut scale = 100_000;
                while let Some(d) = r.digit() {
                    micros += d * scale;
                    scale /= 10;
                }
                if !(1..=9).contains(&(r.pos - start)) {
                    return None;
                }
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        seconds_of_day = (hour * 60 + minute) * 60 + second;
        if r.byte(b'Z').is_none() {
            let sign = match r.peek() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => 0,
            };
            if sign != 0 {
                r.pos += 1;
                let zone_hour = r.digits(2)?;
                let colon = r.byte(b':').is_some();
                let zone_minute = match r.digits(2) {
                    Some(m) => m,
                    None if colon => return None,
                    None => 0,
                };
                if zone_hour > 23 || zone_minute > 59 {
                    return None;
                }
                offset_seconds = sign * (zone_hour * 60 + zone_minute) * 60;
            }
        }
    }
    if r.pos != r.bytes.len() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + seconds_of_day - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

/// Writes microseconds since the epoch as `YYYY-MM-DDThh:mm:ss[.ffffff]Z`, the
/// fraction present only when it is not zero. [`parse_micros`] reads it back exactly for
/// every instant of the years 0000–9999.
pub fn format_micros(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    );
    if fraction != 0 {
        out.push_str(&format!(".{fraction:06}"));
    }
    out.push('Z');
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn byte(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.pos += 1)
    }

    fn digit(&mut self) -> Option<i64> {
        let b = self.peek().filter(u8::is_ascii_digit)?;
        self.pos += 1;
        Some(i64::from(b - b'0'))
    }

    fn digits(&mut self, count: usize) -> Option<i64> {
        let start = self.pos;
        let mut value = 0;
        for _ in 0..count {
            match self.digit() {
                Some(d) => value = value * 10 + d,
                None => {
                    self.pos = start;
                    return None;
                }
            }
        }
        Some(value)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_forms() {
        let cases = [
            ("1970-01-01", 0),
            ("1970-01-01T00:00Z", 0),
            ("1970-01-01T00:00:01Z", 1_000_000),
            ("1970-01-01T00:00:00.5Z", 500_000),
            ("1970-01-01T00:00:00.123456789Z", 123_456),
            ("1970-01-01T01:00:00+01:00", 0),
            ("1970-01-01T01:00:00+0100", 0),
            ("1970-01-01T01:00:00+01", 0),
            ("1969-12-31T23:00:00-01:00", 0),
            ("1970-01-01T00:00:00", 0),
            ("1969-12-31T23:59:59.999999Z", -1),
            ("2000-02-29T00:00:00Z", 951_782_400_000_000),
            ("2024-06-01T12:30:00.000+0000", 1_717_245_000_000_000),
            ("0000-01-01", -62_167_219_200_000_000),
            ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
        ];
        for (text, micros) in cases {
            assert_eq!(parse_micros(text), Some(micros), "{text}");
        }
    }

    #[test]
    fn rejected_forms() {
        for text in [
            "",
            "2024",
            "2024-1-01",
            "2024-13-01",
            "2024-00-01",
            "2023-02-29",
            "1900-02-29",
            "2024-04-31",
            "2024-01-01T",
            "2024-01-01T24:00",
            "2024-01-01T23:60",
            "2024-01-01T23:59:60",
            "2024-01-01T23:59:59.",
            "2024-01-01T23:59:59.1234567890",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+01:",
            "2024-01-01T00:00:00+1",
            "2024-01-01Z",
            "2024-01-01 00:00:00",
            "2024-01-01t00:00:00z",
            "2024-01-01T00:00:00Zjunk",
            "+2024-01-01",
            "２０２４-01-01",
        ] {
            assert_eq!(parse_micros(text), None, "{text}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_micros(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            format_micros(1_717_245_000_000_001),
            "2024-06-01T12:30:00.000001Z"
        );
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(
            micros in -62_167_219_200_000_000i64..=253_402_300_799_999_999
        ) {
            prop_assert_eq!(parse_micros(&format_micros(micros)), Some(micros));
        }
    }
}
