//! Rows to ledger values.
//!
//! Decoding checks every value against the ledger's bounds, so that a corrupt row
//! becomes a [`Fail::Corrupt`] instead of a panic or an overflow in a rule function.

use crate::error::Fail;
use prepaid_ledger::{
    AMOUNT_MAX, ApiKey, ApiKeyName, BALANCE_ABS_MAX, Customer, CustomerId, Draw, Fingerprint,
    Floor, Grant, GrantCategory, GrantTerms, Hold, HoldDirection, HoldId, HoldStatus, Metadata,
    Mutation, MutationId, MutationKind, NewWallet, Priority, Reference, Scopes, TenantId,
    Timestamp, TransferId, Unit, Wallet, WalletId, WalletStatus,
};
use prepaid_store::ListedGrant;
use prepaid_store::exec::{Recorded, RecordedResult};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;
use uuid::Uuid;

/// The columns [`wallet`] decodes, in order (the store's shared list).
pub(crate) const WALLET_COLUMNS: &str = prepaid_store::wallet_columns!();
/// The columns [`mutation`] decodes, in order.
pub(crate) const MUTATION_COLUMNS: &str = prepaid_store::mutation_columns!();
/// The columns [`hold`] decodes, in order.
pub(crate) const HOLD_COLUMNS: &str = prepaid_store::hold_columns!();
pub(crate) const GRANT_COLUMNS: &str = prepaid_store::grant_columns!();
/// The columns [`listed_grant`] decodes, in order.
pub(crate) const LISTED_GRANT_COLUMNS: &str = prepaid_store::listed_grant_columns!();
/// The columns [`api_key`] decodes, in order.
pub(crate) const API_KEY_COLUMNS: &str = prepaid_store::api_key_columns!();
/// The columns [`customer`] decodes, in order.
pub(crate) const CUSTOMER_COLUMNS: &str = prepaid_store::customer_columns!();
/// The columns [`recorded`] decodes, in order.
pub(crate) const RECORDED_COLUMNS: &str = "tenant, key, fingerprint, result_kind, result_id, \
     result_id2, wallet_status, wallet_balance, wallet_held, wallet_updated_at";

pub(crate) fn get<'r, T: FromSql<'r>>(row: &'r Row, i: usize) -> Result<T, Fail> {
    row.try_get(i)
        .map_err(|e| Fail::corrupt(format_args!("column {i}: {e}")))
}

fn time(row: &Row, i: usize) -> Result<Timestamp, Fail> {
    Ok(Timestamp::from_micros(get(row, i)?))
}

fn opt_time(row: &Row, i: usize) -> Result<Option<Timestamp>, Fail> {
    Ok(get::<Option<i64>>(row, i)?.map(Timestamp::from_micros))
}

pub(crate) fn tenant_id(s: &str) -> Result<TenantId, Fail> {
    prepaid_store::sql::stored_id("tenant id", s, TenantId::parse).map_err(Fail::corrupt)
}
pub(crate) fn customer_id(s: &str) -> Result<CustomerId, Fail> {
    prepaid_store::sql::stored_id("customer id", s, CustomerId::parse).map_err(Fail::corrupt)
}
pub(crate) fn wallet_id(s: &str) -> Result<WalletId, Fail> {
    prepaid_store::sql::stored_id("wallet id", s, WalletId::parse).map_err(Fail::corrupt)
}
pub(crate) fn api_key_name(s: &str) -> Result<ApiKeyName, Fail> {
    prepaid_store::sql::stored_id("api key name", s, ApiKeyName::parse).map_err(Fail::corrupt)
}
pub(crate) fn setting_key(s: &str) -> Result<prepaid_ledger::SettingKey, Fail> {
    prepaid_store::sql::stored_id("setting key", s, prepaid_ledger::SettingKey::parse)
        .map_err(Fail::corrupt)
}
pub(crate) fn idempotency_key(s: &str) -> Result<prepaid_ledger::IdempotencyKey, Fail> {
    prepaid_store::sql::stored_id("idempotency key", s, prepaid_ledger::IdempotencyKey::parse)
        .map_err(Fail::corrupt)
}

pub(crate) fn unit(code: &str, scale: i16) -> Result<Unit, Fail> {
    let scale =
        u8::try_from(scale).map_err(|_| Fail::corrupt(format_args!("unit scale {scale}")))?;
    Unit::new(code, scale).map_err(|e| Fail::corrupt(format_args!("unit {code:?}/{scale}: {e}")))
}

pub(crate) fn system_account(s: &str) -> Result<prepaid_ledger::SystemAccount, Fail> {
    prepaid_ledger::SystemAccount::parse(s)
        .ok_or_else(|| Fail::corrupt(format_args!("system account {s:?}")))
}

fn balance(v: i64) -> Result<i64, Fail> {
    if v.checked_abs().is_some_and(|a| a <= BALANCE_ABS_MAX) {
        Ok(v)
    } else {
        Err(Fail::corrupt(format_args!("balance {v} out of bounds")))
    }
}

fn reference(row: &Row, at: usize) -> Result<Reference, Fail> {
    let (kind, text, link): (String, String, String) =
        (get(row, at)?, get(row, at + 1)?, get(row, at + 2)?);
    Reference::new(&kind, &text, &link).map_err(|e| Fail::corrupt(format_args!("reference: {e}")))
}

/// Decodes [`WALLET_COLUMNS`].
pub(crate) fn wallet(row: &Row) -> Result<Wallet, Fail> {
    let status: &str = get(row, 7)?;
    let status = WalletStatus::parse(status)
        .ok_or_else(|| Fail::corrupt(format_args!("wallet status {status:?}")))?;
    let floor = match get::<Option<i64>>(row, 8)? {
        None => Floor::Unlimited,
        Some(v) => Floor::limit(v).ok_or_else(|| Fail::corrupt(format_args!("floor {v}")))?,
    };
    let held = balance(get(row, 12)?)?;
    if held < 0 {
        return Err(Fail::corrupt(format_args!("held {held} is negative")));
    }
    let ceiling: Option<i64> = get(row, 15)?;
    if let Some(c) = ceiling.filter(|&c| !NewWallet::ceiling_is_valid(c)) {
        return Err(Fail::corrupt(format_args!("ceiling {c}")));
    }
    let incoming = balance(get(row, 16)?)?;
    if incoming < 0 {
        return Err(Fail::corrupt(format_args!(
            "incoming {incoming} is negative"
        )));
    }
    Ok(Wallet {
        tenant: tenant_id(get(row, 0)?)?,
        id: wallet_id(get(row, 1)?)?,
        customer: customer_id(get(row, 2)?)?,
        unit: unit(get(row, 3)?, get(row, 4)?)?,
        name: get(row, 5)?,
        product: get(row, 6)?,
        status,
        floor,
        ceiling,
        valid_from: opt_time(row, 9)?,
        valid_until: opt_time(row, 10)?,
        balance: balance(get(row, 11)?)?,
        held,
        incoming,
        created_at: time(row, 13)?,
        updated_at: time(row, 14)?,
        metadata: metadata(get(row, 17)?)?,
    })
}

/// Decodes [`MUTATION_COLUMNS`] into the mutation and its cursor.
pub(crate) fn mutation(row: &Row) -> Result<(i64, Mutation), Fail> {
    let kind: &str = get(row, 7)?;
    let kind = MutationKind::parse(kind)
        .ok_or_else(|| Fail::corrupt(format_args!("mutation kind {kind:?}")))?;
    let m = Mutation {
        tenant: tenant_id(get(row, 2)?)?,
        id: MutationId(get(row, 1)?),
        wallet: wallet_id(get(row, 3)?)?,
        customer: customer_id(get(row, 4)?)?,
        unit: unit(get(row, 5)?, get(row, 6)?)?,
        kind,
        amount: get(row, 8)?,
        balance_after: get(row, 9)?,
        reference: reference(row, 10)?,
        hold: get::<Option<Uuid>>(row, 13)?.map(HoldId),
        transfer: get::<Option<Uuid>>(row, 14)?.map(TransferId),
        counter_wallet: get::<Option<&str>>(row, 15)?.map(wallet_id).transpose()?,
        occurred_at: time(row, 16)?,
        recorded_at: time(row, 17)?,
        drawn: draws(get(row, 18)?)?,
        reverses: get::<Option<Uuid>>(row, 19)?.map(MutationId),
        metadata: metadata(get(row, 20)?)?,
    };
    Ok((get(row, 0)?, m))
}

/// Decodes [`HOLD_COLUMNS`].
pub(crate) fn hold(row: &Row) -> Result<Hold, Fail> {
    let status: &str = get(row, 6)?;
    let status = HoldStatus::parse(status)
        .ok_or_else(|| Fail::corrupt(format_args!("hold status {status:?}")))?;
    let amount: i64 = get(row, 4)?;
    if !(1..=AMOUNT_MAX).contains(&amount) {
        return Err(Fail::corrupt(format_args!("hold amount {amount}")));
    }
    let direction: &str = get(row, 13)?;
    let direction = HoldDirection::parse(direction)
        .ok_or_else(|| Fail::corrupt(format_args!("hold direction {direction:?}")))?;
    Ok(Hold {
        tenant: tenant_id(get(row, 0)?)?,
        id: HoldId(get(row, 1)?),
        wallet: wallet_id(get(row, 2)?)?,
        customer: customer_id(get(row, 3)?)?,
        direction,
        amount,
        committed_amount: get(row, 5)?,
        status,
        reference: reference(row, 7)?,
        expires_at: opt_time(row, 10)?,
        created_at: time(row, 11)?,
        settled_at: opt_time(row, 12)?,
        reserved: draws(get(row, 14)?)?,
        metadata: metadata(get(row, 15)?)?,
    })
}

fn draws(text: &str) -> Result<Vec<Draw>, Fail> {
    prepaid_store::sql::decode_draws(text).map_err(Fail::corrupt)
}

fn metadata(text: &str) -> Result<Metadata, Fail> {
    prepaid_store::sql::decode_metadata(text).map_err(Fail::corrupt)
}

/// Decodes [`LISTED_GRANT_COLUMNS`].
pub(crate) fn listed_grant(row: &Row) -> Result<ListedGrant, Fail> {
    Ok(ListedGrant {
        grant: grant(row, 0)?,
        metadata: metadata(get(row, 8)?)?,
    })
}

/// Decodes [`GRANT_COLUMNS`], starting at column `at`.
pub(crate) fn grant(row: &Row, at: usize) -> Result<Grant, Fail> {
    let priority: i16 = get(row, at + 4)?;
    let priority = u8::try_from(priority)
        .ok()
        .and_then(Priority::new)
        .ok_or_else(|| Fail::corrupt(format_args!("grant priority {priority}")))?;
    let category: &str = get(row, at + 5)?;
    let category = GrantCategory::parse(category)
        .map_err(|_| Fail::corrupt(format_args!("grant category {category:?}")))?;
    let (amount, remaining, held): (i64, i64, i64) =
        (get(row, at + 1)?, get(row, at + 2)?, get(row, at + 3)?);
    if !(1..=BALANCE_ABS_MAX).contains(&amount)
        || !(0..=BALANCE_ABS_MAX).contains(&remaining)
        || !(0..=remaining).contains(&held)
    {
        return Err(Fail::corrupt(format_args!(
            "grant of {amount} with {remaining} remaining and {held} held"
        )));
    }
    Ok(Grant {
        id: MutationId(get(row, at)?),
        terms: GrantTerms {
            expires_at: opt_time(row, at + 6)?,
            priority,
            category,
        },
        amount,
        remaining,
        held,
        created_at: time(row, at + 7)?,
    })
}

fn secret(bytes: &[u8]) -> Result<[u8; 32], Fail> {
    bytes
        .try_into()
        .map_err(|_| Fail::corrupt(format_args!("a secret of {} bytes", bytes.len())))
}

/// Decodes `id, name, operator, created_at` of a tenant.
pub(crate) fn listed_tenant(row: &Row) -> Result<prepaid_store::ListedTenant, Fail> {
    Ok(prepaid_store::ListedTenant {
        id: tenant_id(get(row, 0)?)?,
        name: get(row, 1)?,
        operator: get(row, 2)?,
        created_at: time(row, 3)?,
    })
}

/// Decodes [`API_KEY_COLUMNS`].
pub(crate) fn api_key(row: &Row) -> Result<ApiKey, Fail> {
    Ok(ApiKey {
        tenant: tenant_id(get(row, 0)?)?,
        name: api_key_name(get(row, 1)?)?,
        secret_sha256: secret(get(row, 2)?)?,
        scopes: Scopes {
            read: get(row, 3)?,
            write: get(row, 4)?,
            admin: get(row, 5)?,
        },
        customer: get::<Option<&str>>(row, 6)?.map(customer_id).transpose()?,
        created_at: time(row, 7)?,
    })
}

/// Decodes [`CUSTOMER_COLUMNS`].
pub(crate) fn customer(row: &Row) -> Result<Customer, Fail> {
    Ok(Customer {
        tenant: tenant_id(get(row, 0)?)?,
        id: customer_id(get(row, 1)?)?,
        name: get(row, 2)?,
        link: get(row, 4)?,
        created_at: time(row, 3)?,
    })
}

/// Decodes columns 2.. of [`RECORDED_COLUMNS`].
pub(crate) fn recorded(row: &Row) -> Result<Recorded, Fail> {
    let fingerprint = secret(get(row, 2)?)?;
    let kind: &str = get(row, 3)?;
    let id: &str = get(row, 4)?;
    let id2: Option<&str> = get(row, 5)?;
    let status: Option<&str> = get(row, 6)?;
    let balance: Option<i64> = get(row, 7)?;
    let held: Option<i64> = get(row, 8)?;
    let updated_at: Option<i64> = get(row, 9)?;
    let wallet = match (status, balance, held, updated_at) {
        (Some(status), Some(balance), Some(held), Some(updated_at)) => {
            Some((status, balance, held, updated_at))
        }
        _ => None,
    };
    let result = RecordedResult::from_columns(kind, id, id2, wallet).map_err(Fail::corrupt)?;
    Ok(Recorded {
        fingerprint: Fingerprint(fingerprint),
        result,
    })
}
