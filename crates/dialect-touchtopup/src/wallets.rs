//! `/wallets/...`: company wallets, the customers assigned to them, charges and their
//! revocation, and a customer's view of a wallet.
//!
//! A company wallet is a record ([`WalletInfo`]). Assigning a customer opens its
//! ledger wallet `<coid>.<custid>.w<wallet>` in the company currency with no floor and,
//! for an event wallet without overpay, the ceiling 0; removing the customer suspends
//! that wallet (its history stays) and assigning again reactivates it. A charge is a
//! record ([`Charge`]) and one debit per customer charged, with the idempotency key
//! `icrtouch-charge:<coid>:<charge>:<custid>`; revoking it is a compensating credit
//! (`icrtouch-revoke:...`). A payment is a top-up of the customer's wallet (see
//! [`super::checkout`]). So the balance of an assigned customer's wallet is what it
//! paid less what it was charged: negative while money is owed.
//!
//! Fields (form or JSON body, names in any case): `coid`, `wallet` (or `walletid`),
//! `custid` (or `cid`); `wallet_create` and `wallet_update` take `name`,
//! `description`, `type` (0 event, 1 recurring/open), `paybydate` and `purposedate`
//! (`YYYY-MM-DD`, required for an event wallet), `allowoverpay` and `status` (0 or 1);
//! `wallet_add_charge` takes `charge` (a decimal amount, `25.00`), `duedate` and
//! optionally `custid` or `customers` (comma-separated) to charge only some of the
//! assigned customers; the revokes take `chargeid` (and `custid` for one customer).

use super::accounts::{ledger_wallet, newest};
use super::ctx::Ctx;
use super::errors::Fail;
use super::model::{
    ASSIGN_KIND, Assigned, CAS_RETRIES_MAX, CHARGE_KIND, CHARGE_REFERENCE_KIND, Charge,
    REVOKE_REFERENCE_KIND, WALLET_KIND, WALLET_TYPE_EVENT, WALLET_TYPE_RECURRING, WalletInfo,
    assign_key, assign_prefix, charge_key, encode, has_room, ledger_customer, payment_of,
    submit_op, wallet_key, wallet_number, wallet_wallet,
};
use super::types::{
    COMPANY_ID_MAX, CUSTOMER_ID_MAX, NUMBER_ID_MAX, date, datetime, decimal, format_decimal, text,
};
use super::xml::Node;
use crate::model::record_key;
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Read, Role, Write};
use prepaid_edge::new_uuid;
use prepaid_edge::submit::Operation;
use prepaid_ledger::{
    Amount, Command, Floor, MutationId, MutationKind, NewWallet, Reference, Refusal, Unit,
    WalletStatus,
};
use prepaid_store::{PAGE_SIZE_MAX, WalletQuery};

/// The most customers assigned to one wallet.
pub const WALLET_CUSTOMERS_MAX: usize = 5_000;
/// The most wallets of one company.
pub const COMPANY_WALLETS_MAX: usize = 5_000;
/// The most customers one charge names explicitly.
pub const CHARGE_CUSTOMERS_MAX: usize = 1000;
/// The most rows of payments a customer's wallet details show, newest first.
pub const WALLET_PAYMENTS_MAX: usize = 100;
/// The most mutations of a customer's wallet read for its charges.
pub const WALLET_CHARGES_MAX: usize = 1000;

fn wallet_row(w: &WalletInfo) -> Node {
    Node::map()
        .with("WALLETID", w.walletid.to_string())
        .with("NAME", w.name.clone())
        .with("DESCRIPTION", w.description.clone())
        .with("STATUS", w.status.to_string())
        .with("TYPE", w.wallet_type.to_string())
}

fn coid_of<R: Role>(ctx: &Ctx<R>) -> Result<u32, Fail> {
    let coid = ctx.number(&["coid"], COMPANY_ID_MAX)?;
    ctx.check_company(coid)?;
    Ok(coid)
}

fn wallet_of<R: Role>(ctx: &Ctx<R>) -> Result<u32, Fail> {
    ctx.number(&["wallet", "walletid"], NUMBER_ID_MAX)
}

fn custid_of<R: Role>(ctx: &Ctx<R>) -> Result<u32, Fail> {
    ctx.number(&["custid", "cid"], CUSTOMER_ID_MAX)
}

/// A 0/1 flag parameter, `default` when absent.
fn flag<R: Role>(ctx: &Ctx<R>, name: &str, default: u8) -> Result<u8, Fail> {
    match ctx.params.get(&[name]) {
        None => Ok(default),
        Some("0") => Ok(0),
        Some("1") => Ok(1),
        Some(other) => Err(Fail::bad(format!("{name} must be 0 or 1, got {other:?}"))),
    }
}

pub async fn wallet_list(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let coid = coid_of(ctx)?;
    let recs = ctx.recs(state);
    recs.company(coid).await?;
    let prefix = format!("{}.", super::model::company_key(coid));
    let wallets = recs.list::<WalletInfo>(WALLET_KIND, &prefix).await?;
    if wallets.is_empty() {
        return Err(Fail::no_data());
    }
    Ok(Node::map().with("status", 1i64).with(
        "wallets",
        wallets
            .iter()
            .map(|(_, w)| wallet_row(w))
            .collect::<Vec<_>>(),
    ))
}

/// The wallet fields of a create or update, over `base`.
fn wallet_fields<R: Role>(ctx: &Ctx<R>, mut w: WalletInfo) -> Result<WalletInfo, Fail> {
    if let Some(name) = ctx.params.get(&["name"]) {
        w.name = text("name", name)?;
    }
    if ctx.params.has(&["description"]) {
        w.description = ctx.text(&["description"])?;
    }
    if let Some(t) = ctx.params.get(&["type"]) {
        w.wallet_type = match t {
            "0" => WALLET_TYPE_EVENT,
            "1" => WALLET_TYPE_RECURRING,
            other => {
                return Err(Fail::bad(format!(
                    "type must be 0 (event) or 1 (recurring), got {other:?}"
                )));
            }
        };
    }
    if let Some(d) = ctx.params.get(&["paybydate"]) {
        w.paybydate = date("paybydate", d)?;
    }
    if let Some(d) = ctx.params.get(&["purposedate"]) {
        w.purposedate = date("purposedate", d)?;
    }
    w.allowoverpay = flag(ctx, "allowoverpay", w.allowoverpay)?;
    w.status = flag(ctx, "status", w.status)?;
    if w.name.trim().is_empty() {
        return Err(Fail::bad("name is required"));
    }
    if w.wallet_type == WALLET_TYPE_EVENT && (w.paybydate.is_empty() || w.purposedate.is_empty()) {
        return Err(Fail::bad(
            "an event wallet (type 0) needs paybydate and purposedate",
        ));
    }
    Ok(w)
}

pub async fn wallet_create(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let coid = coid_of(ctx)?;
    let recs = ctx.recs(state);
    recs.company(coid).await?;
    if !ctx.params.has(&["type"]) {
        return Err(Fail::bad("type is required: 0 (event) or 1 (recurring)"));
    }
    let w = wallet_fields(
        ctx,
        WalletInfo {
            walletid: 0,
            coid,
            name: String::new(),
            description: String::new(),
            wallet_type: WALLET_TYPE_RECURRING,
            status: 1,
            paybydate: String::new(),
            purposedate: String::new(),
            allowoverpay: 0,
        },
    )?;
    let prefix = format!("{}.", super::model::company_key(coid));
    let count = recs.list::<WalletInfo>(WALLET_KIND, &prefix).await?.len();
    if !has_room(count, COMPANY_WALLETS_MAX) {
        return Err(Fail::conflict(format!(
            "A company may have at most {COMPANY_WALLETS_MAX} wallets"
        )));
    }
    // The wallet's number and its record are one unit.
    let mut rounds = 0;
    let walletid = loop {
        let (n, take) = recs.number_to_take(&format!("wallet.{coid}")).await?;
        let walletid = u32::try_from(n)
            .ok()
            .filter(|n| *n <= NUMBER_ID_MAX)
            .ok_or_else(|| Fail::conflict("No more wallets can be created"))?;
        let value = encode(
            WALLET_KIND,
            &WalletInfo {
                walletid,
                ..w.clone()
            },
        )?;
        let op = take.link(Operation::records(&ctx.principal)).put_record(
            WALLET_KIND,
            &record_key(&wallet_key(coid, walletid))?,
            value,
            None,
        );
        match op.submit(state, "creating a TouchTopUp wallet").await? {
            Ok(_) => break walletid,
            Err(Refusal::RecordConflict) if rounds < CAS_RETRIES_MAX => rounds += 1,
            Err(r) => return Err(super::errors::refusal(&r)),
        }
    };
    Ok(Node::map()
        .with("msg", "Wallet created")
        .with("status", 1i64)
        .with("WALLETID", walletid.to_string()))
}

async fn assigned(
    state: &SharedState,
    ctx: &Ctx<impl Role>,
    coid: u32,
    wallet: u32,
) -> Result<Vec<u32>, Fail> {
    Ok(ctx
        .recs(state)
        .list::<Assigned>(ASSIGN_KIND, &assign_prefix(coid, wallet))
        .await?
        .into_iter()
        .map(|(_, a)| a.custid)
        .collect())
}

pub async fn wallet_update(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let coid = coid_of(ctx)?;
    let wallet = wallet_of(ctx)?;
    let recs = ctx.recs(state);
    let (old, version) = recs.wallet(coid, wallet).await?;
    let new = wallet_fields(ctx, old.clone())?;
    if new.wallet_type != old.wallet_type {
        return Err(Fail::bad("type cannot change; create another wallet"));
    }
    if new.ceiling() != old.ceiling() && !assigned(state, ctx, coid, wallet).await?.is_empty() {
        return Err(Fail::conflict(
            "allowoverpay cannot change while customers are assigned to the wallet",
        ));
    }
    if !recs
        .put(WALLET_KIND, &wallet_key(coid, wallet), &new, Some(version))
        .await?
    {
        return Err(Fail::conflict(
            "The wallet was changed at the same time; try again",
        ));
    }
    Ok(Node::map()
        .with("msg", "Wallet updated")
        .with("status", 1i64))
}

pub async fn wallet_customers_assigned(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let coid = coid_of(ctx)?;
    let wallet = wallet_of(ctx)?;
    let recs = ctx.recs(state);
    recs.wallet(coid, wallet).await?;
    let mut customers = Vec::new();
    for custid in assigned(state, ctx, coid, wallet).await? {
        customers.push(recs.customer(coid, custid).await?);
    }
    if customers.is_empty() {
        return Err(Fail::no_data());
    }
    customers.sort_by(|a, b| {
        (&a.lastname, &a.firstname, a.custid).cmp(&(&b.lastname, &b.firstname, b.custid))
    });
    let rows: Vec<Node> = customers
        .into_iter()
        .map(|c| {
            Node::map()
                .with("NUMBER", c.custid.to_string())
                .with("ACCOUNTNUMBER", c.accountnumber)
                .with("LASTNAME", c.lastname)
                .with("FIRSTNAME", c.firstname)
                .with("TITLE", c.title)
        })
        .collect();
    Ok(Node::map().with("customers", rows).with("status", 1i64))
}

pub async fn wallet_add_customer(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let coid = coid_of(ctx)?;
    let wallet = wallet_of(ctx)?;
    let custid = custid_of(ctx)?;
    let recs = ctx.recs(state);
    let company = recs.company(coid).await?;
    let (info, _) = recs.wallet(coid, wallet).await?;
    recs.customer(coid, custid).await?;
    let key = assign_key(coid, wallet, custid);
    if recs.get::<Assigned>(ASSIGN_KIND, &key).await?.is_none()
        && !has_room(
            assigned(state, ctx, coid, wallet).await?.len(),
            WALLET_CUSTOMERS_MAX,
        )
    {
        return Err(Fail::conflict(format!(
            "A wallet may have at most {WALLET_CUSTOMERS_MAX} customers"
        )));
    }
    let id = wallet_wallet(coid, custid, wallet);
    let unit = Unit::new(&company.currency, company.scale).map_err(|e| {
        tracing::error!(error = %e, coid, "a company has an invalid currency");
        Fail::internal()
    })?;
    // The customer's wallet (opened, or active again) and the assignment are one unit.
    let mut op = Operation::new(
        &ctx.principal,
        Command::EnsureWallet {
            wallet: NewWallet {
                id: id.clone(),
                customer: ledger_customer(coid, custid),
                unit,
                name: info.name.clone(),
                product: format!("touchtopup-wallet-{wallet}"),
                floor: Floor::Unlimited,
                ceiling: info.ceiling(),
                valid_from: None,
                valid_until: None,
                metadata: prepaid_ledger::Metadata::default(),
            },
        },
    )
    .then(Command::SetWalletStatus {
        wallet: id,
        status: WalletStatus::Active,
    });
    if recs.get::<Assigned>(ASSIGN_KIND, &key).await?.is_none() {
        let value = encode(ASSIGN_KIND, &Assigned { custid })?;
        op = op.put_record(ASSIGN_KIND, &record_key(&key)?, value, None);
    }
    match op.submit(state, "assigning a customer to a wallet").await? {
        Ok(_) => {}
        // Assigned meanwhile by the same request sent twice: the assignment stands.
        Err(Refusal::RecordConflict) => {}
        Err(r) => return Err(super::errors::refusal(&r)),
    }
    let count = assigned(state, ctx, coid, wallet).await?.len();
    Ok(Node::map()
        .with("customers", i64::try_from(count).unwrap_or(i64::MAX))
        .with("status", 1i64))
}

pub async fn wallet_remove_customer(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let coid = coid_of(ctx)?;
    let wallet = wallet_of(ctx)?;
    let custid = custid_of(ctx)?;
    let recs = ctx.recs(state);
    recs.wallet(coid, wallet).await?;
    let key = assign_key(coid, wallet, custid);
    if recs.get::<Assigned>(ASSIGN_KIND, &key).await?.is_none() {
        return Err(Fail::not_found(format!(
            "Customer {custid} is not assigned to wallet {wallet}"
        )));
    }
    let command = Command::SetWalletStatus {
        wallet: wallet_wallet(coid, custid, wallet),
        status: WalletStatus::Suspended,
    };
    let op = Operation::new(&ctx.principal, command).delete_record(ASSIGN_KIND, &record_key(&key)?);
    submit_op(state, op).await?;
    Ok(Node::map()
        .with("msg", "Customer has been removed from Wallet")
        .with("status", 1i64))
}

/// One of the two mutations a charge makes on an assigned customer's wallet.
#[derive(Clone, Copy)]
enum ChargeEntry {
    /// The debit that charges the customer.
    Charge,
    /// The compensating credit that revokes the charge.
    Revoke,
}

/// The mutation of `entry` of `charge` for `custid`.
fn charge_entry(charge: &Charge, custid: u32, entry: ChargeEntry) -> Result<Command, Fail> {
    let (kind, reference_kind, link) = match entry {
        ChargeEntry::Charge => (
            MutationKind::Debit,
            CHARGE_REFERENCE_KIND,
            charge.duedate.clone(),
        ),
        ChargeEntry::Revoke => (
            MutationKind::Adjustment,
            REVOKE_REFERENCE_KIND,
            String::new(),
        ),
    };
    let amount = Amount::positive(charge.charge_minor).map_err(|_| Fail::internal())?;
    Ok(Command::Post {
        id: MutationId(new_uuid()),
        wallet: wallet_wallet(charge.coid, custid, charge.wallet),
        kind,
        amount,
        reference: Reference::new(reference_kind, &charge.id.to_string(), &link)
            .map_err(|e| Fail::bad(format!("The charge's due date cannot be kept: {e}")))?,
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    })
}

/// One unit of the entries of `charge` for `customers` (at least one), with `more`
/// linked after them.
fn charge_unit(
    ctx: &Ctx<Write>,
    charge: &Charge,
    customers: &[u32],
    entry: ChargeEntry,
) -> Result<Operation, Fail> {
    let (first, rest) = customers.split_first().ok_or_else(Fail::internal)?;
    let mut op = Operation::new(&ctx.principal, charge_entry(charge, *first, entry)?);
    for custid in rest {
        op = op.then(charge_entry(charge, *custid, entry)?);
    }
    Ok(op)
}

/// The customers a charge names (`custid` or `customers`), or `None` for all.
fn named_customers(ctx: &Ctx<Write>) -> Result<Option<Vec<u32>>, Fail> {
    if let Some(one) = ctx.params.get(&["custid", "cid"]) {
        return Ok(Some(vec![super::types::number(
            "custid",
            one,
            CUSTOMER_ID_MAX,
        )?]));
    }
    let Some(list) = ctx.params.get(&["customers"]) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for part in list.split(',') {
        let n = super::types::number("customers", part.trim(), CUSTOMER_ID_MAX)?;
        if !out.contains(&n) {
            out.push(n);
        }
        if out.len() > CHARGE_CUSTOMERS_MAX {
            return Err(Fail::bad(format!(
                "customers may name at most {CHARGE_CUSTOMERS_MAX} customers"
            )));
        }
    }
    Ok(Some(out))
}

pub async fn wallet_add_charge(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let coid = coid_of(ctx)?;
    let wallet = wallet_of(ctx)?;
    let recs = ctx.recs(state);
    let company = recs.company(coid).await?;
    let (info, _) = recs.wallet(coid, wallet).await?;
    let amount = decimal("charge", ctx.require(&["charge", "amount"])?, company.scale)?;
    let duedate = date("duedate", ctx.require(&["duedate"])?)?;
    if info.status != 1 {
        return Err(Fail::conflict(format!("Wallet {wallet} is closed")));
    }
    let all = assigned(state, ctx, coid, wallet).await?;
    let targets = match named_customers(ctx)? {
        Some(list) => {
            if let Some(c) = list.iter().find(|c| !all.contains(c)) {
                return Err(Fail::not_found(format!(
                    "Customer {c} is not assigned to wallet {wallet}"
                )));
            }
            list
        }
        None => all,
    };
    if targets.is_empty() {
        return Err(Fail::not_found(format!(
            "No customers are assigned to wallet {wallet}"
        )));
    }
    // The charge's number, its record and its debit of every customer are one unit:
    // a refusal of any debit charges nobody and takes no number.
    let mut rounds = 0;
    let id = loop {
        let (n, take) = recs.number_to_take(&format!("charge.{coid}")).await?;
        let id = u32::try_from(n)
            .ok()
            .filter(|n| *n <= NUMBER_ID_MAX)
            .ok_or_else(|| Fail::conflict("No more charges can be made"))?;
        let charge = Charge {
            id,
            coid,
            wallet,
            charge_minor: amount,
            duedate: duedate.clone(),
            customers: targets.clone(),
            revoked: Vec::new(),
        };
        let op = take.link(charge_unit(ctx, &charge, &targets, ChargeEntry::Charge)?);
        let value = encode(CHARGE_KIND, &charge)?;
        let op = op.put_record(
            CHARGE_KIND,
            &record_key(&charge_key(coid, id))?,
            value,
            None,
        );
        match op.submit(state, "making a charge").await? {
            Ok(_) => break id,
            Err(Refusal::RecordConflict) if rounds < CAS_RETRIES_MAX => rounds += 1,
            Err(r) => return Err(super::errors::refusal(&r)),
        }
    };
    let charged: Vec<Node> = targets.iter().map(|c| Node::from(c.to_string())).collect();
    Ok(Node::map()
        .with("customers_charged", charged)
        .with("status", 1i64)
        .with("CHARGEID", id.to_string()))
}

/// Revokes `chargeid` of the request from `only` (every charged customer when `None`).
async fn revoke(state: &SharedState, ctx: &Ctx<Write>, one: bool) -> Result<Node, Fail> {
    let coid = coid_of(ctx)?;
    let wallet = wallet_of(ctx)?;
    let chargeid = ctx.number(&["chargeid", "charge_id", "id"], NUMBER_ID_MAX)?;
    let only = if one { Some(custid_of(ctx)?) } else { None };
    let recs = ctx.recs(state);
    recs.wallet(coid, wallet).await?;
    let key = charge_key(coid, chargeid);
    let missing = Fail::no_data;
    let Some((mut charge, mut version)) = recs.get::<Charge>(CHARGE_KIND, &key).await? else {
        return Err(missing());
    };
    if charge.wallet != wallet {
        return Err(missing());
    }
    let targets: Vec<u32> = match only {
        Some(c) if !charge.customers.contains(&c) => {
            return Err(Fail::not_found(format!(
                "Charge {chargeid} was not made to customer {c}"
            )));
        }
        Some(c) => vec![c],
        None => charge.customers.clone(),
    };
    // The compensating credits and the charge's record are one unit; a revoke racing
    // this one refuses it, and it runs again on the record as that one left it.
    let mut rounds = 0;
    loop {
        let pending: Vec<u32> = targets
            .iter()
            .copied()
            .filter(|c| !charge.revoked.contains(c))
            .collect();
        if pending.is_empty() {
            break;
        }
        let mut next = charge.clone();
        next.revoked.extend(&pending);
        let value = encode(CHARGE_KIND, &next)?;
        let op = charge_unit(ctx, &charge, &pending, ChargeEntry::Revoke)?.put_record(
            CHARGE_KIND,
            &record_key(&key)?,
            value,
            Some(version),
        );
        match op.submit(state, "revoking a charge").await? {
            Ok(_) => break,
            Err(Refusal::RecordConflict) if rounds < CAS_RETRIES_MAX => {
                rounds += 1;
                let Some((fresh, v)) = recs.get::<Charge>(CHARGE_KIND, &key).await? else {
                    return Err(missing());
                };
                charge = fresh;
                version = v;
            }
            Err(Refusal::CeilingExceeded { .. }) => {
                return Err(Fail::conflict(format!(
                    "Charge {} cannot be removed: it has been paid, and the wallet would \
                     then hold more than its charges",
                    charge.id
                )));
            }
            Err(r) => return Err(super::errors::refusal(&r)),
        }
    }
    Ok(Node::map()
        .with("msg", "Charge has been removed from Wallet")
        .with("status", 1i64))
}

pub async fn wallet_revoke_charge(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    revoke(state, ctx, true).await
}

pub async fn wallet_revoke_charge_from_all(
    state: &SharedState,
    ctx: &Ctx<Write>,
) -> Result<Node, Fail> {
    revoke(state, ctx, false).await
}

pub async fn customer_wallets(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let (coid, custid) = super::accounts::customer_of(state, ctx).await?;
    let page = state
        .store
        .wallets(
            &ctx.principal.tenant,
            &WalletQuery {
                customer: Some(ledger_customer(coid, custid)),
                after: None,
                limit: PAGE_SIZE_MAX,
                metadata: prepaid_store::MetadataFilter::default(),
            },
        )
        .await
        .map_err(|e| super::errors::store_fail(&e, "listing a customer's wallets"))?;
    let recs = ctx.recs(state);
    let mut numbers: Vec<u32> = page
        .items
        .iter()
        .filter(|w| w.status == WalletStatus::Active)
        .filter_map(|w| wallet_number(coid, custid, &w.id))
        .collect();
    numbers.sort_unstable();
    let mut rows = Vec::new();
    for n in numbers {
        if let Some((w, _)) = recs
            .get::<WalletInfo>(WALLET_KIND, &wallet_key(coid, n))
            .await?
        {
            rows.push(wallet_row(&w));
        }
    }
    if rows.is_empty() {
        return Err(Fail::no_data());
    }
    Ok(Node::map().with("status", 1i64).with("wallets", rows))
}

pub async fn customer_wallet_details(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let (coid, custid) = super::accounts::customer_of(state, ctx).await?;
    let wallet = wallet_of(ctx)?;
    let recs = ctx.recs(state);
    let (info, _) = recs.wallet(coid, wallet).await?;
    if recs
        .get::<Assigned>(ASSIGN_KIND, &assign_key(coid, wallet, custid))
        .await?
        .is_none()
    {
        return Err(Fail::not_found(format!(
            "Customer {custid} is not assigned to wallet {wallet}"
        )));
    }
    let id = wallet_wallet(coid, custid, wallet);
    let payments = newest(state, ctx, &id, WALLET_PAYMENTS_MAX, |m| {
        m.kind == MutationKind::TopUp
    })
    .await?;
    let debits = newest(state, ctx, &id, WALLET_CHARGES_MAX, |m| {
        m.kind == MutationKind::Debit && m.reference.kind() == Some(CHARGE_REFERENCE_KIND)
    })
    .await?;
    let company = recs.company(coid).await?;
    let mut charges = Vec::new();
    let mut ids: Vec<u32> = debits
        .iter()
        .filter_map(|m| m.reference.text()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    for cid in ids {
        if let Some((c, _)) = recs
            .get::<Charge>(CHARGE_KIND, &charge_key(coid, cid))
            .await?
            && !c.revoked.contains(&custid)
        {
            charges.push(
                Node::map()
                    .with("ID", c.id.to_string())
                    .with("CHARGE", format_decimal(c.charge_minor, company.scale))
                    .with("DUEDATE", c.duedate),
            );
        }
    }
    let payment_rows: Vec<Node> = payments
        .iter()
        .map(|m| {
            let (source, transaction_id, charge) = payment_of(&m.reference);
            Node::map()
                .with("ADJUSTMENT", m.amount.to_string())
                .with("RECIEVED", datetime(m.occurred_at))
                .with("PAYMENTSOURCE", source.to_string())
                .with("TRANSACTIONID", transaction_id)
                .with("CHARGEID", charge.to_string())
        })
        .collect();
    let _ = ledger_wallet(state, ctx, &id).await?;
    Ok(Node::map()
        .with("status", 1i64)
        .with(
            "wallet",
            Node::map()
                .with("WALLETID", info.walletid.to_string())
                .with("NAME", info.name)
                .with("DESCRIPTION", info.description)
                .with("PAYBYDATE", info.paybydate)
                .with("PURPOSEDATE", info.purposedate)
                .with("STATUS", info.status.to_string())
                .with("ALLOWOVERPAY", info.allowoverpay.to_string()),
        )
        .with("payments", payment_rows)
        .with("charges", charges))
}

/// Checks that `amount` may be paid by `custid` into company wallet `wallet` (for
/// `charge`, if named) before any money is taken.
pub async fn check_payable(
    state: &SharedState,
    ctx: &Ctx<Write>,
    coid: u32,
    custid: u32,
    wallet: u32,
    amount: i64,
    charge: Option<u32>,
) -> Result<(), Fail> {
    let recs = ctx.recs(state);
    let (info, _) = recs.wallet(coid, wallet).await?;
    if info.status != 1 {
        return Err(Fail::conflict(format!("Wallet {wallet} is closed")));
    }
    if recs
        .get::<Assigned>(ASSIGN_KIND, &assign_key(coid, wallet, custid))
        .await?
        .is_none()
    {
        return Err(Fail::not_found(format!(
            "Customer {custid} is not assigned to wallet {wallet}"
        )));
    }
    if let Some(cid) = charge {
        let made = recs
            .get::<Charge>(CHARGE_KIND, &charge_key(coid, cid))
            .await?
            .is_some_and(|(c, _)| c.wallet == wallet && c.customers.contains(&custid));
        if !made {
            return Err(Fail::not_found(format!(
                "Charge {cid} of wallet {wallet} was not made to customer {custid}"
            )));
        }
    }
    let w = ledger_wallet(state, ctx, &wallet_wallet(coid, custid, wallet)).await?;
    // Asked before the provider is, so that a payment that cannot fit starts no order;
    // the payment's credit hold is what reserves the room.
    if let Some(ceiling) = w.ceiling {
        let room = ceiling.saturating_sub(w.balance.saturating_add(w.incoming));
        if amount > room {
            let scale = recs.company(coid).await?.scale;
            return Err(super::checkout::beyond_charges(
                Some(wallet),
                amount,
                room,
                scale,
            ));
        }
    }
    Ok(())
}
