//! The native API's wire types: what clients send (parsed straight into ledger
//! newtypes where a field stands alone, so serde's errors name the field) and what
//! they get back (borrowed views of ledger entities).

use prepaid_edge::time::WireTime;
pub use prepaid_edge::wire::{
    DrawOut, MetadataIn, MetadataOut, MetadataPatchIn, MutationOut, Name, ProblemOut,
    ReferenceInput, ReferenceOut, Text, display, display_opt,
};
use prepaid_ledger::{
    ApiKey, ApiKeyName, Customer, CustomerId, Floor, Hold, IdError, IdempotencyKey, LINK_LEN_MAX,
    Metadata, REFERENCE_LEN_MAX, Reference, Scopes, TenantId, Timestamp, Transfer, Wallet,
    WalletId, bounded_text,
};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------
// Field types of requests.

/// A client-chosen id type of the ledger.
pub trait TextId: Sized {
    fn parse_id(s: &str) -> Result<Self, IdError>;
}

macro_rules! text_id {
    ($($t:ty),*) => {$(
        impl TextId for $t {
            fn parse_id(s: &str) -> Result<Self, IdError> {
                <$t>::parse(s)
            }
        }
    )*};
}
text_id!(CustomerId, WalletId, TenantId, ApiKeyName, IdempotencyKey);

/// An id parsed while deserialising.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id<T>(pub T);

impl<'de, T: TextId> Deserialize<'de> for Id<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: TextId> Visitor<'_> for V<T> {
            type Value = Id<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id: 1 to 64 visible ASCII characters")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Id<T>, E> {
                T::parse_id(s).map(Id).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V(PhantomData))
    }
}

/// The object form of a reference.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceObject {
    /// What kind of reference (`EXTERNAL_SYSTEM`, `INCIDENT`, `payment`...).
    #[serde(rename = "type")]
    #[schema(value_type = Option<String>)]
    pub kind: Option<Text<REFERENCE_LEN_MAX>>,
    #[schema(value_type = Option<String>)]
    pub text: Option<Text<REFERENCE_LEN_MAX>>,
    #[schema(value_type = Option<String>)]
    pub link: Option<Text<REFERENCE_LEN_MAX>>,
}

/// Why a mutation happens: either a plain string (its `text`) or
/// `{"type", "text", "link"}`, each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferenceIn(pub Reference);

impl<'de> Deserialize<'de> for ReferenceIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ReferenceIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an object {\"type\", \"text\", \"link\"}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ReferenceIn, E> {
                let text = bounded_text(s, REFERENCE_LEN_MAX).map_err(E::custom)?;
                Reference::new("", &text, "")
                    .map(ReferenceIn)
                    .map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ReferenceIn, A::Error> {
                let o = ReferenceObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let part = |t: Option<Text<REFERENCE_LEN_MAX>>| t.map(|t| t.0).unwrap_or_default();
                Reference::new(&part(o.kind), &part(o.text), &part(o.link))
                    .map(ReferenceIn)
                    .map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// What a client may post directly on a wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostKind {
    TopUp,
    Debit,
    Adjustment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WalletStatusIn {
    Active,
    Suspended,
    Expired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeIn {
    Read,
    Write,
    Admin,
}

// ---------------------------------------------------------------------------------
// Request bodies.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantIn {
    /// A UUID is generated when omitted, as for every id.
    #[schema(value_type = Option<String>, example = "acme", min_length = 1, max_length = 64)]
    pub id: Option<Id<TenantId>>,
    #[schema(value_type = Option<String>, max_length = 255)]
    pub name: Option<Name>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyIn {
    /// Unique within the tenant; the user name of HTTP Basic.
    #[schema(value_type = String, example = "billing", min_length = 1, max_length = 64)]
    pub name: Id<ApiKeyName>,
    pub scopes: Vec<ScopeIn>,
    /// Restricts the key to this customer.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64)]
    pub customer_id: Option<Id<CustomerId>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomerIn {
    /// A UUID is generated when omitted.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64)]
    pub id: Option<Id<CustomerId>>,
    #[schema(value_type = Option<String>, max_length = 255)]
    pub name: Option<Name>,
    /// The URL by which the client's system addresses the customer (TOPdesk's
    /// branch URL, say).
    #[schema(value_type = Option<String>, max_length = 1024)]
    pub link: Option<Text<LINK_LEN_MAX>>,
}

/// What `PATCH /v1/customers/{id}` changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCustomerIn {
    /// The customer's new link; an empty one removes it.
    #[schema(value_type = String, max_length = 1024)]
    pub link: Text<LINK_LEN_MAX>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWalletIn {
    /// A UUID is generated when omitted.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64)]
    pub id: Option<Id<WalletId>>,
    /// The unit code: `EUR`, `MIN`, `CREDIT`...
    #[schema(example = "EUR")]
    pub unit: String,
    /// Decimal places of one step; defaults to the ISO 4217 minor unit of a known
    /// currency code, else 0.
    pub scale: Option<u8>,
    #[schema(value_type = Option<String>, max_length = 255)]
    pub name: Option<Name>,
    #[schema(value_type = Option<String>, max_length = 255)]
    pub product: Option<Name>,
    /// How far below zero the available amount may go (zero or negative; default 0).
    pub floor: Option<i64>,
    /// No floor at all (post-paid style); excludes `floor`.
    pub unlimited_overdraft: Option<bool>,
    /// The highest balance the wallet may reach, in the unit's smallest steps (zero to
    /// 4 × 10^18); a credit that would pass it is refused. No limit when omitted.
    pub ceiling_minor: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_from: Option<WireTime>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_until: Option<WireTime>,
    /// The client's own labels (see `Metadata`).
    #[schema(value_type = Option<MetadataOut>)]
    pub metadata: Option<MetadataIn>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWalletIn {
    pub status: Option<WalletStatusIn>,
    /// Keys to set (with a value) or remove (with `null`); the others stay.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<MetadataPatchIn>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMutationIn {
    pub kind: PostKind,
    /// Positive for top-ups and debits; signed, non-zero for adjustments.
    #[schema(minimum = -1_000_000_000_000_000_i64, maximum = 1_000_000_000_000_000_i64)]
    pub amount: i64,
    #[schema(value_type = Option<ReferenceInput>)]
    pub reference: Option<ReferenceIn>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_at: Option<WireTime>,
    /// A credit's grant expires then (credits only); never when omitted.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<WireTime>,
    /// A credit's grant is spent before those of higher priority: 0 to 100, 50 when
    /// omitted (credits only).
    #[schema(minimum = 0, maximum = 100)]
    pub priority: Option<u8>,
    /// `paid` (the default), `granted`, or a name of your own (1 to 40 characters of
    /// `a-z`, `0-9`, `_`, `-`, `.`): at equal priority and expiry, `granted` is spent
    /// first and `paid` last (credits only).
    #[schema(min_length = 1, max_length = 40)]
    pub category: Option<String>,
    /// The client's own labels (see `Metadata`).
    #[schema(value_type = Option<MetadataOut>)]
    pub metadata: Option<MetadataIn>,
}

/// One item of a batch.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItemIn {
    #[schema(value_type = String, min_length = 1, max_length = 64)]
    pub wallet_id: Id<WalletId>,
    pub kind: PostKind,
    #[schema(minimum = -1_000_000_000_000_000_i64, maximum = 1_000_000_000_000_000_i64)]
    pub amount: i64,
    #[schema(value_type = Option<ReferenceInput>)]
    pub reference: Option<ReferenceIn>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_at: Option<WireTime>,
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255)]
    pub idempotency_key: Option<Id<IdempotencyKey>>,
    /// A credit's grant expires then (credits only); never when omitted.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<WireTime>,
    /// A credit's grant is spent before those of higher priority: 0 to 100, 50 when
    /// omitted (credits only).
    #[schema(minimum = 0, maximum = 100)]
    pub priority: Option<u8>,
    /// `paid` (the default), `granted`, or a name of your own (1 to 40 characters of
    /// `a-z`, `0-9`, `_`, `-`, `.`): at equal priority and expiry, `granted` is spent
    /// first and `paid` last (credits only).
    #[schema(min_length = 1, max_length = 40)]
    pub category: Option<String>,
    /// The client's own labels (see `Metadata`).
    #[schema(value_type = Option<MetadataOut>)]
    pub metadata: Option<MetadataIn>,
}

/// A batch; items are parsed one by one so that a bad item fails alone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    #[schema(value_type = Vec<BatchItemIn>)]
    pub mutations: Vec<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferIn {
    #[schema(value_type = String, min_length = 1, max_length = 64)]
    pub from_wallet_id: Id<WalletId>,
    #[schema(value_type = String, min_length = 1, max_length = 64)]
    pub to_wallet_id: Id<WalletId>,
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub amount: i64,
    #[schema(value_type = Option<ReferenceInput>)]
    pub reference: Option<ReferenceIn>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_at: Option<WireTime>,
    /// The grant the transfer makes in the receiving wallet expires then; never when omitted.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<WireTime>,
    /// The grant is spent before those of higher priority: 0 to 100, 50 when
    /// omitted.
    #[schema(minimum = 0, maximum = 100)]
    pub priority: Option<u8>,
    /// `paid` (the default), `granted`, or a name of your own (1 to 40 characters of
    /// `a-z`, `0-9`, `_`, `-`, `.`): at equal priority and expiry, `granted` is spent
    /// first and `paid` last.
    #[schema(min_length = 1, max_length = 40)]
    pub category: Option<String>,
    /// The client's own labels (see `Metadata`).
    #[schema(value_type = Option<MetadataOut>)]
    pub metadata: Option<MetadataIn>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceHoldIn {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub amount: i64,
    #[schema(value_type = Option<ReferenceInput>)]
    pub reference: Option<ReferenceIn>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<WireTime>,
    /// The client's own labels (see `Metadata`).
    #[schema(value_type = Option<MetadataOut>)]
    pub metadata: Option<MetadataIn>,
}

/// What a reversal may say; all of it optional.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReverseIn {
    /// Take back all of a credit although part of it was spent, leaving the balance
    /// lower (even below its floor). Needs a key with the admin scope.
    pub allow_negative: Option<bool>,
    /// The reversal's reference; `{"type": "reversal"}` when omitted.
    #[schema(value_type = Option<ReferenceInput>)]
    pub reference: Option<ReferenceIn>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitHoldIn {
    /// What to commit; the whole hold when omitted. The rest is released.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub amount: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseHoldIn {}

// ---------------------------------------------------------------------------------
// Answers.

#[derive(Serialize, ToSchema)]
pub struct CustomerOut<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The URL by which the client's system addresses the customer; absent when it
    /// has none.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub link: &'a str,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: WireTime,
}

impl<'a> From<&'a Customer> for CustomerOut<'a> {
    fn from(c: &'a Customer) -> Self {
        Self {
            id: c.id.as_str(),
            name: &c.name,
            link: &c.link,
            created_at: WireTime(c.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WalletOut<'a> {
    pub id: &'a str,
    pub customer_id: &'a str,
    pub unit: &'a str,
    pub scale: u8,
    pub name: &'a str,
    pub product: &'a str,
    /// `active`, `suspended` or `expired`.
    pub status: &'static str,
    /// Null when the wallet has no floor.
    pub floor: Option<i64>,
    /// The highest balance the wallet may reach; null when it has no ceiling.
    pub ceiling_minor: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_from: Option<WireTime>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_until: Option<WireTime>,
    pub balance: i64,
    pub held: i64,
    /// `balance - held - floor`; null when the wallet has no floor.
    pub available: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: WireTime,
    /// When the balance, held or status last changed; `created_at` until then.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: WireTime,
    /// The client's labels, as the wallet was opened with them.
    pub metadata: MetadataOut<'a>,
}

impl<'a> From<&'a Wallet> for WalletOut<'a> {
    fn from(w: &'a Wallet) -> Self {
        Self {
            id: w.id.as_str(),
            customer_id: w.customer.as_str(),
            unit: w.unit.code(),
            scale: w.unit.scale(),
            name: &w.name,
            product: &w.product,
            status: w.status.as_str(),
            floor: match w.floor {
                Floor::Limit(f) => Some(f),
                Floor::Unlimited => None,
            },
            ceiling_minor: w.ceiling,
            valid_from: w.valid_from.map(WireTime),
            valid_until: w.valid_until.map(WireTime),
            balance: w.balance,
            held: w.held,
            available: prepaid_ledger::available(w),
            created_at: WireTime(w.created_at),
            updated_at: WireTime(w.updated_at),
            metadata: MetadataOut(&w.metadata),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TransferOut<'a> {
    #[serde(serialize_with = "display")]
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub from_wallet_id: &'a str,
    pub to_wallet_id: &'a str,
    /// Positive: what moved.
    pub amount: i64,
    pub debit: MutationOut<'a>,
    pub credit: MutationOut<'a>,
}

impl<'a> From<&'a Transfer> for TransferOut<'a> {
    fn from(t: &'a Transfer) -> Self {
        Self {
            id: t.id.0,
            from_wallet_id: t.debit.wallet.as_str(),
            to_wallet_id: t.credit.wallet.as_str(),
            amount: t.credit.amount,
            debit: (&t.debit).into(),
            credit: (&t.credit).into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct HoldOut<'a> {
    #[serde(serialize_with = "display")]
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub wallet_id: &'a str,
    pub customer_id: &'a str,
    pub amount: i64,
    /// Set once the hold is committed.
    pub committed_amount: Option<i64>,
    /// `pending`, `committed`, `released` or `expired`.
    pub status: &'static str,
    pub reference: ReferenceOut<'a>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<WireTime>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: WireTime,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub settled_at: Option<WireTime>,
    /// What a debit hold reserves of each grant of its wallet, in the order it draws
    /// them when committed (kept as placed once settled).
    pub reserved: Vec<DrawOut>,
    /// The client's labels, which the mutation that settles the hold carries too.
    pub metadata: MetadataOut<'a>,
}

impl<'a> From<&'a Hold> for HoldOut<'a> {
    fn from(h: &'a Hold) -> Self {
        Self {
            id: h.id.0,
            wallet_id: h.wallet.as_str(),
            customer_id: h.customer.as_str(),
            amount: h.amount,
            committed_amount: h.committed_amount,
            status: h.status.as_str(),
            reference: (&h.reference).into(),
            expires_at: h.expires_at.map(WireTime),
            created_at: WireTime(h.created_at),
            settled_at: h.settled_at.map(WireTime),
            reserved: DrawOut::list(&h.reserved),
            metadata: MetadataOut(&h.metadata),
        }
    }
}

/// Credits of one origin in a wallet, spent in order of priority, expiry, category
/// and age.
#[derive(Serialize, ToSchema)]
pub struct GrantOut<'a> {
    /// The id of the mutation that made it (its origin).
    #[serde(serialize_with = "display")]
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub wallet_id: &'a str,
    /// What the credit granted.
    pub amount: i64,
    /// What is left to spend.
    pub remaining: i64,
    /// What pending holds reserve of `remaining`.
    pub held: i64,
    pub priority: u8,
    pub category: &'a str,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<WireTime>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: WireTime,
    /// `live` (something left, not expired), `spent` (nothing left) or `expired`
    /// (its expiry has come; what holds reserve of it is still theirs).
    pub status: &'static str,
    /// The labels of the credit that made it.
    pub metadata: MetadataOut<'a>,
}

impl<'a> GrantOut<'a> {
    pub fn new(
        wallet: &'a WalletId,
        g: &'a prepaid_ledger::Grant,
        metadata: &'a Metadata,
        now: Timestamp,
    ) -> Self {
        let status = if g.is_expired(now) {
            "expired"
        } else if g.remaining == 0 {
            "spent"
        } else {
            "live"
        };
        Self {
            id: g.id.0,
            wallet_id: wallet.as_str(),
            amount: g.amount,
            remaining: g.remaining,
            held: g.held,
            priority: g.terms.priority.get(),
            category: g.terms.category.as_str(),
            expires_at: g.terms.expires_at.map(WireTime),
            created_at: WireTime(g.created_at),
            status,
            metadata: MetadataOut(metadata),
        }
    }
}

/// A wallet as it stood at an instant (`GET /v1/wallets/{id}?as_of=`): its balance,
/// held and available then, and the grants live then in the spend order. The other
/// fields are as they are now.
#[derive(Serialize, ToSchema)]
pub struct WalletAsOfOut<'a> {
    #[serde(flatten)]
    pub wallet: WalletOut<'a>,
    #[schema(value_type = String, format = DateTime)]
    pub as_of: WireTime,
    pub grants: Vec<GrantOut<'a>>,
}

/// A page of a wallet's grants, oldest first.
#[derive(Serialize, ToSchema)]
pub struct GrantPage<'a> {
    pub items: Vec<GrantOut<'a>>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A hold after commit or release, with the mutation that settled it.
#[derive(Serialize, ToSchema)]
pub struct HoldSettledOut<'a> {
    pub hold: HoldOut<'a>,
    pub mutation: Option<MutationOut<'a>>,
}

/// The names of the scopes a key was given.
pub fn scope_names(s: Scopes) -> Vec<&'static str> {
    let mut names = Vec::with_capacity(3);
    if s.read {
        names.push("read");
    }
    if s.write {
        names.push("write");
    }
    if s.admin {
        names.push("admin");
    }
    names
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyOut<'a> {
    pub name: &'a str,
    pub scopes: Vec<&'static str>,
    pub customer_id: Option<&'a str>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: WireTime,
    /// Shown once, in the answer that created the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<&'a str>,
}

impl<'a> ApiKeyOut<'a> {
    pub fn new(k: &'a ApiKey, secret: Option<&'a str>) -> Self {
        Self {
            name: k.name.as_str(),
            scopes: scope_names(k.scopes),
            customer_id: k.customer.as_ref().map(CustomerId::as_str),
            created_at: WireTime(k.created_at),
            secret,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantOut<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub admin_key: ApiKeyOut<'a>,
}

macro_rules! page {
    ($name:ident, $item:ident) => {
        #[derive(Serialize, ToSchema)]
        pub struct $name<'a> {
            pub items: Vec<$item<'a>>,
            /// Pass as `?after=` for the next page; null on the last page.
            pub next: Option<String>,
        }
    };
}
page!(CustomerPage, CustomerOut);
page!(WalletPage, WalletOut);
page!(MutationPage, MutationOut);

/// The result of one batch item: `{"status": 201, "mutation"}` or
/// `{"status": 4xx, "error"}`.
#[derive(Serialize, ToSchema)]
pub struct BatchResultOut<'a> {
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutation: Option<MutationOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ProblemOut>)]
    pub error: Option<&'a prepaid_edge::problem::Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchOut<'a> {
    pub results: Vec<BatchResultOut<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_from_string_or_object() {
        let r: ReferenceIn = serde_json::from_str("\"order 7\"").unwrap();
        assert_eq!(r.0.text(), Some("order 7"));
        let r: ReferenceIn =
            serde_json::from_str(r#"{"type": "payment", "link": "https://x"}"#).unwrap();
        assert_eq!(
            (r.0.kind(), r.0.link()),
            (Some("payment"), Some("https://x"))
        );
        let e = serde_json::from_str::<ReferenceIn>(r#"{"what": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"));
        let long = format!("\"{}\"", "x".repeat(REFERENCE_LEN_MAX + 1));
        assert!(serde_json::from_str::<ReferenceIn>(&long).is_err());
        let at = format!("\"{}\"", "x".repeat(REFERENCE_LEN_MAX));
        assert!(serde_json::from_str::<ReferenceIn>(&at).is_ok());
    }

    #[test]
    fn ids_parse_at_the_edge() {
        assert!(serde_json::from_str::<Id<WalletId>>("\"a/b\"").is_err());
        assert!(serde_json::from_str::<Id<WalletId>>("\"w-1\"").is_ok());
        assert!(
            serde_json::from_str::<Name>(&format!(
                "\"{}\"",
                "n".repeat(prepaid_ledger::NAME_LEN_MAX + 1)
            ))
            .is_err()
        );
    }
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The tenant's settings.
#[derive(Serialize, ToSchema)]
pub struct SettingsOut {
    /// Seconds after which a top-up that names no expiry expires; `null`: never.
    pub default_validity_seconds: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSettingsIn {
    /// 1 to 3,155,760,000 seconds (100 years), or `null` to clear; absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 3_155_760_000_i64)]
    pub default_validity_seconds: Option<Option<i64>>,
}
