//! Rows to ledger values and back, and the lookups shared by the read and write paths.
//!
//! Decoding checks every value against the ledger's bounds, so that a corrupt row
//! becomes a [`Fail::Corrupt`] instead of a panic or an overflow in a rule function.

use crate::error::Fail;
use prepaid_ledger::{
    AMOUNT_MAX, ApiKey, ApiKeyName, BALANCE_ABS_MAX, Customer, CustomerId, Draw, Floor, Grant,
    GrantCategory, GrantTerms, Hold, HoldDirection, HoldId, HoldStatus, Metadata, Mutation,
    MutationId, MutationKind, NewWallet, Priority, Reference, Scopes, TenantId, Timestamp,
    TransferId, Unit, Wallet, WalletId, WalletStatus,
};
use prepaid_store::ListedGrant;
use rusqlite::{Connection, Row, params};
use uuid::Uuid;

// The columns each decoder below reads, in order, are the store's shared lists.
use prepaid_store::{api_key_columns, grant_columns, hold_columns};
pub(crate) use prepaid_store::{customer_columns, mutation_columns, wallet_columns};

fn text<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r str, Fail> {
    row.get_ref(i)?
        .as_str()
        .map_err(|e| Fail::corrupt(format_args!("column {i}: {e}")))
}

fn opt_text<'r>(row: &'r Row<'_>, i: usize) -> Result<Option<&'r str>, Fail> {
    row.get_ref(i)?
        .as_str_or_null()
        .map_err(|e| Fail::corrupt(format_args!("column {i}: {e}")))
}

fn time(row: &Row<'_>, i: usize) -> Result<Timestamp, Fail> {
    Ok(Timestamp::from_micros(row.get(i)?))
}

fn opt_time(row: &Row<'_>, i: usize) -> Result<Option<Timestamp>, Fail> {
    Ok(row.get::<_, Option<i64>>(i)?.map(Timestamp::from_micros))
}

fn uuid(row: &Row<'_>, i: usize) -> Result<Uuid, Fail> {
    Ok(Uuid::from_bytes(row.get::<_, [u8; 16]>(i)?))
}

fn opt_uuid(row: &Row<'_>, i: usize) -> Result<Option<Uuid>, Fail> {
    Ok(row.get::<_, Option<[u8; 16]>>(i)?.map(Uuid::from_bytes))
}

fn flag(row: &Row<'_>, i: usize) -> Result<bool, Fail> {
    match row.get::<_, i64>(i)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Fail::corrupt(format_args!(
            "flag {other} is neither 0 nor 1"
        ))),
    }
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

pub(crate) fn unit(code: &str, scale: i64) -> Result<Unit, Fail> {
    let scale =
        u8::try_from(scale).map_err(|_| Fail::corrupt(format_args!("unit scale {scale}")))?;
    Unit::new(code, scale).map_err(|e| Fail::corrupt(format_args!("unit {code:?}/{scale}: {e}")))
}

fn balance(v: i64) -> Result<i64, Fail> {
    if v.checked_abs().is_some_and(|a| a <= BALANCE_ABS_MAX) {
        Ok(v)
    } else {
        Err(Fail::corrupt(format_args!("balance {v} out of bounds")))
    }
}

fn reference(row: &Row<'_>, at: usize) -> Result<Reference, Fail> {
    Reference::new(text(row, at)?, text(row, at + 1)?, text(row, at + 2)?)
        .map_err(|e| Fail::corrupt(format_args!("reference: {e}")))
}

/// Decodes [`wallet_columns!`].
pub(crate) fn wallet(row: &Row<'_>) -> Result<Wallet, Fail> {
    let status = text(row, 7)?;
    let status = WalletStatus::parse(status)
        .ok_or_else(|| Fail::corrupt(format_args!("wallet status {status:?}")))?;
    let floor = match row.get::<_, Option<i64>>(8)? {
        None => Floor::Unlimited,
        Some(v) => Floor::limit(v).ok_or_else(|| Fail::corrupt(format_args!("floor {v}")))?,
    };
    let held = balance(row.get(12)?)?;
    if held < 0 {
        return Err(Fail::corrupt(format_args!("held {held} is negative")));
    }
    let ceiling: Option<i64> = row.get(15)?;
    if let Some(c) = ceiling.filter(|&c| !NewWallet::ceiling_is_valid(c)) {
        return Err(Fail::corrupt(format_args!("ceiling {c}")));
    }
    let incoming = balance(row.get(16)?)?;
    if incoming < 0 {
        return Err(Fail::corrupt(format_args!(
            "incoming {incoming} is negative"
        )));
    }
    Ok(Wallet {
        tenant: tenant_id(text(row, 0)?)?,
        id: wallet_id(text(row, 1)?)?,
        customer: customer_id(text(row, 2)?)?,
        unit: unit(text(row, 3)?, row.get(4)?)?,
        name: text(row, 5)?.to_owned(),
        product: text(row, 6)?.to_owned(),
        status,
        floor,
        ceiling,
        valid_from: opt_time(row, 9)?,
        valid_until: opt_time(row, 10)?,
        balance: balance(row.get(11)?)?,
        held,
        incoming,
        created_at: time(row, 13)?,
        updated_at: time(row, 14)?,
        metadata: metadata(row, 17)?,
    })
}

/// Decodes [`mutation_columns!`] into the mutation and its cursor.
pub(crate) fn mutation(row: &Row<'_>) -> Result<(i64, Mutation), Fail> {
    let kind = text(row, 7)?;
    let kind = MutationKind::parse(kind)
        .ok_or_else(|| Fail::corrupt(format_args!("mutation kind {kind:?}")))?;
    let m = Mutation {
        tenant: tenant_id(text(row, 2)?)?,
        id: MutationId(uuid(row, 1)?),
        wallet: wallet_id(text(row, 3)?)?,
        customer: customer_id(text(row, 4)?)?,
        unit: unit(text(row, 5)?, row.get(6)?)?,
        kind,
        amount: row.get(8)?,
        balance_after: row.get(9)?,
        reference: reference(row, 10)?,
        hold: opt_uuid(row, 13)?.map(HoldId),
        transfer: opt_uuid(row, 14)?.map(TransferId),
        counter_wallet: opt_text(row, 15)?.map(wallet_id).transpose()?,
        occurred_at: time(row, 16)?,
        recorded_at: time(row, 17)?,
        drawn: draws(text(row, 18)?)?,
        reverses: opt_uuid(row, 19)?.map(MutationId),
        metadata: metadata(row, 20)?,
    };
    Ok((row.get(0)?, m))
}

/// Decodes [`hold_columns!`].
pub(crate) fn hold(row: &Row<'_>) -> Result<Hold, Fail> {
    let status = text(row, 6)?;
    let status = HoldStatus::parse(status)
        .ok_or_else(|| Fail::corrupt(format_args!("hold status {status:?}")))?;
    let amount: i64 = row.get(4)?;
    if !(1..=AMOUNT_MAX).contains(&amount) {
        return Err(Fail::corrupt(format_args!("hold amount {amount}")));
    }
    let direction = text(row, 13)?;
    let direction = HoldDirection::parse(direction)
        .ok_or_else(|| Fail::corrupt(format_args!("hold direction {direction:?}")))?;
    Ok(Hold {
        tenant: tenant_id(text(row, 0)?)?,
        id: HoldId(uuid(row, 1)?),
        wallet: wallet_id(text(row, 2)?)?,
        customer: customer_id(text(row, 3)?)?,
        direction,
        amount,
        committed_amount: row.get(5)?,
        status,
        reference: reference(row, 7)?,
        expires_at: opt_time(row, 10)?,
        created_at: time(row, 11)?,
        settled_at: opt_time(row, 12)?,
        reserved: draws(text(row, 14)?)?,
        metadata: metadata(row, 15)?,
    })
}

fn draws(text: &str) -> Result<Vec<Draw>, Fail> {
    prepaid_store::sql::decode_draws(text).map_err(Fail::corrupt)
}

fn metadata(row: &Row<'_>, i: usize) -> Result<Metadata, Fail> {
    prepaid_store::sql::decode_metadata(text(row, i)?).map_err(Fail::corrupt)
}

/// Decodes [`prepaid_store::listed_grant_columns!`].
pub(crate) fn listed_grant(row: &Row<'_>) -> Result<ListedGrant, Fail> {
    Ok(ListedGrant {
        grant: grant(row)?,
        metadata: metadata(row, 8)?,
    })
}

/// Decodes [`grant_columns!`].
pub(crate) fn grant(row: &Row<'_>) -> Result<Grant, Fail> {
    let priority: i64 = row.get(4)?;
    let priority = u8::try_from(priority)
        .ok()
        .and_then(Priority::new)
        .ok_or_else(|| Fail::corrupt(format_args!("grant priority {priority}")))?;
    let category = text(row, 5)?;
    let category = GrantCategory::parse(category)
        .map_err(|_| Fail::corrupt(format_args!("grant category {category:?}")))?;
    let (amount, remaining, held): (i64, i64, i64) = (row.get(1)?, row.get(2)?, row.get(3)?);
    if !(1..=BALANCE_ABS_MAX).contains(&amount)
        || !(0..=BALANCE_ABS_MAX).contains(&remaining)
        || !(0..=remaining).contains(&held)
    {
        return Err(Fail::corrupt(format_args!(
            "grant of {amount} with {remaining} remaining and {held} held"
        )));
    }
    Ok(Grant {
        id: MutationId(uuid(row, 0)?),
        terms: GrantTerms {
            expires_at: opt_time(row, 6)?,
            priority,
            category,
        },
        amount,
        remaining,
        held,
        created_at: time(row, 7)?,
    })
}

/// The wallet's grant with this id, live or spent.
pub(crate) fn load_grant(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &WalletId,
    id: MutationId,
) -> Result<Option<Grant>, Fail> {
    one(
        conn,
        concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE tenant = ?1 AND id = ?2 AND wallet = ?3"
        ),
        params![tenant.as_str(), id.0.as_bytes(), wallet.as_str()],
        grant,
    )
}

/// The wallet's live grants (something remaining).
pub(crate) fn load_grants(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &WalletId,
) -> Result<Vec<Grant>, Fail> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        grant_columns!(),
        // Named, because a planner that guesses from the tenant alone would walk every
        // grant of the tenant for each wallet.
        " FROM grants INDEXED BY grants_live WHERE tenant = ?1 AND wallet = ?2 AND remaining > 0"
    ))?;
    let mut rows = stmt.query(params![tenant.as_str(), wallet.as_str()])?;
    let mut grants = Vec::new();
    while let Some(row) = rows.next()? {
        grants.push(grant(row)?);
    }
    Ok(grants)
}

/// Decodes `id, name, operator, created_at` of a tenant.
pub(crate) fn listed_tenant(row: &Row<'_>) -> Result<prepaid_store::ListedTenant, Fail> {
    Ok(prepaid_store::ListedTenant {
        id: tenant_id(text(row, 0)?)?,
        name: text(row, 1)?.to_owned(),
        operator: row.get(2)?,
        created_at: time(row, 3)?,
    })
}

/// Decodes [`api_key_columns!`].
pub(crate) fn api_key(row: &Row<'_>) -> Result<ApiKey, Fail> {
    Ok(ApiKey {
        tenant: tenant_id(text(row, 0)?)?,
        name: api_key_name(text(row, 1)?)?,
        secret_sha256: row.get(2)?,
        scopes: Scopes {
            read: flag(row, 3)?,
            write: flag(row, 4)?,
            admin: flag(row, 5)?,
        },
        customer: opt_text(row, 6)?.map(customer_id).transpose()?,
        created_at: time(row, 7)?,
    })
}

/// Decodes [`customer_columns!`].
pub(crate) fn customer(row: &Row<'_>) -> Result<Customer, Fail> {
    Ok(Customer {
        tenant: tenant_id(text(row, 0)?)?,
        id: customer_id(text(row, 1)?)?,
        name: text(row, 2)?.to_owned(),
        link: text(row, 4)?.to_owned(),
        created_at: time(row, 3)?,
    })
}

/// Runs a cached query expected to return at most one row and decodes it.
fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T, Fail>,
) -> Result<Option<T>, Fail> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    match rows.next()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

pub(crate) fn load_wallet(
    conn: &Connection,
    tenant: &TenantId,
    id: &WalletId,
) -> Result<Option<Wallet>, Fail> {
    one(
        conn,
        concat!(
            "SELECT ",
            wallet_columns!(),
            " FROM wallets WHERE tenant = ?1 AND id = ?2"
        ),
        params![tenant.as_str(), id.as_str()],
        wallet,
    )
}

pub(crate) fn load_customer(
    conn: &Connection,
    tenant: &TenantId,
    id: &CustomerId,
) -> Result<Option<Customer>, Fail> {
    one(
        conn,
        concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE tenant = ?1 AND id = ?2"
        ),
        params![tenant.as_str(), id.as_str()],
        customer,
    )
}

pub(crate) fn load_mutation(
    conn: &Connection,
    tenant: &TenantId,
    id: MutationId,
) -> Result<Option<Mutation>, Fail> {
    one(
        conn,
        concat!(
            "SELECT ",
            mutation_columns!(),
            " FROM mutations WHERE id = ?1 AND tenant = ?2"
        ),
        params![id.0.as_bytes(), tenant.as_str()],
        |row| mutation(row).map(|(_, m)| m),
    )
}

pub(crate) fn load_hold(
    conn: &Connection,
    tenant: &TenantId,
    id: HoldId,
) -> Result<Option<Hold>, Fail> {
    one(
        conn,
        concat!(
            "SELECT ",
            hold_columns!(),
            " FROM holds WHERE id = ?2 AND tenant = ?1"
        ),
        params![tenant.as_str(), id.0.as_bytes()],
        hold,
    )
}

pub(crate) fn load_api_key(
    conn: &Connection,
    tenant: &TenantId,
    name: &ApiKeyName,
) -> Result<Option<ApiKey>, Fail> {
    one(
        conn,
        concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE tenant = ?1 AND name = ?2"
        ),
        params![tenant.as_str(), name.as_str()],
        api_key,
    )
}

pub(crate) fn api_key_by_hash(
    conn: &Connection,
    secret_sha256: &[u8; 32],
) -> Result<Option<ApiKey>, Fail> {
    one(
        conn,
        concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE secret_sha256 = ?1"
        ),
        params![secret_sha256],
        api_key,
    )
}

/// The hold with this id, of any tenant (ids are unique across the store).
pub(crate) fn load_hold_any(conn: &Connection, id: HoldId) -> Result<Option<Hold>, Fail> {
    one(
        conn,
        concat!("SELECT ", hold_columns!(), " FROM holds WHERE id = ?1"),
        params![id.0.as_bytes()],
        hold,
    )
}
