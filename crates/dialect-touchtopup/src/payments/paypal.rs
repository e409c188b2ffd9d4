//! The PayPal payment provider: PayPal's REST API, Orders v2.
//!
//! - Authentication: an OAuth 2.0 client-credentials token from `POST /v1/oauth2/token`
//!   (HTTP Basic with the REST app's client id and secret, form body
//!   `grant_type=client_credentials`), kept until [`PAYPAL_TOKEN_RENEW_MARGIN_SECS`]
//!   before its `expires_in` ends. A request answered 401 drops the token and is sent
//!   once more with a fresh one.
//! - `start`: `POST /v2/checkout/orders` with intent `CAPTURE` and one purchase unit
//!   `{reference_id, amount: {currency_code, value}}`; the order id is the token, which
//!   the customer approves on PayPal's pages.
//! - `finish`: `POST /v2/checkout/orders/{id}/capture` with `PayPal-Request-Id` = the
//!   order id, so PayPal itself makes a repeated capture harmless; the `COMPLETED`
//!   capture's id is the transaction id. When PayPal answers 422
//!   `ORDER_ALREADY_CAPTURED` (a repeat after the idempotency window), the order is read
//!   with `GET /v2/checkout/orders/{id}` and its existing capture is the answer.
//!
//! Amounts travel as decimal strings (`"10.05"`) and are converted exactly, never
//! through floats, with the currency's exponent of [`super::currency_exponent`].
//!
//! Errors: a transport failure, a timeout, 401, 408, 429 and 5xx are
//! [`PaymentError::Unavailable`] (retrying later may work); 404 is
//! [`PaymentError::UnknownToken`]; a 4xx whose issue says the buyer has not approved
//! the order is [`PaymentError::NotApproved`]; any other 4xx is
//! [`PaymentError::Declined`] with PayPal's issue name. A capture that PayPal reports `PENDING` is `Unavailable` until
//! PayPal completes it, so that no wallet is credited with money not yet received.

use super::{
    Finished, PaymentError, PaymentProvider, StartPayment, Started, currency_exponent,
    currency_is_valid,
};
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long connecting to PayPal may take.
pub const PAYPAL_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long one request to PayPal may take. A `finish` makes at most three requests
/// in a row (token, capture, read), which stays below the server's own request timeout.
pub const PAYPAL_REQUEST_TIMEOUT_MS: u64 = 8_000;
/// How long before its expiry an access token is renewed.
pub const PAYPAL_TOKEN_RENEW_MARGIN_SECS: u64 = 60;
/// The longest order id accepted as a token, in bytes (PayPal's are 17 characters).
pub const PAYPAL_ORDER_ID_LEN_MAX: usize = 64;
/// The longest `reference_id` PayPal takes; a longer reference is cut.
pub const PAYPAL_REFERENCE_LEN_MAX: usize = 256;
/// The longest amount `value` PayPal sends or takes, in characters.
pub const PAYPAL_AMOUNT_LEN_MAX: usize = 32;
/// The largest answer read from PayPal, in bytes.
pub const PAYPAL_RESPONSE_BYTES_MAX: usize = 1024 * 1024;

/// PayPal's issue name for a capture of an order captured before.
const ORDER_ALREADY_CAPTURED: &str = "ORDER_ALREADY_CAPTURED";
/// PayPal's issue names for a capture of an order the buyer has not approved (yet):
/// the buyer may still approve it, so the payment is not over.
const NOT_APPROVED: [&str; 2] = ["ORDER_NOT_APPROVED", "PAYER_ACTION_REQUIRED"];

/// An access token and when to renew it.
struct CachedToken {
    value: String,
    renew_at: Instant,
}

/// The PayPal provider (see the module documentation).
pub struct PayPal {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
    client_secret: String,
    /// Held across a token request, so that concurrent payments fetch one token.
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl PayPal {
    /// A provider for the REST API at `base_url` (without a trailing slash, e.g.
    /// `https://api-m.paypal.com`) with a REST app's credentials.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(base_url)
            .map_err(|e| anyhow::anyhow!("the PayPal base URL {base_url:?} is not a URL: {e}"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https"),
            "the PayPal base URL {base_url:?} must be http(s)"
        );
        anyhow::ensure!(
            !client_id.is_empty() && !client_secret.is_empty(),
            "the PayPal provider needs a client id and a client secret"
        );
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(PAYPAL_CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(PAYPAL_REQUEST_TIMEOUT_MS))
            // An API answer is never a redirect; following one would send the token on.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("building the PayPal HTTP client: {e}"))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token, from the cache or fetched now.
    async fn access_token(&self) -> Result<String, PaymentError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.value.clone());
        }
        let response = self
            .http
            .post(format!("{}/v1/oauth2/token", self.base_url))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header("accept", "application/json")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(transport)?;
        let (status, body) = read(response).await?;
        if !status.is_success() {
            tracing::error!(%status, "PayPal refused the REST app's credentials");
            return Err(PaymentError::Unavailable(format!(
                "the PayPal token request was answered {status}"
            )));
        }
        let value = body["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unexpected("a token answer without access_token"))?
            .to_owned();
        let lifetime = body["expires_in"].as_u64().unwrap_or(0);
        // A short-lived token is kept for half its life rather than not at all.
        let keep = lifetime
            .checked_sub(PAYPAL_TOKEN_RENEW_MARGIN_SECS)
            .filter(|&k| k >= lifetime / 2)
            .unwrap_or(lifetime / 2);
        *cached = Some(CachedToken {
            value: value.clone(),
            renew_at: Instant::now() + Duration::from_secs(keep),
        });
        Ok(value)
    }

    /// Drops `stale` from the cache (unless another request renewed it meanwhile).
    async fn forget_token(&self, stale: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == stale) {
            *cached = None;
        }
    }

    /// Sends an API request with a bearer token; a 401 is retried once with a new
    /// token. Returns the status and the JSON body (`Null` when empty).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        request_id: Option<&str>,
    ) -> Result<(StatusCode, Value), PaymentError> {
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base_url))
                .bearer_auth(&token)
                .header("accept", "application/json")
                .header("content-type", "application/json")
                .header("prefer", "return=representation");
            if let Some(id) = request_id {
                request = request.header("paypal-request-id", id);
            }
            if let Some(body) = body {
                request = request.body(body.to_string());
            }
            let response = request.send().await.map_err(transport)?;
            let (status, value) = read(response).await?;
            if status == StatusCode::UNAUTHORIZED && !retried {
                // The token may have been revoked or expired early.
                self.forget_token(&token).await;
                retried = true;
                continue;
            }
            return Ok((status, value));
        }
    }

    /// The capture of `order_id`, read back from PayPal.
    async fn existing_capture(&self, order_id: &str) -> Result<Finished, PaymentError> {
        let (status, order) = self
            .call(
                Method::GET,
                &format!("/v2/checkout/orders/{order_id}"),
                None,
                None,
            )
            .await?;
        if !status.is_success() {
            return Err(refusal(status, &order));
        }
        capture_of(&order)
    }
}

#[async_trait]
impl PaymentProvider for PayPal {
    /// Not offered through PayPal yet (it would take PayPal's vault of saved methods):
    /// declined, so that an automatic top-up funded by payment waits out its back-off
    /// instead of asking again at once.
    async fn charge_saved_method(
        &self,
        _tenant: &prepaid_ledger::TenantId,
        _customer: &prepaid_ledger::CustomerId,
        _method_ref: &str,
        _amount: prepaid_ledger::Amount,
        _idempotency_key: &str,
    ) -> Result<super::Charged, PaymentError> {
        Err(PaymentError::Declined(
            "charging a saved method is not offered with PayPal".into(),
        ))
    }

    async fn start(&self, payment: StartPayment) -> Result<Started, PaymentError> {
        if !currency_is_valid(&payment.currency) {
            return Err(PaymentError::Declined("unknown currency".into()));
        }
        let value = amount_value(payment.amount_minor, currency_exponent(&payment.currency))
            .ok_or_else(|| PaymentError::Declined("the amount must be positive".into()))?;
        let reference = cut(&payment.reference, PAYPAL_REFERENCE_LEN_MAX);
        let mut unit = json!({"amount": {"currency_code": payment.currency, "value": value}});
        if !reference.is_empty() {
            unit["reference_id"] = json!(reference);
        }
        let body = json!({"intent": "CAPTURE", "purchase_units": [unit]});
        let (status, order) = self
            .call(Method::POST, "/v2/checkout/orders", Some(&body), None)
            .await?;
        if !status.is_success() {
            return Err(refusal(status, &order));
        }
        match order["id"].as_str() {
            Some(id) if order_id_is_valid(id) => Ok(Started {
                token: id.to_owned(),
            }),
            _ => Err(unexpected("an order answer without a valid id")),
        }
    }

    async fn finish(&self, token: &str) -> Result<Finished, PaymentError> {
        if !order_id_is_valid(token) {
            return Err(PaymentError::UnknownToken);
        }
        let (status, order) = self
            .call(
                Method::POST,
                &format!("/v2/checkout/orders/{token}/capture"),
                None,
                Some(token),
            )
            .await?;
        if status.is_success() {
            return capture_of(&order);
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY && issue(&order) == ORDER_ALREADY_CAPTURED {
            return self.existing_capture(token).await;
        }
        Err(refusal(status, &order))
    }
}

/// Whether `id` can be a PayPal order id: 1 to [`PAYPAL_ORDER_ID_LEN_MAX`] ASCII
/// letters, digits and dashes. Anything else never reaches a URL.
pub fn order_id_is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= PAYPAL_ORDER_ID_LEN_MAX
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `amount_minor` as PayPal's decimal `value` with `exponent` decimals (`1005`, 2 →
/// `"10.05"`); `None` unless positive.
pub fn amount_value(amount_minor: i64, exponent: u32) -> Option<String> {
    if amount_minor <= 0 {
        return None;
    }
    if exponent == 0 {
        return Some(amount_minor.to_string());
    }
    let scale = 10i64.checked_pow(exponent)?;
    let width = exponent as usize;
    Some(format!(
        "{}.{:0width$}",
        amount_minor / scale,
        amount_minor % scale
    ))
}

/// PayPal's decimal `value` in minor units with `exponent` decimals, exactly:
/// `"10.05"`, 2 → 1005; `"10.5"` → 1050; `"10.050"` → 1005; `None` for a negative,
/// malformed or overflowing value, or one with more significant decimals than the
/// currency has.
///
/// Grammar (PayPal's, without the sign): `digits | digits? "." digits`, at most
/// [`PAYPAL_AMOUNT_LEN_MAX`] characters.
pub fn parse_amount(value: &str, exponent: u32) -> Option<i64> {
    if value.is_empty() || value.len() > PAYPAL_AMOUNT_LEN_MAX {
        return None;
    }
    let (whole, fraction) = match value.split_once('.') {
        Some((w, f)) if !f.is_empty() => (w, f),
        Some(_) => return None,
        None => (value, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let places = exponent as usize;
    let (significant, rest) = fraction.split_at(fraction.len().min(places));
    if rest.bytes().any(|b| b != b'0') {
        return None;
    }
    let mut minor: i64 = 0;
    for b in whole.bytes() {
        minor = minor.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    for i in 0..places {
        let digit = significant.as_bytes().get(i).map_or(0, |b| b - b'0');
        minor = minor.checked_mul(10)?.checked_add(i64::from(digit))?;
    }
    Some(minor)
}

/// The completed capture of an order as PayPal shows it (capture answer or order).
fn capture_of(order: &Value) -> Result<Finished, PaymentError> {
    let captures: Vec<&Value> = order["purchase_units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|unit| unit["payments"]["captures"].as_array())
        .flatten()
        .collect();
    let status_of = |c: &Value| c["status"].as_str().unwrap_or_default().to_owned();
    if let Some(capture) = captures.iter().find(|c| status_of(c) == "COMPLETED") {
        let transaction_id = capture["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| unexpected("a capture without an id"))?;
        let currency = capture["amount"]["currency_code"]
            .as_str()
            .filter(|c| currency_is_valid(c))
            .ok_or_else(|| unexpected("a capture without a currency"))?;
        let amount_minor = capture["amount"]["value"]
            .as_str()
            .and_then(|v| parse_amount(v, currency_exponent(currency)))
            .ok_or_else(|| unexpected("a capture without a valid amount"))?;
        return Ok(Finished {
            transaction_id: transaction_id.to_owned(),
            amount_minor,
            currency: currency.to_owned(),
        });
    }
    if let Some(capture) = captures.first() {
        let status = status_of(capture);
        return Err(match status.as_str() {
            "PENDING" => PaymentError::Unavailable("the capture is pending at PayPal".into()),
            "" => unexpected("a capture without a status"),
            _ => PaymentError::Declined(format!("the capture is {status}")),
        });
    }
    Err(unexpected("an order without a capture"))
}

/// The name of PayPal's first issue in an error answer, or its error name.
fn issue(body: &Value) -> &str {
    body["details"][0]["issue"]
        .as_str()
        .or_else(|| body["name"].as_str())
        .unwrap_or_default()
}

/// The error of an unsuccessful answer.
fn refusal(status: StatusCode, body: &Value) -> PaymentError {
    let issue = issue(body);
    match status {
        StatusCode::NOT_FOUND => PaymentError::UnknownToken,
        StatusCode::UNAUTHORIZED | StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
            tracing::warn!(%status, issue, "PayPal is unavailable");
            PaymentError::Unavailable(format!("PayPal answered {status}"))
        }
        s if s.is_client_error() && NOT_APPROVED.contains(&issue) => {
            PaymentError::NotApproved(issue.to_owned())
        }
        s if s.is_client_error() => PaymentError::Declined(if issue.is_empty() {
            format!("PayPal answered {status}")
        } else {
            issue.to_owned()
        }),
        _ => {
            tracing::warn!(%status, issue, "PayPal is unavailable");
            PaymentError::Unavailable(format!("PayPal answered {status}"))
        }
    }
}

/// An answer that does not look like PayPal's documented one.
fn unexpected(what: &str) -> PaymentError {
    tracing::error!(what, "unexpected answer from PayPal");
    PaymentError::Unavailable(format!("unexpected answer from PayPal: {what}"))
}

/// A request that got no answer.
fn transport(e: reqwest::Error) -> PaymentError {
    // The URL holds no secret, but the error's source chain tells what failed.
    tracing::warn!(error = %e, timeout = e.is_timeout(), "PayPal cannot be reached");
    PaymentError::Unavailable(if e.is_timeout() {
        "PayPal did not answer in time".into()
    } else {
        "PayPal cannot be reached".into()
    })
}

/// Reads an answer: its status and its JSON body (`Null` when empty or not JSON),
/// at most [`PAYPAL_RESPONSE_BYTES_MAX`] bytes.
async fn read(mut response: reqwest::Response) -> Result<(StatusCode, Value), PaymentError> {
    let status = response.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if bytes.len() + chunk.len() > PAYPAL_RESPONSE_BYTES_MAX {
            return Err(unexpected(
                "an answer larger than PAYPAL_RESPONSE_BYTES_MAX",
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, body))
}

/// `s` cut to at most `len_max` characters.
fn cut(s: &str, len_max: usize) -> &str {
    match s.char_indices().nth(len_max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_formatted_with_the_currency_exponent() {
        assert_eq!(amount_value(1005, 2).as_deref(), Some("10.05"));
        assert_eq!(amount_value(5, 2).as_deref(), Some("0.05"));
        assert_eq!(amount_value(500, 2).as_deref(), Some("5.00"));
        assert_eq!(amount_value(500, 0).as_deref(), Some("500"));
        assert_eq!(
            amount_value(i64::MAX, 2).as_deref(),
            Some("92233720368547758.07")
        );
        assert_eq!(amount_value(0, 2), None);
        assert_eq!(amount_value(-1, 2), None);
    }

    #[test]
    fn amounts_are_parsed_exactly() {
        let cases: &[(&str, u32, Option<i64>)] = &[
            ("10.05", 2, Some(1005)),
            ("10.5", 2, Some(1050)),
            ("10", 2, Some(1000)),
            ("10.050", 2, Some(1005)),
            (".05", 2, Some(5)),
            ("0.01", 2, Some(1)),
            ("500", 0, Some(500)),
            ("500.0", 0, Some(500)),
            ("500.5", 0, None),
            ("10.055", 2, None),
            ("10.", 2, None),
            ("", 2, None),
            (".", 2, None),
            ("-1.00", 2, None),
            ("+1.00", 2, None),
            ("1,00", 2, None),
            ("1e2", 2, None),
            (" 1.00", 2, None),
            ("1.0.0", 2, None),
            ("92233720368547758.07", 2, Some(i64::MAX)),
            ("92233720368547758.08", 2, None),
        ];
        for &(value, exponent, want) in cases {
            assert_eq!(
                parse_amount(value, exponent),
                want,
                "{value:?} with {exponent}"
            );
        }
        // At the length limit and one past it.
        let at = format!("{}1", "0".repeat(PAYPAL_AMOUNT_LEN_MAX - 1));
        assert_eq!(parse_amount(&at, 0), Some(1));
        assert_eq!(parse_amount(&format!("0{at}"), 0), None);
    }

    #[test]
    fn amounts_survive_the_round_trip() {
        for minor in [1, 9, 10, 99, 100, 101, 1005, 123_456_789, i64::MAX] {
            for exponent in [0, 2] {
                let value = amount_value(minor, exponent).unwrap();
                assert_eq!(parse_amount(&value, exponent), Some(minor), "{value}");
            }
        }
    }

    #[test]
    fn order_ids_are_checked_before_they_reach_a_url() {
        assert!(order_id_is_valid("5O190127TN364715T"));
        assert!(order_id_is_valid("EC-1Y43567715771310G"));
        assert!(order_id_is_valid(&"A".repeat(PAYPAL_ORDER_ID_LEN_MAX)));
        assert!(!order_id_is_valid(&"A".repeat(PAYPAL_ORDER_ID_LEN_MAX + 1)));
        for bad in ["", "../admin", "A/B", "A?b=1", "A B", "A%2F", "Ä"] {
            assert!(!order_id_is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn refusals_map_to_payment_errors() {
        let declined = json!({"name": "UNPROCESSABLE_ENTITY",
            "details": [{"issue": "INSTRUMENT_DECLINED"}]});
        assert_eq!(
            refusal(StatusCode::UNPROCESSABLE_ENTITY, &declined),
            PaymentError::Declined("INSTRUMENT_DECLINED".into())
        );
        assert_eq!(
            refusal(StatusCode::NOT_FOUND, &Value::Null),
            PaymentError::UnknownToken
        );
        for status in [
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(
                matches!(refusal(status, &Value::Null), PaymentError::Unavailable(_)),
                "{status}"
            );
        }
        assert_eq!(
            refusal(StatusCode::BAD_REQUEST, &Value::Null),
            PaymentError::Declined("PayPal answered 400 Bad Request".into())
        );
    }

    #[test]
    fn only_a_completed_capture_is_a_payment() {
        let order = |status: &str| {
            json!({"id": "O1", "status": "COMPLETED", "purchase_units": [{"payments": {
                "captures": [{"id": "C1", "status": status,
                    "amount": {"currency_code": "JPY", "value": "500"}}]}}]})
        };
        assert_eq!(
            capture_of(&order("COMPLETED")),
            Ok(Finished {
                transaction_id: "C1".into(),
                amount_minor: 500,
                currency: "JPY".into()
            })
        );
        assert!(matches!(
            capture_of(&order("PENDING")),
            Err(PaymentError::Unavailable(_))
        ));
        assert_eq!(
            capture_of(&order("DECLINED")),
            Err(PaymentError::Declined("the capture is DECLINED".into()))
        );
        assert!(matches!(
            capture_of(&json!({"id": "O1", "status": "APPROVED"})),
            Err(PaymentError::Unavailable(_))
        ));
    }

    #[test]
    fn references_are_cut_to_paypal_s_limit() {
        let long = "é".repeat(PAYPAL_REFERENCE_LEN_MAX + 1);
        assert_eq!(
            cut(&long, PAYPAL_REFERENCE_LEN_MAX).chars().count(),
            PAYPAL_REFERENCE_LEN_MAX
        );
        assert_eq!(cut("abc", PAYPAL_REFERENCE_LEN_MAX), "abc");
    }
}
