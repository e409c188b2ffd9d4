//! How the TOPdesk dialect answers errors.
//!
//! TOPdesk's document gives every error answer the schema `string`, so an error here is
//! a `text/plain` body with one sentence that names the field or parameter at fault
//! (`amountOfMinutes: must be from -600000 to 600000, got 600001`). Every ledger
//! [`Refusal`] has an arm in [`refusal`]; since TOPdesk documents only 400 for a request
//! it will not carry out, business refusals (an idempotency conflict, a suspended
//! account) are 400 with their reason, as a TOPdesk client expects.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prepaid_edge::failure::Failure;
use prepaid_ledger::{MutationId, Refusal};
use std::borrow::Cow;

/// The media type of every error answer of this dialect.
pub const ERROR_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// An error answer: a status and a plain-text message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub status: StatusCode,
    pub message: Cow<'static, str>,
    /// Whether to offer Basic and Bearer in `WWW-Authenticate` (on 401).
    pub challenge: bool,
}

impl Error {
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            challenge: false,
        }
    }

    /// A bad request; the message names what is wrong.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A bad value of one named field or parameter.
    pub fn field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("{field}: {why}"))
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// A bug; the caller has logged the details, the client learns nothing of them.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an error occurred in the API; it has been logged",
        )
    }
}

/// The shared pieces (authentication, body reading, store and engine failures) speak
/// in problems; this dialect keeps their status and their detail.
impl From<Failure> for Error {
    fn from(p: Failure) -> Self {
        Self {
            status: p.status,
            message: p.detail,
            challenge: p.challenge,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.message.into_owned()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(ERROR_CONTENT_TYPE),
        );
        if self.challenge {
            // TOPdesk clients send an operator's login name and application password
            // with Basic, so Basic is offered first.
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"prepaid\", charset=\"UTF-8\""),
            );
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"prepaid\""),
            );
        }
        response
    }
}

/// The answer to a refusal of the command that records mutation `id` (or of a command
/// that prepared it: creating the customer and its wallet).
pub fn refusal(r: &Refusal, id: Option<MutationId>) -> Error {
    let mutation = || id.map_or_else(String::new, |id| format!(" {id}"));
    match r {
        Refusal::IdempotencyConflict => Error::bad_request(format!(
            "_links.self.href: balance mutation{} exists with other content; balance \
             mutations cannot be changed",
            mutation()
        )),
        Refusal::MutationExists => Error::bad_request(format!(
            "_links.self.href: the id of balance mutation{} is taken; choose another UUID",
            mutation()
        )),
        Refusal::WalletNotActive { status } => Error::bad_request(format!(
            "_links.for.href: the customer's prepaid services account is {}",
            status.as_str()
        )),
        Refusal::OutsideValidity => Error::bad_request(
            "_links.for.href: the customer's prepaid services account is not valid at this time",
        ),
        Refusal::BalanceOverflow => Error::bad_request(format!(
            "amountOfMinutes: the balance would pass {} minutes",
            prepaid_ledger::BALANCE_ABS_MAX
        )),
        Refusal::InsufficientFunds {
            available,
            requested,
        } => Error::bad_request(format!(
            "amountOfMinutes: {requested} minutes exceed the {available} available"
        )),
        Refusal::CeilingExceeded { room, requested } => Error::bad_request(format!(
            "amountOfMinutes: {requested} minutes exceed the {room} the customer's prepaid \
             services account may still receive"
        )),
        Refusal::UnitMismatch => Error::bad_request(
            "_links.for.href: the customer's prepaid services account does not count minutes",
        ),
        Refusal::DrawsExceeded { draws_max } => Error::bad_request(format!(
            "amountOfMinutes: the minutes would be taken from more than {draws_max} \
             purchases; record them in smaller mutations"
        )),
        Refusal::GrantsExceeded { grants_max } => Error::bad_request(format!(
            "amountOfMinutes: the customer's prepaid services account holds {grants_max} \
             unspent purchases, the most it may"
        )),
        Refusal::Forbidden => {
            Error::forbidden("this key may not record mutations for this customer")
        }
        Refusal::TenantNotFound => Error::not_found("no such tenant"),
        Refusal::CustomerNotFound | Refusal::WalletNotFound => {
            Error::not_found("_links.for.href: no such customer")
        }
        Refusal::Internal => Error::internal(),
        // The dialect never sends the commands these answer (tenants, keys, holds,
        // transfers, records), and it ignores "exists" when it creates a customer on first use;
        // reaching one here is a bug.
        Refusal::TenantExists
        | Refusal::ApiKeyExists
        | Refusal::CustomerExists
        | Refusal::WalletExists
        | Refusal::HoldExists
        | Refusal::HoldNotFound
        | Refusal::MutationNotFound
        | Refusal::NotReversible
        | Refusal::MetadataExceeded { .. }
        | Refusal::ReversalExceedsRemaining { .. }
        | Refusal::SameWallet
        | Refusal::HoldNotPending { .. }
        | Refusal::HoldExpired
        | Refusal::CommitExceedsHold { .. }
        | Refusal::RecordConflict => {
            tracing::error!(
                refusal = r.code(),
                "an unexpected refusal in the TOPdesk dialect"
            );
            Error::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prepaid_ledger::WalletStatus;

    #[test]
    fn refusals_map_to_documented_statuses() {
        let id = Some(MutationId(uuid::Uuid::nil()));
        let cases = [
            (Refusal::IdempotencyConflict, 400, "_links.self.href"),
            (Refusal::MutationExists, 400, "_links.self.href"),
            (
                Refusal::WalletNotActive {
                    status: WalletStatus::Suspended,
                },
                400,
                "suspended",
            ),
            (Refusal::OutsideValidity, 400, "not valid"),
            (Refusal::BalanceOverflow, 400, "amountOfMinutes"),
            (
                Refusal::CeilingExceeded {
                    room: 3,
                    requested: 5,
                },
                400,
                "exceed the 3",
            ),
            (Refusal::UnitMismatch, 400, "minutes"),
            (Refusal::Forbidden, 403, "may not"),
            (Refusal::CustomerNotFound, 404, "no such customer"),
            (Refusal::Internal, 500, "logged"),
            (Refusal::HoldExists, 500, "logged"),
        ];
        for (r, status, text) in cases {
            let e = refusal(&r, id);
            assert_eq!(e.status.as_u16(), status, "{r:?}");
            assert!(e.message.contains(text), "{r:?}: {}", e.message);
        }
    }

    #[test]
    fn errors_are_plain_text_and_401_challenges() {
        let mut p = Failure::unauthorized("unknown credentials");
        p.challenge = true;
        let response = Error::from(p).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], ERROR_CONTENT_TYPE);
        let offered: Vec<_> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(offered[0].starts_with("Basic"), "{offered:?}");
    }
}
