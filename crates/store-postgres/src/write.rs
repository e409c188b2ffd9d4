//! Writing a batch's changes: one statement per kind of row, each taking every row of
//! the batch at once through `unnest` of arrays.
//!
//! Statements go out pipelined (sent together on the connection, answered in order),
//! in stages, so that a row is written after the rows its foreign keys name: new
//! tenants; new customers; new keys and wallets; then new holds, the wallets and holds
//! the batch changed (locked since they were loaded), the idempotency keys (a key
//! recorded meanwhile by another batch breaks the primary key and the batch runs
//! again, to replay it) and the settings. A batch of debits thus writes all its rows in
//! one round trip.
//!
//! Last come the system accounts and the mutations, sent together with `COMMIT`
//! ([`write_last_and_commit`]), so that nothing a batch writes after taking its list
//! cursors waits for a round trip to the client.
//!
//! No row is written by every batch of a tenant, so that batches of one tenant (of
//! this instance's writers or of other instances) commit side by side:
//!
//! - A system account is spread over [`ACCOUNT_SLOTS_MAX`] rows, its slots; its balance
//!   is their sum. A batch adds its delta (`balance = balance + delta`) to one slot,
//!   picked at random per attempt, so two concurrent batches meet on an account's row
//!   (and the second waits for the first to commit) about once in
//!   [`ACCOUNT_SLOTS_MAX`]. Each slot is bounded by the database to
//!   [`SLOT_BALANCE_ABS_MAX`], a share of the balance bound, so that no race of
//!   batches can take the sum past the bound; a delta the slot has no room for spreads
//!   over the next slots ([`spread`]), which only happens near the bound.
//! - A mutation's list cursor comes from the sequence `mutations_seq`, taken as the
//!   mutation is inserted, in the last statement before `COMMIT`. A sequence is not
//!   transactional: a batch that takes a lower cursor may commit just after one that
//!   took a higher one (see the crate documentation for what that means to a reader).
//!
//! Rows are changed in the order of their keys (system account slots in the order of
//! tenant, unit, kind and slot), so that two batches queue rather than deadlock.

use crate::error::Fail;
use crate::snapshot::Snapshot;
use deadpool_postgres::GenericClient;
use prepaid_ledger::{BALANCE_ABS_MAX, CustomerId, Floor, Timestamp, WalletId};
use prepaid_store::exec::{AccountChange, Changes};
use prepaid_store::sql::encode_metadata;
use std::task::Poll;
use std::time::Instant;
use tokio_postgres::types::ToSql;

/// How many rows (slots) each system account is spread over. The schema bounds the
/// slot numbers and each slot's balance to match (migration 8): changing it takes a
/// migration that moves the balances.
pub const ACCOUNT_SLOTS_MAX: usize = 16;

/// The bound on the balance of one slot of a system account: the sum of every slot
/// stays within the ledger's `BALANCE_ABS_MAX`.
#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
pub const SLOT_BALANCE_ABS_MAX: i64 = BALANCE_ABS_MAX / ACCOUNT_SLOTS_MAX as i64;

/// The balances of one system account's slots.
pub(crate) type Slots = [i64; ACCOUNT_SLOTS_MAX];

/// What a batch adds to one slot of a system account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotDelta<'a> {
    pub(crate) change: &'a AccountChange,
    pub(crate) slot: usize,
    pub(crate) delta: i64,
}

/// Shares out each change's delta over its account's slots, as read by the batch
/// (`read`): all of it to slot `first` when that slot has room, otherwise as much as
/// fits there and the rest in the next slots in turn. The executor made sure the sum
/// of the slots read plus the delta is within the balance bound, so the slots have room
/// for it; a race that took the room meanwhile breaks a slot's bound in the database,
/// and the batch runs again. The deltas come sorted by account and slot.
pub(crate) fn spread<'a>(
    changes: &'a [AccountChange],
    read: impl Fn(&AccountChange) -> Slots,
    first: usize,
) -> Vec<SlotDelta<'a>> {
    let mut deltas = Vec::with_capacity(changes.len());
    for change in changes {
        let slots = read(change);
        let mut left = change.delta;
        let mut own = Vec::new();
        for slot in (0..ACCOUNT_SLOTS_MAX).map(|i| (first + i) % ACCOUNT_SLOTS_MAX) {
            if left == 0 {
                break;
            }
            let balance = slots[slot];
            let take = if left > 0 {
                left.min(SLOT_BALANCE_ABS_MAX.saturating_sub(balance).max(0))
            } else {
                left.max((-SLOT_BALANCE_ABS_MAX).saturating_sub(balance).min(0))
            };
            if take != 0 {
                own.push(SlotDelta {
                    change,
                    slot,
                    delta: take,
                });
                left -= take;
            }
        }
        if left != 0 {
            // The slots read have no room (they do not decode into a balance within
            // the bound): the whole delta goes to one slot, whose bound the database
            // then keeps.
            own = vec![SlotDelta {
                change,
                slot: first % ACCOUNT_SLOTS_MAX,
                delta: change.delta,
            }];
        }
        deltas.extend(own);
    }
    deltas.sort_by(|a, b| slot_key(a).cmp(&slot_key(b)));
    deltas
}

/// The order slot deltas are written in: by account, then by slot.
fn slot_key<'a>(d: &SlotDelta<'a>) -> (&'a str, &'a str, u8, &'static str, usize) {
    (
        d.change.tenant.as_str(),
        d.change.unit.code(),
        d.change.unit.scale(),
        d.change.account.as_str(),
        d.slot,
    )
}

/// The slot deltas of `changes` for a batch that read `snapshot` and starts at slot
/// `first`.
pub(crate) fn slot_deltas<'a>(
    changes: &'a Changes,
    snapshot: &Snapshot,
    first: usize,
) -> Vec<SlotDelta<'a>> {
    spread(
        &changes.accounts,
        |c| snapshot.slots(&c.tenant, &c.unit, c.account),
        first,
    )
}

/// Adds deltas to system account slots in the order given, making the rows missing.
const ACCOUNTS_SQL: &str = "INSERT INTO system_accounts \
     (tenant, unit_code, unit_scale, kind, slot, balance) \
     SELECT tenant, unit_code, unit_scale, kind, slot, balance \
     FROM unnest($1::text[], $2::text[], $3::int2[], $4::text[], $5::int2[], $6::int8[]) \
     WITH ORDINALITY AS u (tenant, unit_code, unit_scale, kind, slot, balance, n) \
     ORDER BY n \
     ON CONFLICT (tenant, unit_code, unit_scale, kind, slot) \
     DO UPDATE SET balance = system_accounts.balance + EXCLUDED.balance";

/// Inserts the mutations, each taking its list cursor from the sequence as it goes
/// in, in the order of the batch (see [`write_mutations`]).
const MUTATIONS_SQL: &str = "INSERT INTO mutations (tenant, seq, id, wallet, customer, \
     unit_code, unit_scale, kind, amount, balance_after, reference_kind, reference_text, \
     reference_link, hold, transfer, counter_wallet, occurred_at, recorded_at, drawn, \
     reverses, metadata) \
     SELECT tenant, nextval('mutations_seq'), id, wallet, customer, unit_code, unit_scale, \
     kind, amount, balance_after, reference_kind, reference_text, reference_link, hold, \
     transfer, counter_wallet, occurred_at, recorded_at, drawn, reverses, metadata \
     FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
     $6::int2[], $7::text[], $8::int8[], $9::int8[], $10::text[], $11::text[], \
     $12::text[], $13::uuid[], $14::uuid[], $15::text[], $16::int8[], $17::int8[], \
     $18::text[], $19::uuid[], $20::text[]) \
     WITH ORDINALITY AS m (tenant, id, wallet, customer, unit_code, unit_scale, kind, \
     amount, balance_after, reference_kind, reference_text, reference_link, hold, \
     transfer, counter_wallet, occurred_at, recorded_at, drawn, reverses, metadata, n) \
     ORDER BY n";

async fn execute<C: GenericClient>(
    tx: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Fail> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&statement, params).await?)
}

/// Checks that a statement touched every row it was given.
fn all(what: &str, expected: usize, got: u64) -> Result<(), Fail> {
    if u64::try_from(expected).ok() == Some(got) {
        Ok(())
    } else {
        Err(Fail::corrupt(format_args!(
            "{what}: {got} rows written of {expected}"
        )))
    }
}

fn micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::as_micros)
}

/// Writes `changes` in the transaction, which stays open; `accounts` are the slot
/// deltas of its system accounts ([`slot_deltas`]).
pub(crate) async fn write<C: GenericClient>(
    tx: &C,
    changes: &Changes,
    accounts: &[SlotDelta<'_>],
) -> Result<(), Fail> {
    write_rows(tx, changes).await?;
    let (written, mutations) = tokio::join!(
        biased;
        write_accounts(tx, accounts),
        write_mutations(tx, changes)
    );
    all("system accounts", accounts.len(), written?)?;
    all("mutations", changes.mutations.len(), mutations?)
}

/// Writes every row but the system accounts and the mutations (see the module
/// documentation for the stages). In each stage the statements are pipelined, and the
/// first error in the order of the statements is returned, since those sent after a
/// failed one only find the transaction aborted. (A statement prepared on its first use
/// on a connection goes out after the others of its stage; should one of those fail,
/// its error may then be reported as the aborted transaction instead, and the store
/// applies the batch again one request at a time, to the same outcomes.)
pub(crate) async fn write_rows<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    write_tenants(tx, changes).await?;
    write_customers(tx, changes).await?;
    let (api_keys, wallets) = tokio::join!(
        biased;
        write_api_keys(tx, changes),
        write_wallets_new(tx, changes)
    );
    api_keys?;
    wallets?;
    let (holds, wallets, relabelled, grants, holds_changed, keys, settings, records, jobs) = tokio::join!(
        biased;
        write_holds_new(tx, changes),
        write_wallets_changed(tx, changes),
        write_wallets_relabelled(tx, changes),
        write_grants(tx, changes),
        write_holds_changed(tx, changes),
        write_keys(tx, changes),
        write_settings(tx, changes),
        write_records(tx, changes),
        write_jobs(tx, changes)
    );
    holds?;
    wallets?;
    relabelled?;
    grants?;
    holds_changed?;
    keys?;
    settings?;
    records?;
    jobs
}

/// Writes the system accounts (`accounts`, see [`slot_deltas`]) and the mutations
/// (after [`write_rows`]) and commits, all three sent at once; returns when the last
/// write statement was answered, so that the caller can tell the writes' time from the
/// commit's. An error says whether the transaction is over (`COMMIT` went out: it
/// committed or rolled back) or still open (for the caller to roll back).
///
/// Both statements are prepared first and must have gone out before `COMMIT` does: a
/// statement sent after it would run outside the transaction. If either fails on the
/// database, the transaction is aborted and the `COMMIT` behind it rolls it back. Both
/// write every row they are given or fail (an upsert, and an insert), so a short count
/// cannot follow a successful commit; were it ever to, the batch is durable all the
/// same and is answered, and the count is logged.
pub(crate) async fn write_last_and_commit<C: GenericClient>(
    tx: &C,
    changes: &Changes,
    accounts: &[SlotDelta<'_>],
) -> Result<Instant, (Fail, Ended)> {
    let open = |e: Fail| (e, Ended::No);
    if !accounts.is_empty() {
        tx.prepare_cached(ACCOUNTS_SQL)
            .await
            .map_err(|e| open(e.into()))?;
    }
    if !changes.mutations.is_empty() {
        tx.prepare_cached(MUTATIONS_SQL)
            .await
            .map_err(|e| open(e.into()))?;
    }
    let mut written = std::pin::pin!(write_accounts(tx, accounts));
    let mut mutations = std::pin::pin!(write_mutations(tx, changes));
    // One poll sends a prepared statement; a future that is already finished then
    // either had nothing to write or failed before sending.
    let mut early = (None, None);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = written.as_mut().poll(cx) {
            early.0 = Some(r);
        }
        if let Poll::Ready(r) = mutations.as_mut().poll(cx) {
            early.1 = Some(r);
        }
        Poll::Ready(())
    })
    .await;
    if let (Some(Err(e)), _) | (_, Some(Err(e))) = early {
        return Err(open(e));
    }
    let sent = Instant::now();
    let (written, mutations, committed) = tokio::join!(
        biased;
        async {
            let n = match early.0 {
                Some(done) => done,
                None => written.as_mut().await,
            };
            (n, Instant::now())
        },
        async {
            let n = match early.1 {
                Some(done) => done,
                None => mutations.as_mut().await,
            };
            (n, Instant::now())
        },
        tx.batch_execute("COMMIT")
    );
    let over = |e: Fail| (e, Ended::Yes);
    let ((written, at_accounts), (mutations, at_mutations)) = (written, mutations);
    let written = written.map_err(over)?;
    let mutations = mutations.map_err(over)?;
    committed.map_err(|e| over(e.into()))?;
    for (what, expected, got) in [
        ("system accounts", accounts.len(), written),
        ("mutations", changes.mutations.len(), mutations),
    ] {
        if let Err(e) = all(what, expected, got) {
            tracing::error!(error = %e, "a committed batch wrote fewer rows than it had");
        }
    }
    Ok(sent.max(at_accounts).max(at_mutations))
}

/// Whether a transaction is over after an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Yes,
    No,
}

async fn write_tenants<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    if !changes.tenants.is_empty() {
        let t = &changes.tenants;
        let ids: Vec<&str> = t.iter().map(|t| t.id.as_str()).collect();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        let operators: Vec<bool> = t.iter().map(|t| t.operator).collect();
        let created: Vec<i64> = t.iter().map(|t| t.created_at.as_micros()).collect();
        let n = execute(
            tx,
            "INSERT INTO tenants (id, name, operator, created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::int8[])",
            &[&ids, &names, &operators, &created],
        )
        .await?;
        all("tenants", t.len(), n)?;
    }
    Ok(())
}

async fn write_customers<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    if !changes.customers.is_empty() {
        let c = &changes.customers;
        let tenants: Vec<&str> = c.iter().map(|c| c.tenant.as_str()).collect();
        let ids: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        let created: Vec<i64> = c.iter().map(|c| c.created_at.as_micros()).collect();
        let links: Vec<&str> = c.iter().map(|c| c.link.as_str()).collect();
        let n = execute(
            tx,
            "INSERT INTO customers (tenant, id, name, created_at, link) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[])",
            &[&tenants, &ids, &names, &created, &links],
        )
        .await?;
        all("customers", c.len(), n)?;
    }
    // One statement per link, in the order they were set, so the last of a customer's
    // stays; a link is set rarely (a customer's first use by a client that names it).
    for link in &changes.customer_links {
        execute(
            tx,
            "UPDATE customers SET link = $3 WHERE tenant = $1 AND id = $2",
            &[&link.tenant.as_str(), &link.id.as_str(), &link.link],
        )
        .await?;
    }
    Ok(())
}

async fn write_api_keys<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    if !changes.api_keys.is_empty() {
        let k = &changes.api_keys;
        let tenants: Vec<&str> = k.iter().map(|k| k.tenant.as_str()).collect();
        let names: Vec<&str> = k.iter().map(|k| k.name.as_str()).collect();
        let secrets: Vec<&[u8]> = k.iter().map(|k| k.secret_sha256.as_slice()).collect();
        let read: Vec<bool> = k.iter().map(|k| k.scopes.read).collect();
        let write: Vec<bool> = k.iter().map(|k| k.scopes.write).collect();
        let admin: Vec<bool> = k.iter().map(|k| k.scopes.admin).collect();
        let customers: Vec<Option<&str>> = k
            .iter()
            .map(|k| k.customer.as_ref().map(CustomerId::as_str))
            .collect();
        let created: Vec<i64> = k.iter().map(|k| k.created_at.as_micros()).collect();
        let n = execute(
            tx,
            "INSERT INTO api_keys (tenant, name, secret_sha256, scope_read, scope_write, \
             scope_admin, customer, created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bool[], $5::bool[], \
             $6::bool[], $7::text[], $8::int8[])",
            &[
                &tenants, &names, &secrets, &read, &write, &admin, &customers, &created,
            ],
        )
        .await?;
        all("api keys", k.len(), n)?;
    }
    Ok(())
}

async fn write_wallets_new<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    if !changes.wallets_new.is_empty() {
        let w = &changes.wallets_new;
        let tenants: Vec<&str> = w.iter().map(|w| w.tenant.as_str()).collect();
        let ids: Vec<&str> = w.iter().map(|w| w.id.as_str()).collect();
        let customers: Vec<&str> = w.iter().map(|w| w.customer.as_str()).collect();
        let codes: Vec<&str> = w.iter().map(|w| w.unit.code()).collect();
        let scales: Vec<i16> = w.iter().map(|w| i16::from(w.unit.scale())).collect();
        let names: Vec<&str> = w.iter().map(|w| w.name.as_str()).collect();
        let products: Vec<&str> = w.iter().map(|w| w.product.as_str()).collect();
        let statuses: Vec<&str> = w.iter().map(|w| w.status.as_str()).collect();
        let floors: Vec<Option<i64>> = w
            .iter()
            .map(|w| match w.floor {
                Floor::Limit(v) => Some(v),
                Floor::Unlimited => None,
            })
            .collect();
        let from: Vec<Option<i64>> = w.iter().map(|w| micros(w.valid_from)).collect();
        let until: Vec<Option<i64>> = w.iter().map(|w| micros(w.valid_until)).collect();
        let balances: Vec<i64> = w.iter().map(|w| w.balance).collect();
        let held: Vec<i64> = w.iter().map(|w| w.held).collect();
        let created: Vec<i64> = w.iter().map(|w| w.created_at.as_micros()).collect();
        let updated: Vec<i64> = w.iter().map(|w| w.updated_at.as_micros()).collect();
        let ceilings: Vec<Option<i64>> = w.iter().map(|w| w.ceiling).collect();
        let incoming: Vec<i64> = w.iter().map(|w| w.incoming).collect();
        let metadata: Vec<String> = w.iter().map(|w| encode_metadata(&w.metadata)).collect();
        let n = execute(
            tx,
            "INSERT INTO wallets (tenant, id, customer, unit_code, unit_scale, name, product, \
             status, floor, valid_from, valid_until, balance, held, created_at, updated_at, \
             ceiling, incoming, metadata) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int2[], \
             $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], \
             $12::int8[], $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], \
             $18::text[])",
            &[
                &tenants, &ids, &customers, &codes, &scales, &names, &products, &statuses, &floors,
                &from, &until, &balances, &held, &created, &updated, &ceilings, &incoming,
                &metadata,
            ],
        )
        .await?;
        all("new wallets", w.len(), n)?;
    }
    Ok(())
}

async fn write_holds_new<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    if !changes.holds_new.is_empty() {
        let h = &changes.holds_new;
        let tenants: Vec<&str> = h.iter().map(|h| h.tenant.as_str()).collect();
        let ids: Vec<uuid::Uuid> = h.iter().map(|h| h.id.0).collect();
        let wallets: Vec<&str> = h.iter().map(|h| h.wallet.as_str()).collect();
        let customers: Vec<&str> = h.iter().map(|h| h.customer.as_str()).collect();
        let amounts: Vec<i64> = h.iter().map(|h| h.amount).collect();
        let committed: Vec<Option<i64>> = h.iter().map(|h| h.committed_amount).collect();
        let statuses: Vec<&str> = h.iter().map(|h| h.status.as_str()).collect();
        let ref_kinds: Vec<&str> = h.iter().map(|h| h.reference.parts().0).collect();
        let ref_texts: Vec<&str> = h.iter().map(|h| h.reference.parts().1).collect();
        let ref_links: Vec<&str> = h.iter().map(|h| h.reference.parts().2).collect();
        let expires: Vec<Option<i64>> = h.iter().map(|h| micros(h.expires_at)).collect();
        let created: Vec<i64> = h.iter().map(|h| h.created_at.as_micros()).collect();
        let settled: Vec<Option<i64>> = h.iter().map(|h| micros(h.settled_at)).collect();
        let directions: Vec<&str> = h.iter().map(|h| h.direction.as_str()).collect();
        let reserved: Vec<String> = h
            .iter()
            .map(|h| prepaid_store::sql::encode_draws(&h.reserved))
            .collect();
        let metadata: Vec<String> = h.iter().map(|h| encode_metadata(&h.metadata)).collect();
        let n = execute(
            tx,
            "INSERT INTO holds (tenant, id, wallet, customer, amount, committed_amount, status, \
             reference_kind, reference_text, reference_link, expires_at, created_at, settled_at, \
             direction, reserved, metadata) \
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::int8[], \
             $6::int8[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], \
             $12::int8[], $13::int8[], $14::text[], $15::text[], $16::text[])",
            &[
                &tenants,
                &ids,
                &wallets,
                &customers,
                &amounts,
                &committed,
                &statuses,
                &ref_kinds,
                &ref_texts,
                &ref_links,
                &expires,
                &created,
                &settled,
                &directions,
                &reserved,
                &metadata,
            ],
        )
        .await?;
        all("new holds", h.len(), n)?;
    }
    Ok(())
}

async fn write_wallets_changed<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    if !changes.wallets_changed.is_empty() {
        let w = &changes.wallets_changed;
        let tenants: Vec<&str> = w.iter().map(|w| w.tenant.as_str()).collect();
        let ids: Vec<&str> = w.iter().map(|w| w.id.as_str()).collect();
        let statuses: Vec<&str> = w.iter().map(|w| w.status.as_str()).collect();
        let balances: Vec<i64> = w.iter().map(|w| w.balance).collect();
        let held: Vec<i64> = w.iter().map(|w| w.held).collect();
        let updated: Vec<i64> = w.iter().map(|w| w.updated_at.as_micros()).collect();
        let incoming: Vec<i64> = w.iter().map(|w| w.incoming).collect();
        let n = execute(
            tx,
            // Each wallet is found by its key, then updated where it lies (it has been
            // locked since it was loaded, so it has not moved): a join on the key alone
            // lets the planner scan every wallet of a small table for each batch.
            "UPDATE wallets w SET status = u.status, balance = u.balance, held = u.held, \
             updated_at = u.updated, incoming = u.incoming \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
             $6::int8[], $7::int8[]) AS u (tenant, id, status, balance, held, updated, incoming) \
             CROSS JOIN LATERAL (SELECT ctid AS row FROM wallets x \
             WHERE x.tenant = u.tenant AND x.id = u.id OFFSET 0) AS x \
             WHERE w.ctid = x.row",
            &[
                &tenants, &ids, &statuses, &balances, &held, &updated, &incoming,
            ],
        )
        .await?;
        all("changed wallets", w.len(), n)?;
    }
    Ok(())
}

/// Sets the metadata of wallets whose metadata changed (locked since they were loaded).
async fn write_wallets_relabelled<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    let w = &changes.wallets_relabelled;
    if w.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = w.iter().map(|w| w.tenant.as_str()).collect();
    let ids: Vec<&str> = w.iter().map(|w| w.id.as_str()).collect();
    let metadata: Vec<String> = w.iter().map(|w| encode_metadata(&w.metadata)).collect();
    let n = execute(
        tx,
        "UPDATE wallets w SET metadata = u.metadata \
         FROM unnest($1::text[], $2::text[], $3::text[]) AS u (tenant, id, metadata) \
         WHERE w.tenant = u.tenant AND w.id = u.id",
        &[&tenants, &ids, &metadata],
    )
    .await?;
    all("relabelled wallets", w.len(), n)
}

/// Inserts the new grants, then updates what the changed ones have left and reserve.
/// Their wallets are locked, so their rows have not moved since they were loaded.
async fn write_grants<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    let (new, changed): (Vec<_>, Vec<_>) = changes.grants.iter().partition(|c| c.new);
    if !new.is_empty() {
        let tenants: Vec<&str> = new.iter().map(|c| c.tenant.as_str()).collect();
        let ids: Vec<uuid::Uuid> = new.iter().map(|c| c.grant.id.0).collect();
        let wallets: Vec<&str> = new.iter().map(|c| c.wallet.as_str()).collect();
        let amounts: Vec<i64> = new.iter().map(|c| c.grant.amount).collect();
        let remaining: Vec<i64> = new.iter().map(|c| c.grant.remaining).collect();
        let held: Vec<i64> = new.iter().map(|c| c.grant.held).collect();
        let priorities: Vec<i16> = new
            .iter()
            .map(|c| i16::from(c.grant.terms.priority.get()))
            .collect();
        let categories: Vec<&str> = new
            .iter()
            .map(|c| c.grant.terms.category.as_str())
            .collect();
        let expires: Vec<Option<i64>> = new
            .iter()
            .map(|c| micros(c.grant.terms.expires_at))
            .collect();
        let created: Vec<i64> = new.iter().map(|c| c.grant.created_at.as_micros()).collect();
        let n = execute(
            tx,
            "INSERT INTO grants (tenant, id, wallet, amount, remaining, held, priority, \
             category, expires_at, created_at) \
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int8[], $5::int8[], \
             $6::int8[], $7::int2[], $8::text[], $9::int8[], $10::int8[])",
            &[
                &tenants,
                &ids,
                &wallets,
                &amounts,
                &remaining,
                &held,
                &priorities,
                &categories,
                &expires,
                &created,
            ],
        )
        .await?;
        all("new grants", new.len(), n)?;
    }
    if !changed.is_empty() {
        let tenants: Vec<&str> = changed.iter().map(|c| c.tenant.as_str()).collect();
        let ids: Vec<uuid::Uuid> = changed.iter().map(|c| c.grant.id.0).collect();
        let remaining: Vec<i64> = changed.iter().map(|c| c.grant.remaining).collect();
        let held: Vec<i64> = changed.iter().map(|c| c.grant.held).collect();
        let n = execute(
            tx,
            "UPDATE grants g SET remaining = u.remaining, held = u.held \
             FROM unnest($1::text[], $2::uuid[], $3::int8[], $4::int8[]) \
             AS u (tenant, id, remaining, held) \
             CROSS JOIN LATERAL (SELECT ctid AS row FROM grants x \
             WHERE x.tenant = u.tenant AND x.id = u.id OFFSET 0) AS x \
             WHERE g.ctid = x.row",
            &[&tenants, &ids, &remaining, &held],
        )
        .await?;
        all("changed grants", changed.len(), n)?;
    }
    Ok(())
}

async fn write_holds_changed<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    if !changes.holds_changed.is_empty() {
        let h = &changes.holds_changed;
        let ids: Vec<uuid::Uuid> = h.iter().map(|h| h.id.0).collect();
        let statuses: Vec<&str> = h.iter().map(|h| h.status.as_str()).collect();
        let committed: Vec<Option<i64>> = h.iter().map(|h| h.committed_amount).collect();
        let settled: Vec<Option<i64>> = h.iter().map(|h| micros(h.settled_at)).collect();
        let n = execute(
            tx,
            // Found by key, then updated where it lies, as the wallets are.
            "UPDATE holds h SET status = u.status, committed_amount = u.committed, \
             settled_at = u.settled \
             FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[]) \
             AS u (id, status, committed, settled) \
             CROSS JOIN LATERAL (SELECT ctid AS row FROM holds x WHERE x.id = u.id OFFSET 0) AS x \
             WHERE h.ctid = x.row",
            &[&ids, &statuses, &committed, &settled],
        )
        .await?;
        all("settled holds", h.len(), n)?;
    }
    Ok(())
}

async fn write_keys<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    if !changes.keys.is_empty() {
        let k = &changes.keys;
        let columns: Vec<_> = k.iter().map(|k| k.recorded.result.to_columns()).collect();
        let tenants: Vec<&str> = k.iter().map(|k| k.tenant.as_str()).collect();
        let keys: Vec<&str> = k.iter().map(|k| k.key.as_str()).collect();
        let fingerprints: Vec<&[u8]> = k
            .iter()
            .map(|k| k.recorded.fingerprint.0.as_slice())
            .collect();
        let kinds: Vec<&str> = columns.iter().map(|c| c.kind).collect();
        let ids: Vec<&str> = columns.iter().map(|c| c.id.as_str()).collect();
        let ids2: Vec<Option<&str>> = columns.iter().map(|c| c.id2.as_deref()).collect();
        let statuses: Vec<Option<&str>> = columns.iter().map(|c| c.wallet.map(|w| w.0)).collect();
        let balances: Vec<Option<i64>> = columns.iter().map(|c| c.wallet.map(|w| w.1)).collect();
        let held: Vec<Option<i64>> = columns.iter().map(|c| c.wallet.map(|w| w.2)).collect();
        let updated: Vec<Option<i64>> = columns.iter().map(|c| c.wallet.map(|w| w.3)).collect();
        let created: Vec<i64> = k.iter().map(|k| k.created_at.as_micros()).collect();
        let n = execute(
            tx,
            "INSERT INTO idempotency_keys (tenant, key, fingerprint, result_kind, result_id, \
             result_id2, wallet_status, wallet_balance, wallet_held, wallet_updated_at, \
             created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::int8[])",
            &[
                &tenants,
                &keys,
                &fingerprints,
                &kinds,
                &ids,
                &ids2,
                &statuses,
                &balances,
                &held,
                &updated,
                &created,
            ],
        )
        .await?;
        all("idempotency keys", k.len(), n)?;
    }
    Ok(())
}

/// Adds the batch's deltas to the system account slots; returns the rows written.
async fn write_accounts<C: GenericClient>(tx: &C, accounts: &[SlotDelta<'_>]) -> Result<u64, Fail> {
    if accounts.is_empty() {
        return Ok(0);
    }
    let a = accounts;
    let tenants: Vec<&str> = a.iter().map(|a| a.change.tenant.as_str()).collect();
    let codes: Vec<&str> = a.iter().map(|a| a.change.unit.code()).collect();
    let scales: Vec<i16> = a.iter().map(|a| i16::from(a.change.unit.scale())).collect();
    let kinds: Vec<&str> = a.iter().map(|a| a.change.account.as_str()).collect();
    let slots = a
        .iter()
        .map(|a| i16::try_from(a.slot))
        .collect::<Result<Vec<i16>, _>>()
        .map_err(|_| Fail::corrupt("a system account slot out of range"))?;
    let deltas: Vec<i64> = a.iter().map(|a| a.delta).collect();
    execute(
        tx,
        ACCOUNTS_SQL,
        &[&tenants, &codes, &scales, &kinds, &slots, &deltas],
    )
    .await
}

/// Inserts the settings the batch found absent (one inserted meanwhile breaks the
/// primary key, and the batch runs again) and updates the others.
async fn write_settings<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    for created in [true, false] {
        let s: Vec<_> = changes
            .settings
            .iter()
            .filter(|s| s.created == created)
            .collect();
        if s.is_empty() {
            continue;
        }
        let tenants: Vec<&str> = s.iter().map(|s| s.tenant.as_str()).collect();
        let keys: Vec<&str> = s.iter().map(|s| s.key.as_str()).collect();
        let values: Vec<&str> = s.iter().map(|s| s.value.as_str()).collect();
        let updated: Vec<i64> = s.iter().map(|s| s.updated_at.as_micros()).collect();
        let sql = if created {
            "INSERT INTO settings (tenant, key, value, updated_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[])"
        } else {
            "UPDATE settings s SET value = u.value, updated_at = u.updated_at \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
             AS u (tenant, key, value, updated_at) \
             WHERE s.tenant = u.tenant AND s.key = u.key"
        };
        let n = execute(tx, sql, &[&tenants, &keys, &values, &updated]).await?;
        all("settings", s.len(), n)?;
    }
    Ok(())
}

/// Writes the records linked steps changed: inserts (a racing insert breaks the key,
/// and the batch runs again), then updates and deletes of rows the batch loaded
/// locked, so their versions are still the ones it read.
async fn write_records<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    let r = &changes.records;
    if r.is_empty() {
        return Ok(());
    }
    let inserts: Vec<_> = r.iter().filter(|c| c.read.is_none()).collect();
    let updates: Vec<_> = r
        .iter()
        .filter(|c| c.read.is_some() && c.write.is_some())
        .collect();
    let deletes: Vec<_> = r
        .iter()
        .filter(|c| c.read.is_some() && c.write.is_none())
        .collect();
    let key_columns =
        |rows: &[&prepaid_store::exec::RecordChange]| -> (Vec<String>, Vec<String>, Vec<String>) {
            (
                rows.iter().map(|c| c.tenant.as_str().to_owned()).collect(),
                rows.iter().map(|c| c.kind.as_str().to_owned()).collect(),
                rows.iter().map(|c| c.key.as_str().to_owned()).collect(),
            )
        };
    let written =
        |rows: &[&prepaid_store::exec::RecordChange]| -> (Vec<String>, Vec<i64>, Vec<i64>) {
            (
                rows.iter()
                    .map(|c| c.write.as_ref().map(|(_, v)| v.clone()).unwrap_or_default())
                    .collect(),
                rows.iter()
                    .map(|c| c.write.as_ref().map(|(v, _)| *v).unwrap_or_default())
                    .collect(),
                rows.iter().map(|c| c.at.as_micros()).collect(),
            )
        };
    if !inserts.is_empty() {
        let (tenants, kinds, keys) = key_columns(&inserts);
        let (values, versions, at) = written(&inserts);
        let n = execute(
            tx,
            "INSERT INTO records (tenant, kind, key, value, version, created_at, updated_at) \
             SELECT t, k, y, v, n, a, a FROM unnest($1::text[], $2::text[], $3::text[], \
             $4::text[], $5::int8[], $6::int8[]) AS u (t, k, y, v, n, a)",
            &[&tenants, &kinds, &keys, &values, &versions, &at],
        )
        .await?;
        all("records", inserts.len(), n)?;
    }
    if !updates.is_empty() {
        let (tenants, kinds, keys) = key_columns(&updates);
        let (values, versions, at) = written(&updates);
        let read: Vec<i64> = updates.iter().filter_map(|c| c.read).collect();
        let n = execute(
            tx,
            "UPDATE records r SET value = u.v, version = u.n, updated_at = u.a \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
             $6::int8[], $7::int8[]) AS u (t, k, y, v, n, a, o) \
             WHERE r.tenant = u.t AND r.kind = u.k AND r.key = u.y AND r.version = u.o",
            &[&tenants, &kinds, &keys, &values, &versions, &at, &read],
        )
        .await?;
        all("records", updates.len(), n)?;
    }
    if !deletes.is_empty() {
        let (tenants, kinds, keys) = key_columns(&deletes);
        let read: Vec<i64> = deletes.iter().filter_map(|c| c.read).collect();
        let n = execute(
            tx,
            "DELETE FROM records r USING unnest($1::text[], $2::text[], $3::text[], \
             $4::int8[]) AS u (t, k, y, o) \
             WHERE r.tenant = u.t AND r.kind = u.k AND r.key = u.y AND r.version = u.o",
            &[&tenants, &kinds, &keys, &read],
        )
        .await?;
        all("records", deletes.len(), n)?;
    }
    Ok(())
}

/// Queues the jobs linked steps made; an id queued already keeps its job.
async fn write_jobs<C: GenericClient>(tx: &C, changes: &Changes) -> Result<(), Fail> {
    let j = &changes.jobs;
    if j.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = j.iter().map(|j| j.tenant.as_str()).collect();
    let queues: Vec<&str> = j.iter().map(|j| j.queue.as_str()).collect();
    let ids: Vec<&str> = j.iter().map(|j| j.id.as_str()).collect();
    let payloads: Vec<&str> = j.iter().map(|j| j.payload.as_str()).collect();
    let due: Vec<i64> = j.iter().map(|j| j.due_at.as_micros()).collect();
    execute(
        tx,
        "INSERT INTO jobs (tenant, queue, id, payload, due_at, attempts) \
         SELECT t, q, i, p, d, 0 FROM unnest($1::text[], $2::text[], $3::text[], \
         $4::text[], $5::int8[]) AS u (t, q, i, p, d) ON CONFLICT DO NOTHING",
        &[&tenants, &queues, &ids, &payloads, &due],
    )
    .await?;
    Ok(())
}

/// Inserts the mutations, each with the next value of the cursor sequence, in the
/// order of the batch, so that a tenant's mutations list in the order the batch made
/// them; returns the rows written.
async fn write_mutations<C: GenericClient>(tx: &C, changes: &Changes) -> Result<u64, Fail> {
    let m = &changes.mutations;
    if m.is_empty() {
        return Ok(0);
    }
    let tenants: Vec<&str> = m.iter().map(|m| m.tenant.as_str()).collect();
    let ids: Vec<uuid::Uuid> = m.iter().map(|m| m.id.0).collect();
    let wallets: Vec<&str> = m.iter().map(|m| m.wallet.as_str()).collect();
    let customers: Vec<&str> = m.iter().map(|m| m.customer.as_str()).collect();
    let codes: Vec<&str> = m.iter().map(|m| m.unit.code()).collect();
    let scales: Vec<i16> = m.iter().map(|m| i16::from(m.unit.scale())).collect();
    let kinds: Vec<&str> = m.iter().map(|m| m.kind.as_str()).collect();
    let amounts: Vec<i64> = m.iter().map(|m| m.amount).collect();
    let after: Vec<i64> = m.iter().map(|m| m.balance_after).collect();
    let ref_kinds: Vec<&str> = m.iter().map(|m| m.reference.parts().0).collect();
    let ref_texts: Vec<&str> = m.iter().map(|m| m.reference.parts().1).collect();
    let ref_links: Vec<&str> = m.iter().map(|m| m.reference.parts().2).collect();
    let holds: Vec<Option<uuid::Uuid>> = m.iter().map(|m| m.hold.map(|h| h.0)).collect();
    let transfers: Vec<Option<uuid::Uuid>> = m.iter().map(|m| m.transfer.map(|t| t.0)).collect();
    let counter: Vec<Option<&str>> = m
        .iter()
        .map(|m| m.counter_wallet.as_ref().map(WalletId::as_str))
        .collect();
    let occurred: Vec<i64> = m.iter().map(|m| m.occurred_at.as_micros()).collect();
    let recorded: Vec<i64> = m.iter().map(|m| m.recorded_at.as_micros()).collect();
    let drawn: Vec<String> = m
        .iter()
        .map(|m| prepaid_store::sql::encode_draws(&m.drawn))
        .collect();
    let reverses: Vec<Option<uuid::Uuid>> = m.iter().map(|m| m.reverses.map(|r| r.0)).collect();
    let metadata: Vec<String> = m.iter().map(|m| encode_metadata(&m.metadata)).collect();
    execute(
        tx,
        MUTATIONS_SQL,
        &[
            &tenants, &ids, &wallets, &customers, &codes, &scales, &kinds, &amounts, &after,
            &ref_kinds, &ref_texts, &ref_links, &holds, &transfers, &counter, &occurred, &recorded,
            &drawn, &reverses, &metadata,
        ],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use prepaid_ledger::{SystemAccount, TenantId, Unit};

    fn change(tenant: &str, account: SystemAccount, delta: i64) -> AccountChange {
        AccountChange {
            tenant: TenantId::parse(tenant).unwrap(),
            unit: Unit::new("EUR", 2).unwrap(),
            account,
            delta,
            balance: 0,
        }
    }

    fn placed(deltas: &[SlotDelta<'_>]) -> Vec<(usize, i64)> {
        deltas.iter().map(|d| (d.slot, d.delta)).collect()
    }

    #[test]
    fn the_schema_bounds_the_slots_as_the_store_does() {
        let sql = include_str!("../migrations/0008_account_slots_and_mutation_sequence.sql");
        let last = ACCOUNT_SLOTS_MAX - 1;
        assert!(sql.contains(&format!("slot BETWEEN 0 AND {last}")));
        assert!(sql.contains(&format!(
            "balance BETWEEN -{SLOT_BALANCE_ABS_MAX} AND {SLOT_BALANCE_ABS_MAX}"
        )));
        assert!(sql.contains(&format!("generate_series(1, {last})")));
        assert_eq!(
            SLOT_BALANCE_ABS_MAX * i64::try_from(ACCOUNT_SLOTS_MAX).unwrap(),
            BALANCE_ABS_MAX
        );
    }

    #[test]
    fn a_delta_goes_to_the_first_slot_when_it_has_room() {
        let changes = [change("t", SystemAccount::World, -7)];
        let deltas = spread(&changes, |_| [0; ACCOUNT_SLOTS_MAX], 5);
        assert_eq!(placed(&deltas), [(5, -7)]);
    }

    #[test]
    fn a_delta_spills_into_the_next_slots_near_the_bound() {
        let mut slots = [SLOT_BALANCE_ABS_MAX; ACCOUNT_SLOTS_MAX];
        slots[ACCOUNT_SLOTS_MAX - 1] = SLOT_BALANCE_ABS_MAX - 3;
        slots[0] = SLOT_BALANCE_ABS_MAX - 2;
        slots[2] = 0;
        let changes = [change("t", SystemAccount::Revenue, 10)];
        let deltas = spread(&changes, |_| slots, ACCOUNT_SLOTS_MAX - 1);
        assert_eq!(
            placed(&deltas),
            [(0, 2), (2, 5), (ACCOUNT_SLOTS_MAX - 1, 3)]
        );
        let back = [change("t", SystemAccount::Revenue, -1)];
        assert_eq!(placed(&spread(&back, |_| slots, 1)), [(1, -1)]);
    }

    #[test]
    fn a_delta_with_no_room_goes_whole_to_the_first_slot() {
        let changes = [change("t", SystemAccount::World, 1)];
        let deltas = spread(&changes, |_| [SLOT_BALANCE_ABS_MAX; ACCOUNT_SLOTS_MAX], 3);
        assert_eq!(placed(&deltas), [(3, 1)]);
    }

    #[test]
    fn slot_deltas_come_in_key_order() {
        let changes = [
            change("u", SystemAccount::World, 1),
            change("t", SystemAccount::World, 1),
            change("t", SystemAccount::Adjustment, 1),
        ];
        let deltas = spread(&changes, |_| [0; ACCOUNT_SLOTS_MAX], 0);
        let order: Vec<(&str, &str)> = deltas
            .iter()
            .map(|d| (d.change.tenant.as_str(), d.change.account.as_str()))
            .collect();
        assert_eq!(order, [("t", "adjustment"), ("t", "world"), ("u", "world")]);
    }
}
