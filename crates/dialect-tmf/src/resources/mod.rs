//! The handlers of every TMF654 resource but `hub`, shared by both mounts: the
//! flavour of a request ([`Ctx`]) decides only how answers look.
//!
//! What maps to what:
//! - a `bucket` is a wallet (its id is the wallet id, `partyAccount.id` the customer);
//! - a `topupBalance` is a top-up mutation, an `adjustBalance` an adjustment, a
//!   `transferBalance` a transfer (its id is the transfer's id and its debit leg's
//!   mutation id), a `reserveBalance` a hold; each one's id is the ledger's, so a GET
//!   reads the ledger;
//! - `accumulatedBalance` sums a party account's buckets of one unit (id
//!   `<partyAccount id>:<units>`); `balanceActionHistory` is every mutation.
//!
//! The members a client sends that the ledger does not keep (description, channel,
//! requestor, payment, ...) are kept as a record of kind `tmf.<resource>` under the
//! resource's id, and laid under every answer about it. The record is a step of the
//! operation's unit ([`prepaid_edge::submit::Operation`]), as are the action's event and
//! a bucket's party account and first top-up: all of it commits, or none.
//!
//! The handlers are split by resource: `buckets`, `postings` (top-ups, adjustments and
//! transfers), `reserves` and `balances` (accumulated balances and history), over the
//! helpers here.

use super::errors::{TmfError, refusal};
use super::json::{decimal, to_vec};
use super::list::{ListParams, SCAN_MAX, answer};
use super::types::*;
use super::{amount, hub, recurring, units};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Caller, Principal, Read, Write};
use prepaid_edge::submit::Operation;
use prepaid_edge::{new_uuid, store_problem};
use prepaid_ledger::{
    Amount, Command, Customer, CustomerId, Done, Fingerprint, Floor, Hold, HoldId, HoldStatus,
    IdempotencyKey, Mutation, MutationId, MutationKind, NAME_LEN_MAX, NewWallet, REFERENCE_LEN_MAX,
    Reference, Refusal, TransferId, Unit, UnitError, Wallet, WalletId, bounded_text,
};
use prepaid_ledger::{RecordKey, RecordKind};
use prepaid_query::{Filter, Pred, Test};
use prepaid_store::{
    MutationSearch, Order, PAGE_SIZE_MAX, RECORD_VALUE_BYTES_MAX, StoreError, WalletSearch, columns,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;

mod balances;
mod buckets;
mod postings;
mod reserves;

pub use balances::*;
pub use buckets::*;
pub use postings::*;
pub use reserves::*;

pub(super) type Answer = Result<Response, TmfError>;
pub(super) type Reader = Caller<Read, TmfError>;
pub(super) type Writer = Caller<Write, TmfError>;

/// Record kinds of the members clients sent.
pub(super) const KIND_BUCKET: RecordKind = RecordKind::new("tmf.bucket");

/// The actions of TMF654: what each is called and where its extra members live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Topup,
    Adjust,
    Transfer,
    Reserve,
}

impl Action {
    fn collection(self) -> &'static str {
        match self {
            Action::Topup => "topupBalance",
            Action::Adjust => "adjustBalance",
            Action::Transfer => "transferBalance",
            Action::Reserve => "reserveBalance",
        }
    }
    fn type_name(self) -> &'static str {
        match self {
            Action::Topup => "TopupBalance",
            Action::Adjust => "AdjustBalance",
            Action::Transfer => "TransferBalance",
            Action::Reserve => "ReserveBalance",
        }
    }
    fn record_kind(self) -> RecordKind {
        match self {
            Action::Topup => RecordKind::new("tmf.topup"),
            Action::Adjust => RecordKind::new("tmf.adjust"),
            Action::Transfer => RecordKind::new("tmf.transfer"),
            Action::Reserve => RecordKind::new("tmf.reserve"),
        }
    }
    fn not_found(self) -> TmfError {
        match self {
            Action::Topup => TmfError::not_found("topup_balance_not_found", "topupBalance"),
            Action::Adjust => TmfError::not_found("adjust_balance_not_found", "adjustBalance"),
            Action::Transfer => {
                TmfError::not_found("transfer_balance_not_found", "transferBalance")
            }
            Action::Reserve => TmfError::not_found("reserve_balance_not_found", "reserveBalance"),
        }
    }
    /// The mutation kind of a mutation-backed action.
    fn mutation_kind(self) -> MutationKind {
        match self {
            Action::Topup => MutationKind::TopUp,
            Action::Adjust => MutationKind::Adjustment,
            Action::Transfer | Action::Reserve => MutationKind::TransferOut,
        }
    }
    fn event(self, what: &str) -> String {
        format!("{}{what}Event", self.type_name())
    }
}

// ---------------------------------------------------------------------------------
// Helpers.

pub(super) fn store_err(e: &StoreError, context: &str) -> TmfError {
    store_problem(e, context).into()
}

pub(super) async fn submit_op(
    state: &SharedState,
    op: Operation,
) -> Result<Result<(Done, bool), Refusal>, TmfError> {
    Ok(op.submit(state, "submitting a TMF command").await?)
}

pub(super) fn unexpected(wanted: &str) -> TmfError {
    tracing::error!(wanted, "the engine answered with another kind of result");
    TmfError::internal()
}

/// Queues an event for the hub; a failure to queue is logged, never answered (the
/// change it reports is durable already).
pub(super) async fn publish(state: &SharedState, caller: &Principal, event: &str, resource: Value) {
    if let Err(e) = hub::publish(state, &caller.tenant, event, resource).await {
        tracing::error!(error = %e, event, "could not queue a TMF event");
    }
}

/// Links the outbox event `event` (`Create`, `Cancel`) of `action` about `id` to
/// `op`, when the tenant has listeners: the event exists exactly when the change does.
pub(super) async fn with_event(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    op: Operation,
    action: Action,
    event: &str,
    id: &str,
) -> Result<Operation, TmfError> {
    let listening = hub::has_listeners(state, &caller.tenant)
        .await
        .map_err(|e| store_err(&e, "looking up TMF listeners"))?;
    if !listening {
        return Ok(op);
    }
    let subject = hub::Subject {
        collection: action.collection().to_owned(),
        id: id.to_owned(),
    };
    Ok(
        match hub::outboxed(
            &action.event(event),
            &tmf_ctx(ctx).root,
            state.clock.now(),
            subject,
        ) {
            Some((job, payload)) => op.enqueue(hub::OUTBOX_QUEUE, &job, payload, None),
            None => op,
        },
    )
}

/// The resource an outboxed event names, as TM Forum's flavour shows it under `root`;
/// `None` when there is no such entity. Called by the hub's worker, with the rights of
/// the system.
pub async fn event_resource(
    state: &SharedState,
    tenant: &prepaid_ledger::TenantId,
    root: &str,
    subject: &hub::Subject,
) -> Result<Option<Value>, TmfError> {
    let system = Principal {
        tenant: tenant.clone(),
        key_name: prepaid_ledger::ApiKeyName::parse("system").map_err(|_| TmfError::internal())?,
        scopes: prepaid_ledger::Scopes::ALL,
        customer: None,
    };
    let ctx = Ctx {
        flavour: Flavour::Tmf,
        root: root.to_owned(),
    };
    let Ok(id) = uuid::Uuid::parse_str(&subject.id) else {
        return Ok(None);
    };
    let action = match subject.collection.as_str() {
        "topupBalance" => Action::Topup,
        "adjustBalance" => Action::Adjust,
        "transferBalance" => Action::Transfer,
        "reserveBalance" => {
            let hold = state
                .store
                .hold(tenant, HoldId(id))
                .await
                .map_err(|e| store_err(&e, "reading a reservation for an event"))?;
            return match hold {
                Some(h) => Ok(Some(hold_answer(state, &system, &ctx, &h).await?)),
                None => Ok(None),
            };
        }
        _ => return Ok(None),
    };
    match action_mutation(state, &system, action, id).await {
        Ok(m) => Ok(Some(
            mutation_answer(state, &system, &ctx, action, &m).await?,
        )),
        Err(_) => Ok(None),
    }
}

/// A JSON answer with `status`.
pub(super) fn json_answer(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, to_vec(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    response
}

/// 201 with `Location`.
pub(super) fn created(body: &Value, replayed: bool) -> Response {
    let mut response = json_answer(StatusCode::CREATED, body);
    if let Some(href) = body.get("href").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(href)
    {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        response.headers_mut().insert(
            prepaid_edge::body::IDEMPOTENT_REPLAYED_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// The context of the TM Forum mount for the same host: events always carry the
/// resource as TM Forum's spec shows it.
pub(super) fn tmf_ctx(ctx: &Ctx) -> Ctx {
    Ctx {
        flavour: Flavour::Tmf,
        root: ctx.root.replace(super::MOUNT_BRM, super::MOUNT_TMF),
    }
}

pub(super) async fn customer(
    state: &SharedState,
    caller: &Principal,
    id: &CustomerId,
) -> Option<Customer> {
    match state.store.customer(&caller.tenant, id).await {
        Ok(c) => c,
        Err(e) => {
            // The name only decorates an answer; the answer goes on without it.
            tracing::warn!(error = %e, "could not read a customer for a TMF answer");
            None
        }
    }
}

pub(super) async fn customer_name(
    state: &SharedState,
    caller: &Principal,
    id: &CustomerId,
) -> String {
    customer(state, caller, id)
        .await
        .map(|c| c.name)
        .unwrap_or_default()
}

/// The record key of a resource id. Ids are the ledger's (UUIDs, wallet ids), which
/// are always valid keys; one that is not is a bug.
pub(super) fn record_key(id: &str) -> Result<RecordKey, TmfError> {
    RecordKey::parse(id).map_err(|e| {
        tracing::error!(error = %e, "a TMF resource id is no record key");
        TmfError::internal()
    })
}

/// The body a client sent for `key`, or `{}`.
pub(super) async fn record_body(
    state: &SharedState,
    caller: &Principal,
    kind: RecordKind,
    key: &str,
) -> Result<(Value, Option<i64>), TmfError> {
    let record = state
        .store
        .record(&caller.tenant, kind, &record_key(key)?)
        .await
        .map_err(|e| store_err(&e, "reading a TMF record"))?;
    Ok(match record {
        Some(r) => (
            serde_json::from_str(&r.value).unwrap_or_else(|_| json!({})),
            Some(r.version),
        ),
        None => (json!({}), None),
    })
}

/// The text a body is kept as, refused when it is over the record limit.
pub(super) fn record_text(body: &Value) -> Result<String, TmfError> {
    let text = serde_json::to_string(body).map_err(|_| TmfError::internal())?;
    if text.len() > RECORD_VALUE_BYTES_MAX {
        return Err(TmfError::invalid(format!(
            "the body must be at most {RECORD_VALUE_BYTES_MAX} bytes of JSON"
        )));
    }
    Ok(text)
}

pub(super) async fn put_record(
    state: &SharedState,
    caller: &Principal,
    kind: RecordKind,
    key: &str,
    text: &str,
    expected: Option<i64>,
) -> Result<bool, TmfError> {
    let put = state
        .store
        .put_record(
            &caller.tenant,
            kind,
            &record_key(key)?,
            text,
            expected,
            state.clock.now(),
        )
        .await
        .map_err(|e| store_err(&e, "writing a TMF record"))?;
    Ok(put.is_some())
}

/// An action about to be submitted to the ledger.
pub(super) struct Pending<'a> {
    action: Action,
    /// The id the action asks the ledger for (its record's key).
    id: uuid::Uuid,
    /// The bucket a failure event names, if the resource has one.
    bucket: Option<&'a WalletId>,
    /// The members the client sent that the ledger does not keep.
    text: String,
}

/// What an action wants back from the ledger: the kind's name (for the log) and how
/// to take the answer's value and id from what the ledger did (`None` when it did
/// something of another kind).
pub(super) type Pick<T> = (&'static str, fn(Done) -> Option<(T, uuid::Uuid)>);

pub(super) const PICK_MUTATION: Pick<Mutation> = ("mutation", |d| match d {
    Done::Mutation(m) => {
        let id = m.id.0;
        Some((m, id))
    }
    _ => None,
});

pub(super) const PICK_TRANSFER: Pick<prepaid_ledger::Transfer> = ("transfer", |d| match d {
    Done::Transfer(t) => {
        let id = t.id.0;
        Some((t, id))
    }
    _ => None,
});

pub(super) const PICK_HOLD: Pick<Hold> = ("hold", |d| match d {
    Done::Hold { hold, .. } => {
        let id = hold.id.0;
        Some((hold, id))
    }
    _ => None,
});

/// Submits an action as one unit: its ledger command, the members the client sent as
/// its record, its `Create` event in the outbox, and whatever `more` links to it (the
/// first period of a recurring plan). A refusal changes nothing and publishes the
/// action's `Failure` event.
#[allow(clippy::too_many_arguments)]
pub(super) async fn submit_action<T>(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    body: Body,
    pending: Pending<'_>,
    command: Command,
    more: impl FnOnce(Operation) -> Operation,
    (wanted, pick): Pick<T>,
) -> Result<(T, bool), TmfError> {
    let Pending {
        action,
        id,
        bucket,
        text,
    } = pending;
    let key = id.to_string();
    let op = Operation::new(caller, command)
        .idempotency(body.idempotency.clone())
        .put_record(action.record_kind(), &record_key(&key)?, text, None);
    let op = with_event(state, caller, ctx, more(op), action, "Create", &key).await?;
    let (done, replayed) = match submit_op(state, op).await? {
        Ok(done) => done,
        Err(r) => {
            let mut failed = merge(
                &body.value,
                json!({"id": key, "@type": action.type_name(), "status": "failed"}),
            );
            if let Some(wallet) = bucket {
                failed["bucket"] = bucket_ref(&tmf_ctx(ctx), wallet.as_str());
            }
            publish(state, caller, &action.event("Failure"), strip_nulls(failed)).await;
            return Err(refusal(&r));
        }
    };
    let Some((value, _)) = pick(done) else {
        return Err(unexpected(wanted));
    };
    Ok((value, replayed))
}

/// Free text for a ledger reference: control characters dropped, cut to
/// [`REFERENCE_LEN_MAX`] bytes on a character boundary.
pub(super) fn reference_text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > REFERENCE_LEN_MAX {
            break;
        }
        out.push(c);
    }
    out
}

pub(super) fn reference(action: Action, body: &Value) -> Reference {
    let text = body
        .text("/description")
        .ok()
        .flatten()
        .or_else(|| body.text("/reason").ok().flatten())
        .unwrap_or_default();
    // The text is cut to the bound and cleaned of control characters above.
    Reference::known(action.collection(), &reference_text(&text), "")
}

/// The bucket an action names: `bucket.id` (`bucket_ptr`), or the party account's
/// bucket of the amount's units. Of several such buckets the first active one by id
/// is taken.
pub(super) async fn resolve_bucket(
    state: &SharedState,
    caller: &Principal,
    body: &Value,
    bucket_ptr: &str,
    party_ptr: Option<&str>,
) -> Result<Wallet, TmfError> {
    let party = match party_ptr {
        Some(p) => body.text(p)?,
        None => None,
    };
    if let Some(id) = body.text(bucket_ptr)? {
        let wallet = visible_wallet(state, caller, &id).await?;
        if let Some(party) = party
            && party != wallet.customer.as_str()
        {
            return Err(TmfError::unprocessable(
                "bucket_not_of_party_account",
                "Bucket not of party account",
                format!("bucket {id} does not belong to party account {party}"),
            ));
        }
        return Ok(wallet);
    }
    let Some(party) = party else {
        return Err(TmfError::missing(&field_name(bucket_ptr)));
    };
    let units = body.text("/amount/units")?.ok_or_else(|| {
        TmfError::invalid("amount.units: is required to find the bucket of a party account")
    })?;
    let customer = CustomerId::parse(&party)
        .ok()
        .filter(|c| caller.sees(c))
        .ok_or_else(|| TmfError::not_found("party_account_not_found", "party account"))?;
    let wallets = state
        .store
        .search_wallets(
            &caller.tenant,
            &WalletSearch {
                customer: Some(customer),
                filter: Some(Filter::Test(Test {
                    path: "units".into(),
                    column: columns::wallet::UNIT_CODE,
                    pred: Pred::Eq(prepaid_query::Value::Text(units.clone())),
                })),
                order: Order::Ascending,
                offset: 0,
                limit: PAGE_SIZE_MAX,
            },
        )
        .await
        .map_err(|e| store_err(&e, "finding a party account's bucket"))?;
    let mut items = wallets.items;
    items.sort_by(|a, b| a.id.cmp(&b.id));
    let active = items
        .iter()
        .position(|w| w.status == prepaid_ledger::WalletStatus::Active);
    match active.or((!items.is_empty()).then_some(0)) {
        Some(i) => Ok(items.swap_remove(i)),
        None => Err(TmfError::not_found(
            "bucket_not_found",
            &format!("bucket of party account {party} in {units}"),
        )),
    }
}

pub(super) async fn visible_wallet(
    state: &SharedState,
    caller: &Principal,
    id: &str,
) -> Result<Wallet, TmfError> {
    let not_found = || TmfError::not_found("bucket_not_found", "bucket");
    let id = WalletId::parse(id).map_err(|_| not_found())?;
    state
        .store
        .wallet(&caller.tenant, &id)
        .await
        .map_err(|e| store_err(&e, "reading a bucket"))?
        .filter(|w| caller.sees(&w.customer))
        .ok_or_else(not_found)
}

/// The amount at `pointer` (`{amount, units}`) in steps of `unit`.
pub(super) fn parse_amount(body: &Value, pointer: &str, unit: &Unit) -> Result<i64, TmfError> {
    let field = field_name(pointer);
    if let Some(units) = body.text(&format!("{pointer}/units"))?
        && units != unit.code()
    {
        return Err(TmfError::unprocessable(
            "unit_mismatch",
            "Unit mismatch",
            format!(
                "{field}.units: the bucket counts {}, not {units}",
                unit.code()
            ),
        ));
    }
    let text = body
        .amount_text(&format!("{pointer}/amount"))?
        .ok_or_else(|| TmfError::missing(&format!("{field}.amount")))?;
    amount::parse_minor(&text, unit.scale()).map_err(|e| TmfError::amount(&field, e))
}

pub(super) fn positive(field: &str, minor: i64) -> Result<Amount, TmfError> {
    Amount::positive(minor).map_err(|e| TmfError::amount(field, e))
}

/// The references of a create body as TM Forum's file requires them, checked on the
/// TMF mount (Oracle's samples on the BRM mount send other shapes): each reference
/// present is an object with an `id`, and a related party (`requestor`, `receiver`,
/// `balanceTopup`) also names its `@referredType`. A member absent stays absent: the
/// ledger finds the bucket of a party account, and the usage type of a bucket.
pub(super) fn check_references(ctx: &Ctx, body: &Value) -> Result<(), TmfError> {
    if ctx.is_brm() {
        return Ok(());
    }
    const REFS: &[&str] = &[
        "bucket",
        "channel",
        "partyAccount",
        "paymentMethod",
        "receiverBucket",
        "receiverLogicalResource",
        "receiverProduct",
    ];
    const REF_LISTS: &[&str] = &["logicalResource", "product"];
    const PARTIES: &[&str] = &["requestor", "receiver", "balanceTopup"];
    let check = |name: &str, v: &Value, party: bool| -> Result<(), TmfError> {
        let Value::Object(o) = v else {
            return Err(TmfError::field(name, "must be an object"));
        };
        let has = |member: &str| {
            o.get(member)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        if !has("id") {
            return Err(TmfError::field(&format!("{name}.id"), "is required"));
        }
        if party && !has("@referredType") {
            return Err(TmfError::field(
                &format!("{name}.@referredType"),
                "is required",
            ));
        }
        Ok(())
    };
    for name in REFS {
        if let Some(v) = body.get(name).filter(|v| !v.is_null()) {
            check(name, v, false)?;
        }
    }
    for name in PARTIES {
        if let Some(v) = body.get(name).filter(|v| !v.is_null()) {
            check(name, v, true)?;
        }
    }
    for name in REF_LISTS {
        match body.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    check(&format!("{name}[{i}]"), item, false)?;
                }
            }
            Some(_) => return Err(TmfError::field(name, "must be an array")),
        }
    }
    Ok(())
}

pub(super) fn usage_type(body: &Value, unit: &Unit) -> Result<String, TmfError> {
    match body.text("/usageType")? {
        Some(u) if units::USAGE_TYPES.contains(&u.as_str()) => Ok(u),
        Some(u) => Err(TmfError::field(
            "usageType",
            format!("{u:?} is not one of {}", units::USAGE_TYPES.join(", ")),
        )),
        None => Ok(units::usage_type(unit.code()).to_owned()),
    }
}

pub(super) fn time_at(
    body: &Value,
    pointer: &str,
) -> Result<Option<prepaid_ledger::Timestamp>, TmfError> {
    body.text(pointer)?
        .map(|t| {
            prepaid_edge::time::parse(&t).map_err(|e| TmfError::field(&field_name(pointer), e))
        })
        .transpose()
}

pub(super) fn path_uuid(seg: &PathSegment, action: Action) -> Result<uuid::Uuid, TmfError> {
    uuid::Uuid::try_parse(&seg.0).map_err(|_| action.not_found())
}

pub(super) fn when(t: prepaid_ledger::Timestamp) -> Value {
    json!(prepaid_edge::time::format(t))
}
