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
//! resource's id, and laid under every answer about it. An action's record is written
//! *before* its ledger command: a crash in between leaves a record without a ledger
//! entry, which nothing shows (a GET reads the ledger first), and a refused command
//! deletes its record. A bucket's record is written after its wallet is opened, so a
//! crash in between loses only the bucket's decoration.

use super::errors::{TmfError, refusal};
use super::json::{decimal, to_vec};
use super::list::{ListParams, SCAN_MAX, answer};
use super::types::*;
use super::{amount, hub, recurring, units};
use crate::SharedState;
use crate::api::auth::{Caller, Principal, Read, Write};
use crate::api::submit::Operation;
use crate::api::{new_uuid, store_problem};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prepaid_ledger::{
    Amount, Command, Customer, CustomerId, Done, Fingerprint, Floor, Hold, HoldId, HoldStatus,
    IdempotencyKey, Mutation, MutationId, MutationKind, NAME_LEN_MAX, NewWallet, REFERENCE_LEN_MAX,
    Reference, Refusal, TransferId, Unit, UnitError, Wallet, WalletId, bounded_text,
};
use prepaid_query::{Filter, Pred, Test};
use prepaid_store::{
    MutationSearch, Order, PAGE_SIZE_MAX, RECORD_VALUE_BYTES_MAX, StoreError, WalletSearch, columns,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Answer = Result<Response, TmfError>;
type Reader = Caller<Read, TmfError>;
type Writer = Caller<Write, TmfError>;

/// Record kinds of the members clients sent.
const KIND_BUCKET: &str = "tmf.bucket";

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
    fn record_kind(self) -> &'static str {
        match self {
            Action::Topup => "tmf.topup",
            Action::Adjust => "tmf.adjust",
            Action::Transfer => "tmf.transfer",
            Action::Reserve => "tmf.reserve",
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

fn store_err(e: &StoreError, context: &str) -> TmfError {
    store_problem(e, context).into()
}

async fn submit_op(
    state: &SharedState,
    op: Operation,
) -> Result<Result<(Done, bool), Refusal>, TmfError> {
    Ok(op.submit(state, "submitting a TMF command").await?)
}

fn unexpected(wanted: &str) -> TmfError {
    tracing::error!(wanted, "the engine answered with another kind of result");
    TmfError::internal()
}

/// Queues an event for the hub; a failure to queue is logged, never answered (the
/// change it reports is durable already).
async fn publish(state: &SharedState, caller: &Principal, event: &str, resource: Value) {
    if let Err(e) = hub::publish(state, &caller.tenant, event, resource).await {
        tracing::error!(error = %e, event, "could not queue a TMF event");
    }
}

/// Links the outbox event `event` (`Create`, `Cancel`) of `action` about `id` to
/// `op`, when the tenant has listeners: the event exists exactly when the change does.
async fn with_event(
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
fn json_answer(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, to_vec(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    response
}

/// 201 with `Location`.
fn created(body: &Value, replayed: bool) -> Response {
    let mut response = json_answer(StatusCode::CREATED, body);
    if let Some(href) = body.get("href").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(href)
    {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        response.headers_mut().insert(
            crate::api::body::IDEMPOTENT_REPLAYED_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// The context of the TM Forum mount for the same host: events always carry the
/// resource as TM Forum's spec shows it.
fn tmf_ctx(ctx: &Ctx) -> Ctx {
    Ctx {
        flavour: Flavour::Tmf,
        root: ctx.root.replace(super::MOUNT_BRM, super::MOUNT_TMF),
    }
}

async fn customer(state: &SharedState, caller: &Principal, id: &CustomerId) -> Option<Customer> {
    match state.store.customer(&caller.tenant, id).await {
        Ok(c) => c,
        Err(e) => {
            // The name only decorates an answer; the answer goes on without it.
            tracing::warn!(error = %e, "could not read a customer for a TMF answer");
            None
        }
    }
}

async fn customer_name(state: &SharedState, caller: &Principal, id: &CustomerId) -> String {
    customer(state, caller, id)
        .await
        .map(|c| c.name)
        .unwrap_or_default()
}

/// The body a client sent for `key`, or `{}`.
async fn record_body(
    state: &SharedState,
    caller: &Principal,
    kind: &str,
    key: &str,
) -> Result<(Value, Option<i64>), TmfError> {
    let record = state
        .store
        .record(&caller.tenant, kind, key)
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
fn record_text(body: &Value) -> Result<String, TmfError> {
    let text = serde_json::to_string(body).map_err(|_| TmfError::internal())?;
    if text.len() > RECORD_VALUE_BYTES_MAX {
        return Err(TmfError::invalid(format!(
            "the body must be at most {RECORD_VALUE_BYTES_MAX} bytes of JSON"
        )));
    }
    Ok(text)
}

async fn put_record(
    state: &SharedState,
    caller: &Principal,
    kind: &str,
    key: &str,
    text: &str,
    expected: Option<i64>,
) -> Result<bool, TmfError> {
    let put = state
        .store
        .put_record(&caller.tenant, kind, key, text, expected, state.clock.now())
        .await
        .map_err(|e| store_err(&e, "writing a TMF record"))?;
    Ok(put.is_some())
}

/// An action about to be submitted to the ledger.
struct Pending<'a> {
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
type Pick<T> = (&'static str, fn(Done) -> Option<(T, uuid::Uuid)>);

const PICK_MUTATION: Pick<Mutation> = ("mutation", |d| match d {
    Done::Mutation(m) => {
        let id = m.id.0;
        Some((m, id))
    }
    _ => None,
});

const PICK_TRANSFER: Pick<prepaid_ledger::Transfer> = ("transfer", |d| match d {
    Done::Transfer(t) => {
        let id = t.id.0;
        Some((t, id))
    }
    _ => None,
});

const PICK_HOLD: Pick<Hold> = ("hold", |d| match d {
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
async fn submit_action<T>(
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
        .put_record(action.record_kind(), &key, text, None);
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
fn reference_text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > REFERENCE_LEN_MAX {
            break;
        }
        out.push(c);
    }
    out
}

fn reference(action: Action, body: &Value) -> Reference {
    let text = body
        .text("/description")
        .ok()
        .flatten()
        .or_else(|| body.text("/reason").ok().flatten())
        .unwrap_or_default();
    Reference {
        kind: action.collection().to_owned(),
        text: reference_text(&text),
        link: String::new(),
    }
}

/// The bucket an action names: `bucket.id` (`bucket_ptr`), or the party account's
/// bucket of the amount's units. Of several such buckets the first active one by id
/// is taken.
async fn resolve_bucket(
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

async fn visible_wallet(
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
fn parse_amount(body: &Value, pointer: &str, unit: &Unit) -> Result<i64, TmfError> {
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

fn positive(field: &str, minor: i64) -> Result<Amount, TmfError> {
    Amount::positive(minor).map_err(|e| TmfError::amount(field, e))
}

fn usage_type(body: &Value, unit: &Unit) -> Result<String, TmfError> {
    match body.text("/usageType")? {
        Some(u) if units::USAGE_TYPES.contains(&u.as_str()) => Ok(u),
        Some(u) => Err(TmfError::field(
            "usageType",
            format!("{u:?} is not one of {}", units::USAGE_TYPES.join(", ")),
        )),
        None => Ok(units::usage_type(unit.code()).to_owned()),
    }
}

fn time_at(body: &Value, pointer: &str) -> Result<Option<prepaid_ledger::Timestamp>, TmfError> {
    body.text(pointer)?
        .map(|t| crate::api::time::parse(&t).map_err(|e| TmfError::field(&field_name(pointer), e)))
        .transpose()
}

fn path_uuid(seg: &PathSegment, action: Action) -> Result<uuid::Uuid, TmfError> {
    uuid::Uuid::try_parse(&seg.0).map_err(|_| action.not_found())
}

fn when(t: prepaid_ledger::Timestamp) -> Value {
    json!(crate::api::time::format(t))
}

// ---------------------------------------------------------------------------------
// Buckets.

fn render_bucket(ctx: &Ctx, w: &Wallet, customer_name: &str, client: &Value) -> Value {
    let usage = client
        .text("/usageType")
        .ok()
        .flatten()
        .unwrap_or_else(|| units::usage_type(w.unit.code()).to_owned());
    let mut ours = json!({
        "id": w.id.as_str(),
        "href": ctx.href("bucket", w.id.as_str()),
        "@type": "Bucket",
        "partyAccount": party_ref(ctx, w.customer.as_str(), customer_name),
        "remainingValue": quantity(ctx, i64::saturating_sub(w.balance, w.held), &w.unit),
        "reservedValue": quantity(ctx, w.held, &w.unit),
        "status": w.status.as_str(),
        "usageType": usage,
        "isShared": false,
        "requestedDate": when(w.created_at),
        "confirmationDate": when(w.created_at),
    });
    if !w.name.is_empty() {
        ours["name"] = json!(w.name);
    }
    if w.valid_from.is_some() || w.valid_until.is_some() {
        let mut valid = json!({});
        if let Some(t) = w.valid_from {
            valid["startDateTime"] = when(t);
        }
        if let Some(t) = w.valid_until {
            valid["endDateTime"] = when(t);
        }
        ours["validFor"] = valid;
    }
    if ctx.is_brm() {
        ours["@baseType"] = json!("Bucket");
        brm_nulls(
            &mut ours,
            &[
                "@schemaLocation",
                "description",
                "name",
                "logicalResource",
                "product",
                "relatedParty",
                "remainingValueName",
                "validFor",
            ],
        );
    }
    finish(ctx, merge(client, ours))
}

async fn bucket_answer(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    w: &Wallet,
) -> Result<Value, TmfError> {
    let (client, _) = record_body(state, caller, KIND_BUCKET, w.id.as_str()).await?;
    let name = customer_name(state, caller, &w.customer).await;
    Ok(render_bucket(ctx, w, &name, &client))
}

/// The largest `unitScale` of `POST /bucket` (the ledger's largest unit scale).
pub const UNIT_SCALE_MAX: u8 = 18;

/// `POST /bucket`: opens a bucket for a party account (made when new). The spec has no
/// such operation; operators need it. `remainingValue.units` names the unit,
/// `remainingValue.amount` (optional) is topped up at once.
pub async fn create_bucket(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    let b = &body.value;
    let party = b.required_text("/partyAccount/id")?;
    let customer = CustomerId::parse(&party).map_err(|e| TmfError::field("partyAccount.id", e))?;
    if !caller.sees(&customer) {
        return Err(TmfError::not_found(
            "party_account_not_found",
            "party account",
        ));
    }
    let code = b.required_text("/remainingValue/units")?;
    let scale = match b.integer("/unitScale")? {
        None => units::default_scale(&code),
        Some(s) => u8::try_from(s)
            .ok()
            .filter(|s| *s <= UNIT_SCALE_MAX)
            .ok_or_else(|| {
                TmfError::field("unitScale", format!("must be from 0 to {UNIT_SCALE_MAX}"))
            })?,
    };
    let unit = Unit::new(&code, scale).map_err(|e| match e {
        UnitError::BadScale => TmfError::field("unitScale", e),
        _ => TmfError::field("remainingValue.units", e),
    })?;
    let id = match b.text("/id")? {
        Some(id) => WalletId::parse(&id).map_err(|e| TmfError::field("id", e))?,
        None => WalletId::from_uuid(new_uuid()),
    };
    usage_type(b, &unit)?;
    if let Some(status) = b.text("/status")?
        && status != "active"
    {
        return Err(TmfError::field("status", "a new bucket is active"));
    }
    let name = b.text("/name")?.unwrap_or_default();
    let name = bounded_text(&name, NAME_LEN_MAX).map_err(|e| TmfError::field("name", e))?;
    let party_name = b.text("/partyAccount/name")?.unwrap_or_default();
    let party_name = bounded_text(&party_name, NAME_LEN_MAX)
        .map_err(|e| TmfError::field("partyAccount.name", e))?;
    let valid_from = time_at(b, "/validFor/startDateTime")?;
    let valid_until = time_at(b, "/validFor/endDateTime")?;
    if let (Some(from), Some(until)) = (valid_from, valid_until)
        && until <= from
    {
        return Err(TmfError::field(
            "validFor.endDateTime",
            "must be after validFor.startDateTime",
        ));
    }
    let initial = match b.amount_text("/remainingValue/amount")? {
        None => 0,
        Some(text) => amount::parse_minor(&text, unit.scale())
            .map_err(|e| TmfError::amount("remainingValue.amount", e))?,
    };
    if initial < 0 {
        return Err(TmfError::amount(
            "remainingValue.amount",
            "must not be negative",
        ));
    }
    let initial = (initial > 0)
        .then(|| positive("remainingValue.amount", initial))
        .transpose()?;
    let text = record_text(b)?;

    // One unit: the party account on first use, the bucket, the members the client
    // sent and the bucket's first top-up. A refusal of any of them (a top-up outside
    // the bucket's validity, say) leaves no bucket and records no idempotency key.
    let command = Command::CreateWallet {
        wallet: NewWallet {
            id: id.clone(),
            customer: customer.clone(),
            unit,
            name,
            product: String::new(),
            floor: Floor::ZERO,
            ceiling: None,
            valid_from,
            valid_until,
        },
    };
    let mut op = Operation::new(&caller, command)
        .idempotency(body.idempotency.clone())
        .before(Command::EnsureCustomer {
            id: customer,
            name: party_name,
            link: String::new(),
        })
        .put_record(KIND_BUCKET, id.as_str(), text, None);
    if let Some(amount) = initial {
        op = op.then(Command::Post {
            id: MutationId(new_uuid()),
            wallet: id.clone(),
            kind: MutationKind::TopUp,
            amount,
            reference: Reference {
                kind: "bucket".into(),
                text: "remainingValue of the new bucket".into(),
                link: String::new(),
            },
            occurred_at: None,
        });
    }
    let (wallet, replayed) = match submit_op(&state, op).await? {
        Ok((Done::Wallet(w), replayed)) => (w, replayed),
        Ok(_) => return Err(unexpected("wallet")),
        Err(r) => return Err(refusal(&r)),
    };
    // The answer shows the bucket as it is now, its first top-up included.
    let wallet = visible_wallet(&state, &caller, id.as_str())
        .await
        .unwrap_or(wallet);
    let v = bucket_answer(&state, &caller, &ctx, &wallet).await?;
    Ok(created(&v, replayed))
}

pub async fn get_bucket(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let w = visible_wallet(&state, &caller, &seg.0).await?;
    let v = bucket_answer(&state, &caller, &ctx, &w).await?;
    Ok(json_answer(StatusCode::OK, &params.select(v)))
}

/// The customer a list is confined to: the key's own, or the `partyAccount.id` filter.
/// `Err(())` when the two disagree (the list is empty).
fn list_customer(caller: &Principal, params: &ListParams) -> Result<Option<CustomerId>, ()> {
    let asked = params
        .only("partyAccount.id")
        .map(|c| CustomerId::parse(c).map_err(|_| ()))
        .transpose()?;
    match (&caller.customer, asked) {
        (Some(only), Some(asked)) if *only != asked => Err(()),
        (Some(only), _) => Ok(Some(only.clone())),
        (None, asked) => Ok(asked),
    }
}

/// Where the rows of a list come from.
enum Rows {
    Buckets {
        customer: Option<CustomerId>,
        bucket: Option<String>,
    },
    Mutations {
        customer: Option<CustomerId>,
        wallet: Option<WalletId>,
        kinds: Vec<MutationKind>,
        /// `None` renders each as a balanceActionHistory.
        action: Option<Action>,
    },
}

/// One page of `rows`, rendered, and how many rows there are in all.
async fn fetch(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    rows: &Rows,
    offset: u64,
    limit: usize,
) -> Result<(Vec<Value>, u64), TmfError> {
    match rows {
        Rows::Buckets { customer, bucket } => {
            let page = state
                .store
                .search_wallets(
                    &caller.tenant,
                    &WalletSearch {
                        customer: customer.clone(),
                        filter: bucket.as_ref().map(|id| {
                            Filter::Test(Test {
                                path: "id".into(),
                                column: columns::wallet::ID,
                                pred: Pred::Eq(prepaid_query::Value::Text(id.clone())),
                            })
                        }),
                        order: Order::Ascending,
                        offset,
                        limit,
                    },
                )
                .await
                .map_err(|e| store_err(&e, "listing buckets"))?;
            let mut items = Vec::with_capacity(page.items.len());
            for w in &page.items {
                items.push(bucket_answer(state, caller, ctx, w).await?);
            }
            Ok((items, page.total))
        }
        Rows::Mutations {
            customer,
            wallet,
            kinds,
            action,
        } => {
            let page = state
                .store
                .search_mutations(
                    &caller.tenant,
                    &MutationSearch {
                        customer: customer.clone(),
                        wallet: wallet.clone(),
                        filter: Some(kind_filter(kinds)),
                        order: Order::Ascending,
                        offset,
                        limit,
                    },
                )
                .await
                .map_err(|e| store_err(&e, "listing mutations"))?;
            let mut items = Vec::with_capacity(page.items.len());
            for m in &page.items {
                items.push(match action {
                    Some(action) => mutation_answer(state, caller, ctx, *action, m).await?,
                    None => {
                        let name = customer_name(state, caller, &m.customer).await;
                        render_history(ctx, m, &name)
                    }
                });
            }
            Ok((items, page.total))
        }
    }
}

/// Answers a list of `rows`: straight from the store when every filter is one the
/// store ran (`handled`), else by looking through at most [`SCAN_MAX`] rows and
/// filtering here.
async fn list_with(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    params: &ListParams,
    handled: &[&str],
    rows: &Rows,
) -> Answer {
    if !params.filters_beyond(handled) {
        let (items, total) = fetch(state, caller, ctx, rows, params.offset, params.limit).await?;
        let items = items.into_iter().map(|v| params.select(v)).collect();
        return Ok(answer(items, total));
    }
    let mut matched = Vec::new();
    let mut offset = 0u64;
    loop {
        let (items, total) = fetch(state, caller, ctx, rows, offset, PAGE_SIZE_MAX).await?;
        let n = items.len() as u64;
        matched.extend(items.into_iter().filter(|v| params.matches(v)));
        offset += n;
        if n == 0 || offset >= total {
            break;
        }
        if offset >= SCAN_MAX as u64 {
            return Err(TmfError::query(format!(
                "these filters would look through more than {SCAN_MAX} resources; \
                 narrow the list with partyAccount.id or bucket.id"
            )));
        }
    }
    Ok(params.answer_page(matched))
}

pub async fn list_buckets(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let Ok(customer) = list_customer(&caller, &params) else {
        return Ok(answer(Vec::new(), 0));
    };
    let rows = Rows::Buckets {
        customer,
        bucket: params.only("id").map(str::to_owned),
    };
    list_with(
        &state,
        &caller,
        &ctx,
        &params,
        &["partyAccount.id", "id"],
        &rows,
    )
    .await
}

// ---------------------------------------------------------------------------------
// Top-ups, adjustments and transfers: actions that are one mutation.

/// The answer about a mutation-backed action. `receiver` is a transfer's receiving
/// wallet.
fn render_mutation(
    ctx: &Ctx,
    action: Action,
    m: &Mutation,
    customer_name: &str,
    client: &Value,
) -> Value {
    let amount = match action {
        Action::Adjust => m.amount,
        _ => m.amount.saturating_abs(),
    };
    let usage = client
        .text("/usageType")
        .ok()
        .flatten()
        .unwrap_or_else(|| units::usage_type(m.unit.code()).to_owned());
    let id = m.transfer.map_or(m.id.0, |t| t.0).to_string();
    let mut ours = json!({
        "id": id,
        "href": ctx.href(action.collection(), &id),
        "@type": action.type_name(),
        "status": action_status(ctx, ActionStatus::Completed),
        "amount": quantity(ctx, amount, &m.unit),
        "bucket": bucket_ref(ctx, m.wallet.as_str()),
        "partyAccount": party_ref(ctx, m.customer.as_str(), customer_name),
        "usageType": usage,
        "requestedDate": when(m.occurred_at),
        "confirmationDate": when(m.recorded_at),
    });
    match action {
        Action::Topup => {
            let auto = client.flag("/isAutoTopup").ok().flatten().unwrap_or(false);
            ours["isAutoTopup"] = json!(auto);
            if let Some(n) = client.integer("/numberOfPeriods").ok().flatten() {
                ours["numberOfPeriods"] = json!(n);
            }
            if let Some(p) = client
                .text("/recurringPeriod")
                .ok()
                .flatten()
                .and_then(|p| recurring::Period::parse(&p))
            {
                ours["recurringPeriod"] = json!(match ctx.flavour {
                    Flavour::Tmf => p.as_str(),
                    Flavour::Brm => p.brm_str(),
                });
            }
        }
        Action::Adjust => {
            let kind = client
                .text("/adjustType")
                .ok()
                .flatten()
                .unwrap_or_else(|| "oneTime".to_owned());
            ours["adjustType"] = json!(kind);
        }
        Action::Transfer => {
            let receiver = m
                .counter_wallet
                .as_ref()
                .map_or("", |w| w.as_str())
                .to_owned();
            ours["receiverBucket"] = bucket_ref(ctx, &receiver);
            ours["receiverBucketUsageType"] = json!(usage);
            // The spec requires these of every transfer; one made through another
            // API gets the ledger's own view of them.
            ours["reason"] = json!(m.reference.text);
            ours["channel"] = json!({"id": "prepaid", "name": "prepaid"});
            ours["logicalResource"] = json!([{"id": m.wallet.as_str(), "@referredType": "Bucket"}]);
            ours["receiverLogicalResource"] = json!({"id": receiver, "@referredType": "Bucket"});
            for key in [
                "reason",
                "channel",
                "logicalResource",
                "receiverLogicalResource",
            ] {
                if client.at(&format!("/{key}")).is_some() {
                    ours[key] = client[key].clone();
                }
            }
        }
        Action::Reserve => {}
    }
    if ctx.is_brm() {
        ours["@baseType"] = json!(action.type_name());
        let after = m.balance_after;
        let before = after.saturating_sub(m.amount);
        // Oracle BRM counts a prepaid balance as a debt: credit is negative, so a
        // top-up takes the balance down (as in Oracle's examples).
        let item = json!({
            "@baseType": "ImpactedBucketItem", "@schemaLocation": null,
            "@type": "ImpactedBucketItem", "amount": quantity(ctx, m.amount.saturating_abs(), &m.unit),
            "description": null, "itemType": null, "name": null, "reason": null,
        });
        ours["impactedBucket"] = json!([{
            "@baseType": "ImpactedBucket", "@schemaLocation": null, "@type": "ImpactedBucket",
            "amountAfter": quantity(ctx, after.saturating_neg(), &m.unit),
            "amountBefore": quantity(ctx, before.saturating_neg(), &m.unit),
            "bucket": bucket_ref(ctx, m.wallet.as_str()),
            "confirmationDate": null, "description": null, "item": [item],
            "name": null, "requestedDate": null,
        }]);
        if action == Action::Topup {
            ours["payment"] = json!({
                "id": m.id.to_string(), "href": null, "name": "Billing Event Log",
                "amount": {"unit": m.unit.code(),
                    "value": decimal(amount::format_minor(m.amount.saturating_abs(), m.unit.scale()))},
                "paymentDate": when(m.recorded_at),
                "@baseType": "Payment", "@schemaLocation": null, "@type": "Payment",
                "@referredType": null,
            });
            ours["voucher"] = json!("");
            ours["logicalResource"] = json!({
                "@baseType": null, "@referredType": null, "@schemaLocation": null,
                "@type": null, "href": null, "id": null, "name": null, "value": "",
            });
        }
        brm_nulls(
            &mut ours,
            &[
                "@schemaLocation",
                "channel",
                "description",
                "logicalResource",
                "numberOfPeriods",
                "paymentMethod",
                "product",
                "reason",
                "recurringPeriod",
                "relatedParty",
                "relatedTopupBalance",
                "requestor",
            ],
        );
    }
    finish(ctx, merge(client, ours))
}

/// The mutation of action `id`, if the caller may see it and it is of the action's
/// kind.
async fn action_mutation(
    state: &SharedState,
    caller: &Principal,
    action: Action,
    id: uuid::Uuid,
) -> Result<Mutation, TmfError> {
    state
        .store
        .mutation(&caller.tenant, MutationId(id))
        .await
        .map_err(|e| store_err(&e, "reading a mutation"))?
        .filter(|m| caller.sees(&m.customer) && m.kind == action.mutation_kind())
        .filter(|m| action != Action::Transfer || m.transfer == Some(TransferId(id)))
        .ok_or_else(|| action.not_found())
}

async fn mutation_answer(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    action: Action,
    m: &Mutation,
) -> Result<Value, TmfError> {
    let id = m.transfer.map_or(m.id.0, |t| t.0).to_string();
    let (client, _) = record_body(state, caller, action.record_kind(), &id).await?;
    let name = customer_name(state, caller, &m.customer).await;
    let mut v = render_mutation(ctx, action, m, &name, &client);
    if action == Action::Topup
        && is_recurring(&client)
        && plan_cancelled(state, caller, &id).await?
    {
        v["status"] = json!(action_status(ctx, ActionStatus::Cancelled));
    }
    Ok(v)
}

/// Whether a top-up's record asked for a recurring plan.
fn is_recurring(client: &Value) -> bool {
    client.get("isAutoTopup") == Some(&Value::Bool(true))
}

/// Whether the recurring plan `plan` (its first top-up's id) was cancelled.
async fn plan_cancelled(
    state: &SharedState,
    caller: &Principal,
    plan: &str,
) -> Result<bool, TmfError> {
    let cancelled = state
        .store
        .record(&caller.tenant, recurring::CANCELLED_KIND, plan)
        .await
        .map_err(|e| store_err(&e, "reading a recurring plan"))?;
    Ok(cancelled.is_some())
}

/// A recurring top-up's plan as the body asks for it: `None` for a one-time top-up.
fn recurring_plan(body: &Value) -> Result<Option<(recurring::Period, u32)>, TmfError> {
    let auto = body.flag("/isAutoTopup")?.unwrap_or(false);
    let period = body.text("/recurringPeriod")?;
    let periods = body.integer("/numberOfPeriods")?;
    if !auto {
        return Ok(None);
    }
    let period = period.ok_or_else(|| {
        TmfError::invalid("recurringPeriod: is required when isAutoTopup is true")
    })?;
    let period = recurring::Period::parse(&period).ok_or_else(|| {
        TmfError::field(
            "recurringPeriod",
            "must be daily, weekly, fortnightly or monthly",
        )
    })?;
    let max = i64::from(recurring::PERIODS_MAX);
    // Without `numberOfPeriods` the plan recurs until it is cancelled (a PATCH with
    // `status: cancelled`), bounded like any plan by `PERIODS_MAX`.
    let periods = match periods {
        None => recurring::PERIODS_MAX,
        Some(n) if (1..=max).contains(&n) => n as u32,
        Some(_) => {
            return Err(TmfError::field(
                "numberOfPeriods",
                format!("must be from 1 to {max}"),
            ));
        }
    };
    Ok(Some((period, periods)))
}

/// `POST` of a top-up or an adjustment.
async fn create_posting(
    state: SharedState,
    caller: Writer,
    ctx: Ctx,
    body: Body,
    action: Action,
) -> Answer {
    let b = &body.value;
    let wallet = resolve_bucket(&state, &caller, b, "/bucket/id", Some("/partyAccount/id")).await?;
    let minor = parse_amount(b, "/amount", &wallet.unit)?;
    let (kind, amount) = match action {
        Action::Topup => (MutationKind::TopUp, positive("amount", minor)?),
        _ => (
            MutationKind::Adjustment,
            Amount::nonzero(minor).map_err(|e| TmfError::amount("amount", e))?,
        ),
    };
    usage_type(b, &wallet.unit)?;
    let plan = match action {
        Action::Topup => recurring_plan(b)?,
        _ => None,
    };
    if action == Action::Adjust
        && let Some(t) = b.text("/adjustType")?
        && t != "oneTime"
        && t != "recurring"
    {
        return Err(TmfError::field(
            "adjustType",
            "must be oneTime or recurring",
        ));
    }
    let text = record_text(b)?;
    let id = new_uuid();
    let reference = reference(action, b);
    let command = Command::Post {
        id: MutationId(id),
        wallet: wallet.id.clone(),
        kind,
        amount,
        reference: reference.clone(),
        occurred_at: None,
    };
    let pending = Pending {
        action,
        id,
        bucket: Some(&wallet.id),
        text,
    };
    // The plan's later periods are scheduled in the unit of its first top-up, so a
    // plan exists exactly when its first period does.
    let next = match plan {
        Some((period, periods_total)) => recurring::first_job(&recurring::Plan {
            id: id.to_string(),
            wallet: wallet.id.clone(),
            amount,
            period,
            periods_total,
            first_at: state.clock.now(),
            reference,
        })
        .map_err(|e| store_err(&e, "scheduling a recurring top-up"))?,
        None => None,
    };
    let schedule = |op: Operation| match next {
        Some(job) => op.enqueue(
            recurring::RECURRING_QUEUE,
            &job.id,
            job.payload,
            Some(job.due_at),
        ),
        None => op,
    };
    let (m, replayed) = submit_action(
        &state,
        &caller,
        &ctx,
        body,
        pending,
        command,
        schedule,
        PICK_MUTATION,
    )
    .await?;
    let v = mutation_answer(&state, &caller, &ctx, action, &m).await?;
    Ok(created(&v, replayed))
}

pub async fn create_topup(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    create_posting(state, caller, ctx, body, Action::Topup).await
}

pub async fn create_adjust(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    create_posting(state, caller, ctx, body, Action::Adjust).await
}

pub async fn create_transfer(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    let action = Action::Transfer;
    let b = &body.value;
    let from = resolve_bucket(&state, &caller, b, "/bucket/id", None).await?;
    let to_id = b.required_text("/receiverBucket/id")?;
    let to = WalletId::parse(&to_id)
        .map_err(|_| TmfError::not_found("bucket_not_found", "receiver bucket"))?;
    let minor = parse_amount(b, "/amount", &from.unit)?;
    let amount = positive("amount", minor)?;
    usage_type(b, &from.unit)?;
    let text = record_text(b)?;
    let id = new_uuid();
    let command = Command::Transfer {
        id: TransferId(id),
        debit_id: MutationId(id),
        credit_id: MutationId(new_uuid()),
        from: from.id.clone(),
        to,
        amount,
        reference: reference(action, b),
        occurred_at: None,
    };
    let pending = Pending {
        action,
        id,
        bucket: None,
        text,
    };
    let (t, replayed) = submit_action(
        &state,
        &caller,
        &ctx,
        body,
        pending,
        command,
        |op| op,
        PICK_TRANSFER,
    )
    .await?;
    let v = mutation_answer(&state, &caller, &ctx, action, &t.debit).await?;
    Ok(created(&v, replayed))
}

async fn get_posting(
    state: SharedState,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    uri: axum::http::Uri,
    action: Action,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let id = path_uuid(&seg, action)?;
    let m = action_mutation(&state, &caller, action, id).await?;
    let v = mutation_answer(&state, &caller, &ctx, action, &m).await?;
    Ok(json_answer(StatusCode::OK, &params.select(v)))
}

/// `PATCH` of a completed action: its members may change (they are kept beside the
/// ledger), its money may not; a status other than completed is a conflict (a
/// completed move of money is corrected by a new action, never undone).
async fn patch_posting(
    state: SharedState,
    caller: Writer,
    ctx: Ctx,
    seg: PathSegment,
    body: Body,
    action: Action,
) -> Answer {
    let id = path_uuid(&seg, action)?;
    let m = action_mutation(&state, &caller, action, id).await?;
    let b = &body.value;
    let mut cancel = false;
    if let Some(status) = b.text("/status")? {
        match ActionStatus::parse(&status) {
            Some(ActionStatus::Completed) => {}
            Some(ActionStatus::Cancelled) if action == Action::Topup => {
                let (client, _) =
                    record_body(&state, &caller, action.record_kind(), &id.to_string()).await?;
                if !is_recurring(&client) {
                    return Err(TmfError::conflict(
                        "action_completed",
                        "only a recurring topupBalance can be cancelled; \
                         correct this one with an adjustBalance instead",
                    ));
                }
                cancel = true;
            }
            Some(_) => {
                return Err(TmfError::conflict(
                    "action_completed",
                    format!(
                        "the {} is completed; correct it with an adjustBalance instead",
                        action.collection()
                    ),
                ));
            }
            None => return Err(TmfError::field("status", "is not an ActionStatusType")),
        }
    }
    if b.at("/amount").is_some() {
        let minor = parse_amount(b, "/amount", &m.unit)?;
        let current = match action {
            Action::Adjust => m.amount,
            _ => m.amount.saturating_abs(),
        };
        if minor != current {
            return Err(TmfError::conflict(
                "action_completed",
                "the amount of a completed action cannot change",
            ));
        }
    }
    if let Some(bucket) = b.text("/bucket/id")?
        && bucket != m.wallet.as_str()
    {
        return Err(TmfError::conflict(
            "action_completed",
            "the bucket of a completed action cannot change",
        ));
    }
    if cancel {
        // The members and the plan's cancellation are one unit. Later periods stop;
        // one already running may still post.
        let key = id.to_string();
        let mut rounds = 0;
        loop {
            let (current, version) =
                record_body(&state, &caller, action.record_kind(), &key).await?;
            let text = record_text(&merge(&current, record_patch(b)))?;
            let op = recurring::cancelling(
                &key,
                Operation::records(&caller).put_record(action.record_kind(), &key, text, version),
            );
            match submit_op(&state, op).await? {
                Ok(_) => break,
                Err(Refusal::RecordConflict) if rounds < UPDATE_ROUNDS_MAX => rounds += 1,
                Err(r) => return Err(refusal(&r)),
            }
        }
    } else {
        update_record(&state, &caller, action.record_kind(), &id.to_string(), b).await?;
    }
    let v = mutation_answer(&state, &caller, &ctx, action, &m).await?;
    Ok(json_answer(StatusCode::OK, &v))
}

/// Rounds of compare-and-set before a writer of a record gives up with a conflict.
const UPDATE_ROUNDS_MAX: usize = 8;

/// What a PATCH lays over a record: its members but the status (which is the ledger's).
fn record_patch(patch: &Value) -> Value {
    let mut patch = patch.clone();
    if let Value::Object(map) = &mut patch {
        map.remove("status");
    }
    patch
}

/// Lays `patch` over the record `key` (merging objects), retrying lost races.
async fn update_record(
    state: &SharedState,
    caller: &Principal,
    kind: &str,
    key: &str,
    patch: &Value,
) -> Result<(), TmfError> {
    let patch = record_patch(patch);
    for _ in 0..UPDATE_ROUNDS_MAX {
        let (current, version) = record_body(state, caller, kind, key).await?;
        let next = merge(&current, patch.clone());
        let text = record_text(&next)?;
        if put_record(state, caller, kind, key, &text, version).await? {
            return Ok(());
        }
    }
    Err(TmfError::conflict(
        "conflict",
        "the resource changed meanwhile; try again",
    ))
}

async fn delete_posting(
    state: SharedState,
    caller: Writer,
    seg: PathSegment,
    action: Action,
) -> Answer {
    let id = path_uuid(&seg, action)?;
    action_mutation(&state, &caller, action, id).await?;
    Err(TmfError::conflict(
        "action_completed",
        format!(
            "a completed {} cannot be deleted; correct it with an adjustBalance",
            action.collection()
        ),
    ))
}

fn kind_filter(kinds: &[MutationKind]) -> Filter {
    Filter::Test(Test {
        path: "kind".into(),
        column: columns::mutation::KIND,
        pred: Pred::In(
            kinds
                .iter()
                .map(|k| prepaid_query::Value::Text(k.as_str().to_owned()))
                .collect(),
        ),
    })
}

/// Lists mutations of `kinds`, rendered as `action` (as history when `None`).
async fn list_mutations(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    params: &ListParams,
    kinds: &[MutationKind],
    action: Option<Action>,
) -> Answer {
    let Ok(customer) = list_customer(caller, params) else {
        return Ok(answer(Vec::new(), 0));
    };
    let wallet = match params.only("bucket.id") {
        Some(id) => match WalletId::parse(id) {
            Ok(w) => Some(w),
            Err(_) => return Ok(answer(Vec::new(), 0)),
        },
        None => None,
    };
    let rows = Rows::Mutations {
        customer,
        wallet,
        kinds: kinds.to_vec(),
        action,
    };
    list_with(
        state,
        caller,
        ctx,
        params,
        &["partyAccount.id", "bucket.id"],
        &rows,
    )
    .await
}

async fn list_postings(
    state: SharedState,
    caller: Reader,
    ctx: Ctx,
    uri: axum::http::Uri,
    action: Action,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let kinds = [action.mutation_kind()];
    list_mutations(&state, &caller, &ctx, &params, &kinds, Some(action)).await
}

macro_rules! posting_handlers {
    ($action:expr, $get:ident, $patch:ident, $delete:ident, $list:ident) => {
        pub async fn $get(
            State(state): State<SharedState>,
            caller: Reader,
            ctx: Ctx,
            seg: PathSegment,
            OriginalUri(uri): OriginalUri,
        ) -> Answer {
            get_posting(state, caller, ctx, seg, uri, $action).await
        }
        pub async fn $patch(
            State(state): State<SharedState>,
            caller: Writer,
            ctx: Ctx,
            seg: PathSegment,
            body: Body,
        ) -> Answer {
            patch_posting(state, caller, ctx, seg, body, $action).await
        }
        pub async fn $delete(
            State(state): State<SharedState>,
            caller: Writer,
            seg: PathSegment,
        ) -> Answer {
            delete_posting(state, caller, seg, $action).await
        }
        pub async fn $list(
            State(state): State<SharedState>,
            caller: Reader,
            ctx: Ctx,
            OriginalUri(uri): OriginalUri,
        ) -> Answer {
            list_postings(state, caller, ctx, uri, $action).await
        }
    };
}

posting_handlers!(
    Action::Topup,
    get_topup,
    patch_topup,
    delete_topup,
    list_topups
);
posting_handlers!(
    Action::Adjust,
    get_adjust,
    patch_adjust,
    delete_adjust,
    list_adjusts
);
posting_handlers!(
    Action::Transfer,
    get_transfer,
    patch_transfer,
    delete_transfer,
    list_transfers
);

// ---------------------------------------------------------------------------------
// Reservations: holds.

fn hold_status(h: &Hold) -> ActionStatus {
    match h.status {
        HoldStatus::Pending => ActionStatus::Created,
        HoldStatus::Committed => ActionStatus::Completed,
        HoldStatus::Released | HoldStatus::Expired => ActionStatus::Cancelled,
    }
}

fn render_hold(ctx: &Ctx, h: &Hold, unit: &Unit, customer_name: &str, client: &Value) -> Value {
    let id = h.id.to_string();
    let usage = client
        .text("/usageType")
        .ok()
        .flatten()
        .unwrap_or_else(|| units::usage_type(unit.code()).to_owned());
    let mut ours = json!({
        "id": id,
        "href": ctx.href("reserveBalance", &id),
        "@type": "ReserveBalance",
        "status": action_status(ctx, hold_status(h)),
        "amount": quantity(ctx, h.amount, unit),
        "bucket": bucket_ref(ctx, h.wallet.as_str()),
        "partyAccount": party_ref(ctx, h.customer.as_str(), customer_name),
        "usageType": usage,
        "requestedDate": when(h.created_at),
    });
    if let Some(t) = h.settled_at {
        ours["confirmationDate"] = when(t);
    }
    if let Some(t) = h.expires_at {
        ours["validFor"] = json!({"startDateTime": when(h.created_at), "endDateTime": when(t)});
    }
    if let Some(c) = h.committed_amount {
        // prepaid's own member: how much of the reservation was spent.
        ours["committedAmount"] = quantity(ctx, c, unit);
    }
    if h.status == HoldStatus::Expired {
        ours["reason"] = json!("expired");
    }
    if ctx.is_brm() {
        ours["@baseType"] = json!("ReserveBalance");
        brm_nulls(
            &mut ours,
            &[
                "@schemaLocation",
                "channel",
                "confirmationDate",
                "description",
                "logicalResource",
                "product",
                "reason",
                "relatedParty",
                "requestor",
                "validFor",
            ],
        );
    }
    finish(ctx, merge(client, ours))
}

async fn visible_hold(
    state: &SharedState,
    caller: &Principal,
    id: uuid::Uuid,
) -> Result<Hold, TmfError> {
    state
        .store
        .hold(&caller.tenant, HoldId(id))
        .await
        .map_err(|e| store_err(&e, "reading a reservation"))?
        .filter(|h| caller.sees(&h.customer))
        .ok_or_else(|| Action::Reserve.not_found())
}

async fn hold_answer(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    h: &Hold,
) -> Result<Value, TmfError> {
    let (client, _) = record_body(
        state,
        caller,
        Action::Reserve.record_kind(),
        &h.id.to_string(),
    )
    .await?;
    let wallet = state
        .store
        .wallet(&caller.tenant, &h.wallet)
        .await
        .map_err(|e| store_err(&e, "reading a reservation's bucket"))?
        .ok_or_else(|| {
            tracing::error!(hold = %h.id, "a hold's wallet is missing");
            TmfError::internal()
        })?;
    let name = customer_name(state, caller, &h.customer).await;
    Ok(render_hold(ctx, h, &wallet.unit, &name, &client))
}

pub async fn create_reserve(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    let action = Action::Reserve;
    let b = &body.value;
    let wallet = resolve_bucket(&state, &caller, b, "/bucket/id", Some("/partyAccount/id")).await?;
    let minor = parse_amount(b, "/amount", &wallet.unit)?;
    let amount = positive("amount", minor)?;
    usage_type(b, &wallet.unit)?;
    let expires_at = time_at(b, "/validFor/endDateTime")?;
    if let Some(t) = expires_at
        && t <= state.clock.now()
    {
        return Err(TmfError::field(
            "validFor.endDateTime",
            "must be in the future",
        ));
    }
    let text = record_text(b)?;
    let id = new_uuid();
    let command = Command::PlaceHold {
        id: HoldId(id),
        wallet: wallet.id.clone(),
        amount,
        reference: reference(action, b),
        expires_at,
    };
    let pending = Pending {
        action,
        id,
        bucket: Some(&wallet.id),
        text,
    };
    let (hold, replayed) = submit_action(
        &state,
        &caller,
        &ctx,
        body,
        pending,
        command,
        |op| op,
        PICK_HOLD,
    )
    .await?;
    let v = hold_answer(&state, &caller, &ctx, &hold).await?;
    Ok(created(&v, replayed))
}

pub async fn get_reserve(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let id = path_uuid(&seg, Action::Reserve)?;
    let h = visible_hold(&state, &caller, id).await?;
    let v = hold_answer(&state, &caller, &ctx, &h).await?;
    Ok(json_answer(StatusCode::OK, &params.select(v)))
}

/// Settles a pending reservation: `Completed` commits it (all of it, or `amount`, the
/// rest released), `Cancelled` releases it. One unit with its `Cancel` event and, when
/// given, the reservation's record as `(value, version read)`; a record changed
/// meanwhile refuses it with [`Refusal::RecordConflict`].
#[allow(clippy::too_many_arguments)]
async fn settle(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    h: &Hold,
    to: ActionStatus,
    commit_amount: Option<Amount>,
    idempotency: Option<(IdempotencyKey, Fingerprint)>,
    record: Option<(String, Option<i64>)>,
) -> Result<Result<Hold, Refusal>, TmfError> {
    let command = match to {
        ActionStatus::Completed => Command::CommitHold {
            hold: h.id,
            amount: commit_amount,
            mutation_id: MutationId(new_uuid()),
            reference: None,
        },
        _ => Command::ReleaseHold {
            hold: h.id,
            mutation_id: MutationId(new_uuid()),
        },
    };
    let mut op = Operation::new(caller, command).idempotency(idempotency);
    if let Some((value, version)) = record {
        op = op.put_record(
            Action::Reserve.record_kind(),
            &h.id.to_string(),
            value,
            version,
        );
    }
    if to == ActionStatus::Cancelled {
        let id = h.id.to_string();
        op = with_event(state, caller, ctx, op, Action::Reserve, "Cancel", &id).await?;
    }
    match submit_op(state, op).await? {
        Ok((Done::Hold { hold, .. }, _)) => Ok(Ok(hold)),
        Ok(_) => Err(unexpected("hold")),
        Err(r) => Ok(Err(r)),
    }
}

/// `PATCH /reserveBalance/{id}`: `status` completed commits the reservation (an
/// `amount` less than reserved commits that much and releases the rest), cancelled
/// releases it; other members are kept.
pub async fn patch_reserve(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    seg: PathSegment,
    body: Body,
) -> Answer {
    let id = path_uuid(&seg, Action::Reserve)?;
    let h = visible_hold(&state, &caller, id).await?;
    let b = &body.value;
    let to = match b.text("/status")? {
        None => None,
        Some(s) => Some(
            ActionStatus::parse(&s)
                .ok_or_else(|| TmfError::field("status", "is not an ActionStatusType"))?,
        ),
    };
    let current = hold_status(&h);
    let mut commit_amount = None;
    if b.at("/amount").is_some() {
        let wallet = visible_wallet(&state, &caller, h.wallet.as_str()).await?;
        let minor = parse_amount(b, "/amount", &wallet.unit)?;
        if minor != h.amount {
            if to != Some(ActionStatus::Completed) {
                return Err(TmfError::conflict(
                    "conflict",
                    "the amount of a reservation changes only as it is completed",
                ));
            }
            commit_amount = Some(positive("amount", minor)?);
        }
    }
    let hold = match to {
        Some(to) if to == current && h.status != HoldStatus::Expired => h,
        Some(ActionStatus::Failed) | Some(ActionStatus::Created) => {
            return Err(TmfError::conflict(
                "not_pending",
                format!(
                    "the reservation is {}; it can only be completed or cancelled",
                    h.status.as_str()
                ),
            ));
        }
        Some(to) => {
            // The settlement and the members the client sent go in one unit; a record
            // changed meanwhile sends it round again with the newer record.
            let key = h.id.to_string();
            let mut rounds = 0;
            loop {
                let (current, version) =
                    record_body(&state, &caller, Action::Reserve.record_kind(), &key).await?;
                let text = record_text(&merge(&current, record_patch(b)))?;
                let settled = settle(
                    &state,
                    &caller,
                    &ctx,
                    &h,
                    to,
                    commit_amount,
                    body.idempotency.clone(),
                    Some((text, version)),
                )
                .await?;
                match settled {
                    Ok(hold) => break hold,
                    Err(Refusal::RecordConflict) if rounds < UPDATE_ROUNDS_MAX => rounds += 1,
                    Err(r) => return Err(refusal(&r)),
                }
            }
        }
        None => {
            update_record(
                &state,
                &caller,
                Action::Reserve.record_kind(),
                &h.id.to_string(),
                b,
            )
            .await?;
            h
        }
    };
    let v = hold_answer(&state, &caller, &ctx, &hold).await?;
    Ok(json_answer(StatusCode::OK, &v))
}

/// `DELETE /reserveBalance/{id}` releases a pending reservation.
pub async fn delete_reserve(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    seg: PathSegment,
) -> Answer {
    let id = path_uuid(&seg, Action::Reserve)?;
    let h = visible_hold(&state, &caller, id).await?;
    settle(
        &state,
        &caller,
        &ctx,
        &h,
        ActionStatus::Cancelled,
        None,
        None,
        None,
    )
    .await?
    .map_err(|r| refusal(&r))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reservations made through this API (their records), oldest first.
pub async fn list_reserves(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let records = state
            .store
            .records(
                &caller.tenant,
                Action::Reserve.record_kind(),
                after.as_deref(),
                PAGE_SIZE_MAX,
            )
            .await
            .map_err(|e| store_err(&e, "listing reservations"))?;
        let n = records.len();
        for r in &records {
            let Ok(id) = uuid::Uuid::try_parse(&r.key) else {
                continue;
            };
            let Some(h) = state
                .store
                .hold(&caller.tenant, HoldId(id))
                .await
                .map_err(|e| store_err(&e, "reading a reservation"))?
                .filter(|h| caller.sees(&h.customer))
            else {
                continue;
            };
            let v = hold_answer(&state, &caller, &ctx, &h).await?;
            if params.matches(&v) {
                all.push(v);
            }
        }
        after = records.last().map(|r| r.key.clone());
        if n < PAGE_SIZE_MAX {
            break;
        }
        if all.len() > SCAN_MAX {
            return Err(TmfError::query(format!(
                "more than {SCAN_MAX} reservations match; narrow the list with partyAccount.id or bucket.id"
            )));
        }
    }
    Ok(params.answer_page(all))
}

// ---------------------------------------------------------------------------------
// Accumulated balances and the history of balance actions.

/// The id of the accumulated balance of `customer` in `unit`: `<customer>:<unit>`
/// (unit codes hold no `:`, so the last one splits it).
fn accumulated_id(customer: &CustomerId, unit: &Unit) -> String {
    format!("{customer}:{}", unit.code())
}

fn render_accumulated(
    ctx: &Ctx,
    customer: &CustomerId,
    customer_name: &str,
    unit: &Unit,
    wallets: &[&Wallet],
) -> Value {
    let id = accumulated_id(customer, unit);
    let total: i128 = wallets
        .iter()
        .map(|w| i128::from(w.balance) - i128::from(w.held))
        .sum();
    let mut ours = json!({
        "id": id,
        "href": ctx.href("accumulatedBalance", &id),
        "@type": "AccumulatedBalance",
        "name": format!("{} of {customer}", unit.code()),
        "bucket": wallets.iter().map(|w| bucket_ref(ctx, w.id.as_str())).collect::<Vec<_>>(),
        "partyAccount": party_ref(ctx, customer.as_str(), customer_name),
        "totalBalance": {"amount": decimal(amount::format_minor(total, unit.scale())), "units": unit.code()},
    });
    if ctx.is_brm() {
        ours["@baseType"] = json!("AccumulatedBalance");
        brm_nulls(&mut ours, &["@schemaLocation", "description"]);
    }
    finish(ctx, ours)
}

/// Every wallet the caller sees (of `customer` when given), at most [`SCAN_MAX`].
async fn all_wallets(
    state: &SharedState,
    caller: &Principal,
    customer: Option<CustomerId>,
) -> Result<Vec<Wallet>, TmfError> {
    let mut all = Vec::new();
    loop {
        let page = state
            .store
            .search_wallets(
                &caller.tenant,
                &WalletSearch {
                    customer: customer.clone(),
                    filter: None,
                    order: Order::Ascending,
                    offset: all.len() as u64,
                    limit: PAGE_SIZE_MAX,
                },
            )
            .await
            .map_err(|e| store_err(&e, "listing buckets"))?;
        let n = page.items.len();
        all.extend(page.items);
        if n == 0 || all.len() as u64 >= page.total {
            return Ok(all);
        }
        if all.len() >= SCAN_MAX {
            return Err(TmfError::query(format!(
                "more than {SCAN_MAX} buckets to sum; narrow the list with partyAccount.id"
            )));
        }
    }
}

async fn accumulated(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    wallets: &[Wallet],
) -> Vec<Value> {
    let mut groups: BTreeMap<(CustomerId, String), (Unit, Vec<&Wallet>)> = BTreeMap::new();
    for w in wallets {
        groups
            .entry((w.customer.clone(), w.unit.code().to_owned()))
            .or_insert_with(|| (w.unit.clone(), Vec::new()))
            .1
            .push(w);
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((customer, _), (unit, ws)) in groups {
        let name = customer_name(state, caller, &customer).await;
        out.push(render_accumulated(ctx, &customer, &name, &unit, &ws));
    }
    out
}

pub async fn list_accumulated(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let Ok(customer) = list_customer(&caller, &params) else {
        return Ok(answer(Vec::new(), 0));
    };
    let wallets = all_wallets(&state, &caller, customer).await?;
    let all: Vec<Value> = accumulated(&state, &caller, &ctx, &wallets)
        .await
        .into_iter()
        .filter(|v| params.matches(v))
        .collect();
    Ok(params.answer_page(all))
}

pub async fn get_accumulated(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let not_found = || TmfError::not_found("accumulated_balance_not_found", "accumulatedBalance");
    let (customer, code) = seg.0.rsplit_once(':').ok_or_else(not_found)?;
    let customer = CustomerId::parse(customer)
        .ok()
        .filter(|c| caller.sees(c))
        .ok_or_else(not_found)?;
    let wallets: Vec<Wallet> = all_wallets(&state, &caller, Some(customer))
        .await?
        .into_iter()
        .filter(|w| w.unit.code() == code)
        .collect();
    let v = accumulated(&state, &caller, &ctx, &wallets)
        .await
        .into_iter()
        .next()
        .ok_or_else(not_found)?;
    Ok(json_answer(StatusCode::OK, &params.select(v)))
}

fn render_history(ctx: &Ctx, m: &Mutation, customer_name: &str) -> Value {
    let id = m.id.to_string();
    let receiver = match m.kind {
        MutationKind::TransferOut => m.counter_wallet.clone().unwrap_or_else(|| m.wallet.clone()),
        _ => m.wallet.clone(),
    };
    let mut ours = json!({
        "id": id,
        "href": ctx.href("balanceActionHistory", &id),
        "@type": "BalanceActionHistory",
        "status": action_status(ctx, ActionStatus::Completed),
        "description": m.kind.as_str(),
        "amount": quantity(ctx, m.amount, &m.unit),
        "bucket": bucket_ref(ctx, m.wallet.as_str()),
        "partyAccount": party_ref(ctx, m.customer.as_str(), customer_name),
        "usageType": units::usage_type(m.unit.code()),
        "receiverLogicalResource": {"id": receiver.as_str(), "@referredType": "Bucket"},
        "requestedDate": when(m.occurred_at),
        "confirmationDate": when(m.recorded_at),
    });
    if !m.reference.text.is_empty() {
        ours["reason"] = json!(m.reference.text);
    }
    if m.kind == MutationKind::Adjustment {
        ours["adjustType"] = json!("oneTime");
    }
    if let Some(other) = &m.counter_wallet {
        let (from, to) = match m.kind {
            MutationKind::TransferIn => (other.clone(), m.wallet.clone()),
            _ => (m.wallet.clone(), other.clone()),
        };
        ours["bucket"] = bucket_ref(ctx, from.as_str());
        ours["receiverBucket"] = bucket_ref(ctx, to.as_str());
        ours["receiverLogicalResource"] = json!({"id": to.as_str(), "@referredType": "Bucket"});
    }
    if ctx.is_brm() {
        ours["@baseType"] = json!("BalanceActionHistory");
        brm_nulls(&mut ours, &["@schemaLocation", "reason", "channel"]);
    }
    finish(ctx, ours)
}

pub async fn list_history(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    list_mutations(&state, &caller, &ctx, &params, &MutationKind::ALL, None).await
}

pub async fn get_history(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let not_found =
        || TmfError::not_found("balance_action_history_not_found", "balanceActionHistory");
    let id = uuid::Uuid::try_parse(&seg.0).map_err(|_| not_found())?;
    let m = state
        .store
        .mutation(&caller.tenant, MutationId(id))
        .await
        .map_err(|e| store_err(&e, "reading a mutation"))?
        .filter(|m| caller.sees(&m.customer))
        .ok_or_else(not_found)?;
    let name = customer_name(&state, &caller, &m.customer).await;
    Ok(json_answer(
        StatusCode::OK,
        &params.select(render_history(&ctx, &m, &name)),
    ))
}
