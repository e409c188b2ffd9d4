//! The prepaid ledger core: the types and the rules of money.
//!
//! This crate does no IO, spawns nothing and knows no wire format. Every function is
//! synchronous and deterministic: the caller passes in the clock (`Timestamp`) and the
//! ids of new entities, so the same inputs always give the same outputs. Business
//! outcomes (insufficient funds, an unknown hold, an expired wallet) are values of
//! [`Refusal`], never panics or strings; a broken precondition that only a bug in the
//! caller can cause is an assertion.
//!
//! The ledger is double-entry: every mutation moves an amount between a customer wallet
//! and a counter-account (a system account of the same unit, or another wallet in a
//! transfer), so the balances of all accounts of one unit always sum to zero.

mod alerts;
mod amount;
mod auto_topup;
mod command;
mod credits;
mod currency;
mod grants;
mod history;
mod ids;
mod metadata;
mod model;
mod records;
mod reversal;
mod rules;
mod time;

pub use alerts::{
    LOW_BALANCE_THRESHOLDS_MAX, LowBalanceAlert, LowBalanceAlertError, alert_level,
    low_balance_crossings,
};
pub use amount::{AMOUNT_MAX, Amount, AmountError, BALANCE_ABS_MAX};
pub use auto_topup::{
    AUTO_TOPUP_BACKOFF_MS_MAX, AUTO_TOPUP_PER_HOUR_MAX, AUTO_TOPUP_WINDOW_MS, AutoTopUpError,
    AutoTopUpFunding, AutoTopUpMethod, AutoTopUpOutcome, AutoTopUpRule, AutoTopUpStart,
    AutoTopUpState, PAYMENT_METHOD_REF_LEN_MAX, auto_topup_settled, auto_topup_start,
};
pub use command::{Command, Done, Fingerprint, Outcome, Refusal, Request, Step};
pub use credits::{CREDIT_SCALE, CREDIT_UNIT_CODE, credits_ceiling};
pub use currency::{default_scale, is_currency};
pub use grants::{
    CATEGORY_LEN_MAX, CategoryError, CommitDraws, DEFAULT_VALIDITY_SECONDS_MAX,
    DEFAULT_VALIDITY_SETTING, DRAWS_MAX, Draw, DrawPlan, Grant, GrantCategory, GrantTerms,
    LIVE_GRANTS_MAX, PRIORITY_DEFAULT, PRIORITY_MAX, Priority, commit_draws, debt,
    default_validity_seconds, plan_draws, spend_order, split_credit,
};
pub use history::{AS_OF_MUTATIONS_MAX, AsOf, as_of};
pub use ids::{
    ApiKeyName, CustomerId, HoldId, ID_LEN_MAX, IDEMPOTENCY_KEY_LEN_MAX, IdError, IdempotencyKey,
    MutationId, SettingKey, TenantId, TransferId, WalletId,
};
pub use metadata::{
    METADATA_KEY_LEN_MAX, METADATA_PAIRS_MAX, METADATA_PATCH_KEYS_MAX, METADATA_VALUE_LEN_MAX,
    Metadata, MetadataError, MetadataPatch, metadata_key_is_valid,
};
pub use model::{
    ApiKey, Customer, Floor, Hold, HoldDirection, HoldStatus, LINK_LEN_MAX, Mutation, MutationKind,
    NAME_LEN_MAX, NewApiKey, NewWallet, REFERENCE_LEN_MAX, Reference, ReferenceError,
    ReferenceField, ReferencePart, SETTING_VALUE_LEN_MAX, Scopes, SystemAccount, TextError,
    Transfer, Unit, UnitError, Wallet, WalletStatus, bounded_text,
};
pub use records::{
    JobQueue, RECORD_KEY_LEN_MAX, RECORD_KIND_LEN_MAX, RECORD_VALUE_BYTES_MAX, RecordKey,
    RecordKeyError, RecordKind, kind_is_valid, value_is_valid,
};
pub use reversal::{ReversalPlan, plan_reversal, reversal_id};
pub use rules::{
    CommitPlan, Posting, Reserved, TransferPlan, WalletExpiry, add_to_balance, available,
    commit_hold, expire_wallet, place_credit_hold, place_hold, post, release_hold, transfer,
};
pub use time::Timestamp;
