//! The shape every page shares (head, navigation, footer) and how values are shown:
//! amounts in their unit's scale, times in UTC (the script turns them into the
//! browser's zone), forms with their hidden fields.

use crate::forms::{CSRF_FIELD, IDEMPOTENCY_FIELD, new_idempotency_key};
use crate::session::Session;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use prepaid_edge::auth::Scope;
use prepaid_ledger::{Timestamp, Unit};

/// `minor` in `unit`'s scale with its code: `1250` of `EUR`/2 is `12.50 EUR`.
pub fn amount(minor: i64, unit: &Unit) -> String {
    format!("{} {}", decimal(minor, unit.scale()), unit.code())
}

/// `minor` as a decimal with `scale` places.
pub fn decimal(minor: i64, scale: u8) -> String {
    let digits = minor.unsigned_abs().to_string();
    let sign = if minor < 0 { "-" } else { "" };
    let scale = usize::from(scale);
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// The minor units of a decimal typed by a person in a unit of `scale`: `12.5` is
/// `1250` at scale 2. Refused: more places than the scale, anything but digits, one
/// point and a leading minus, and values past `i64`.
pub fn parse_decimal(text: &str, scale: u8) -> Result<i64, String> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::from(scale);
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(format!("“{text}” is not a number such as 12.50"));
    }
    if fraction.len() > scale {
        return Err(format!(
            "the unit counts at most {scale} decimal places, “{text}” has {}",
            fraction.len()
        ));
    }
    let text_minor = format!("{whole}{fraction:0<scale$}");
    let minor: i64 = text_minor
        .parse()
        .map_err(|_| format!("“{text}” is too large"))?;
    Ok(if negative { -minor } else { minor })
}

/// A time in UTC, machine-readable in `datetime`; the script shows it in the
/// browser's zone.
pub fn time(t: Timestamp) -> Markup {
    let iso = prepaid_edge::time::format(t);
    let shown = format!(
        "{} UTC",
        iso.get(..19).unwrap_or(&iso).replacen('T', " ", 1)
    );
    html! { time datetime=(iso) { (shown) } }
}

/// The hidden fields every form of a session carries.
pub fn hidden(session: &Session) -> Markup {
    html! {
        input type="hidden" name=(CSRF_FIELD) value=(session.csrf);
        input type="hidden" name=(IDEMPOTENCY_FIELD) value=(new_idempotency_key());
    }
}

/// A page of the console for a signed-in person.
pub fn page(session: &Session, title: &str, body: Markup) -> Response {
    let principal = &session.principal;
    let nav = html! {
        nav aria-label="Main" {
            ul {
                @if let Some(customer) = &principal.customer {
                    li { a href={ "/console/customers/" (customer) } { "My wallets" } }
                } @else {
                    li { a href="/console/customers" { "Customers" } }
                    @if session.may(Scope::Admin) {
                        li { a href="/console/api-keys" { "API keys" } }
                    }
                }
            }
            form method="post" action="/console/sign-out" class="sign-out" {
                input type="hidden" name=(CSRF_FIELD) value=(session.csrf);
                span class="who" {
                    (principal.key_name) " · " (principal.tenant)
                    @if !session.may(Scope::Write) { " · read only" }
                }
                button type="submit" { "Sign out" }
            }
        }
    };
    document(StatusCode::OK, title, nav, body)
}

/// A page without a session: sign-in and errors.
pub fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    document(status, title, html! {}, body)
}

/// A page that only says something, with a way back.
pub fn message_page(status: StatusCode, title: &str, detail: &str) -> Response {
    bare(
        status,
        title,
        html! {
            h1 { (title) }
            p role="alert" { (detail) }
            p { a href="/console" { "Back to the console" } }
        },
    )
}

fn document(status: StatusCode, title: &str, nav: Markup, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · prepaid console" }
                // No icon to fetch: every request of a page is one of ours.
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header class="top" {
                    a class="brand" href="/console" { "prepaid" }
                    (nav)
                }
                main { (body) }
            }
        }
    };
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_show_in_their_scale() {
        let eur = Unit::new("EUR", 2).unwrap();
        assert_eq!(amount(1250, &eur), "12.50 EUR");
        assert_eq!(amount(-5, &eur), "-0.05 EUR");
        assert_eq!(amount(0, &eur), "0.00 EUR");
        assert_eq!(amount(600, &Unit::new("MIN", 0).unwrap()), "600 MIN");
        assert_eq!(decimal(i64::MIN, 4), "-922337203685477.5808");
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("12.5", 2), Ok(1250));
        assert_eq!(parse_decimal(" 50 ", 2), Ok(5000));
        assert_eq!(parse_decimal("-0.05", 2), Ok(-5));
        assert_eq!(parse_decimal("600", 0), Ok(600));
        assert!(parse_decimal("1.234", 2).is_err());
        assert!(parse_decimal("1.5", 0).is_err());
        assert!(parse_decimal("", 2).is_err());
        assert!(parse_decimal(".5", 2).is_err());
        assert!(parse_decimal("1e3", 2).is_err());
        assert!(parse_decimal("99999999999999999999", 0).is_err());
    }
}
