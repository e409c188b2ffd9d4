//! The administration of the TouchTopUp dialect in the native API (`/v1/icrtouch/...`):
//! what a till or school system feeds it.
//!
//! - `PUT /v1/icrtouch/companies/{coid}` (admin): creates or renames a company, with its
//!   currency (`GBP`; the scale defaults to the currency's minor unit). The currency
//!   cannot change once set, since wallets count in it.
//! - `PUT /v1/icrtouch/companies/{coid}/customers/{custid}` (write): creates a customer
//!   (ledger customer `<coid>.<custid>` with its main wallet in the company currency)
//!   or updates its title, names and account number; the answer carries the
//!   customer's account link key.
//! - `POST /v1/icrtouch/companies/{coid}/customers/{custid}/sales` (write): a till sale
//!   paid from the main balance: a debit of `amount`, whose sale total, site, numbers
//!   and items are kept in a record keyed by the debit's mutation id. Send an
//!   `Idempotency-Key`: a repeat records the sale once.
//! - `PUT /v1/icrtouch/keys/{name}` (admin): limits API key `name` to one company
//!   (`{"coid": 1}`) or lifts the limit (`{"coid": null}`).
//!
//! A till's top-up of the main balance is a plain `top_up` of wallet `<coid>.<custid>`.
//! The routes are in the OpenAPI document ([`openapi`]) under the tag `touchtopup`.

use crate::model::{
    COMPANY_KIND, CUSTOMER_KIND, Company, CustomerInfo, Item, KEY_KIND, KeyScope, SALE_KIND,
    SALE_REFERENCE_KIND, Sale, company_key, customer_key, ledger_customer, main_wallet,
};
use crate::secrets::LinkKeys;
use crate::types::{COMPANY_ID_MAX, CUSTOMER_ID_MAX};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Admin, Caller, Read, Write};
use prepaid_edge::body::JsonBody;
use prepaid_edge::new_uuid;
use prepaid_edge::problem::Problem;
use prepaid_edge::refusals::{refusal, unexpected};
use prepaid_edge::submit::Operation;
use prepaid_edge::time::WireTime;
use prepaid_edge::wire::{MutationOut, ProblemOut, Text};
use prepaid_edge::{json_response, store_problem};
use prepaid_ledger::{
    Amount, ApiKeyName, Command, Done, Floor, MutationId, MutationKind, NAME_LEN_MAX, NewWallet,
    Reference, Refusal, TenantId, Unit,
};
use prepaid_ledger::{RecordKey, RecordKind};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// The most items of one sale.
pub const SALE_ITEMS_MAX: usize = 500;

prepaid_edge::routes! {
    rows, pub route_table;
    "/icrtouch/companies/{coid}" => put(put_company): Admin, get(get_company): Read;
    "/icrtouch/companies/{coid}/customers/{custid}" =>
        put(put_customer): Write, get(get_customer): Read;
    "/icrtouch/companies/{coid}/customers/{custid}/sales" => post(post_sale): Write;
    "/icrtouch/keys/{name}" => put(put_key): Admin;
}

/// The routes, merged into the native router.
pub fn router() -> Router<SharedState> {
    prepaid_edge::routes::build(rows())
}

type Answer = Result<Response, Problem>;

fn number(what: &'static str, s: &str, max: u32) -> Result<u32, Problem> {
    s.parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n) && n.to_string() == s)
        .ok_or_else(|| Problem::not_found("not_found", format!("no such {what}")))
}

/// The record key of a company, customer or API key name, which is always valid.
fn key_of(text: &str) -> Result<RecordKey, Problem> {
    RecordKey::parse(text).map_err(|e| {
        tracing::error!(error = %e, "a TouchTopUp administration key is no record key");
        Problem::internal()
    })
}

async fn record<T: serde::de::DeserializeOwned>(
    state: &SharedState,
    tenant: &TenantId,
    kind: RecordKind,
    key: &str,
) -> Result<Option<(T, i64)>, Problem> {
    let Some(r) = state
        .store
        .record(tenant, kind, &key_of(key)?)
        .await
        .map_err(|e| store_problem(&e, "reading a TouchTopUp record"))?
    else {
        return Ok(None);
    };
    let value = serde_json::from_str(&r.value).map_err(|e| {
        tracing::error!(kind = %kind, key, error = %e, "a corrupt TouchTopUp record");
        Problem::internal()
    })?;
    Ok(Some((value, r.version)))
}

async fn put_record<T: Serialize>(
    state: &SharedState,
    tenant: &TenantId,
    kind: RecordKind,
    key: &str,
    value: &T,
    expected: Option<i64>,
) -> Result<bool, Problem> {
    let text = serde_json::to_string(value).map_err(|e| {
        tracing::error!(kind = %kind, error = %e, "a TouchTopUp record does not serialise");
        Problem::internal()
    })?;
    Ok(state
        .store
        .put_record(
            tenant,
            kind,
            &key_of(key)?,
            &text,
            expected,
            state.clock.now(),
        )
        .await
        .map_err(|e| store_problem(&e, "writing a TouchTopUp record"))?
        .is_some())
}

fn ok<T: Serialize>(value: &T) -> Response {
    json_response(StatusCode::OK, value, false)
}

fn conflict(detail: impl Into<std::borrow::Cow<'static, str>>) -> Problem {
    Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
}

// ---------------------------------------------------------------------------------
// Companies.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TouchTopUpCompanyIn)]
struct CompanyIn {
    #[schema(value_type = String)]
    name: Text<NAME_LEN_MAX>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    db: Option<Text<NAME_LEN_MAX>>,
    currency: String,
    #[serde(default)]
    scale: Option<u8>,
}

#[utoipa::path(put, path = "/v1/icrtouch/companies/{coid}", operation_id = "icrtouch_put_company", tag = "touchtopup",
    params(("coid" = u32, Path, description = "The company id")),
    request_body = CompanyIn,
    responses((status = 200, body = Company), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Creates or renames a company (admin); its currency cannot change once set.
async fn put_company(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    Path(coid): Path<String>,
    body: JsonBody<CompanyIn>,
) -> Answer {
    if caller.customer.is_some() {
        return Err(Problem::forbidden(
            "a customer-restricted key may not do this",
        ));
    }
    let coid = number("company", &coid, COMPANY_ID_MAX)?;
    let v = body.value;
    let scale = v
        .scale
        .unwrap_or_else(|| prepaid_ledger::default_scale(&v.currency));
    Unit::new(&v.currency, scale).map_err(|e| Problem::invalid_field("currency", e))?;
    let key = company_key(coid);
    let existing = record::<Company>(&state, &caller.tenant, COMPANY_KIND, &key).await?;
    if let Some((old, _)) = &existing
        && (old.currency != v.currency || old.scale != scale)
    {
        return Err(conflict(format!(
            "company {coid} counts {}/{}; its currency cannot change",
            old.currency, old.scale
        )));
    }
    let company = Company {
        coid,
        name: v.name.0,
        db: v.db.map(|d| d.0).unwrap_or_default(),
        currency: v.currency,
        scale,
    };
    if !put_record(
        &state,
        &caller.tenant,
        COMPANY_KIND,
        &key,
        &company,
        existing.map(|(_, v)| v),
    )
    .await?
    {
        return Err(conflict(
            "the company was changed at the same time; try again",
        ));
    }
    Ok(ok(&company))
}

#[utoipa::path(get, path = "/v1/icrtouch/companies/{coid}", operation_id = "icrtouch_get_company", tag = "touchtopup",
    params(("coid" = u32, Path, description = "The company id")),
    responses((status = 200, body = Company), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// One company.
async fn get_company(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    Path(coid): Path<String>,
) -> Answer {
    let coid = number("company", &coid, COMPANY_ID_MAX)?;
    let (company, _) = record::<Company>(&state, &caller.tenant, COMPANY_KIND, &company_key(coid))
        .await?
        .ok_or_else(|| Problem::not_found("not_found", "no such company"))?;
    Ok(ok(&company))
}

// ---------------------------------------------------------------------------------
// Customers.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TouchTopUpCustomerIn)]
struct CustomerIn {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    title: Option<Text<NAME_LEN_MAX>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    firstname: Option<Text<NAME_LEN_MAX>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    lastname: Option<Text<NAME_LEN_MAX>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    account_number: Option<Text<NAME_LEN_MAX>>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = TouchTopUpCustomerOut)]
struct CustomerOut {
    coid: u32,
    custid: u32,
    customer_id: String,
    wallet_id: String,
    title: String,
    firstname: String,
    lastname: String,
    account_number: String,
    /// What the customer gives the portal to link the account to a user.
    link_key: String,
}

async fn customer_out(state: &SharedState, tenant: &TenantId, c: CustomerInfo) -> Answer {
    let keys = LinkKeys::for_tenant(state, tenant)
        .await
        .map_err(|e| store_problem(&e, "reading the link key secret"))?;
    Ok(ok(&CustomerOut {
        coid: c.coid,
        custid: c.custid,
        customer_id: ledger_customer(c.coid, c.custid).to_string(),
        wallet_id: main_wallet(c.coid, c.custid).to_string(),
        link_key: keys.issue(c.coid, c.custid),
        title: c.title,
        firstname: c.firstname,
        lastname: c.lastname,
        account_number: c.accountnumber,
    }))
}

#[utoipa::path(put, path = "/v1/icrtouch/companies/{coid}/customers/{custid}", operation_id = "icrtouch_put_customer",
    tag = "touchtopup",
    params(("coid" = u32, Path, description = "The company id"), ("custid" = u32, Path, description = "The customer id within the company")),
    request_body = CustomerIn,
    responses((status = 200, body = CustomerOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Creates a customer with its main wallet, or updates its details.
async fn put_customer(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    Path((coid, custid)): Path<(String, String)>,
    body: JsonBody<CustomerIn>,
) -> Answer {
    let coid = number("company", &coid, COMPANY_ID_MAX)?;
    let custid = number("customer", &custid, CUSTOMER_ID_MAX)?;
    let tenant = caller.tenant.clone();
    let (company, _) = record::<Company>(&state, &tenant, COMPANY_KIND, &company_key(coid))
        .await?
        .ok_or_else(|| Problem::not_found("not_found", "no such company"))?;
    let key = customer_key(coid, custid);
    let existing = record::<CustomerInfo>(&state, &tenant, CUSTOMER_KIND, &key).await?;
    let v = body.value;
    let base = existing.as_ref().map(|(c, _)| c.clone());
    let pick = |new: Option<Text<NAME_LEN_MAX>>, old: Option<&String>| {
        new.map(|t| t.0)
            .or_else(|| old.cloned())
            .unwrap_or_default()
    };
    let info = CustomerInfo {
        coid,
        custid,
        title: pick(v.title, base.as_ref().map(|c| &c.title)),
        firstname: pick(v.firstname, base.as_ref().map(|c| &c.firstname)),
        lastname: pick(v.lastname, base.as_ref().map(|c| &c.lastname)),
        accountnumber: pick(v.account_number, base.as_ref().map(|c| &c.accountnumber)),
    };
    let name: String = [&info.title, &info.firstname, &info.lastname]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    // The ledger's name is for people reading it; cut it to fit, on a character edge.
    let mut name = name;
    while name.len() > NAME_LEN_MAX {
        name.pop();
    }
    let unit = Unit::new(&company.currency, company.scale).map_err(|e| {
        tracing::error!(error = %e, coid, "a company has an invalid currency");
        Problem::internal()
    })?;
    let value = serde_json::to_string(&info).map_err(|e| {
        tracing::error!(error = %e, "encoding a TouchTopUp customer failed");
        Problem::internal()
    })?;
    // The ledger's customer, its main wallet and the TouchTopUp details are one unit.
    let op = Operation::new(
        &caller,
        Command::EnsureWallet {
            wallet: NewWallet {
                id: main_wallet(coid, custid),
                customer: ledger_customer(coid, custid),
                unit,
                name: String::from("main balance"),
                product: String::from("touchtopup-main"),
                floor: Floor::ZERO,
                ceiling: None,
                valid_from: None,
                valid_until: None,
                metadata: prepaid_ledger::Metadata::default(),
            },
        },
    )
    .before(Command::EnsureCustomer {
        id: ledger_customer(coid, custid),
        name,
        link: String::new(),
    })
    .put_record(
        CUSTOMER_KIND,
        &key_of(&key)?,
        value,
        existing.map(|(_, v)| v),
    );
    match op.submit(&state, "creating a TouchTopUp customer").await? {
        Ok(_) => {}
        Err(Refusal::RecordConflict) => {
            return Err(conflict(
                "the customer was changed at the same time; try again",
            ));
        }
        Err(r) => return Err(refusal(&r)),
    }
    customer_out(&state, &tenant, info).await
}

#[utoipa::path(get, path = "/v1/icrtouch/companies/{coid}/customers/{custid}", operation_id = "icrtouch_get_customer",
    tag = "touchtopup",
    params(("coid" = u32, Path, description = "The company id"), ("custid" = u32, Path, description = "The customer id within the company")),
    responses((status = 200, body = CustomerOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// One customer, with its account link key.
async fn get_customer(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    Path((coid, custid)): Path<(String, String)>,
) -> Answer {
    let coid = number("company", &coid, COMPANY_ID_MAX)?;
    let custid = number("customer", &custid, CUSTOMER_ID_MAX)?;
    if !caller.sees(&ledger_customer(coid, custid)) {
        return Err(Problem::not_found("not_found", "no such customer"));
    }
    let (info, _) = record::<CustomerInfo>(
        &state,
        &caller.tenant,
        CUSTOMER_KIND,
        &customer_key(coid, custid),
    )
    .await?
    .ok_or_else(|| Problem::not_found("not_found", "no such customer"))?;
    customer_out(&state, &caller.tenant, info).await
}

// ---------------------------------------------------------------------------------
// Sales.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TouchTopUpItemIn)]
struct ItemIn {
    itemrecord: u64,
    #[serde(default = "one")]
    qty: i64,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    text: Option<Text<NAME_LEN_MAX>>,
}

fn one() -> i64 {
    1
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TouchTopUpSaleIn)]
struct SaleIn {
    /// What the main balance pays, in minor units.
    amount: i64,
    /// The sale's total (the balance may pay part of it); defaults to `amount`.
    #[serde(default)]
    sale_total: Option<i64>,
    #[serde(default)]
    site: u32,
    #[serde(default)]
    consec_number: u64,
    #[serde(default)]
    sale_id: u64,
    #[serde(default)]
    items: Vec<ItemIn>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    occurred_at: Option<WireTime>,
}

#[utoipa::path(post, path = "/v1/icrtouch/companies/{coid}/customers/{custid}/sales", operation_id = "icrtouch_post_sale",
    tag = "touchtopup",
    params(("coid" = u32, Path, description = "The company id"), ("custid" = u32, Path, description = "The customer id within the company"),
        ("Idempotency-Key" = Option<String>, Header, description = "Records the sale once")),
    request_body = SaleIn,
    responses((status = 201, body = MutationOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Records a till sale paid from the customer's main balance.
async fn post_sale(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    Path((coid, custid)): Path<(String, String)>,
    body: JsonBody<SaleIn>,
) -> Answer {
    let coid = number("company", &coid, COMPANY_ID_MAX)?;
    let custid = number("customer", &custid, CUSTOMER_ID_MAX)?;
    let v = body.value;
    let amount = Amount::positive(v.amount).map_err(|e| Problem::invalid_field("amount", e))?;
    let sale_total = v.sale_total.unwrap_or(v.amount);
    if !(0..=prepaid_ledger::AMOUNT_MAX).contains(&sale_total) {
        return Err(Problem::invalid_field(
            "sale_total",
            "must be from 0 to 10^15",
        ));
    }
    if v.items.len() > SALE_ITEMS_MAX {
        return Err(Problem::invalid_field(
            "items",
            format!("at most {SALE_ITEMS_MAX} items"),
        ));
    }
    let sale = Sale {
        site: v.site,
        sale_total_minor: sale_total,
        consec_number: v.consec_number,
        sale_id: v.sale_id,
        items: v
            .items
            .into_iter()
            .map(|i| Item {
                itemrecord: i.itemrecord,
                qty: i.qty,
                text: i.text.map(|t| t.0).unwrap_or_default(),
            })
            .collect(),
    };
    let id = MutationId(new_uuid());
    let sale_text = serde_json::to_string(&sale).map_err(|e| {
        tracing::error!(error = %e, "encoding a sale failed");
        Problem::internal()
    })?;
    let command = Command::Post {
        id,
        wallet: main_wallet(coid, custid),
        kind: MutationKind::Debit,
        amount,
        reference: Reference::known(SALE_REFERENCE_KIND, &sale.sale_id.to_string(), ""),
        occurred_at: v.occurred_at.map(|t| t.0),
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    };
    // The debit and its sale are one unit; a replay answers the first debit, whose
    // sale was recorded with it.
    let op = Operation::new(&caller, command)
        .idempotency(body.idempotency)
        .put_record(SALE_KIND, &RecordKey::from_uuid(id.0), sale_text, None);
    let (m, replayed) = match op.submit(&state, "recording a sale").await? {
        Ok((Done::Mutation(m), replayed)) => (m, replayed),
        Ok((other, _)) => return Err(unexpected(&other, "mutation")),
        Err(r) => return Err(refusal(&r)),
    };
    Ok(json_response(
        StatusCode::CREATED,
        &MutationOut::from(&m),
        replayed,
    ))
}

// ---------------------------------------------------------------------------------
// Keys.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TouchTopUpKeyIn)]
struct KeyIn {
    coid: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = TouchTopUpKeyOut)]
struct KeyOut {
    name: String,
    coid: Option<u32>,
}

#[utoipa::path(put, path = "/v1/icrtouch/keys/{name}", operation_id = "icrtouch_put_key", tag = "touchtopup",
    params(("name" = String, Path, description = "The API key's name")),
    request_body = KeyIn,
    responses((status = 200, body = KeyOut), (status = "4XX", body = ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Limits an API key to one company, or lifts the limit (admin).
async fn put_key(
    State(state): State<SharedState>,
    caller: Caller<Admin>,
    Path(name): Path<String>,
    body: JsonBody<KeyIn>,
) -> Answer {
    if caller.customer.is_some() {
        return Err(Problem::forbidden(
            "a customer-restricted key may not do this",
        ));
    }
    let name =
        ApiKeyName::parse(&name).map_err(|_| Problem::not_found("not_found", "no such key"))?;
    let tenant = caller.tenant.clone();
    match body.value.coid {
        Some(coid) => {
            if !(1..=COMPANY_ID_MAX).contains(&coid) {
                return Err(Problem::invalid_field(
                    "coid",
                    format!("must be from 1 to {COMPANY_ID_MAX}"),
                ));
            }
            record::<Company>(&state, &tenant, COMPANY_KIND, &company_key(coid))
                .await?
                .ok_or_else(|| Problem::invalid_field("coid", "no such company"))?;
            let existing = record::<KeyScope>(&state, &tenant, KEY_KIND, name.as_str()).await?;
            if !put_record(
                &state,
                &tenant,
                KEY_KIND,
                name.as_str(),
                &KeyScope { coid },
                existing.map(|(_, v)| v),
            )
            .await?
            {
                return Err(conflict("the key was changed at the same time; try again"));
            }
        }
        None => {
            state
                .store
                .delete_record(&tenant, KEY_KIND, &key_of(name.as_str())?)
                .await
                .map_err(|e| store_problem(&e, "deleting a TouchTopUp key record"))?;
        }
    }
    Ok(ok(&KeyOut {
        name: name.to_string(),
        coid: body.value.coid,
    }))
}

/// The TouchTopUp administration routes of the native API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(put_company, get_company, put_customer, get_customer, post_sale, put_key),
    components(schemas(CompanyIn, Company, CustomerIn, CustomerOut, ItemIn, SaleIn, KeyIn,
        KeyOut)),
    tags((name = "touchtopup", description = "Administration of the ICRTouch TouchTopUp \
        dialect: companies, customers, till sales and company-limited keys."))
)]
struct TouchTopUpApi;

/// The OpenAPI document of these routes, merged into the native API's.
pub fn openapi() -> utoipa::openapi::OpenApi {
    TouchTopUpApi::openapi()
}
