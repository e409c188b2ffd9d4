//! Commands (what a client asks the ledger to do) and their outcomes.

use crate::{
    Amount, ApiKey, AutoTopUpRule, Customer, CustomerId, GrantTerms, Hold, HoldId, HoldStatus,
    IdempotencyKey, JobQueue, Metadata, MetadataPatch, Mutation, MutationId, MutationKind,
    NewApiKey, NewWallet, RecordKey, RecordKind, Reference, SettingKey, TenantId, Timestamp,
    Transfer, TransferId, Wallet, WalletId, WalletStatus,
};

/// A digest of a request as the client sent it, made by the dialect that parsed it.
/// Two requests with one idempotency key are "the same request" when their fingerprints
/// are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// One client operation of one tenant, as it travels to the engine: a command, and
/// the steps linked with it.
///
/// The linked steps (`before`, then `command`, then `after`) are one unit: they are
/// carried out in order in one transaction, and a refusal of any of them refuses the
/// whole request with that refusal, leaving no trace of the others. The outcome is
/// `command`'s; the idempotency key covers the whole unit, so a replay answers
/// `command`'s first outcome and carries out no step again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub tenant: TenantId,
    /// Set when the caller may only see and change this customer's data.
    pub customer_only: Option<CustomerId>,
    pub idempotency: Option<(IdempotencyKey, Fingerprint)>,
    /// Steps carried out before `command` (a customer the command's wallet needs).
    pub before: Vec<Step>,
    pub command: Command,
    /// Steps carried out after `command` (the client's extra fields as a record, an
    /// event in the outbox, the top-up of a new wallet).
    pub after: Vec<Step>,
}

impl Request {
    /// A request of `command` alone, with no idempotency key, for any customer.
    pub fn new(tenant: TenantId, command: Command) -> Self {
        Self {
            tenant,
            customer_only: None,
            idempotency: None,
            before: Vec::new(),
            command,
            after: Vec::new(),
        }
    }

    /// Whether steps are linked with the command.
    pub fn is_linked(&self) -> bool {
        !self.before.is_empty() || !self.after.is_empty()
    }
}

/// One step of a linked request. Records and jobs are the store's plain rows beside
/// the ledger (a dialect's own durable values, and background work); the ledger gives
/// them no meaning, but writing them in the same unit as the money they describe is
/// what keeps a record, an event or a sequence number from outliving (or missing) its
/// mutation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A ledger command; its own outcome is not answered (only a refusal is).
    Command(Command),
    /// Compare-and-set of a record: `expected_version: None` inserts it only if it is
    /// absent, `Some(v)` replaces it only if its version is `v`; otherwise the request
    /// is refused with [`Refusal::RecordConflict`].
    PutRecord {
        kind: RecordKind,
        key: RecordKey,
        value: String,
        expected_version: Option<i64>,
    },
    /// Deletes a record if there is one.
    DeleteRecord { kind: RecordKind, key: RecordKey },
    /// Queues a job unless the tenant's queue holds one of that id already; due at
    /// `due_at`, or at once when `None`.
    EnqueueJob {
        queue: JobQueue,
        id: RecordKey,
        payload: String,
        due_at: Option<Timestamp>,
    },
}

/// Everything that changes the ledger. Ids of new entities are chosen by the caller
/// before the command is sent, which keeps the core deterministic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Create a tenant with its first admin key (only the operator tenant may).
    CreateTenant {
        tenant: TenantId,
        name: String,
        admin_key: NewApiKey,
    },
    CreateApiKey {
        key: NewApiKey,
    },
    CreateCustomer {
        id: CustomerId,
        name: String,
        /// See [`Customer::link`]; empty when there is none.
        link: String,
    },
    /// Like `CreateCustomer`, but a customer that exists already is answered as it is
    /// (for operations that make their customer on first use), except that one without
    /// a link takes `link` (a customer made natively, then named by a client that
    /// addresses it by URL).
    EnsureCustomer {
        id: CustomerId,
        name: String,
        link: String,
    },
    /// Sets the link of an existing customer (the URL by which the client's system
    /// addresses it); an empty one removes it.
    SetCustomerLink {
        id: CustomerId,
        link: String,
    },
    CreateWallet {
        wallet: NewWallet,
    },
    /// Like `CreateWallet`, but a wallet of that id and customer that exists already is
    /// answered as it is (for operations that make their wallet on first use); one of
    /// another customer is refused `WalletExists`.
    EnsureWallet {
        wallet: NewWallet,
    },
    SetWalletStatus {
        wallet: WalletId,
        status: WalletStatus,
    },
    /// Sets and removes keys of a wallet's metadata; refused with
    /// [`Refusal::MetadataExceeded`] when the result has too many pairs.
    PatchWalletMetadata {
        wallet: WalletId,
        patch: MetadataPatch,
    },
    /// A top-up, debit or adjustment of one wallet against its system account.
    Post {
        id: MutationId,
        wallet: WalletId,
        kind: MutationKind,
        /// Positive for top-ups and debits (the kind gives the sign); signed for
        /// adjustments.
        amount: Amount,
        reference: Reference,
        occurred_at: Option<Timestamp>,
        /// The terms of the grant a credit makes (a top-up, an upward adjustment);
        /// a debit ignores them.
        terms: GrantTerms,
        metadata: Metadata,
    },
    Transfer {
        id: TransferId,
        debit_id: MutationId,
        credit_id: MutationId,
        from: WalletId,
        to: WalletId,
        amount: Amount,
        reference: Reference,
        occurred_at: Option<Timestamp>,
        /// The terms of the grant the transfer makes in `to`.
        terms: GrantTerms,
        /// The labels of both legs.
        metadata: Metadata,
    },
    PlaceHold {
        id: HoldId,
        wallet: WalletId,
        amount: Amount,
        reference: Reference,
        expires_at: Option<Timestamp>,
        metadata: Metadata,
    },
    /// Sets aside room under a wallet's ceiling for a credit on its way in (see
    /// [`crate::HoldDirection::Credit`]): a later credit that would not fit together
    /// with it is refused, and committing it credits the wallet.
    PlaceCreditHold {
        id: HoldId,
        wallet: WalletId,
        amount: Amount,
        reference: Reference,
        expires_at: Option<Timestamp>,
        metadata: Metadata,
    },
    /// Commit `amount` (all of the hold when `None`); the rest is released. The
    /// mutation carries `reference`, or the hold's own when `None` (a payment's
    /// transaction id is often known only when the money is taken).
    CommitHold {
        hold: HoldId,
        amount: Option<Amount>,
        mutation_id: MutationId,
        reference: Option<Reference>,
    },
    ReleaseHold {
        hold: HoldId,
        mutation_id: MutationId,
    },
    /// Posts the opposite of mutation `mutation`, once: `id` must be
    /// [`crate::reversal_id`] of it, and a reversal that exists is answered as it is.
    /// A debit's reversal gives each grant back what it drew; a credit's takes back
    /// what its grant has left, or (with `allow_negative`) the rest from the balance.
    Reverse {
        id: MutationId,
        mutation: MutationId,
        allow_negative: bool,
        reference: Reference,
    },
    /// Moves no money and changes no ledger row: the command of a request that only
    /// writes records and queues jobs, through its linked steps, as one unit.
    Records,
    /// Sets a wallet's automatic top-up rule, or removes it (`None`). A rule that
    /// replaces another keeps where its top-ups stand (the one in flight, the last
    /// decline, the hour's count). Answered [`Done::Records`].
    SetAutoTopUp {
        wallet: WalletId,
        rule: Option<AutoTopUpRule>,
    },
    /// Sets a wallet's low-balance alert, or removes it (`None`). Answered
    /// [`Done::Records`].
    SetLowBalanceAlert {
        wallet: WalletId,
        alert: Option<crate::LowBalanceAlert>,
    },
    /// Settles automatic top-up `n` of `wallet` (of `amount`), which the store
    /// started: [`AutoTopUpOutcome::Credited`] tops the wallet up by the amount as a
    /// grant of that category (mutation `id`, answered [`Done::Mutation`]); the
    /// others record a failure (answered [`Done::Records`]). Either way the top-up is
    /// no longer in flight.
    SettleAutoTopUp {
        wallet: WalletId,
        n: u64,
        id: MutationId,
        amount: Amount,
        outcome: crate::AutoTopUpOutcome,
    },
    /// Sets a per-tenant setting to `value` (at most
    /// [`crate::SETTING_VALUE_LEN_MAX`] bytes), creating it or replacing its value.
    PutSetting {
        key: SettingKey,
        value: String,
    },
}

impl Command {
    /// Whether a customer-restricted key may send this command at all (it never may
    /// create tenants or keys, or change the tenant's settings; the per-customer check
    /// of the rest is the store's).
    pub fn allowed_for_customer_key(&self) -> bool {
        !matches!(
            self,
            Command::CreateTenant { .. }
                | Command::CreateApiKey { .. }
                | Command::PutSetting { .. }
                | Command::SettleAutoTopUp { .. }
        )
    }
}

/// A command that was carried out.
// A `Done` lives only from the store back to the dialect that answers it, moved once;
// boxing the large transfer variant would cost an allocation per transfer for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    Tenant {
        tenant: TenantId,
        admin_key: ApiKey,
    },
    ApiKey(ApiKey),
    Customer(Customer),
    Wallet(Wallet),
    Mutation(Mutation),
    Transfer(Transfer),
    Hold {
        hold: Hold,
        mutation: Option<Mutation>,
    },
    /// A setting was put; `created` when the tenant had no value for it before.
    Setting {
        created: bool,
    },
    /// A [`Command::Records`] request's steps were carried out.
    Records,
}

/// The outcome of one command. A refused command changed nothing; in particular its
/// idempotency key was not recorded, so it may be retried.
// Large for the same reason as `Done`: it is moved once and never stored.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done { done: Done, replayed: bool },
    Refused(Refusal),
}

/// Why the ledger refused a command. These are business outcomes, not failures.
///
/// Deliberately exhaustive: every dialect maps each refusal to its own error shape
/// with a `match` that has no catch-all arm, so a new refusal does not compile until
/// every dialect says how it answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The debit, debit hold or transfer exceeds what the wallet has available.
    InsufficientFunds {
        available: i64,
        requested: i64,
    },
    /// The result would pass [`crate::BALANCE_ABS_MAX`] on some account.
    BalanceOverflow,
    /// The credit (top-up, upward adjustment, incoming transfer, credit hold) would take
    /// the wallet above its ceiling; `room` is what it may still receive (ceiling less
    /// balance less the room pending credit holds set aside).
    CeilingExceeded {
        room: i64,
        requested: i64,
    },
    TenantNotFound,
    CustomerNotFound,
    WalletNotFound,
    HoldNotFound,
    TenantExists,
    ApiKeyExists,
    CustomerExists,
    WalletExists,
    MutationExists,
    HoldExists,
    /// The wallet is suspended or expired and the command needs an active one.
    WalletNotActive {
        status: WalletStatus,
    },
    /// Before the wallet's `valid_from` or at/after its `valid_until`.
    OutsideValidity,
    UnitMismatch,
    SameWallet,
    HoldNotPending {
        status: HoldStatus,
    },
    HoldExpired,
    CommitExceedsHold {
        held: i64,
        requested: i64,
    },
    /// The debit would draw from more than `draws_max` grants
    /// ([`crate::DRAWS_MAX`]).
    DrawsExceeded {
        draws_max: usize,
    },
    /// The credit would give the wallet more than `grants_max` live grants
    /// ([`crate::LIVE_GRANTS_MAX`]).
    GrantsExceeded {
        grants_max: usize,
    },
    /// No mutation has this id (asked to reverse it).
    MutationNotFound,
    /// The mutation is of a kind that is not reversed (a transfer leg, a hold release,
    /// an expiry, a reversal).
    NotReversible,
    /// A credit's grant has only `reversible` left to take back; more needs
    /// `allow_negative`.
    ReversalExceedsRemaining {
        reversible: i64,
    },
    /// The change would leave the entity with `pairs` metadata pairs, more than
    /// `pairs_max` ([`crate::METADATA_PAIRS_MAX`]).
    MetadataExceeded {
        pairs: usize,
        pairs_max: usize,
    },
    /// The idempotency key was used before with a different request.
    IdempotencyConflict,
    /// The caller's key may not do this (e.g. tenants only from the operator tenant).
    Forbidden,
    /// A linked record step's compare-and-set found another version (or a record
    /// where it expected none).
    RecordConflict,
    /// The store could not carry out this one command (a corrupt row, a bug) and rolled
    /// it back without affecting its batch-mates. Not a business outcome: serve it as an
    /// internal error; the store has logged the cause.
    Internal,
}

impl Refusal {
    /// A stable, dialect-neutral name of the refusal, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::BalanceOverflow => "balance_overflow",
            Self::CeilingExceeded { .. } => "ceiling_exceeded",
            Self::TenantNotFound => "tenant_not_found",
            Self::CustomerNotFound => "customer_not_found",
            Self::WalletNotFound => "wallet_not_found",
            Self::HoldNotFound => "hold_not_found",
            Self::TenantExists => "tenant_exists",
            Self::ApiKeyExists => "api_key_exists",
            Self::CustomerExists => "customer_exists",
            Self::WalletExists => "wallet_exists",
            Self::MutationExists => "mutation_exists",
            Self::HoldExists => "hold_exists",
            Self::WalletNotActive { .. } => "wallet_not_active",
            Self::OutsideValidity => "outside_validity",
            Self::UnitMismatch => "unit_mismatch",
            Self::SameWallet => "same_wallet",
            Self::HoldNotPending { .. } => "hold_not_pending",
            Self::HoldExpired => "hold_expired",
            Self::CommitExceedsHold { .. } => "commit_exceeds_hold",
            Self::DrawsExceeded { .. } => "draws_exceeded",
            Self::GrantsExceeded { .. } => "grants_exceeded",
            Self::MutationNotFound => "mutation_not_found",
            Self::NotReversible => "not_reversible",
            Self::ReversalExceedsRemaining { .. } => "reversal_exceeds_remaining",
            Self::MetadataExceeded { .. } => "metadata_exceeded",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::Forbidden => "forbidden",
            Self::RecordConflict => "record_conflict",
            Self::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_keys_may_not_manage_the_tenant() {
        let setting = Command::PutSetting {
            key: SettingKey::parse("topdesk.service-user").unwrap(),
            value: String::new(),
        };
        assert!(!setting.allowed_for_customer_key());
        let customer = Command::CreateCustomer {
            id: CustomerId::parse("c").unwrap(),
            name: String::new(),
            link: String::new(),
        };
        assert!(customer.allowed_for_customer_key());
    }
}
