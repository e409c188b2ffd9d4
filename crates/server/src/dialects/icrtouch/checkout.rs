//! `make_payment` and `record_payment`: a customer pays through the configured payment
//! provider, into the main balance or (with `wallet`, optionally `chargeid`) into a
//! company wallet.
//!
//! `make_payment` checks everything that could refuse the credit later (the customer,
//! the amount in the company currency, an event wallet's room), asks the provider to
//! start the payment and keeps a record keyed by the provider's token saying whom to
//! credit with how much, with the `payment_id` it answers later. `record_payment`
//! finishes the payment at the provider (repeat-safe there) and credits with the
//! idempotency key `icrtouch-payment:<token>`: the ledger applies a token's credit once,
//! whoever asks and however often, and every answer carries the same `payment_id`.
//!
//! `pmtType` 1 is the configured provider (PayPal in production, a test provider in
//! development); the credit's `PAYMENTSOURCE` is 1.

use super::accounts::customer_of;
use super::ctx::Ctx;
use super::errors::Fail;
use super::model::{
    Credited, PAYMENT_KIND, Payment, SOURCE_PROVIDER, main_wallet, payment_reference, submit,
    unexpected, wallet_wallet,
};
use super::payments::{PaymentError, StartPayment, currency_exponent, currency_is_valid};
use super::types::{NUMBER_ID_MAX, decimal};
use super::xml::Node;
use crate::SharedState;
use crate::api::auth::Write;
use crate::api::new_uuid;
use axum::http::StatusCode;
use prepaid_ledger::{
    Amount, Command, Done, Fingerprint, IdempotencyKey, MutationId, MutationKind,
};
use sha2::{Digest, Sha256};

/// The prefix of the idempotency key of a payment's credit.
pub const PAYMENT_KEY_PREFIX: &str = "icrtouch-payment:";
/// The longest provider token accepted, in bytes.
pub const TOKEN_LEN_MAX: usize = 200;

/// The answer to a provider failure; details of an outage go to the log only.
pub fn payment_fail(e: &PaymentError) -> Fail {
    match e {
        PaymentError::Declined(why) => Fail::new(
            StatusCode::PAYMENT_REQUIRED,
            format!("Payment declined: {why}"),
        ),
        PaymentError::UnknownToken => Fail::not_found("Unknown payment token"),
        PaymentError::Unavailable(why) => {
            tracing::warn!(error = %why, "the payment provider is unavailable");
            Fail::new(
                StatusCode::BAD_GATEWAY,
                "The payment provider is unavailable; try again later",
            )
        }
    }
}

/// The idempotency key of the credit of `token`, if the token can be one.
fn payment_key(token: &str) -> Option<IdempotencyKey> {
    if token.len() > TOKEN_LEN_MAX {
        return None;
    }
    IdempotencyKey::parse(&format!("{PAYMENT_KEY_PREFIX}{token}")).ok()
}

fn check_pmt_type(ctx: &Ctx<Write>, required: bool) -> Result<(), Fail> {
    let pmt = if required {
        Some(ctx.number(&["pmttype", "pmt_type"], NUMBER_ID_MAX)?)
    } else {
        ctx.number_opt(&["pmttype", "pmt_type"], NUMBER_ID_MAX)?
    };
    match pmt {
        None | Some(1) => Ok(()),
        Some(other) => Err(Fail::bad(format!(
            "pmtType {other} is not supported; use 1 (the payment provider)"
        ))),
    }
}

pub async fn make_payment(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let (coid, custid) = customer_of(state, ctx).await?;
    check_pmt_type(ctx, true)?;
    let recs = ctx.recs(state);
    let company = recs.company(coid).await?;
    if !currency_is_valid(&company.currency)
        || currency_exponent(&company.currency) != u32::from(company.scale)
    {
        return Err(Fail::conflict(format!(
            "Company {coid} counts {}/{}, which the payment provider cannot take",
            company.currency, company.scale
        )));
    }
    let amount = decimal("amt", ctx.require(&["amt", "amount"])?, company.scale)?;
    let wallet = ctx.number_opt(&["wallet", "walletid"], NUMBER_ID_MAX)?;
    let charge = ctx.number_opt(&["chargeid"], NUMBER_ID_MAX)?;
    match wallet {
        Some(w) => {
            super::wallets::check_payable(state, ctx, coid, custid, w, amount, charge).await?
        }
        None if charge.is_some() => return Err(Fail::bad("chargeid needs wallet")),
        None => {
            super::accounts::ledger_wallet(state, ctx, &main_wallet(coid, custid)).await?;
        }
    }
    let payment_id = recs.next_number("payment").await?;
    let started = state
        .payments
        .start(StartPayment {
            amount_minor: amount,
            currency: company.currency.clone(),
            reference: format!("TouchTopUp payment {payment_id} of customer {coid}.{custid}"),
        })
        .await
        .map_err(|e| payment_fail(&e))?;
    let token = started.token;
    if payment_key(&token).is_none() {
        tracing::error!(
            len = token.len(),
            "the payment provider gave an unusable token"
        );
        return Err(Fail::new(
            StatusCode::BAD_GATEWAY,
            "The payment provider answered unexpectedly",
        ));
    }
    let payment = Payment {
        payment_id,
        coid,
        custid,
        wallet,
        charge,
        amount_minor: amount,
        currency: company.currency,
        source: SOURCE_PROVIDER,
        credited: None,
    };
    if !recs.put(PAYMENT_KIND, &token, &payment, None).await? {
        tracing::error!("the payment provider gave a token twice");
        return Err(Fail::new(
            StatusCode::BAD_GATEWAY,
            "The payment provider answered unexpectedly",
        ));
    }
    Ok(Node::map().with("response", token).with("status", 1i64))
}

pub async fn record_payment(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    check_pmt_type(ctx, false)?;
    let token = ctx.require_secret(super::params::PAYMENT_TOKEN)?;
    let unknown = || Fail::not_found("Unknown payment token");
    let key = payment_key(token).ok_or_else(unknown)?;
    let recs = ctx.recs(state);
    let Some((payment, version)) = recs.get::<Payment>(PAYMENT_KIND, token).await? else {
        return Err(unknown());
    };
    ctx.check_company(payment.coid)?;
    let answer = |id: u64| {
        Node::map()
            .with("payment_id", i64::try_from(id).unwrap_or(i64::MAX))
            .with("status", 1i64)
    };
    if payment.credited.is_some() {
        return Ok(answer(payment.payment_id));
    }
    let finished = state
        .payments
        .finish(token)
        .await
        .map_err(|e| payment_fail(&e))?;
    if finished.currency != payment.currency {
        tracing::error!(
            started = %payment.currency,
            paid = %finished.currency,
            "a payment was paid in another currency than started; not credited"
        );
        return Err(Fail::new(
            StatusCode::BAD_GATEWAY,
            "The payment provider answered with another currency",
        ));
    }
    if finished.amount_minor != payment.amount_minor {
        tracing::warn!(
            started = payment.amount_minor,
            paid = finished.amount_minor,
            "a payment was paid with another amount than started; crediting what was paid"
        );
    }
    let amount = Amount::positive(finished.amount_minor).map_err(|_| {
        tracing::error!(
            paid = finished.amount_minor,
            "the provider paid a non-positive amount"
        );
        Fail::new(
            StatusCode::BAD_GATEWAY,
            "The payment provider answered with an invalid amount",
        )
    })?;
    let wallet = match payment.wallet {
        Some(w) => wallet_wallet(payment.coid, payment.custid, w),
        None => main_wallet(payment.coid, payment.custid),
    };
    let mut h = Sha256::new();
    h.update(b"icrtouch-payment\0");
    h.update(wallet.as_str().as_bytes());
    h.update([0]);
    h.update(amount.get().to_be_bytes());
    let fingerprint = Fingerprint(h.finalize().into());
    let command = Command::Post {
        id: MutationId(new_uuid()),
        wallet,
        kind: MutationKind::TopUp,
        amount,
        reference: payment_reference(payment.source, &finished.transaction_id, payment.charge),
        occurred_at: None,
    };
    let mutation = match submit(state, &ctx.principal, Some((key, fingerprint)), command).await {
        Ok((Done::Mutation(m), _)) => m,
        Ok(_) => return Err(unexpected("mutation")),
        Err(fail) => {
            tracing::error!(
                payment_id = payment.payment_id,
                msg = %fail.msg,
                "a finished payment could not be credited; the money needs attention"
            );
            return Err(fail);
        }
    };
    let credited = Payment {
        credited: Some(Credited {
            mutation: mutation.id.0.to_string(),
            transaction_id: finished.transaction_id,
        }),
        ..payment
    };
    // Another request that credited the same token meanwhile wrote the same facts.
    let _ = recs
        .put(PAYMENT_KIND, token, &credited, Some(version))
        .await?;
    Ok(answer(credited.payment_id))
}
