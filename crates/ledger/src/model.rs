//! The ledger's entities.

use crate::{
    Amount, ApiKeyName, CustomerId, Draw, HoldId, Metadata, MutationId, TenantId, Timestamp,
    TransferId, WalletId,
};
use std::fmt;

/// The longest free-text name (customer, wallet, product, tenant), in bytes.
pub const NAME_LEN_MAX: usize = 255;
/// The longest reference type, text or link the native API takes, in bytes.
pub const REFERENCE_LEN_MAX: usize = 255;
/// The longest part of any reference the ledger keeps, in bytes: the most a dialect
/// takes, TOPdesk's 255 characters of up to four bytes each.
pub const REFERENCE_PART_BYTES_MAX: usize = 1020;
/// The longest customer link (the URL by which the client's system addresses the
/// customer), in bytes.
pub const LINK_LEN_MAX: usize = 1024;
/// The longest value of a per-tenant setting, in bytes.
pub const SETTING_VALUE_LEN_MAX: usize = 4096;
/// The longest unit code, in bytes.
pub const UNIT_CODE_LEN_MAX: usize = 16;
/// The largest unit scale (decimal places of the unit's smallest step).
pub const UNIT_SCALE_MAX: u8 = 18;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    #[error("must be at most {max} bytes long, got {len}")]
    TooLong { len: usize, max: usize },
    #[error("must not contain control characters")]
    Control,
}

/// Checks free text: bounded length, no control characters.
pub fn bounded_text(s: &str, max: usize) -> Result<String, TextError> {
    if s.len() > max {
        return Err(TextError::TooLong { len: s.len(), max });
    }
    if s.chars().any(char::is_control) {
        return Err(TextError::Control);
    }
    Ok(s.to_owned())
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    #[error("unit code must be 1 to {UNIT_CODE_LEN_MAX} characters of A-Z, a-z, 0-9, '_' or '-'")]
    BadCode,
    #[error("unit scale must be at most {UNIT_SCALE_MAX}")]
    BadScale,
}

/// What a wallet counts: a code (`EUR`, `MIN`, `CREDIT`, `SMS`) and a scale, the number
/// of decimal places of one step. Euros in cents are `EUR`/2, minutes are `MIN`/0,
/// Talkdesk credits are `CREDIT`/4 (x10000).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Unit {
    code: String,
    scale: u8,
}

impl Unit {
    pub fn new(code: &str, scale: u8) -> Result<Self, UnitError> {
        let ok = !code.is_empty()
            && code.len() <= UNIT_CODE_LEN_MAX
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(UnitError::BadCode);
        }
        if scale > UNIT_SCALE_MAX {
            return Err(UnitError::BadScale);
        }
        Ok(Self {
            code: code.to_owned(),
            scale,
        })
    }
    pub fn code(&self) -> &str {
        &self.code
    }
    pub fn scale(&self) -> u8 {
        self.scale
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.code, self.scale)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    pub tenant: TenantId,
    pub id: CustomerId,
    pub name: String,
    /// The URL by which the client's system addresses the customer (TOPdesk's
    /// `_links.for.href`), at most [`LINK_LEN_MAX`] bytes; empty when there is none.
    pub link: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalletStatus {
    Active,
    Suspended,
    Expired,
}

impl WalletStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// How far below zero a wallet's available amount may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Floor {
    /// The balance (less holds) may go down to this value, which is zero or negative.
    Limit(i64),
    /// No floor: the wallet may go negative without bound (post-paid style).
    Unlimited,
}

impl Floor {
    pub const ZERO: Floor = Floor::Limit(0);

    /// A floor of `limit`, which must be zero or negative and within the amount bound.
    pub fn limit(limit: i64) -> Option<Self> {
        (-crate::AMOUNT_MAX..=0)
            .contains(&limit)
            .then_some(Floor::Limit(limit))
    }
}

/// The fields a client gives to open a wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWallet {
    pub id: WalletId,
    pub customer: CustomerId,
    pub unit: Unit,
    pub name: String,
    pub product: String,
    pub floor: Floor,
    /// The highest balance the wallet may reach; `None` when there is no limit. A
    /// ceiling is from zero to [`crate::BALANCE_ABS_MAX`] ([`NewWallet::ceiling_is_valid`]).
    pub ceiling: Option<i64>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    /// The client's labels of the wallet.
    pub metadata: Metadata,
}

impl NewWallet {
    /// Whether `ceiling` is one a wallet may have: zero to [`crate::BALANCE_ABS_MAX`].
    /// The edge checks it; a wallet's floor is never above zero, so a valid ceiling is
    /// never below the floor.
    pub fn ceiling_is_valid(ceiling: i64) -> bool {
        (0..=crate::BALANCE_ABS_MAX).contains(&ceiling)
    }
}

/// A customer's balance in one unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wallet {
    pub tenant: TenantId,
    pub id: WalletId,
    pub customer: CustomerId,
    pub unit: Unit,
    pub name: String,
    pub product: String,
    pub status: WalletStatus,
    pub floor: Floor,
    /// The highest balance a credit may take the wallet to; `None` when there is no
    /// limit. Debits and corrections downwards are never held to it.
    pub ceiling: Option<i64>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    /// The sum of all the wallet's mutations.
    pub balance: i64,
    /// The sum of the wallet's pending debit holds: spending set aside.
    pub held: i64,
    /// The sum of the wallet's pending credit holds: room under the ceiling set aside
    /// for credits on their way in (a payment the payer has not finished). Every credit
    /// must fit under the ceiling together with it.
    pub incoming: i64,
    pub created_at: Timestamp,
    /// When the balance, held, incoming or status last changed; the creation time until
    /// then.
    pub updated_at: Timestamp,
    /// The client's labels of the wallet, as it was opened with them.
    pub metadata: Metadata,
}

impl Wallet {
    /// A fresh wallet with nothing in it.
    pub fn open(tenant: TenantId, new: NewWallet, now: Timestamp) -> Self {
        // A wallet counted in credits never passes the balance whose credits fit i64
        // (see `credits`).
        let ceiling = match (new.ceiling, crate::credits_ceiling(&new.unit)) {
            (Some(c), Some(bound)) => Some(c.min(bound)),
            (None, bound) => bound,
            (c, None) => c,
        };
        Self {
            tenant,
            id: new.id,
            customer: new.customer,
            unit: new.unit,
            name: new.name,
            product: new.product,
            status: WalletStatus::Active,
            floor: new.floor,
            ceiling,
            valid_from: new.valid_from,
            valid_until: new.valid_until,
            balance: 0,
            held: 0,
            incoming: 0,
            created_at: now,
            updated_at: now,
            metadata: new.metadata,
        }
    }
}

/// The counter-accounts of the double-entry ledger, one of each per tenant and unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SystemAccount {
    /// Where top-ups come from: its balance is minus everything ever sold.
    World,
    /// Where debits and committed holds go.
    Revenue,
    /// The other side of manual corrections.
    Adjustment,
    /// Where the remaining balance of an expired wallet goes.
    Expiry,
}

impl SystemAccount {
    pub const ALL: [SystemAccount; 4] =
        [Self::World, Self::Revenue, Self::Adjustment, Self::Expiry];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::World => "world",
            Self::Revenue => "revenue",
            Self::Adjustment => "adjustment",
            Self::Expiry => "expiry",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MutationKind {
    TopUp,
    Debit,
    Adjustment,
    TransferOut,
    TransferIn,
    HoldCommit,
    HoldRelease,
    Expiry,
    /// The opposite of an earlier mutation ([`Mutation::reverses`]), against the same
    /// counter-account.
    Reversal,
}

impl MutationKind {
    pub const ALL: [MutationKind; 9] = [
        Self::TopUp,
        Self::Debit,
        Self::Adjustment,
        Self::TransferOut,
        Self::TransferIn,
        Self::HoldCommit,
        Self::HoldRelease,
        Self::Expiry,
        Self::Reversal,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "top_up",
            Self::Debit => "debit",
            Self::Adjustment => "adjustment",
            Self::TransferOut => "transfer_out",
            Self::TransferIn => "transfer_in",
            Self::HoldCommit => "hold_commit",
            Self::HoldRelease => "hold_release",
            Self::Expiry => "expiry",
            Self::Reversal => "reversal",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The system account on the other side, or `None` for a transfer leg (whose other
    /// side is a wallet) and a reversal (whose other side is its original's).
    pub fn counter_account(self) -> Option<SystemAccount> {
        match self {
            Self::TopUp => Some(SystemAccount::World),
            Self::Debit | Self::HoldCommit | Self::HoldRelease => Some(SystemAccount::Revenue),
            Self::Adjustment => Some(SystemAccount::Adjustment),
            Self::Expiry => Some(SystemAccount::Expiry),
            Self::TransferOut | Self::TransferIn | Self::Reversal => None,
        }
    }
}

/// One part of a [`Reference`]: 1 to [`REFERENCE_PART_BYTES_MAX`] bytes without
/// control characters (each dialect bounds what it takes, often more tightly). An absent part is no part at all, never an empty one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReferencePart(String);

impl ReferencePart {
    /// The part `s`, or `None` for the empty string (an absent part).
    pub fn parse(s: &str) -> Result<Option<Self>, TextError> {
        let text = bounded_text(s, REFERENCE_PART_BYTES_MAX)?;
        Ok((!text.is_empty()).then_some(Self(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which part of a reference a [`ReferenceError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceField {
    Kind,
    Text,
    Link,
}

impl ReferenceField {
    /// The name clients know the part by (`type`, `text`, `link`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kind => "type",
            Self::Text => "text",
            Self::Link => "link",
        }
    }
}

/// Why three strings are not a reference: which part, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the reference {} {error}", field.as_str())]
pub struct ReferenceError {
    pub field: ReferenceField,
    pub error: TextError,
}

/// Why a mutation happened, in the words of the system that caused it: a type
/// (`EXTERNAL_SYSTEM`, `INCIDENT`, `payment`...), free text and a link, each of which
/// may be absent. Made only by [`Reference::new`], so every part is valid.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Reference {
    kind: Option<ReferencePart>,
    text: Option<ReferencePart>,
    link: Option<ReferencePart>,
}

impl Reference {
    /// The reference of `kind`, `text` and `link`; an empty string is an absent part.
    pub fn new(kind: &str, text: &str, link: &str) -> Result<Self, ReferenceError> {
        let part =
            |field, s| ReferencePart::parse(s).map_err(|error| ReferenceError { field, error });
        Ok(Self {
            kind: part(ReferenceField::Kind, kind)?,
            text: part(ReferenceField::Text, text)?,
            link: part(ReferenceField::Link, link)?,
        })
    }

    /// A reference whose parts are the code's own constants and numbers, which are
    /// valid; one that is not is a bug.
    pub fn known(kind: &str, text: &str, link: &str) -> Self {
        match Self::new(kind, text, link) {
            Ok(reference) => reference,
            Err(e) => panic!("a reference made by the code is invalid: {e}"),
        }
    }

    pub fn kind(&self) -> Option<&str> {
        self.kind.as_ref().map(ReferencePart::as_str)
    }

    pub fn text(&self) -> Option<&str> {
        self.text.as_ref().map(ReferencePart::as_str)
    }

    pub fn link(&self) -> Option<&str> {
        self.link.as_ref().map(ReferencePart::as_str)
    }

    /// The three parts as text, an absent one empty: how stores keep them and how
    /// wire formats that always show each part render one that is absent.
    pub fn parts(&self) -> (&str, &str, &str) {
        (
            self.kind().unwrap_or_default(),
            self.text().unwrap_or_default(),
            self.link().unwrap_or_default(),
        )
    }
}

/// One immutable change of one wallet's balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mutation {
    pub tenant: TenantId,
    pub id: MutationId,
    pub wallet: WalletId,
    pub customer: CustomerId,
    pub unit: Unit,
    pub kind: MutationKind,
    /// Signed: positive adds to the wallet.
    pub amount: i64,
    pub balance_after: i64,
    pub reference: Reference,
    pub hold: Option<HoldId>,
    pub transfer: Option<TransferId>,
    /// The other wallet of a transfer leg.
    pub counter_wallet: Option<WalletId>,
    /// When it happened in the client's world (defaults to `recorded_at`).
    pub occurred_at: Timestamp,
    /// When the ledger recorded it.
    pub recorded_at: Timestamp,
    /// What it took from each of the wallet's grants (positive), or gave back to them
    /// (negative, a reversal), in order; empty for a credit, which makes the grant
    /// whose id is this mutation's (see [`crate::Grant`]).
    pub drawn: Vec<Draw>,
    /// The mutation a [`MutationKind::Reversal`] reverses.
    pub reverses: Option<MutationId>,
    /// The client's labels of the mutation; a credit's are its grant's too.
    pub metadata: Metadata,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HoldStatus {
    Pending,
    Committed,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Committed,
            Self::Released,
            Self::Expired,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Which way a hold moves money when it is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HoldDirection {
    /// Sets aside available funds; committing debits them (a reservation of spending).
    Debit,
    /// Sets aside room under the wallet's ceiling; committing credits the wallet (a
    /// payment on its way in), so that two payments cannot both count on the same room.
    Credit,
}

impl HoldDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debit => "debit",
            Self::Credit => "credit",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Debit, Self::Credit]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// A reservation: an amount set aside on a wallet, then committed or released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub tenant: TenantId,
    pub id: HoldId,
    pub wallet: WalletId,
    pub customer: CustomerId,
    pub direction: HoldDirection,
    pub amount: i64,
    /// Set once the hold is committed.
    pub committed_amount: Option<i64>,
    pub status: HoldStatus,
    pub reference: Reference,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// When it left `Pending`.
    pub settled_at: Option<Timestamp>,
    /// What a pending debit hold reserves of each grant, in the order it would draw
    /// them; what it reserves beyond them is reserved against the wallet's floor. Kept
    /// as placed once the hold is settled.
    pub reserved: Vec<Draw>,
    /// The client's labels of the hold, which the mutation that settles it carries too.
    pub metadata: Metadata,
}

/// A move of value from one wallet to another of the same unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: TransferId,
    pub debit: Mutation,
    pub credit: Mutation,
}

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Scopes {
    pub read: bool,
    pub write: bool,
    pub admin: bool,
}

impl Scopes {
    pub const ALL: Scopes = Scopes {
        read: true,
        write: true,
        admin: true,
    };
}

/// A key to create. Only the SHA-256 of its secret is ever stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: ApiKeyName,
    pub secret_sha256: [u8; 32],
    pub scopes: Scopes,
    /// When set, the key sees and changes only this customer.
    pub customer: Option<CustomerId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub tenant: TenantId,
    pub name: ApiKeyName,
    pub secret_sha256: [u8; 32],
    pub scopes: Scopes,
    pub customer: Option<CustomerId>,
    pub created_at: Timestamp,
}

/// The amount as the caller gives it to [`crate::post`].
pub(crate) fn signed(kind: MutationKind, amount: Amount) -> i64 {
    match kind {
        MutationKind::Debit | MutationKind::TransferOut | MutationKind::HoldCommit => -amount.get(),
        _ => amount.get(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallets_counted_in_credits_open_with_a_ceiling_their_credits_fit() {
        let open = |unit: Unit, ceiling| {
            let new = NewWallet {
                id: WalletId::parse("w").unwrap(),
                customer: CustomerId::parse("c").unwrap(),
                unit,
                name: String::new(),
                product: String::new(),
                floor: Floor::ZERO,
                ceiling,
                valid_from: None,
                valid_until: None,
                metadata: Metadata::default(),
            };
            Wallet::open(
                TenantId::parse("t").unwrap(),
                new,
                Timestamp::from_micros(0),
            )
            .ceiling
        };
        let credits0 = Unit::new("CREDIT", 0).unwrap();
        let bound = crate::credits_ceiling(&credits0);
        assert_eq!(open(credits0.clone(), None), bound);
        assert_eq!(open(credits0.clone(), Some(5)), Some(5));
        assert_eq!(open(credits0, Some(crate::BALANCE_ABS_MAX)), bound);
        assert_eq!(open(Unit::new("EUR", 2).unwrap(), None), None);
    }

    #[test]
    fn references_keep_absent_parts_absent() {
        let r = Reference::new("payment", "", "https://x").unwrap();
        assert_eq!(
            (r.kind(), r.text(), r.link()),
            (Some("payment"), None, Some("https://x"))
        );
        assert_eq!(r.parts(), ("payment", "", "https://x"));
        assert_eq!(Reference::new("", "", "").unwrap(), Reference::default());
    }

    #[test]
    fn reference_parts_are_bounded_at_the_limit() {
        let at = "é".repeat(REFERENCE_PART_BYTES_MAX / 2);
        assert_eq!(at.len(), REFERENCE_PART_BYTES_MAX);
        assert!(Reference::new("", &at, "").is_ok());
        let over = format!("{at}x");
        assert_eq!(
            Reference::new("", "", &over),
            Err(ReferenceError {
                field: ReferenceField::Link,
                error: TextError::TooLong {
                    len: REFERENCE_PART_BYTES_MAX + 1,
                    max: REFERENCE_PART_BYTES_MAX
                }
            })
        );
        let e = Reference::new("a\nb", "", "").unwrap_err();
        assert_eq!(
            (e.field, e.error.clone()),
            (ReferenceField::Kind, TextError::Control)
        );
        assert_eq!(
            e.to_string(),
            "the reference type must not contain control characters"
        );
    }
}
