//! `/accounts/...`: companies, customers, balances, payment and transaction history,
//! and the check of an account link key.
//!
//! A customer's main balance is its ledger wallet `<coid>.<custid>`; its history is that
//! wallet's mutations, newest first. Payments are its top-ups (`PAYMENTSOURCE` and
//! `TRANSACTIONID` from the credit's reference); transactions are all of its mutations,
//! each with a `HEADERID` numbered per tenant on first sight (kept as records, so a
//! number never changes) and, for a till's sale, the sale's items.

use super::ctx::Ctx;
use super::errors::{Fail, store_fail};
use super::model::{
    CAS_RETRIES_MAX, HEADER_KIND, Header, Recs, SALE_KIND, SOURCE_TILL, Sale, TID_KIND, Tid,
    encode, main_wallet, pad, payment_of, split_customer,
};
use super::types::{
    COMPANY_ID_MAX, CUSTOMER_ID_MAX, NO_TIME, NUMBER_ID_MAX, datetime, detail_date_time,
    history_date_time,
};
use super::xml::Node;
use crate::model::record_key;
use prepaid_edge::SharedState;
use prepaid_edge::auth::Read;
use prepaid_edge::submit::Operation;
use prepaid_ledger::RecordKey;
use prepaid_ledger::Refusal;
use prepaid_ledger::{Mutation, MutationId, MutationKind, WalletId};
use prepaid_store::{MutationSearch, Order, PAGE_SIZE_MAX};

/// The most rows a history answers with, newest first.
pub const HISTORY_ROWS_MAX: usize = 100;
/// The most mutations a payment history looks through to find its rows.
pub const HISTORY_SCAN_MAX: usize = 10_000;

/// The company and customer a request names (`coid`, and `custid` or `cid`), checked
/// against the key and known to exist.
pub async fn customer_of<R: prepaid_edge::auth::Role>(
    state: &SharedState,
    ctx: &Ctx<R>,
) -> Result<(u32, u32), Fail> {
    let coid = ctx.number(&["coid"], COMPANY_ID_MAX)?;
    let custid = ctx.number(&["custid", "cid"], CUSTOMER_ID_MAX)?;
    ctx.check_company(coid)?;
    let recs = ctx.recs(state);
    recs.company(coid).await?;
    recs.customer(coid, custid).await?;
    Ok((coid, custid))
}

pub async fn company_details(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let coid = ctx.number(&["cid", "coid"], COMPANY_ID_MAX)?;
    ctx.check_company(coid)?;
    let company = ctx.recs(state).company(coid).await?;
    Ok(Node::map()
        .with("status", 1i64)
        .with("name", company.name)
        .with("db", company.db))
}

pub async fn customer_details(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let (coid, custid) = customer_of(state, ctx).await?;
    let c = ctx.recs(state).customer(coid, custid).await?;
    Ok(Node::map()
        .with(
            "customer",
            Node::map()
                .with("TITLE", c.title)
                .with("FIRSTNAME", c.firstname)
                .with("LASTNAME", c.lastname)
                .with("ACCOUNTNUMBER", c.accountnumber),
        )
        .with("status", 1i64))
}

/// The ledger wallet `id`, which must exist.
pub async fn ledger_wallet(
    state: &SharedState,
    ctx: &Ctx<impl prepaid_edge::auth::Role>,
    id: &WalletId,
) -> Result<prepaid_ledger::Wallet, Fail> {
    state
        .store
        .wallet(&ctx.principal.tenant, id)
        .await
        .map_err(|e| store_fail(&e, "reading a wallet"))?
        .ok_or_else(Fail::no_data)
}

pub async fn customer_balance(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let (coid, custid) = customer_of(state, ctx).await?;
    let wallet = ledger_wallet(state, ctx, &main_wallet(coid, custid)).await?;
    Ok(Node::map()
        .with(
            "balance",
            Node::map()
                .with("BALANCE", wallet.balance.to_string())
                .with("LAST_UPDATE", datetime(wallet.updated_at)),
        )
        .with("status", 1i64))
}

/// The newest mutations of `wallet` that `keep` accepts, at most `rows`, looking
/// through at most [`HISTORY_SCAN_MAX`].
pub async fn newest(
    state: &SharedState,
    ctx: &Ctx<impl prepaid_edge::auth::Role>,
    wallet: &WalletId,
    rows: usize,
    keep: impl Fn(&Mutation) -> bool,
) -> Result<Vec<Mutation>, Fail> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    while out.len() < rows && (offset as usize) < HISTORY_SCAN_MAX {
        let page = state
            .store
            .search_mutations(
                &ctx.principal.tenant,
                &MutationSearch {
                    wallet: Some(wallet.clone()),
                    order: Order::Descending,
                    offset,
                    limit: PAGE_SIZE_MAX,
                    ..MutationSearch::default()
                },
            )
            .await
            .map_err(|e| store_fail(&e, "listing a wallet's mutations"))?;
        let n = page.items.len();
        out.extend(page.items.into_iter().filter(|m| keep(m)));
        if n < PAGE_SIZE_MAX {
            break;
        }
        offset += n as u64;
    }
    out.truncate(rows);
    Ok(out)
}

/// One row of a payment history.
pub fn payment_row(m: &Mutation) -> Node {
    let (source, transaction_id, _) = payment_of(&m.reference);
    let received = if source == SOURCE_TILL {
        NO_TIME.to_owned()
    } else {
        datetime(m.occurred_at)
    };
    Node::map()
        .with("ADJUSTMENT", m.amount.to_string())
        .with("SENTTOPOS", datetime(m.recorded_at))
        .with("RECIEVED", received)
        .with("PAYMENTSOURCE", source.to_string())
        .with("TRANSACTIONID", transaction_id)
}

pub async fn payment_history(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let (coid, custid) = customer_of(state, ctx).await?;
    let payments = newest(
        state,
        ctx,
        &main_wallet(coid, custid),
        HISTORY_ROWS_MAX,
        |m| m.kind == MutationKind::TopUp,
    )
    .await?;
    if payments.is_empty() {
        return Err(Fail::no_data());
    }
    Ok(Node::map()
        .with(
            "payments",
            payments.iter().map(payment_row).collect::<Vec<_>>(),
        )
        .with("status", 1i64))
}

/// The `HEADERID` of each of `mutations`, numbering those seen for the first time in
/// the order they were recorded.
async fn header_ids(recs: &Recs<'_>, mutations: &[Mutation]) -> Result<Vec<u64>, Fail> {
    let mut ids = vec![0u64; mutations.len()];
    for (i, m) in mutations.iter().enumerate() {
        if let Some((h, _)) = recs.get::<Header>(HEADER_KIND, &m.id.0.to_string()).await? {
            ids[i] = h.headerid;
        }
    }
    // Oldest first among the new ones, so that numbers grow with time. The numbers of
    // one page, their counter and both of their indexes are one unit; a request that
    // numbered any of them meanwhile refuses it, and the page is read again.
    let mut order: Vec<usize> = (0..mutations.len()).filter(|&i| ids[i] == 0).collect();
    if order.is_empty() {
        return Ok(ids);
    }
    order.sort_by_key(|&i| std::cmp::Reverse(i));
    for _ in 0..CAS_RETRIES_MAX {
        let (first, take) = recs.number_to_take("header").await?;
        let mut op = Operation::system(recs.tenant, prepaid_ledger::Command::Records);
        let mut next = first;
        for &i in &order {
            let key = mutations[i].id.0.to_string();
            op = op
                .put_record(
                    HEADER_KIND,
                    &RecordKey::from_uuid(mutations[i].id.0),
                    encode(HEADER_KIND, &Header { headerid: next })?,
                    None,
                )
                .put_record(
                    TID_KIND,
                    &record_key(&pad(next))?,
                    encode(TID_KIND, &Tid { mutation: key })?,
                    None,
                );
            next += 1;
        }
        let op = take.link_to(op, next)?;
        match op
            .submit(recs.state, "numbering TouchTopUp transactions")
            .await?
        {
            Ok(_) => {
                for (n, &i) in (first..).zip(&order) {
                    ids[i] = n;
                }
                return Ok(ids);
            }
            Err(Refusal::RecordConflict) => {
                // Numbered meanwhile by another request: its numbers stand.
                for &i in &order {
                    let key = mutations[i].id.0.to_string();
                    if let Some((h, _)) = recs.get::<Header>(HEADER_KIND, &key).await? {
                        ids[i] = h.headerid;
                    }
                }
                order.retain(|&i| ids[i] == 0);
                if order.is_empty() {
                    return Ok(ids);
                }
            }
            Err(r) => return Err(super::errors::refusal(&r)),
        }
    }
    tracing::warn!("TouchTopUp transaction numbers stayed contended");
    Err(Fail::unavailable("The service is busy; try again"))
}

async fn sale_of(recs: &Recs<'_>, m: &Mutation) -> Result<Option<Sale>, Fail> {
    if m.kind != MutationKind::Debit {
        return Ok(None);
    }
    Ok(recs
        .get::<Sale>(SALE_KIND, &m.id.0.to_string())
        .await?
        .map(|(s, _)| s))
}

pub async fn transaction_history(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let (coid, custid) = customer_of(state, ctx).await?;
    let mutations = newest(
        state,
        ctx,
        &main_wallet(coid, custid),
        HISTORY_ROWS_MAX,
        |_| true,
    )
    .await?;
    if mutations.is_empty() {
        return Err(Fail::no_data());
    }
    let recs = ctx.recs(state);
    let ids = header_ids(&recs, &mutations).await?;
    let mut rows = Vec::with_capacity(mutations.len());
    for (m, id) in mutations.iter().zip(ids) {
        let sale = sale_of(&recs, m).await?;
        rows.push(transaction_row(
            id,
            sale.as_ref(),
            history_date_time(m.occurred_at),
            Some(m.amount.to_string()),
            m.balance_after,
        ));
    }
    Ok(Node::map().with("transactions", rows).with("status", 1i64))
}

pub async fn transaction_detail(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let tid = ctx.number(&["tid"], NUMBER_ID_MAX)?;
    let coid = ctx.number(&["coid"], COMPANY_ID_MAX)?;
    ctx.check_company(coid)?;
    let recs = ctx.recs(state);
    recs.company(coid).await?;
    let missing = Fail::no_data;
    let Some((t, _)) = recs.get::<Tid>(TID_KIND, &pad(tid.into())).await? else {
        return Err(missing());
    };
    let id = uuid::Uuid::try_parse(&t.mutation).map_err(|_| {
        tracing::error!(tid, "a transaction number names no mutation id");
        Fail::internal()
    })?;
    let m = state
        .store
        .mutation(&ctx.principal.tenant, MutationId(id))
        .await
        .map_err(|e| store_fail(&e, "reading a transaction"))?
        .ok_or_else(missing)?;
    // Only a main wallet's transactions of this company are transactions here.
    let Some((m_coid, m_custid)) = split_customer(&m.customer) else {
        return Err(missing());
    };
    if m_coid != coid || m.wallet != main_wallet(m_coid, m_custid) {
        return Err(missing());
    }
    let sale = sale_of(&recs, &m).await?;
    let items: Vec<Node> = sale
        .as_ref()
        .map(|s| {
            s.items
                .iter()
                .map(|i| {
                    Node::map()
                        .with("ITEMRECORD", i.itemrecord.to_string())
                        .with("QTY", i.qty.to_string())
                        .with("TEXT", i.text.clone())
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Node::map()
        .with(
            "transaction",
            transaction_row(
                tid.into(),
                sale.as_ref(),
                detail_date_time(m.occurred_at),
                None,
                m.balance_after,
            )
            .with("items", items),
        )
        .with("status", 1i64))
}

/// A transaction as history and detail show it, in the document's order: its number,
/// the till sale's numbers (zeros when it is no till sale), `ACCOUNTADJ` when given
/// (history only) and the balance after it.
fn transaction_row(
    id: u64,
    sale: Option<&Sale>,
    (date, time): (String, String),
    account_adj: Option<String>,
    balance_after: i64,
) -> Node {
    let mut row = Node::map()
        .with("HEADERID", id.to_string())
        .with("SITE", sale.map_or(0, |s| s.site).to_string())
        .with("DATE", date)
        .with("TIME", time)
        .with(
            "SALETOTAL",
            sale.map_or(0, |s| s.sale_total_minor).to_string(),
        );
    if let Some(account_adj) = account_adj {
        row = row.with("ACCOUNTADJ", account_adj);
    }
    row.with(
        "CONSECNUMBER",
        sale.map_or(0, |s| s.consec_number).to_string(),
    )
    .with("SALEID", sale.map_or(0, |s| s.sale_id).to_string())
    .with("BALANCE", balance_after.to_string())
}

pub async fn validate_accountkey(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let key = ctx.require_secret(super::params::LINK_KEY)?;
    let (coid, custid) = check_link_key(state, ctx, key).await?;
    ctx.check_company(coid)?;
    let _ = custid;
    Ok(Node::map()
        .with("status", 1i64)
        .with("msg", "linkkey is valid"))
}

/// The company and customer of a genuine link key of an existing customer.
pub async fn check_link_key<R: prepaid_edge::auth::Role>(
    state: &SharedState,
    ctx: &Ctx<R>,
    key: &str,
) -> Result<(u32, u32), Fail> {
    let keys = super::secrets::LinkKeys::for_tenant(state, &ctx.principal.tenant)
        .await
        .map_err(|e| store_fail(&e, "reading the link key secret"))?;
    let invalid = || Fail::not_found("linkkey is not valid");
    // Guesses at one customer's key are throttled as logins are; a malformed key can
    // never be right, so it is refused without being counted.
    let (coid, custid) = super::secrets::link_key_target(key).ok_or_else(invalid)?;
    let tenant = &ctx.principal.tenant;
    let throttled = ctx.throttle_name("link", &format!("{coid}.{custid}"));
    if let Err(wait) = ctx.own.login_throttle.check(tenant, &throttled, ctx.now) {
        return Err(super::users::locked_for("wrong link keys", wait.0));
    }
    if keys.check(key).is_none() {
        ctx.own
            .login_throttle
            .record_failure(tenant, &throttled, ctx.now);
        return Err(invalid());
    }
    ctx.own.login_throttle.record_success(tenant, &throttled);
    let recs = ctx.recs(state);
    if recs
        .get::<super::model::CustomerInfo>(
            super::model::CUSTOMER_KIND,
            &super::model::customer_key(coid, custid),
        )
        .await?
        .is_none()
    {
        return Err(invalid());
    }
    Ok((coid, custid))
}
