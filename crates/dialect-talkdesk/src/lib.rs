//! The Talkdesk dialect: Talkdesk's account wallets list (`GET /account/wallets`) and a
//! single wallet (`GET /account/wallets/{id}`), with Talkdesk's filter language, its
//! `page`/`per_page` paging with HAL links, and its error shape (see [`errors`]).
//!
//! # Accounts, keys and scope
//! A Talkdesk account is a prepaid customer: `account_id` is the customer id. Clients
//! authenticate with `Authorization: Bearer <token>`, where the token is the secret of a
//! prepaid API key (HTTP Basic, which the native API also takes, is refused here:
//! Talkdesk clients speak OAuth). Talkdesk's scope `account-wallets:read` is granted by
//! a key with the `read` scope, or `write` or `admin`, which imply it; any other key is
//! 403. A missing or unknown token is 401. Both carry an RFC 6750 bearer challenge.
//!
//! - A key restricted to a customer is that account's token: it sees that customer's
//!   wallets only. `account_id` may repeat its own customer; naming another gives an
//!   empty list, and another customer's wallet is 404, as in the native API.
//! - A key of the whole tenant names the account explicitly: the list requires
//!   `?account_id=<customer id>` and shows that customer's wallets only; without it the
//!   list is 400 with `fields: [{"name": "account_id", ...}]`, so a tenant key never
//!   lists every account at once. A single wallet by id needs no `account_id`: the
//!   tenant key may read any wallet of the tenant.
//!
//! # Which wallets are Talkdesk wallets
//! Talkdesk shows balances in credits, x10000 of the currency value, and requires a
//! name and a product name of at least one character. So a wallet is served here when
//! its unit code is [`CREDIT_UNIT_CODE`] with a scale from 0 to [`CREDIT_SCALE`] and it
//! has a non-empty name and product. Its balance in credits is then exact:
//! `balance × 10^(4 − scale)` of its minor units (a `CREDIT`/4 wallet's minor units are
//! credits). Other wallets (euro, minutes, a `CREDIT` scale past 4 whose minor units are
//! fractions of a credit) are absent from this dialect: never listed or counted, 404 by
//! id. The restriction is one filter, [`served`], applied in SQL for the list and in
//! memory for the single wallet, so the two always agree.
//!
//! `balance` is the ledger balance (the sum of the wallet's mutations); amounts held by
//! pending reservations are not subtracted.
//!
//! `updated_at` is when the wallet's balance, held amount or status last changed (a
//! posting, a transfer, a hold placed, committed or released, a suspension or expiry);
//! a wallet that never changed shows its creation time.
//!
//! # Listing
//! Wallets come oldest first (by creation time, then id), so pages are stable while
//! wallets are added. `page` counts from 1; `per_page` defaults to [`PER_PAGE_DEFAULT`]
//! and may be 1 to [`PER_PAGE_MAX`]; `page` may be at most [`PAGE_MAX`]. A page past the
//! last is empty, with `total` still counting every match. `_links` has `self`,
//! `first` and `last` always, `prev` from page 2 on (pointing at most at the last page)
//! and `next` before the last page. Every href repeats the filter and `account_id`.
//! Unknown query parameters are ignored; a known one given twice is 400.
//!
//! Hrefs are absolute, on the origin the client addressed (`prepaid_edge::origin`:
//! `Forwarded`, then `X-Forwarded-Proto`/`-Host`, then the request's authority or
//! `Host`). A request without any usable host gets hrefs that start at the path.
//!
//! # Filter
//! `filter` is Talkdesk's language ([`prepaid_query::talkdesk`]): `eq` and
//! `contains(field, 'value')` on `name` and `product_name`, `and`, `or`, `not`,
//! parentheses, values in single quotes with `''` for a quote inside. An empty `filter`
//! is no filter. A filter that does not parse or names another field is 400 with the
//! position (counted in characters from 0) and the reason in `description`, and
//! `fields: [{"name": "filter", ...}]`; an unclosed parenthesis is named as such.

pub mod errors;
pub mod types;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use errors::{Challenge, TalkdeskError};
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Principal, Scope, authenticate, grants};
use prepaid_edge::store_problem;
use prepaid_edge::time::WireTime;
use prepaid_ledger::{CustomerId, Wallet, WalletId};
use prepaid_query::{ErrorKind, Field, FieldType, Filter, Op, Pred, QueryError, Row, Schema, Test};
use prepaid_store::{Counted, Order, WalletSearch, columns};
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use types::{Credits, Embedded, Link, ListLinks, WalletLinks, WalletListOut, WalletOut};

/// Where [`router`] is nested in the application.
pub const MOUNT: &str = "/account";
/// The page size when `per_page` is not given.
pub const PER_PAGE_DEFAULT: usize = 20;
/// The largest `per_page` accepted.
pub const PER_PAGE_MAX: usize = 100;
/// The largest `page` accepted; with [`PER_PAGE_MAX`] it bounds how far the store skips.
pub const PAGE_MAX: u64 = 100_000;
/// The longest query string accepted, in bytes: room for a filter of
/// [`prepaid_query::QUERY_LEN_MAX`] bytes with every byte percent-encoded.
pub const QUERY_STRING_LEN_MAX: usize = 16 * 1024;
/// The longest `Host` or `X-Forwarded-Host` used in hrefs, in bytes.
pub const HOST_LEN_MAX: usize = prepaid_edge::origin::HOST_LEN_MAX;
/// The unit code of the wallets this dialect serves (the ledger's, which bounds such
/// wallets so that their credits fit `i64`).
pub const CREDIT_UNIT_CODE: &str = prepaid_ledger::CREDIT_UNIT_CODE;
/// Credits are the currency value times 10^`CREDIT_SCALE`: the largest scale whose
/// minor units are whole credits.
pub const CREDIT_SCALE: u8 = prepaid_ledger::CREDIT_SCALE;

prepaid_edge::routes! {
    rows, pub route_table;
    // `Reader` grants Talkdesk's `account-wallets:read`: prepaid's read scope.
    "/wallets" => get(list_wallets): prepaid_edge::auth::Read;
    "/wallets/{id}" => get(get_wallet): prepaid_edge::auth::Read;
}

/// The routes of the dialect, to be nested at [`MOUNT`]: the rows of [`route_table`].
pub fn router() -> Router<SharedState> {
    prepaid_edge::routes::build(rows())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
}

async fn method_not_allowed(method: Method) -> TalkdeskError {
    TalkdeskError::method_not_allowed(&method)
}

async fn not_found() -> TalkdeskError {
    TalkdeskError::not_found()
}

// ---------------------------------------------------------------------------------
// Authentication.

/// A caller whose bearer token grants `account-wallets:read`.
pub struct Reader(Arc<Principal>);

impl std::ops::Deref for Reader {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

/// Whether an `Authorization` header value uses the Bearer scheme.
fn is_bearer(value: &[u8]) -> bool {
    const SCHEME: &[u8] = b"bearer";
    value.len() > SCHEME.len()
        && value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
        && value[SCHEME.len()] == b' '
}

impl FromRequestParts<SharedState> for Reader {
    type Rejection = TalkdeskError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(TalkdeskError::unauthorized(
                Challenge::Missing,
                "a bearer token is required: Authorization: Bearer <token>",
            ));
        };
        if !is_bearer(value.as_bytes()) {
            return Err(TalkdeskError::unauthorized(
                Challenge::InvalidToken,
                "only bearer tokens are accepted: Authorization: Bearer <token>",
            ));
        }
        let principal = authenticate(state, parts).await?;
        if !grants(principal.scopes, Scope::Read) {
            return Err(TalkdeskError::forbidden());
        }
        Ok(Self(principal))
    }
}

// ---------------------------------------------------------------------------------
// Which wallets are served, and the filter.

fn test(path: &str, column: prepaid_query::Column, pred: Pred) -> Filter {
    Filter::Test(Test {
        path: path.to_owned(),
        column,
        pred,
    })
}

/// What makes a wallet a Talkdesk wallet (see the module doc), joined with the
/// client's filter.
pub fn served(client: Option<Filter>) -> Filter {
    use prepaid_query::Value::{Int, Text};
    let mut all = vec![
        test(
            "unit_code",
            columns::wallet::UNIT_CODE,
            Pred::Eq(Text(CREDIT_UNIT_CODE.to_owned())),
        ),
        test(
            "unit_scale",
            columns::wallet::UNIT_SCALE,
            Pred::Le(Int(i64::from(CREDIT_SCALE))),
        ),
        test("name", columns::wallet::NAME, Pred::Ne(Text(String::new()))),
        test(
            "product_name",
            columns::wallet::PRODUCT,
            Pred::Ne(Text(String::new())),
        ),
    ];
    all.extend(client);
    Filter::And(all)
}

/// A wallet as a row of [`served`]'s fields.
struct WalletRow<'a>(&'a Wallet);

impl Row for WalletRow<'_> {
    fn get(&self, path: &str) -> prepaid_query::Value {
        use prepaid_query::Value::{Int, Null, Text};
        let w = self.0;
        match path {
            "unit_code" => Text(w.unit.code().to_owned()),
            "unit_scale" => Int(i64::from(w.unit.scale())),
            "name" => Text(w.name.clone()),
            "product_name" => Text(w.product.clone()),
            _ => Null,
        }
    }
}

/// Whether this dialect serves `wallet` at all.
fn is_served(wallet: &Wallet) -> bool {
    served(None).matches(&WalletRow(wallet))
}

/// The wallet's balance in credits, `None` for a wallet this dialect does not serve.
pub fn credits(wallet: &Wallet) -> Option<Credits> {
    let scale = wallet.unit.scale();
    if wallet.unit.code() != CREDIT_UNIT_CODE || scale > CREDIT_SCALE {
        return None;
    }
    let factor = 10i128.pow(u32::from(CREDIT_SCALE - scale));
    Some(Credits(i128::from(wallet.balance) * factor))
}

/// The fields `filter` may name.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let ops = [Op::Eq, Op::Contains];
        Schema::new(vec![
            Field::new("name", columns::wallet::NAME, FieldType::Text).with_ops(&ops),
            Field::new("product_name", columns::wallet::PRODUCT, FieldType::Text).with_ops(&ops),
        ])
    })
}

/// The byte offset `at` of `text` as a character position.
fn char_position(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text[..at].chars().count()
}

/// The character position of the innermost `(` outside quotes that is never closed.
fn unclosed_paren(filter: &str) -> Option<usize> {
    let mut open = Vec::new();
    let mut quoted = false;
    for (i, c) in filter.chars().enumerate() {
        match c {
            // `''` inside a value closes and reopens it: the net effect is right.
            '\'' => quoted = !quoted,
            '(' if !quoted => open.push(i),
            ')' if !quoted => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

/// Says where and why `filter` is wrong, for the 400's `description`.
fn describe(filter: &str, err: &QueryError) -> String {
    let at = char_position(filter, err.offset);
    let mut text = format!("{} at position {at}", err.kind);
    let at_end = matches!(&err.kind, ErrorKind::Expected { found, .. } if found == "end of input");
    if at_end && let Some(open) = unclosed_paren(filter) {
        let _ = write!(text, ": the parenthesis at position {open} is not closed");
    }
    text
}

/// Parses and binds `filter`; an empty one is no filter.
pub fn parse_filter(filter: &str) -> Result<Option<Filter>, TalkdeskError> {
    if filter.is_empty() {
        return Ok(None);
    }
    prepaid_query::talkdesk::parse(filter)
        .and_then(|expr| schema().bind(&expr))
        .map(Some)
        .map_err(|e| TalkdeskError::invalid_filter(describe(filter, &e)))
}

// ---------------------------------------------------------------------------------
// The query string.

/// The parameters of a list call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListParams {
    pub page: u64,
    pub per_page: usize,
    /// As the client wrote it (repeated in hrefs); empty when absent.
    pub filter_text: String,
    pub filter: Option<Filter>,
    pub account_id: Option<CustomerId>,
}

/// An integer parameter from `min` to `max`.
fn number<T>(name: &'static str, text: &str, min: T, max: T) -> Result<T, TalkdeskError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let bad = || {
        TalkdeskError::invalid_parameter(name, format!("must be an integer from {min} to {max}"))
    };
    let n: T = text.parse().map_err(|_| bad())?;
    if n < min || n > max {
        return Err(bad());
    }
    Ok(n)
}

impl ListParams {
    /// Reads `page`, `per_page`, `filter` and `account_id` from a query string.
    pub fn parse(query: Option<&str>) -> Result<Self, TalkdeskError> {
        let query = query.unwrap_or_default();
        if query.len() > QUERY_STRING_LEN_MAX {
            return Err(TalkdeskError::invalid_query(format!(
                "the query string is longer than {QUERY_STRING_LEN_MAX} bytes"
            )));
        }
        let pairs = prepaid_edge::form::pairs(query).map_err(|e| {
            let why = format!("{}: {}", e.name(), prepaid_edge::form::NOT_UTF8);
            if e.name() == "filter" {
                TalkdeskError::invalid_filter(why)
            } else {
                TalkdeskError::invalid_query(why)
            }
        })?;
        let mut page = None;
        let mut per_page = None;
        let mut filter = None;
        let mut account_id = None;
        for (name, value) in pairs {
            let (slot, name) = match name.as_str() {
                "page" => (&mut page, "page"),
                "per_page" => (&mut per_page, "per_page"),
                "filter" => (&mut filter, "filter"),
                "account_id" => (&mut account_id, "account_id"),
                _ => continue,
            };
            if slot.is_some() {
                return Err(TalkdeskError::invalid_parameter(
                    name,
                    "is given more than once",
                ));
            }
            *slot = Some(value);
        }
        let page = match page {
            Some(p) => number("page", &p, 1, PAGE_MAX)?,
            None => 1,
        };
        let per_page = match per_page {
            Some(p) => number("per_page", &p, 1, PER_PAGE_MAX)?,
            None => PER_PAGE_DEFAULT,
        };
        let account_id = account_id
            .map(|a| {
                CustomerId::parse(&a)
                    .map_err(|e| TalkdeskError::invalid_parameter("account_id", e.to_string()))
            })
            .transpose()?;
        let filter_text = filter.unwrap_or_default();
        let filter = parse_filter(&filter_text)?;
        Ok(Self {
            page,
            per_page,
            filter_text,
            filter,
            account_id,
        })
    }

    /// How many wallets the page skips.
    fn offset(&self) -> u64 {
        (self.page - 1) * self.per_page as u64
    }
}

// ---------------------------------------------------------------------------------
// Links.

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `scheme://host` of the hrefs, or empty when the request names no usable host (see
/// [`prepaid_edge::origin`]).
pub fn base_url(uri: &Uri, headers: &HeaderMap) -> String {
    prepaid_edge::origin::Origin::of(uri, headers).base()
}

/// The hrefs of a list, all with the same filter, size and account.
struct ListHrefs<'a> {
    base: &'a str,
    params: &'a ListParams,
}

impl ListHrefs<'_> {
    fn page(&self, page: u64) -> Link {
        let mut href = format!(
            "{}{MOUNT}/wallets?page={page}&per_page={}",
            self.base, self.params.per_page
        );
        if !self.params.filter_text.is_empty() {
            href.push_str("&filter=");
            encode(&self.params.filter_text, &mut href);
        }
        if let Some(account) = &self.params.account_id {
            href.push_str("&account_id=");
            encode(account.as_str(), &mut href);
        }
        Link { href }
    }
}

/// The links of page `params.page` of a list of `total` wallets.
fn list_links(base: &str, params: &ListParams, total: u64) -> ListLinks {
    let hrefs = ListHrefs { base, params };
    let last = total.div_ceil(params.per_page as u64).max(1);
    let page = params.page;
    ListLinks {
        this: hrefs.page(page),
        first: hrefs.page(1),
        prev: (page > 1).then(|| hrefs.page((page - 1).min(last))),
        next: (page < last).then(|| hrefs.page(page + 1)),
        last: hrefs.page(last),
    }
}

fn wallet_href(base: &str, id: &WalletId) -> Link {
    let mut href = format!("{base}{MOUNT}/wallets/");
    encode(id.as_str(), &mut href);
    Link { href }
}

/// A served wallet on the wire; `None` (and a log line) for one this dialect does not
/// serve, which the store should not have returned.
fn wallet_out<'a>(base: &str, wallet: &'a Wallet) -> Option<WalletOut<'a>> {
    let Some(balance) = credits(wallet) else {
        tracing::error!(
            wallet = wallet.id.as_str(),
            unit = wallet.unit.code(),
            "the store returned a wallet outside the Talkdesk filter"
        );
        return None;
    };
    Some(WalletOut {
        name: &wallet.name,
        product_name: &wallet.product,
        balance,
        account_id: wallet.customer.as_str(),
        created_at: WireTime(wallet.created_at),
        updated_at: WireTime(wallet.updated_at),
        _links: WalletLinks {
            this: wallet_href(base, &wallet.id),
        },
    })
}

// ---------------------------------------------------------------------------------
// Handlers.

type Answer = Result<Response, TalkdeskError>;

fn ok<T: serde::Serialize>(value: &T) -> Response {
    prepaid_edge::json_response(StatusCode::OK, value, false)
}

/// `GET /account/wallets`: the account's wallets, a page at a time.
async fn list_wallets(
    State(state): State<SharedState>,
    reader: Reader,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    let params = ListParams::parse(uri.query())?;
    let base = base_url(&uri, &headers);
    let customer = match (&reader.customer, &params.account_id) {
        // Another account than the key's own: nothing, as if it had no wallets.
        (Some(only), Some(asked)) if only != asked => {
            let nothing = Counted {
                items: Vec::new(),
                total: 0,
            };
            return list_answer(&base, &params, &nothing);
        }
        (Some(only), _) => Some(only.clone()),
        (None, Some(asked)) => Some(asked.clone()),
        // A tenant key must name the account, so one call never spans every account.
        (None, None) => return Err(TalkdeskError::account_required()),
    };
    let search = WalletSearch {
        customer,
        filter: Some(served(params.filter.clone())),
        order: Order::Ascending,
        offset: params.offset(),
        limit: params.per_page,
    };
    let found = state
        .store
        .search_wallets(&reader.tenant, &search)
        .await
        .map_err(|e| store_problem(&e, "listing Talkdesk wallets"))?;
    list_answer(&base, &params, &found)
}

fn list_answer(base: &str, params: &ListParams, found: &Counted<Wallet>) -> Answer {
    let wallets = found
        .items
        .iter()
        .map(|w| wallet_out(base, w))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(TalkdeskError::internal)?;
    Ok(ok(&WalletListOut {
        total: found.total,
        count: wallets.len(),
        page: params.page,
        per_page: params.per_page,
        _links: list_links(base, params, found.total),
        _embedded: Embedded { wallets },
    }))
}

/// `GET /account/wallets/{id}`: one wallet of the account.
async fn get_wallet(
    State(state): State<SharedState>,
    reader: Reader,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    // An id that does not decode, or cannot be a wallet id, names no wallet.
    let id = id.map_err(|_| TalkdeskError::wallet_not_found())?;
    let id = WalletId::parse(&id.0).map_err(|_| TalkdeskError::wallet_not_found())?;
    let wallet = state
        .store
        .wallet(&reader.tenant, &id)
        .await
        .map_err(|e| store_problem(&e, "reading a Talkdesk wallet"))?
        .filter(|w| reader.sees(&w.customer) && is_served(w))
        .ok_or_else(TalkdeskError::wallet_not_found)?;
    let base = base_url(&uri, &headers);
    let out = wallet_out(&base, &wallet).ok_or_else(TalkdeskError::internal)?;
    Ok(ok(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prepaid_ledger::{Floor, TenantId, Timestamp, Unit, WalletStatus};

    fn wallet(unit: &str, scale: u8, balance: i64, name: &str, product: &str) -> Wallet {
        Wallet {
            tenant: TenantId::parse("t").unwrap(),
            id: WalletId::parse("w").unwrap(),
            customer: CustomerId::parse("acme").unwrap(),
            unit: Unit::new(unit, scale).unwrap(),
            name: name.into(),
            product: product.into(),
            status: WalletStatus::Active,
            floor: Floor::ZERO,
            ceiling: None,
            valid_from: None,
            valid_until: None,
            balance,
            held: 0,
            incoming: 0,
            created_at: Timestamp::from_secs(0),
            updated_at: Timestamp::from_secs(0),
            metadata: prepaid_ledger::Metadata::default(),
        }
    }

    #[test]
    fn credits_are_exact_for_every_served_scale() {
        let w = |scale, balance| credits(&wallet("CREDIT", scale, balance, "n", "p"));
        assert_eq!(w(4, 123_456), Some(Credits(123_456)));
        assert_eq!(w(2, 1234), Some(Credits(123_400)));
        assert_eq!(w(0, -7), Some(Credits(-70_000)));
        let max = prepaid_ledger::BALANCE_ABS_MAX;
        assert_eq!(w(0, max), Some(Credits(i128::from(max) * 10_000)));
        assert_eq!(w(5, 10), None);
        assert_eq!(credits(&wallet("EUR", 2, 1, "n", "p")), None);
    }

    #[test]
    fn served_wallets_are_credit_with_name_and_product() {
        assert!(is_served(&wallet("CREDIT", 4, 0, "n", "p")));
        assert!(is_served(&wallet("CREDIT", 0, 0, "n", "p")));
        assert!(!is_served(&wallet("CREDIT", CREDIT_SCALE + 1, 0, "n", "p")));
        assert!(!is_served(&wallet("EUR", 2, 0, "n", "p")));
        assert!(!is_served(&wallet("credit", 4, 0, "n", "p")));
        assert!(!is_served(&wallet("CREDIT", 4, 0, "", "p")));
        assert!(!is_served(&wallet("CREDIT", 4, 0, "n", "")));
    }

    #[test]
    fn the_documents_filters_parse() {
        let f = parse_filter("name eq 'ai_premium_batch' or contains(product_name, 'realtime')")
            .unwrap()
            .unwrap();
        assert_eq!(
            f.to_string(),
            "(or (eq name \"ai_premium_batch\") (contains product_name \"realtime\"))"
        );
        let f = parse_filter("not product_name eq 'product_usage'")
            .unwrap()
            .unwrap();
        assert_eq!(f.to_string(), "(not (eq product_name \"product_usage\"))");
        assert_eq!(parse_filter("").unwrap(), None);
    }

    #[test]
    fn an_unclosed_parenthesis_is_named() {
        let q = "product_name eq 'Saas Licenses' and (name eq 'saas_licenses' and \
                 contains(product_name, 'digital')";
        let e = parse_filter(q).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, errors::CODE_INVALID_FILTER);
        let d = e.description.unwrap();
        assert!(d.contains(&format!("at position {}", q.len())), "{d}");
        assert!(
            d.contains("the parenthesis at position 36 is not closed"),
            "{d}"
        );
        assert_eq!(e.fields.len(), 1);
        assert_eq!(e.fields[0].name, "filter");
        assert_eq!(e.fields[0].description, d);
    }

    #[test]
    fn filter_errors_count_characters() {
        let e = parse_filter("name eq 'é' and nom eq 'x'").unwrap_err();
        assert_eq!(e.description.unwrap(), "unknown field `nom` at position 16");
        let e = parse_filter("balance eq '1'").unwrap_err();
        assert!(
            e.description
                .unwrap()
                .starts_with("unknown field `balance` at position 0")
        );
        let e = parse_filter("name ne 'x'").unwrap_err();
        assert!(e.description.unwrap().contains("at position 5"));
    }

    #[test]
    fn unclosed_parens_skip_quoted_text() {
        assert_eq!(unclosed_paren("(a eq ')'"), Some(0));
        assert_eq!(unclosed_paren("(a eq 'it''s(')"), None);
        assert_eq!(unclosed_paren("((a eq 'x')"), Some(0));
        assert_eq!(unclosed_paren("(a eq 'x') and (b"), Some(15));
        assert_eq!(unclosed_paren("a eq 'x')"), None);
    }

    fn params(query: &str) -> Result<ListParams, TalkdeskError> {
        ListParams::parse(Some(query))
    }

    #[test]
    fn paging_parameters_at_and_past_their_bounds() {
        let p = params("").unwrap();
        assert_eq!((p.page, p.per_page), (1, PER_PAGE_DEFAULT));
        let p = params(&format!("page={PAGE_MAX}&per_page={PER_PAGE_MAX}")).unwrap();
        assert_eq!((p.page, p.per_page), (PAGE_MAX, PER_PAGE_MAX));
        assert_eq!(p.offset(), (PAGE_MAX - 1) * PER_PAGE_MAX as u64);
        for bad in [
            format!("page={}", PAGE_MAX + 1),
            "page=0".into(),
            "page=-1".into(),
            "page=x".into(),
            "page=".into(),
            format!("per_page={}", PER_PAGE_MAX + 1),
            "per_page=0".into(),
            "per_page=1.5".into(),
        ] {
            let e = params(&bad).unwrap_err();
            assert_eq!(e.code, errors::CODE_INVALID_PARAMETER, "{bad}");
            assert_eq!(e.fields.len(), 1, "{bad}");
        }
    }

    #[test]
    fn parameters_given_twice_or_malformed_are_refused() {
        let e = params("page=1&page=2").unwrap_err();
        assert_eq!(e.fields[0].name, "page");
        let e = params("filter=name%20eq%20'a'&filter=").unwrap_err();
        assert_eq!(e.fields[0].name, "filter");
        let e = params(&format!(
            "account_id={}",
            "a".repeat(prepaid_ledger::ID_LEN_MAX + 1)
        ))
        .unwrap_err();
        assert_eq!(e.fields[0].name, "account_id");
        // Unknown parameters are ignored.
        assert!(params("limit=5&sort=name").is_ok());
    }

    #[test]
    fn the_query_string_length_is_bounded() {
        // A filter of the longest length: four long values, padded with spaces.
        let term = format!("name eq '{}'", "x".repeat(1000));
        let mut filter = [term.as_str(); 4].join(" or ");
        filter.push_str(&" ".repeat(prepaid_query::QUERY_LEN_MAX - filter.len()));
        assert_eq!(filter.len(), prepaid_query::QUERY_LEN_MAX);
        let mut encoded = String::new();
        encode(&filter, &mut encoded);
        let at = format!("filter={encoded}");
        assert!(at.len() <= QUERY_STRING_LEN_MAX);
        assert!(params(&at).is_ok());
        let over = format!("{at}&x={}", "y".repeat(QUERY_STRING_LEN_MAX - at.len() - 2));
        assert_eq!(over.len(), QUERY_STRING_LEN_MAX + 1);
        assert_eq!(
            params(&over).unwrap_err().code,
            errors::CODE_INVALID_PARAMETER
        );
        // The encoded form of a filter of the longest length, every byte escaped.
        let worst = 3 * prepaid_query::QUERY_LEN_MAX + "filter=".len();
        assert!(worst <= QUERY_STRING_LEN_MAX);
    }

    fn hrefs(query: &str, total: u64) -> ListLinks {
        let p = params(query).unwrap();
        list_links("http://h", &p, total)
    }

    #[test]
    fn links_keep_the_filter_and_the_account() {
        let l = hrefs(
            "page=2&per_page=2&filter=name%20eq%20'it''s'&account_id=a%2Bb",
            5,
        );
        let tail = "&filter=name%20eq%20%27it%27%27s%27&account_id=a%2Bb";
        assert_eq!(
            l.this.href,
            format!("http://h/account/wallets?page=2&per_page=2{tail}")
        );
        assert_eq!(
            l.first.href,
            format!("http://h/account/wallets?page=1&per_page=2{tail}")
        );
        assert_eq!(
            l.prev.unwrap().href,
            format!("http://h/account/wallets?page=1&per_page=2{tail}")
        );
        assert_eq!(
            l.next.unwrap().href,
            format!("http://h/account/wallets?page=3&per_page=2{tail}")
        );
        assert_eq!(
            l.last.href,
            format!("http://h/account/wallets?page=3&per_page=2{tail}")
        );
        // The href's filter reads back to the same filter.
        let back = ListParams::parse(l.this.href.split_once('?').map(|(_, q)| q)).unwrap();
        assert_eq!(back.filter_text, "name eq 'it''s'");
        assert_eq!(back.account_id.unwrap().as_str(), "a+b");
    }

    #[test]
    fn links_at_the_edges() {
        let l = hrefs("", 0);
        assert!(l.prev.is_none() && l.next.is_none());
        assert!(l.last.href.contains("page=1&"));
        let l = hrefs("per_page=3", 6);
        assert!(l.prev.is_none());
        assert!(l.next.unwrap().href.contains("page=2&"));
        assert!(l.last.href.contains("page=2&"));
        let l = hrefs("per_page=3&page=2", 6);
        assert!(l.next.is_none());
        // Past the last page, prev leads back to the last one.
        let l = hrefs("per_page=3&page=9", 6);
        assert!(l.next.is_none());
        assert!(l.prev.unwrap().href.contains("page=2&"));
    }

    #[test]
    fn base_urls_come_from_the_request() {
        let uri: Uri = "/account/wallets".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(base_url(&uri, &h), "");
        h.insert("host", "example.com:8080".parse().unwrap());
        assert_eq!(base_url(&uri, &h), "http://example.com:8080");
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert(
            "x-forwarded-host",
            "api.example.com, proxy".parse().unwrap(),
        );
        assert_eq!(base_url(&uri, &h), "https://api.example.com");
        // A host that could break out of the URL is not used.
        h.insert("x-forwarded-host", "evil.com/x?".parse().unwrap());
        assert_eq!(base_url(&uri, &h), "https://example.com:8080");
        h.insert("host", "[::1]:80".parse().unwrap());
        assert_eq!(base_url(&uri, &h), "https://[::1]:80");
        let absolute: Uri = "http://10.0.0.1:9/account/wallets".parse().unwrap();
        assert_eq!(base_url(&absolute, &HeaderMap::new()), "http://10.0.0.1:9");
        let long = format!("{}.com", "a".repeat(HOST_LEN_MAX));
        let mut h = HeaderMap::new();
        h.insert("host", long.parse().unwrap());
        assert_eq!(base_url(&uri, &h), "");
    }

    #[test]
    fn wallet_hrefs_are_encoded() {
        let id = WalletId::parse("a+b'c").unwrap();
        assert_eq!(
            wallet_href("http://h", &id).href,
            "http://h/account/wallets/a%2Bb%27c"
        );
    }

    #[test]
    fn only_bearer_is_accepted() {
        assert!(is_bearer(b"Bearer x"));
        assert!(is_bearer(b"bearer x"));
        assert!(!is_bearer(b"Bearer"));
        assert!(!is_bearer(b"Basic eDp5"));
        assert!(!is_bearer(b"Bearerx y"));
    }
}
