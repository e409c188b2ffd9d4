//! `make_payment` and `record_payment`: a customer pays through the configured payment
//! provider, into the main balance or (with `wallet`, optionally `chargeid`) into a
//! company wallet.
//!
//! No money moves before the room for it is set aside, and none is taken that the
//! ledger will not credit:
//!
//! - `make_payment` checks the customer, the amount in the company currency and the
//!   wallet, asks the provider to start the payment (no money moves at start), then in
//!   ONE operation places a credit hold of the amount on the wallet (setting aside room
//!   under an event wallet's ceiling, so that a payment that does not fit is refused
//!   here), writes the payment record (token → whom to credit, with the hold) and the
//!   next `payment_id`, and queues the payment's recovery job. Every payment gets a
//!   hold, ceiling or not, so a payment's state is the ledger's.
//! - `record_payment` answers a credited payment at once; otherwise it needs the hold
//!   still pending, with [`PAYMENT_RECORD_MARGIN_SECS`] left (else the payment has
//!   expired and nothing is captured), then finishes the payment at the provider
//!   (repeat-safe there) and in ONE operation commits the hold (the credit, with the
//!   idempotency key `icrtouch-payment:<token>`) and marks the record credited. A
//!   declined payment releases its hold; one the payer abandons expires with it.
//! - The recovery job of a payment is due when clients may no longer record it
//!   ([`PAYMENT_RECORD_MARGIN_SECS`] before the hold expires). It settles the payment
//!   as `record_payment` does, so a payment captured but never recorded (the client
//!   went away, the process died between capture and credit) is credited; a payment
//!   still unapproved or declined then releases its hold.
//!
//! A token's credit is applied once, whoever asks and however often, and every answer
//! carries the same `payment_id`.
//!
//! `pmtType` 1 is the configured provider (PayPal in production, a test provider in
//! development); the credit's `PAYMENTSOURCE` is 1.

use super::accounts::customer_of;
use super::ctx::Ctx;
use super::errors::{Fail, store_fail};
use super::model::{
    Credited, PAYMENT_KIND, PAYMENT_REFERENCE_KIND, Payment, Recs, SOURCE_PROVIDER, encode,
    main_wallet, payment_reference, wallet_wallet,
};
use super::payments::{PaymentError, StartPayment, currency_exponent, currency_is_valid};
use super::types::{NUMBER_ID_MAX, decimal, format_decimal};
use super::xml::Node;
use crate::model::record_key;
use axum::http::StatusCode;
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Principal, Write};
use prepaid_edge::new_uuid;
use prepaid_edge::submit::Operation;
use prepaid_ledger::JobQueue;
use prepaid_ledger::{
    Amount, Command, Done, Fingerprint, HoldId, HoldStatus, IdempotencyKey, MutationId, Reference,
    Refusal, Timestamp, WalletId,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The prefix of the idempotency key of a payment's credit.
pub const PAYMENT_KEY_PREFIX: &str = "icrtouch-payment:";
/// The longest provider token accepted, in bytes.
pub const TOKEN_LEN_MAX: usize = 200;
/// How long a payment's credit hold keeps its room: PayPal's window for capturing an
/// approved order (3 hours). A payment not recorded by then has expired; its room is
/// free again.
pub const PAYMENT_HOLD_SECS: i64 = 3 * 3600;
/// How long before its hold expires a payment stops being recorded by clients and is
/// left to its recovery job: longer than a capture at the provider takes, so a capture
/// never outlives the hold it credits.
pub const PAYMENT_RECORD_MARGIN_SECS: i64 = 10 * 60;
/// The job queue of payments' recovery.
pub const PAYMENT_QUEUE: JobQueue = JobQueue::new("icrtouch.payment");
/// The counter of `payment_id`s.
const PAYMENT_COUNTER: &str = "payment";

/// The answer to a provider failure; details of an outage go to the log only.
pub fn payment_fail(e: &PaymentError) -> Fail {
    match e {
        PaymentError::Declined(why) => Fail::new(
            StatusCode::PAYMENT_REQUIRED,
            format!("Payment declined: {why}"),
        ),
        PaymentError::NotApproved(why) => Fail::new(
            StatusCode::PAYMENT_REQUIRED,
            format!("Payment not approved yet: {why}"),
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

/// The answer to a payment that does not fit under its wallet's ceiling, in the
/// currency's units.
pub fn beyond_charges(wallet: Option<u32>, amount: i64, room: i64, scale: u8) -> Fail {
    let on = wallet
        .map(|w| format!(" on wallet {w}"))
        .unwrap_or_default();
    Fail::conflict(format!(
        "A payment of {} exceeds the {} still owed{on}",
        format_decimal(amount, scale),
        format_decimal(room.max(0), scale)
    ))
}

/// The provider gave something this dialect cannot use.
fn provider_oddity(what: &str) -> Fail {
    tracing::error!("the payment provider {what}");
    Fail::new(
        StatusCode::BAD_GATEWAY,
        "The payment provider answered unexpectedly",
    )
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
    let ledger_wallet = match wallet {
        Some(w) => {
            super::wallets::check_payable(state, ctx, coid, custid, w, amount, charge).await?;
            wallet_wallet(coid, custid, w)
        }
        None if charge.is_some() => return Err(Fail::bad("chargeid needs wallet")),
        None => {
            let id = main_wallet(coid, custid);
            super::accounts::ledger_wallet(state, ctx, &id).await?;
            id
        }
    };
    let positive = Amount::positive(amount).map_err(|_| Fail::bad("amt must be positive"))?;
    let started = ctx
        .own
        .payments
        .start(StartPayment {
            amount_minor: amount,
            currency: company.currency.clone(),
            reference: format!("TouchTopUp payment of customer {coid}.{custid}"),
        })
        .await
        .map_err(|e| payment_fail(&e))?;
    let token = started.token;
    if payment_key(&token).is_none() {
        return Err(provider_oddity("gave an unusable token"));
    }
    if recs.get::<Payment>(PAYMENT_KIND, &token).await?.is_some() {
        return Err(provider_oddity("gave a token twice"));
    }
    let hold = HoldId(new_uuid());
    let expires_at = recs.now.plus_micros(PAYMENT_HOLD_SECS * 1_000_000);
    let mut payment = Payment {
        payment_id: 0,
        coid,
        custid,
        wallet,
        charge,
        amount_minor: amount,
        currency: company.currency,
        source: SOURCE_PROVIDER,
        hold: Some(hold.0.to_string()),
        credited: None,
    };
    let place = Command::PlaceCreditHold {
        id: hold,
        wallet: ledger_wallet,
        amount: positive,
        reference: Reference::new(
            PAYMENT_REFERENCE_KIND,
            &token,
            payment_reference(SOURCE_PROVIDER, "", charge).parts().2,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "a provider's payment token is no reference text");
            Fail::internal()
        })?,
        expires_at: Some(expires_at),
        metadata: prepaid_ledger::Metadata::default(),
    };
    let recovery_due = expires_at.plus_micros(-PAYMENT_RECORD_MARGIN_SECS * 1_000_000);
    let token_key = record_key(&token)?;
    // The payment's number is taken in the same unit as the hold: a concurrent payment
    // that took the number first makes this unit's compare-and-set fail, and it is tried
    // again with the next number, so numbers are never given twice.
    for _ in 0..super::model::CAS_RETRIES_MAX {
        let (n, take) = recs.number_to_take(PAYMENT_COUNTER).await?;
        payment.payment_id = n;
        let op = Operation::new(&ctx.principal, place.clone())
            .put_record(
                PAYMENT_KIND,
                &token_key,
                encode(PAYMENT_KIND, &payment)?,
                None,
            )
            .enqueue(
                PAYMENT_QUEUE,
                &token_key,
                String::from("{}"),
                Some(recovery_due),
            );
        match take
            .link(op)
            .submit(state, "starting a TouchTopUp payment")
            .await
        {
            Ok(Ok(_)) => return Ok(Node::map().with("response", token).with("status", 1i64)),
            Ok(Err(Refusal::RecordConflict)) => continue,
            Ok(Err(Refusal::CeilingExceeded { room, .. })) => {
                return Err(beyond_charges(wallet, amount, room, company.scale));
            }
            Ok(Err(r)) => return Err(super::errors::refusal(&r)),
            Err(problem) => return Err(Fail::from(problem)),
        }
    }
    tracing::warn!("the TouchTopUp payment counter stayed contended");
    Err(Fail::unavailable("The service is busy; try again"))
}

pub async fn record_payment(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    check_pmt_type(ctx, false)?;
    let token = ctx.require_secret(super::params::PAYMENT_TOKEN)?;
    let recs = ctx.recs(state);
    let Some((payment, _)) = found(&recs, token).await? else {
        return Err(unknown());
    };
    ctx.check_company(payment.coid)?;
    let payment_id = settle(&recs, Some(&ctx.principal), token).await?;
    Ok(Node::map()
        .with("payment_id", i64::try_from(payment_id).unwrap_or(i64::MAX))
        .with("status", 1i64))
}

fn unknown() -> Fail {
    Fail::not_found("Unknown payment token")
}

/// The payment of `token` and its version, if the token can be one and is known.
async fn found(recs: &Recs<'_>, token: &str) -> Result<Option<(Payment, i64)>, Fail> {
    if payment_key(token).is_none() {
        return Ok(None);
    }
    recs.get::<Payment>(PAYMENT_KIND, token).await
}

fn expired() -> Fail {
    Fail::conflict("The payment has expired and was not taken; start a new payment")
}

/// Settles the payment of `token`: credits it if the provider took the money, releases
/// its hold if the provider declined it; answers its `payment_id` once credited. The
/// `caller` is the client recording it, or `None` for the recovery job, which may
/// settle a payment up to its hold's expiry (a client only until
/// [`PAYMENT_RECORD_MARGIN_SECS`] before it).
pub async fn settle(recs: &Recs<'_>, caller: Option<&Principal>, token: &str) -> Result<u64, Fail> {
    let state = recs.state;
    let key = payment_key(token).ok_or_else(unknown)?;
    let Some((payment, version)) = found(recs, token).await? else {
        return Err(unknown());
    };
    if payment.credited.is_some() {
        return Ok(payment.payment_id);
    }
    // A payment started before payments held their room has no hold; its payer
    // approved nothing that is still capturable, so it is answered as expired.
    let hold_id = payment
        .hold
        .as_deref()
        .and_then(|h| Uuid::parse_str(h).ok())
        .map(HoldId)
        .ok_or_else(expired)?;
    let hold = state
        .store
        .hold(recs.tenant, hold_id)
        .await
        .map_err(|e| store_fail(&e, "reading a payment's hold"))?
        .ok_or_else(|| {
            tracing::error!(hold = %hold_id, "a TouchTopUp payment's hold is missing");
            Fail::internal()
        })?;
    let margin = if caller.is_some() {
        PAYMENT_RECORD_MARGIN_SECS * 1_000_000
    } else {
        0
    };
    let open = |at: Timestamp| hold.expires_at.is_none_or(|e| at.plus_micros(margin) < e);
    if hold.status == HoldStatus::Committed {
        // Committed with its record by a request that ran meanwhile.
        return credited_meanwhile(recs, token).await;
    }
    if hold.status != HoldStatus::Pending || !open(recs.now) {
        return Err(expired());
    }
    let op = |command: Command| match caller {
        Some(p) => Operation::new(p, command),
        None => Operation::system(recs.tenant, command),
    };
    let finished = match recs.own.payments.finish(token).await {
        Ok(f) => f,
        Err(e @ (PaymentError::Declined(_) | PaymentError::UnknownToken)) => {
            release(recs, op(release_of(hold_id)), &payment).await;
            return Err(payment_fail(&e));
        }
        // When the recovery job runs, clients may no longer record the payment: one
        // still not approved was abandoned.
        Err(e @ PaymentError::NotApproved(_)) if caller.is_none() => {
            abandon(recs, hold_id, &payment).await;
            return Err(payment_fail(&e));
        }
        Err(e) => return Err(payment_fail(&e)),
    };
    if finished.currency != payment.currency {
        tracing::error!(
            payment_id = payment.payment_id,
            started = %payment.currency,
            paid = %finished.currency,
            "a payment was paid in another currency than started; not credited, the \
             money needs attention"
        );
        return Err(Fail::new(
            StatusCode::BAD_GATEWAY,
            "The payment provider answered with another currency",
        ));
    }
    // The hold set aside room for what was started; more than that cannot be credited
    // without passing an event wallet's ceiling.
    if finished.amount_minor != payment.amount_minor {
        tracing::error!(
            payment_id = payment.payment_id,
            started = payment.amount_minor,
            paid = finished.amount_minor,
            "a payment was paid with another amount than started; crediting at most what \
             was started, the difference needs attention"
        );
    }
    let credit = finished.amount_minor.min(payment.amount_minor);
    let amount = Amount::new(credit.max(0)).map_err(|_| Fail::internal())?;
    let wallet = match payment.wallet {
        Some(w) => wallet_wallet(payment.coid, payment.custid, w),
        None => main_wallet(payment.coid, payment.custid),
    };
    let mutation_id = MutationId(new_uuid());
    let credited = Payment {
        credited: Some(Credited {
            mutation: mutation_id.0.to_string(),
            transaction_id: finished.transaction_id.clone(),
        }),
        ..payment.clone()
    };
    let commit = op(Command::CommitHold {
        hold: hold_id,
        amount: Some(amount),
        mutation_id,
        reference: Some(payment_reference(
            payment.source,
            &finished.transaction_id,
            payment.charge,
        )),
    })
    .idempotency(Some((key, fingerprint(&wallet, hold_id, credit))))
    .put_record(
        PAYMENT_KIND,
        &record_key(token)?,
        encode(PAYMENT_KIND, &credited)?,
        Some(version),
    );
    match commit.submit(state, "crediting a TouchTopUp payment").await {
        Ok(Ok((Done::Hold { .. }, _))) => Ok(payment.payment_id),
        Ok(Ok(_)) => Err(super::model::unexpected("hold")),
        // A request that credited the same token meanwhile changed the record.
        Ok(Err(Refusal::RecordConflict | Refusal::HoldNotPending { .. })) => {
            credited_meanwhile(recs, token).await
        }
        Ok(Err(r)) => {
            tracing::error!(
                payment_id = payment.payment_id,
                refusal = r.code(),
                "a finished payment could not be credited; the money needs attention"
            );
            Err(super::errors::refusal(&r))
        }
        Err(problem) => Err(Fail::from(problem)),
    }
}

/// The answer to a payment another request settled meanwhile: its `payment_id` once
/// credited (the credit and the record are written together).
async fn credited_meanwhile(recs: &Recs<'_>, token: &str) -> Result<u64, Fail> {
    match found(recs, token).await? {
        Some((p, _)) if p.credited.is_some() => Ok(p.payment_id),
        Some(_) => Err(expired()),
        None => Err(unknown()),
    }
}

/// The fingerprint of a payment's credit: a repeat names the same wallet, hold and
/// amount.
fn fingerprint(wallet: &WalletId, hold: HoldId, amount: i64) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(b"icrtouch-payment\0");
    h.update(wallet.as_str().as_bytes());
    h.update([0]);
    h.update(hold.0.as_bytes());
    h.update(amount.to_be_bytes());
    Fingerprint(h.finalize().into())
}

fn release_of(hold: HoldId) -> Command {
    Command::ReleaseHold {
        hold,
        mutation_id: MutationId(new_uuid()),
    }
}

/// Releases a declined payment's hold, so its room is free again at once. A hold that
/// is no longer pending was settled meanwhile; a failure leaves it to its expiry.
async fn release(recs: &Recs<'_>, op: Operation, payment: &Payment) {
    match op
        .submit(recs.state, "releasing a TouchTopUp payment")
        .await
    {
        Ok(Ok(_) | Err(Refusal::HoldNotPending { .. })) => {}
        Ok(Err(r)) => tracing::warn!(
            payment_id = payment.payment_id,
            refusal = r.code(),
            "a declined payment's hold was not released; it expires in time"
        ),
        Err(_) => tracing::warn!(
            payment_id = payment.payment_id,
            "a declined payment's hold was not released; it expires in time"
        ),
    }
}

/// How often the recovery worker looks for due payments.
pub const RECOVERY_INTERVAL_MS: u64 = 5_000;
/// How long a claimed recovery job is left to one worker: longer than settling a
/// payment takes (three provider requests and one operation).
pub const RECOVERY_LEASE_MS: u64 = 60_000;
/// How long a recovery job waits after the provider or the store failed.
pub const RECOVERY_RETRY_MS: u64 = 30_000;

/// The recovery worker: settles every payment whose clients may no longer record it
/// (see the module documentation), until the server stops.
pub async fn run(
    state: SharedState,
    own: std::sync::Arc<super::DialectState>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut failing = false;
    let mut ticker = prepaid_edge::periodic::Ticker::new(
        std::time::Duration::from_millis(RECOVERY_INTERVAL_MS),
        stop,
    );
    while ticker.tick().await {
        if !ticker
            .unless_stopped(recover_due(&state, &own, &mut failing))
            .await
        {
            return;
        }
    }
}

/// Claims the due recovery jobs and settles their payments at once. `failing`
/// remembers a failing store between ticks, so an outage is logged once.
async fn recover_due(
    state: &SharedState,
    own: &std::sync::Arc<super::DialectState>,
    failing: &mut bool,
) {
    prepaid_edge::jobs::drain(
        state,
        PAYMENT_QUEUE,
        RECOVERY_LEASE_MS,
        "payment recoveries",
        failing,
        |state, job| recover(state, own.clone(), job),
    )
    .await;
}

/// Settles one payment as its recovery job: done once it is credited, expired,
/// declined or unknown; tried again later when the provider or the store failed, for
/// as long as its hold lasts.
async fn recover(
    state: SharedState,
    own: std::sync::Arc<super::DialectState>,
    job: prepaid_store::Job,
) {
    let recs = Recs {
        state: &state,
        own: &own,
        tenant: &job.tenant,
        now: state.clock.now(),
    };
    let settled = settle(&recs, None, job.id.as_str()).await;
    let again = match &settled {
        Ok(payment_id) => {
            tracing::info!(
                payment_id,
                "a payment not recorded by its client was credited"
            );
            false
        }
        Err(fail) => fail.http.is_server_error(),
    };
    let done = if again {
        let due = recs
            .now
            .plus_micros(prepaid_edge::jobs::micros(RECOVERY_RETRY_MS));
        state
            .store
            .defer_job(&job.tenant, PAYMENT_QUEUE, &job.id, due)
            .await
    } else {
        state
            .store
            .finish_job(&job.tenant, PAYMENT_QUEUE, &job.id)
            .await
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, "a payment's recovery job was not updated; it runs again");
    }
}

/// Releases the hold of a payment not approved when its recovery runs: the payer
/// abandoned it, and its room is free again at once rather than at expiry.
async fn abandon(recs: &Recs<'_>, hold: HoldId, payment: &Payment) {
    release(
        recs,
        Operation::system(recs.tenant, release_of(hold)),
        payment,
    )
    .await;
}
