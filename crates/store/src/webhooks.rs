//! The names the executor's webhook events are written under: the outbox queue, the
//! record kinds it reads and writes, and the event types.
//!
//! When a tenant has at least one enabled webhook endpoint (a record of
//! [`ENABLED_KIND`], which the native API keeps beside each enabled endpoint, found
//! through [`crate::exec::Rows::webhooks`]), the executor adds one job of
//! [`EVENT_QUEUE`] per event to the batch's [`crate::exec::Changes`], so an event exists
//! exactly when the change it describes does, whichever dialect (or the sweep) made
//! it. The job's payload is a JSON object of the event's facts ([`EventFacts`]'s
//! fields); the delivery worker renders the wire shape from it.
//!
//! Events of one wallet are ordered by its sequence: the version of the wallet's record
//! of [`SEQUENCE_KIND`] (written by every batch that makes an event of the wallet, whose
//! row the batch holds, so versions follow commit order), then the event's place in
//! its batch. [`order_key`] makes them one string that sorts in that order.

use prepaid_ledger::{JobQueue, LowBalanceAlert, RecordKey, RecordKind, WalletId};

/// The outbox of webhook events: one job per event, fanned out to endpoints by the
/// delivery worker.
pub const EVENT_QUEUE: JobQueue = JobQueue::new("webhook.event");
/// One record per enabled endpoint (keyed by the endpoint's id, empty value): a tenant
/// has webhooks while it has one.
pub const ENABLED_KIND: RecordKind = RecordKind::new("webhook.on");
/// One record per wallet that made an event (keyed by the wallet id, empty value),
/// whose version numbers the batches that made events of the wallet.
pub const SEQUENCE_KIND: RecordKind = RecordKind::new("webhook.seq");

/// One record per wallet with a low-balance alert (keyed by the wallet id), its value
/// the thresholds ([`encode_alert`]). The executor reads it with every wallet a change
/// may take from, for tenants with webhooks.
pub const LOW_BALANCE_KIND: RecordKind = RecordKind::new("store.low-balance");

/// The record key of a wallet's low-balance alert.
pub fn alert_key(wallet: &WalletId) -> RecordKey {
    RecordKey::parse(wallet.as_str()).expect("a wallet id is a record key")
}

/// The record value of a low-balance alert.
pub fn encode_alert(alert: &LowBalanceAlert) -> String {
    serde_json::json!({ "thresholds": alert.thresholds() }).to_string()
}

/// Reads a value [`encode_alert`] wrote.
pub fn decode_alert(text: &str) -> Result<LowBalanceAlert, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let thresholds = v
        .get("thresholds")
        .and_then(|t| t.as_array())
        .ok_or("no thresholds")?
        .iter()
        .map(|t| t.as_i64().ok_or("a threshold is not an integer"))
        .collect::<Result<Vec<i64>, _>>()?;
    LowBalanceAlert::new(thresholds).map_err(|e| e.to_string())
}

/// What happened: the `type` of a webhook event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventType {
    /// Every new mutation, of any kind.
    MutationCreated,
    HoldCreated,
    HoldCommitted,
    HoldReleased,
    /// A hold's time ran out (the sweep released it).
    HoldExpired,
    /// A grant's free remainder left the wallet at its expiry.
    GrantExpired,
    /// The wallet's available amount went from above 0 to 0 or below (per batch).
    WalletDepleted,
    /// The wallet's available amount (balance − held without a floor) fell from above
    /// one of its alert's thresholds to at or below it (per batch, per threshold).
    WalletLowBalance,
    /// An endpoint was disabled after failing for too long (written by the delivery
    /// worker, not the executor).
    EndpointDisabled,
    /// An automatic top-up credited the wallet (in the unit of the credit).
    AutoTopupSucceeded,
    /// An automatic top-up ended without a credit: the provider declined, or the
    /// wallet refused the credit.
    AutoTopupFailed,
}

impl EventType {
    /// Every type, in the order of the documentation.
    pub const ALL: [EventType; 11] = [
        Self::MutationCreated,
        Self::HoldCreated,
        Self::HoldCommitted,
        Self::HoldReleased,
        Self::HoldExpired,
        Self::GrantExpired,
        Self::WalletDepleted,
        Self::WalletLowBalance,
        Self::EndpointDisabled,
        Self::AutoTopupSucceeded,
        Self::AutoTopupFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MutationCreated => "mutation.created",
            Self::HoldCreated => "hold.created",
            Self::HoldCommitted => "hold.committed",
            Self::HoldReleased => "hold.released",
            Self::HoldExpired => "hold.expired",
            Self::GrantExpired => "grant.expired",
            Self::WalletDepleted => "wallet.depleted",
            Self::WalletLowBalance => "wallet.low_balance",
            Self::EndpointDisabled => "endpoint.disabled",
            Self::AutoTopupSucceeded => "auto_topup.succeeded",
            Self::AutoTopupFailed => "auto_topup.failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// The facts of one event, as the executor writes them into its job's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFacts {
    pub event_type: EventType,
    pub wallet: String,
    pub customer: String,
    /// The wallet's sequence (its batches with events, from 1) and the event's place
    /// among the wallet's events of that batch (from 0).
    pub sequence: (i64, u32),
    /// Whether it is the wallet's last event of the batch.
    pub last: bool,
    /// When the batch ran, microseconds since the epoch.
    pub at_micros: i64,
    /// The mutation the event is about (or that caused it).
    pub mutation: Option<String>,
    /// The hold the event is about.
    pub hold: Option<String>,
    /// The grant the event is about.
    pub grant: Option<String>,
    /// The wallet's balance and available amount after the change (after the batch,
    /// for hold events and `wallet.depleted`); available is `None` without a floor.
    pub balance_after: i64,
    pub available_after: Option<i64>,
    /// The threshold a `wallet.low_balance` crossed.
    pub threshold: Option<i64>,
    /// The number of the automatic top-up (the wallet's n-th) and its amount.
    pub auto_topup: Option<(u64, i64)>,
    /// Why an automatic top-up failed.
    pub reason: Option<String>,
}

impl EventFacts {
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "type": self.event_type.as_str(),
            "wallet": self.wallet,
            "customer": self.customer,
            "sequence": [self.sequence.0, self.sequence.1],
            "last": self.last,
            "at": self.at_micros,
            "mutation": self.mutation,
            "hold": self.hold,
            "grant": self.grant,
            "balance_after": self.balance_after,
            "available_after": self.available_after,
            "threshold": self.threshold,
            "auto_topup": self.auto_topup.map(|(n, amount)| [n as i64, amount]),
            "reason": self.reason,
        })
        .to_string()
    }

    /// Reads a payload [`EventFacts::to_json`] wrote; `None` when it does not.
    pub fn from_json(text: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let text_of = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_owned);
        let sequence = v.get("sequence")?.as_array()?;
        Some(Self {
            event_type: EventType::parse(v.get("type")?.as_str()?)?,
            wallet: text_of("wallet")?,
            customer: text_of("customer")?,
            sequence: (
                sequence.first()?.as_i64()?,
                u32::try_from(sequence.get(1)?.as_u64()?).ok()?,
            ),
            last: v.get("last")?.as_bool()?,
            at_micros: v.get("at")?.as_i64()?,
            mutation: text_of("mutation"),
            hold: text_of("hold"),
            grant: text_of("grant"),
            balance_after: v.get("balance_after")?.as_i64()?,
            available_after: v.get("available_after").and_then(|x| x.as_i64()),
            threshold: v.get("threshold").and_then(|x| x.as_i64()),
            auto_topup: v.get("auto_topup").and_then(|x| {
                let pair = x.as_array()?;
                Some((pair.first()?.as_u64()?, pair.get(1)?.as_i64()?))
            }),
            reason: text_of("reason"),
        })
    }

    /// The event's place among its wallet's events, as text that sorts in commit order.
    pub fn order_key(&self) -> String {
        order_key(self.sequence)
    }

    /// Whether `before` (the wallet's last event fanned out: its sequence and whether
    /// it was its batch's last) is the event just before this one. Sequences and
    /// places have no gaps, so each event knows its predecessor; the wallet's first
    /// event has none.
    pub fn follows(&self, before: Option<((i64, u32), bool)>) -> bool {
        let (batch, place) = self.sequence;
        match before {
            None => batch == 1 && place == 0,
            Some(((b, _), last)) if place == 0 => b == batch - 1 && last,
            Some(((b, p), _)) => b == batch && p + 1 == place,
        }
    }
}

/// A sequence as text that sorts like the numbers: 20 digits of the batch's number and 6
/// of the place in the batch.
pub fn order_key((batch, place): (i64, u32)) -> String {
    format!("{:020}{:06}", batch.max(0), place)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_round_trip() {
        let alert = LowBalanceAlert::new(vec![100, 500]).unwrap();
        assert_eq!(decode_alert(&encode_alert(&alert)), Ok(alert));
        assert!(decode_alert(r#"{"thresholds":[]}"#).is_err());
        assert!(decode_alert("{}").is_err());
    }

    #[test]
    fn types_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("nope"), None);
    }

    #[test]
    fn facts_round_trip_and_order_keys_sort() {
        let facts = EventFacts {
            event_type: EventType::HoldCreated,
            wallet: "w".into(),
            customer: "c".into(),
            sequence: (3, 7),
            last: true,
            at_micros: 5,
            mutation: None,
            hold: Some("h".into()),
            grant: None,
            balance_after: -4,
            available_after: None,
            threshold: Some(100),
            auto_topup: Some((3, 500)),
            reason: Some("payment_declined".into()),
        };
        assert_eq!(EventFacts::from_json(&facts.to_json()), Some(facts.clone()));
        assert!(order_key((9, 999_999)) < order_key((10, 0)));
        let at = |sequence, last| EventFacts {
            sequence,
            last,
            ..facts.clone()
        };
        assert!(at((1, 0), false).follows(None));
        assert!(!at((2, 0), false).follows(None));
        assert!(at((2, 0), false).follows(Some(((1, 3), true))));
        assert!(!at((2, 0), false).follows(Some(((1, 3), false))));
        assert!(at((2, 4), false).follows(Some(((2, 3), false))));
        assert!(!at((2, 5), false).follows(Some(((2, 3), false))));
        assert!(order_key((10, 2)) < order_key((10, 10)));
    }
}
