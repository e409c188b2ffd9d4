//! The house JSON shapes of `/v1`: free text with a length limit, a mutation, a
//! reference and an RFC 9457 problem. The native API answers in them, and so do the
//! administration routes a dialect brings under `/v1` (TouchTopUp's companies and
//! sales), so they live here rather than in either.

use crate::time::WireTime;
use prepaid_ledger::{Mutation, NAME_LEN_MAX, Reference, WalletId, bounded_text};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use utoipa::ToSchema;

/// Free text of at most `MAX` bytes without control characters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text<const MAX: usize>(pub String);

/// A name (customer, wallet, product, tenant).
pub type Name = Text<NAME_LEN_MAX>;

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<const MAX: usize>;
        impl<const MAX: usize> Visitor<'_> for V<MAX> {
            type Value = Text<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string of at most {MAX} bytes")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<MAX>, E> {
                bounded_text(s, MAX).map(Text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V::<MAX>)
    }
}

/// Serialises a value by its `Display`.
pub fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Serialises an optional value by its `Display`, `None` as null.
pub fn display_opt<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReferenceOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub text: &'a str,
    pub link: &'a str,
}

impl<'a> From<&'a Reference> for ReferenceOut<'a> {
    fn from(r: &'a Reference) -> Self {
        Self {
            kind: r.parts().0,
            text: r.parts().1,
            link: r.parts().2,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MutationOut<'a> {
    #[serde(serialize_with = "display")]
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub wallet_id: &'a str,
    pub customer_id: &'a str,
    pub unit: &'a str,
    pub scale: u8,
    /// `top_up`, `debit`, `adjustment`, `transfer_out`, `transfer_in`, `hold_commit`,
    /// `hold_release` or `expiry`.
    pub kind: &'static str,
    /// Signed: positive adds to the wallet.
    pub amount: i64,
    pub balance_after: i64,
    pub reference: ReferenceOut<'a>,
    #[serde(serialize_with = "display_opt")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub hold_id: Option<uuid::Uuid>,
    #[serde(serialize_with = "display_opt")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub transfer_id: Option<uuid::Uuid>,
    pub counter_wallet_id: Option<&'a str>,
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: WireTime,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: WireTime,
}

impl<'a> From<&'a Mutation> for MutationOut<'a> {
    fn from(m: &'a Mutation) -> Self {
        Self {
            id: m.id.0,
            wallet_id: m.wallet.as_str(),
            customer_id: m.customer.as_str(),
            unit: m.unit.code(),
            scale: m.unit.scale(),
            kind: m.kind.as_str(),
            amount: m.amount,
            balance_after: m.balance_after,
            reference: (&m.reference).into(),
            hold_id: m.hold.map(|h| h.0),
            transfer_id: m.transfer.map(|t| t.0),
            counter_wallet_id: m.counter_wallet.as_ref().map(WalletId::as_str),
            occurred_at: WireTime(m.occurred_at),
            recorded_at: WireTime(m.recorded_at),
        }
    }
}

/// An RFC 9457 problem (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct ProblemOut {
    /// `urn:prepaid:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable and machine-readable.
    pub code: String,
    /// With `insufficient_funds`.
    pub available: Option<i64>,
    /// With `insufficient_funds`.
    pub requested: Option<i64>,
    /// With `wallet_not_active`.
    pub wallet_status: Option<String>,
}
