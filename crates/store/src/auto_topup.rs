//! How the store keeps a wallet's automatic top-up: its rule and where its top-ups
//! stand, as one record of kind [`AUTO_TOPUP_KIND`] keyed by the wallet id, which the
//! executor reads and writes in the unit of every change that may start one; and the
//! job of queue [`AUTO_TOPUP_QUEUE`] that a start queues in the same unit, for a worker
//! to charge and settle.
//!
//! The record's value is the store's own JSON (the rule's fields and the state's), read
//! by [`decode`] wherever it is shown.

use prepaid_ledger::{
    AMOUNT_MAX, Amount, AutoTopUpFunding, AutoTopUpMethod, AutoTopUpRule, AutoTopUpState, JobQueue,
    RecordKey, RecordKind, Timestamp, WalletId,
};
use serde_json::{Value, json};

/// The kind of the records that keep automatic top-ups.
pub const AUTO_TOPUP_KIND: RecordKind = RecordKind::new("store.auto-topup");
/// The queue of automatic top-ups to charge and settle.
pub const AUTO_TOPUP_QUEUE: JobQueue = JobQueue::new("store.auto-topup");

/// The record key of a wallet's automatic top-up.
pub fn record_key(wallet: &WalletId) -> RecordKey {
    RecordKey::parse(wallet.as_str()).expect("a wallet id is a record key")
}

/// The id of the job of top-up `n` of `wallet`, which is also the idempotency key of
/// its settlement: `auto-topup:<wallet>:<n>`.
pub fn job_id(wallet: &WalletId, n: u64) -> String {
    format!("auto-topup:{wallet}:{n}")
}

fn time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| json!(t.as_micros()))
}

/// The record value of `rule` and `state`.
pub fn encode(rule: &AutoTopUpRule, state: &AutoTopUpState) -> String {
    let (method, amount) = match rule.method() {
        AutoTopUpMethod::Fixed(a) => ("fixed", a.get()),
        AutoTopUpMethod::Target(a) => ("target", a.get()),
    };
    let method_ref = match rule.funding() {
        AutoTopUpFunding::Payment { method_ref } => Value::String(method_ref.clone()),
        AutoTopUpFunding::Granted => Value::Null,
    };
    json!({
        "threshold": rule.threshold(),
        "method": method,
        "amount": amount,
        "payment_method": method_ref,
        "decline_backoff_ms": rule.decline_backoff_ms(),
        "per_hour_max": rule.per_hour_max(),
        "enabled": rule.enabled(),
        "started": state.started,
        "in_flight": state.in_flight,
        "declined_at": time(state.declined_at),
        "window_start": state.window_start.as_micros(),
        "window_count": state.window_count,
    })
    .to_string()
}

/// The rule and state a record value keeps; an error names what does not decode.
pub fn decode(value: &str) -> Result<(AutoTopUpRule, AutoTopUpState), String> {
    let v: Value = serde_json::from_str(value).map_err(|e| format!("auto top-up: {e}"))?;
    let int = |name: &str| {
        v[name]
            .as_i64()
            .ok_or_else(|| format!("auto top-up: no {name}"))
    };
    let uint = |name: &str| {
        v[name]
            .as_u64()
            .ok_or_else(|| format!("auto top-up: no {name}"))
    };
    let amount = Amount::new(int("amount")?.clamp(0, AMOUNT_MAX)).map_err(|e| e.to_string())?;
    let method = match v["method"].as_str() {
        Some("fixed") => AutoTopUpMethod::Fixed(amount),
        Some("target") => AutoTopUpMethod::Target(amount),
        other => return Err(format!("auto top-up: method {other:?}")),
    };
    let funding = match v["payment_method"].as_str() {
        Some(r) => AutoTopUpFunding::Payment {
            method_ref: r.to_owned(),
        },
        None => AutoTopUpFunding::Granted,
    };
    let rule = AutoTopUpRule::new(
        int("threshold")?,
        method,
        funding,
        uint("decline_backoff_ms")?,
        u32::try_from(uint("per_hour_max")?).map_err(|e| e.to_string())?,
        v["enabled"].as_bool().unwrap_or(false),
    )
    .map_err(|e| format!("auto top-up: {e}"))?;
    let state = AutoTopUpState {
        started: uint("started")?,
        in_flight: v["in_flight"].as_u64(),
        declined_at: v["declined_at"].as_i64().map(Timestamp::from_micros),
        window_start: Timestamp::from_micros(int("window_start")?),
        window_count: u32::try_from(uint("window_count")?).map_err(|e| e.to_string())?,
    };
    Ok((rule, state))
}

/// What a worker needs to charge and settle top-up `n`: the job's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoTopUpJob {
    pub wallet: WalletId,
    pub n: u64,
    pub amount: Amount,
    pub funding: AutoTopUpFunding,
}

impl AutoTopUpJob {
    pub fn encode(&self) -> String {
        let method_ref = match &self.funding {
            AutoTopUpFunding::Payment { method_ref } => Value::String(method_ref.clone()),
            AutoTopUpFunding::Granted => Value::Null,
        };
        json!({"wallet": self.wallet.as_str(), "n": self.n, "amount": self.amount.get(),
            "payment_method": method_ref})
        .to_string()
    }

    pub fn decode(payload: &str) -> Result<Self, String> {
        let v: Value =
            serde_json::from_str(payload).map_err(|e| format!("auto top-up job: {e}"))?;
        let wallet = v["wallet"]
            .as_str()
            .and_then(|w| WalletId::parse(w).ok())
            .ok_or("auto top-up job: no wallet")?;
        let n = v["n"].as_u64().ok_or("auto top-up job: no n")?;
        let amount = v["amount"]
            .as_i64()
            .and_then(|a| Amount::positive(a).ok())
            .ok_or("auto top-up job: no amount")?;
        let funding = match v["payment_method"].as_str() {
            Some(r) => AutoTopUpFunding::Payment {
                method_ref: r.to_owned(),
            },
            None => AutoTopUpFunding::Granted,
        };
        Ok(Self {
            wallet,
            n,
            amount,
            funding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_states_and_jobs_keep_their_values() {
        let rule = AutoTopUpRule::new(
            100,
            AutoTopUpMethod::Target(Amount::positive(500).unwrap()),
            AutoTopUpFunding::Payment {
                method_ref: "pm_1".into(),
            },
            60_000,
            3,
            true,
        )
        .unwrap();
        let state = AutoTopUpState {
            started: 4,
            in_flight: Some(4),
            declined_at: Some(Timestamp::from_micros(7)),
            window_start: Timestamp::from_micros(5),
            window_count: 2,
        };
        assert_eq!(decode(&encode(&rule, &state)).unwrap(), (rule, state));
        let job = AutoTopUpJob {
            wallet: WalletId::parse("w").unwrap(),
            n: 3,
            amount: Amount::positive(40).unwrap(),
            funding: AutoTopUpFunding::Granted,
        };
        assert_eq!(AutoTopUpJob::decode(&job.encode()).unwrap(), job);
    }
}
