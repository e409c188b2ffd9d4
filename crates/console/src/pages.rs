//! The pages (GET): what each shows follows the session's key, and a page the key may
//! not see is 404, exactly like one that does not exist.

use crate::chart::{Point, balance_chart};
use crate::session::Session;
use crate::view::{self, amount, hidden, time};
use crate::{
    CHART_POINTS_MAX, CONSOLE_PAGE_SIZE, CUSTOMER_SCAN_MAX, ConsoleError, PAGE_NUMBER_MAX,
};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use prepaid_edge::auth::Scope;
use prepaid_edge::{PathSegment, SharedState};
use prepaid_ledger::{
    ApiKey, ApiKeyName, Customer, CustomerId, HoldStatus, MutationKind, TenantId, Wallet, WalletId,
    WalletStatus,
};
use prepaid_query::{Filter, Pred, Test, Value};
use prepaid_store::{MutationSearch, Order, Page, WalletQuery, columns};

type Answer = Result<Response, ConsoleError>;

/// The pairs of a page's query string.
fn query(uri: &Uri) -> Result<Vec<(String, String)>, ConsoleError> {
    prepaid_edge::form::pairs(uri.query().unwrap_or_default())
        .map_err(|e| ConsoleError::invalid(e.name(), prepaid_edge::form::NOT_UTF8))
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The `after` of a list page's query, parsed by `parse`.
fn cursor<T, E: std::fmt::Display>(
    pairs: &[(String, String)],
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, ConsoleError> {
    match param(pairs, "after") {
        "" => Ok(None),
        a => parse(a)
            .map(Some)
            .map_err(|e| ConsoleError::invalid("after", e)),
    }
}

/// `/console`: a customer's key goes to its customer, any other to the customers.
pub async fn home(session: Session) -> Response {
    match &session.principal.customer {
        Some(c) => Redirect::to(&format!("/console/customers/{c}")).into_response(),
        None => Redirect::to("/console/customers").into_response(),
    }
}

pub async fn sign_in_form() -> Response {
    sign_in_page(StatusCode::OK, None)
}

/// The sign-in page, with what went wrong with the last attempt.
pub fn sign_in_page(status: StatusCode, problem: Option<&str>) -> Response {
    view::bare(
        status,
        "Sign in",
        html! {
            h1 { "Sign in" }
            p { "Sign in with an API key: its name and its secret." }
            @if let Some(problem) = problem {
                p class="error" role="alert" { (problem) }
            }
            form method="post" action="/console/sign-in" class="card" {
                label for="key-name" { "Key name" }
                input id="key-name" name="name" type="text" required autocomplete="username";
                label for="key-secret" { "Secret" }
                input id="key-secret" name="secret" type="password" required
                    autocomplete="current-password";
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A customer the session sees, or 404.
pub async fn visible_customer(
    state: &SharedState,
    session: &Session,
    id: &str,
) -> Result<Customer, ConsoleError> {
    let id = CustomerId::parse(id).map_err(|_| ConsoleError::NotFound)?;
    if !session.principal.sees(&id) {
        return Err(ConsoleError::NotFound);
    }
    state
        .store
        .customer(&session.principal.tenant, &id)
        .await
        .map_err(|e| ConsoleError::store(&e, "reading a customer"))?
        .ok_or(ConsoleError::NotFound)
}

/// A wallet the session sees, or 404.
pub async fn visible_wallet(
    state: &SharedState,
    session: &Session,
    id: &str,
) -> Result<Wallet, ConsoleError> {
    let id = WalletId::parse(id).map_err(|_| ConsoleError::NotFound)?;
    state
        .store
        .wallet(&session.principal.tenant, &id)
        .await
        .map_err(|e| ConsoleError::store(&e, "reading a wallet"))?
        .filter(|w| session.principal.sees(&w.customer))
        .ok_or(ConsoleError::NotFound)
}

/// The customers of the tenant, searched by id or name, a page at a time.
pub async fn customers(State(state): State<SharedState>, session: Session, uri: Uri) -> Answer {
    if !session.tenant_wide() {
        return Err(ConsoleError::NotFound);
    }
    let pairs = query(&uri)?;
    let search = param(&pairs, "q").trim().to_lowercase();
    let mut after = cursor(&pairs, CustomerId::parse)?;
    let mut found: Vec<Customer> = Vec::new();
    let mut scanned = 0;
    let mut next = None;
    loop {
        let page = state
            .store
            .customers(
                &session.principal.tenant,
                after.as_ref(),
                prepaid_store::PAGE_SIZE_MAX.min(CUSTOMER_SCAN_MAX),
            )
            .await
            .map_err(|e| ConsoleError::store(&e, "listing customers"))?;
        let more = page.next.is_some();
        for customer in page.items {
            scanned += 1;
            after = Some(customer.id.clone());
            let hit = search.is_empty()
                || customer.id.as_str().to_lowercase().contains(&search)
                || customer.name.to_lowercase().contains(&search);
            if hit {
                found.push(customer);
            }
            if found.len() == CONSOLE_PAGE_SIZE || scanned == CUSTOMER_SCAN_MAX {
                break;
            }
        }
        let stopped = found.len() == CONSOLE_PAGE_SIZE || scanned == CUSTOMER_SCAN_MAX;
        if stopped || !more {
            // There may be more after the last one looked at unless the store ran out.
            if more || stopped {
                next = after.clone();
            }
            break;
        }
    }
    let write = session.may(Scope::Write);
    let body = html! {
        h1 { "Customers" }
        form method="get" action="/console/customers" class="search" role="search" {
            label for="q" { "Search by id or name" }
            input id="q" name="q" type="search" value=(param(&pairs, "q"));
            button type="submit" { "Search" }
        }
        @if found.is_empty() {
            p { "No customers found." }
        } @else {
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Id" } th scope="col" { "Name" } th scope="col" { "Created" } } }
                    tbody {
                        @for c in &found {
                            tr {
                                td { a href={ "/console/customers/" (c.id) } { (c.id) } }
                                td { (c.name) }
                                td { (time(c.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &next {
            p {
                a rel="next" href={ "/console/customers?q=" (enc(param(&pairs, "q"))) "&after=" (enc(next.as_str())) } {
                    "Next page"
                }
            }
        }
        @if write {
            section aria-labelledby="new-customer" {
                h2 id="new-customer" { "New customer" }
                form method="post" action="/console/customers" class="card" data-write {
                    (hidden(&session))
                    label for="customer-id" { "Id (optional)" }
                    input id="customer-id" name="id" type="text" maxlength="64";
                    label for="customer-name" { "Name" }
                    input id="customer-name" name="name" type="text" maxlength="255";
                    button type="submit" { "Create customer" }
                }
            }
        }
    };
    Ok(view::page(&session, "Customers", body))
}

/// Percent-encodes a query value.
pub fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A customer with its wallets.
pub async fn customer(
    State(state): State<SharedState>,
    session: Session,
    seg: PathSegment,
    uri: Uri,
) -> Answer {
    let customer = visible_customer(&state, &session, &seg.0).await?;
    let pairs = query(&uri)?;
    let after = cursor(&pairs, WalletId::parse)?;
    let page = state
        .store
        .wallets(
            &session.principal.tenant,
            &WalletQuery {
                customer: Some(customer.id.clone()),
                metadata: Default::default(),
                after,
                limit: CONSOLE_PAGE_SIZE,
            },
        )
        .await
        .map_err(|e| ConsoleError::store(&e, "listing wallets"))?;
    let title = if customer.name.is_empty() {
        customer.id.to_string()
    } else {
        customer.name.clone()
    };
    let body = html! {
        h1 { (title) }
        dl class="facts" {
            dt { "Customer id" } dd { (customer.id) }
            dt { "Created" } dd { (time(customer.created_at)) }
            @if !customer.link.is_empty() { dt { "Link" } dd { (customer.link) } }
        }
        h2 { "Wallets" }
        @if page.items.is_empty() {
            p { "No wallets yet." }
        } @else {
            div class="scroll" {
                table {
                    thead { tr {
                        th scope="col" { "Wallet" } th scope="col" { "Name" }
                        th scope="col" class="num" { "Balance" } th scope="col" class="num" { "Available" }
                        th scope="col" { "Status" }
                    } }
                    tbody {
                        @for w in &page.items {
                            tr {
                                td { a href={ "/console/wallets/" (w.id) } { (w.id) } }
                                td { (w.name) }
                                td class="num" { (amount(w.balance, &w.unit)) }
                                td class="num" { (available(w)) }
                                td { (w.status.as_str()) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &page.next {
            p { a rel="next" href={ "/console/customers/" (customer.id) "?after=" (enc(next.as_str())) } { "Next page" } }
        }
        @if session.may(Scope::Write) {
            section aria-labelledby="new-wallet" {
                h2 id="new-wallet" { "New wallet" }
                form method="post" action={ "/console/customers/" (customer.id) "/wallets" } class="card" data-write {
                    (hidden(&session))
                    label for="wallet-id" { "Id (optional)" }
                    input id="wallet-id" name="id" type="text" maxlength="64";
                    label for="wallet-unit" { "Unit (EUR, MIN, CREDIT…)" }
                    input id="wallet-unit" name="unit" type="text" required maxlength="16" value="EUR";
                    label for="wallet-scale" { "Decimal places (optional: the currency's)" }
                    input id="wallet-scale" name="scale" type="number" min="0" max="18";
                    label for="wallet-name" { "Name" }
                    input id="wallet-name" name="name" type="text" maxlength="255";
                    button type="submit" { "Create wallet" }
                }
            }
        }
    };
    Ok(view::page(&session, &title, body))
}

fn available(w: &Wallet) -> String {
    match prepaid_ledger::available(w) {
        Some(a) => amount(a, &w.unit),
        None => "unlimited".to_owned(),
    }
}

/// The mutation filter of a wallet page's query: kind, recorded from and before a day.
fn mutation_filter(pairs: &[(String, String)]) -> Result<Option<Filter>, ConsoleError> {
    let mut tests = Vec::new();
    match param(pairs, "kind") {
        "" => {}
        k => {
            let kind = MutationKind::parse(k)
                .ok_or_else(|| ConsoleError::invalid("kind", "is not a kind of mutation"))?;
            tests.push(Filter::Test(Test {
                path: "kind".into(),
                column: columns::mutation::KIND,
                pred: Pred::Eq(Value::Text(kind.as_str().to_owned())),
            }));
        }
    }
    for (field, later) in [("from", false), ("to", true)] {
        let day = param(pairs, field);
        if day.is_empty() {
            continue;
        }
        let start = prepaid_edge::time::parse(&format!("{day}T00:00:00Z"))
            .map_err(|_| ConsoleError::invalid(field, "is not a day such as 2026-12-31"))?;
        let micros = start.as_micros();
        let pred = if later {
            Pred::Lt(Value::Timestamp(micros.saturating_add(86_400_000_000)))
        } else {
            Pred::Ge(Value::Timestamp(micros))
        };
        tests.push(Filter::Test(Test {
            path: "recorded_at".into(),
            column: columns::mutation::RECORDED_AT,
            pred,
        }));
    }
    Ok((!tests.is_empty()).then_some(Filter::And(tests)))
}

/// A wallet: its balance, chart, forms, holds, grants and mutations.
pub async fn wallet(
    State(state): State<SharedState>,
    session: Session,
    seg: PathSegment,
    uri: Uri,
) -> Answer {
    let wallet = visible_wallet(&state, &session, &seg.0).await?;
    let tenant = &session.principal.tenant;
    let pairs = query(&uri)?;
    let filter = mutation_filter(&pairs)?;
    let page_number: u64 = match param(&pairs, "page") {
        "" => 1,
        p => p
            .parse()
            .ok()
            .filter(|n| (1..=PAGE_NUMBER_MAX).contains(n))
            .ok_or_else(|| {
                ConsoleError::invalid("page", format_args!("must be 1 to {PAGE_NUMBER_MAX}"))
            })?,
    };
    let fail = |e: prepaid_store::StoreError| ConsoleError::store(&e, "reading a wallet's history");
    let size = CONSOLE_PAGE_SIZE as u64;
    let listed = state
        .store
        .search_mutations(
            tenant,
            &MutationSearch {
                wallet: Some(wallet.id.clone()),
                filter: filter.clone(),
                order: Order::Descending,
                offset: (page_number - 1) * size,
                limit: CONSOLE_PAGE_SIZE,
                ..Default::default()
            },
        )
        .await
        .map_err(fail)?;
    let newest = state
        .store
        .search_mutations(
            tenant,
            &MutationSearch {
                wallet: Some(wallet.id.clone()),
                order: Order::Descending,
                limit: CHART_POINTS_MAX,
                ..Default::default()
            },
        )
        .await
        .map_err(fail)?;
    let mut points: Vec<Point> = Vec::with_capacity(newest.items.len() + 1);
    if newest.total as usize <= CHART_POINTS_MAX {
        points.push(Point {
            at: wallet.created_at,
            balance: 0,
        });
    }
    points.extend(newest.items.iter().rev().map(|m| Point {
        at: m.recorded_at,
        balance: m.balance_after,
    }));
    let holds = state
        .store
        .wallet_holds(tenant, &wallet.id, None, CONSOLE_PAGE_SIZE)
        .await
        .map_err(fail)?;
    let grants = state
        .store
        .grants(tenant, &wallet.id, None, CONSOLE_PAGE_SIZE)
        .await
        .map_err(fail)?;
    let write = session.may(Scope::Write);
    let unit = &wallet.unit;
    let pages = listed.total.div_ceil(size).max(1);
    let filter_query = ["kind", "from", "to"]
        .iter()
        .map(|k| format!("&{k}={}", enc(param(&pairs, k))))
        .collect::<String>();
    let wallet_path = format!("/console/wallets/{}", wallet.id);
    let chart_label = format!("Balance of {} over time", wallet.id);
    let body = html! {
        p class="crumbs" { a href={ "/console/customers/" (wallet.customer) } { "Customer " (wallet.customer) } }
        h1 { "Wallet " (wallet.id) }
        @if !wallet.name.is_empty() { p class="sub" { (wallet.name) } }
        dl class="facts figures" {
            div { dt { "Balance" } dd id="balance" { (amount(wallet.balance, unit)) } }
            div { dt { "Held" } dd id="held" { (amount(wallet.held, unit)) } }
            div { dt { "Available" } dd id="available" { (available(&wallet)) } }
            div { dt { "Status" } dd id="status" { (wallet.status.as_str()) } }
        }
        (balance_chart(&points, unit, &chart_label))
        @if write {
            section aria-labelledby="change" class="forms" {
                h2 id="change" { "Change the balance" }
                form method="post" action={ (wallet_path) "/mutations" } class="card" data-write {
                    (hidden(&session))
                    label for="mutation-kind" { "Kind" }
                    select id="mutation-kind" name="kind" {
                        option value="top_up" { "Top up" }
                        option value="debit" { "Debit" }
                        option value="adjustment" { "Adjust (signed)" }
                    }
                    label for="mutation-amount" { "Amount (" (unit.code()) ")" }
                    input id="mutation-amount" name="amount" type="text" inputmode="decimal" required
                        pattern="-?[0-9]+([.][0-9]+)?" placeholder=(view::decimal(0, unit.scale())) title={ "A number with at most " (unit.scale()) " decimal places" };
                    label for="mutation-reference" { "Reference (optional)" }
                    input id="mutation-reference" name="reference" type="text" maxlength="255";
                    button type="submit" { "Post" }
                }
                form method="post" action={ (wallet_path) "/holds" } class="card" data-write {
                    (hidden(&session))
                    label for="hold-amount" { "Amount to hold (" (unit.code()) ")" }
                    input id="hold-amount" name="amount" type="text" inputmode="decimal" required;
                    label for="hold-reference" { "Reference (optional)" }
                    input id="hold-reference" name="reference" type="text" maxlength="255";
                    button type="submit" { "Place hold" }
                }
                form method="post" action={ (wallet_path) "/status" } class="card" data-write {
                    (hidden(&session))
                    @match wallet.status {
                        WalletStatus::Active => {
                            input type="hidden" name="status" value="suspended";
                            p { "The wallet is active." }
                            button type="submit" { "Suspend wallet" }
                        }
                        WalletStatus::Suspended => {
                            input type="hidden" name="status" value="active";
                            p { "The wallet is suspended." }
                            button type="submit" { "Reactivate wallet" }
                        }
                        WalletStatus::Expired => { p { "The wallet has expired." } }
                    }
                }
            }
        }
        section aria-labelledby="holds" {
            h2 id="holds" { "Holds" }
            @if holds.items.is_empty() { p { "No holds." } } @else {
                div class="scroll" { table {
                    thead { tr {
                        th scope="col" { "Hold" } th scope="col" class="num" { "Amount" }
                        th scope="col" { "Status" } th scope="col" { "Expires" }
                        @if write { th scope="col" { "Settle" } }
                    } }
                    tbody { @for h in &holds.items {
                        tr {
                            td { code { (h.id) } }
                            td class="num" { (amount(h.amount, unit)) }
                            td { (h.status.as_str()) }
                            td { @if let Some(at) = h.expires_at { (time(at)) } @else { "never" } }
                            @if write { td {
                                @if h.status == HoldStatus::Pending {
                                    form method="post" action={ "/console/holds/" (h.id) "/commit" } class="inline" data-write {
                                        (hidden(&session))
                                        input type="hidden" name="wallet" value=(wallet.id);
                                        label for={ "commit-" (h.id) } { "Commit amount (empty: all)" }
                                        input id={ "commit-" (h.id) } name="amount" type="text" inputmode="decimal";
                                        button type="submit" { "Commit" }
                                    }
                                    form method="post" action={ "/console/holds/" (h.id) "/release" } class="inline" data-write {
                                        (hidden(&session))
                                        input type="hidden" name="wallet" value=(wallet.id);
                                        button type="submit" { "Release" }
                                    }
                                }
                            } }
                        }
                    } }
                } }
                @if holds.next.is_some() { p { "The first " (CONSOLE_PAGE_SIZE) " holds are shown." } }
            }
        }
        section aria-labelledby="grants" {
            h2 id="grants" { "Grants" }
            @if grants.items.is_empty() { p { "No grants." } } @else {
                div class="scroll" { table {
                    thead { tr {
                        th scope="col" { "Granted" } th scope="col" class="num" { "Amount" }
                        th scope="col" class="num" { "Remaining" } th scope="col" class="num" { "Held" }
                        th scope="col" { "Category" } th scope="col" { "Expires" }
                    } }
                    tbody { @for g in &grants.items {
                        tr {
                            td { (time(g.grant.created_at)) }
                            td class="num" { (amount(g.grant.amount, unit)) }
                            td class="num" { (amount(g.grant.remaining, unit)) }
                            td class="num" { (amount(g.grant.held, unit)) }
                            td { (g.grant.terms.category.as_str()) }
                            td { @if let Some(at) = g.grant.terms.expires_at { (time(at)) } @else { "never" } }
                        }
                    } }
                } }
                @if grants.next.is_some() { p { "The first " (CONSOLE_PAGE_SIZE) " grants are shown." } }
            }
        }
        section aria-labelledby="history" {
            h2 id="history" { "Mutations" }
            form method="get" action=(wallet_path) class="filters" {
                label for="filter-kind" { "Kind" }
                select id="filter-kind" name="kind" {
                    option value="" { "any" }
                    @for k in MutationKind::ALL {
                        option value=(k.as_str()) selected[param(&pairs, "kind") == k.as_str()] { (k.as_str()) }
                    }
                }
                label for="filter-from" { "From (UTC day)" }
                input id="filter-from" name="from" type="date" value=(param(&pairs, "from"));
                label for="filter-to" { "To (UTC day)" }
                input id="filter-to" name="to" type="date" value=(param(&pairs, "to"));
                button type="submit" { "Filter" }
            }
            p {
                (listed.total) " mutations, newest first. "
                a href={ (wallet_path) "/mutations.csv" } download { "Download all as CSV" }
            }
            @if !listed.items.is_empty() {
                div class="scroll" { table class="mutations" {
                    thead { tr {
                        th scope="col" { "Recorded" } th scope="col" { "Kind" }
                        th scope="col" class="num" { "Amount" } th scope="col" class="num" { "Balance after" }
                        th scope="col" { "Reference" }
                    } }
                    tbody { @for m in &listed.items {
                        tr {
                            td { (time(m.recorded_at)) }
                            td { (m.kind.as_str()) }
                            td class="num" { (amount(m.amount, unit)) }
                            td class="num" { (amount(m.balance_after, unit)) }
                            td { (m.reference.text().unwrap_or_default()) }
                        }
                    } }
                } }
            }
            nav aria-label="Pages of mutations" class="pager" {
                @if page_number > 1 {
                    a rel="prev" href={ (wallet_path) "?page=" (page_number - 1) (filter_query) } { "Newer" }
                }
                span { "Page " (page_number) " of " (pages) }
                @if page_number < pages && page_number < PAGE_NUMBER_MAX {
                    a rel="next" href={ (wallet_path) "?page=" (page_number + 1) (filter_query) } { "Older" }
                }
            }
        }
    };
    Ok(view::page(&session, &format!("Wallet {}", wallet.id), body))
}

/// Whether the session may manage keys: an admin key of the whole tenant.
fn manages_keys(session: &Session) -> bool {
    session.may(Scope::Admin) && session.tenant_wide()
}

/// Whether the session may make tenants: an admin key of the operator's tenant.
pub fn manages_tenants(state: &SharedState, session: &Session) -> bool {
    manages_keys(session) && session.principal.tenant == state.operator
}

pub async fn api_keys(State(state): State<SharedState>, session: Session, uri: Uri) -> Answer {
    if !manages_keys(&session) {
        return Err(ConsoleError::NotFound);
    }
    let pairs = query(&uri)?;
    let after = cursor(&pairs, ApiKeyName::parse)?;
    let keys = state
        .store
        .api_keys(&session.principal.tenant, after.as_ref(), CONSOLE_PAGE_SIZE)
        .await
        .map_err(|e| ConsoleError::store(&e, "listing API keys"))?;
    Ok(api_keys_page(&state, &session, None, Some(&keys)))
}

/// The table of a page of keys, each with its revoke button (but the session's own).
fn key_table(session: &Session, keys: &Page<ApiKey, ApiKeyName>) -> Markup {
    let scopes = |k: &ApiKey| {
        [
            ("read", k.scopes.read),
            ("write", k.scopes.write),
            ("admin", k.scopes.admin),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
    };
    html! {
        div class="scroll" { table {
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Scopes" }
                th scope="col" { "Customer" } th scope="col" { "Created" } th scope="col" { "Revoke" }
            } }
            tbody { @for k in &keys.items {
                tr {
                    td { (k.name) }
                    td { (scopes(k)) }
                    td { @if let Some(c) = &k.customer { (c) } @else { "all" } }
                    td { (time(k.created_at)) }
                    td {
                        @if k.name == session.principal.key_name {
                            "this session's key"
                        } @else {
                            form method="post" action={ "/console/api-keys/" (enc(k.name.as_str())) "/revoke" } class="inline" data-write {
                                input type="hidden" name=(crate::forms::CSRF_FIELD) value=(session.csrf);
                                button type="submit" aria-label={ "Revoke " (k.name) } { "Revoke" }
                            }
                        }
                    }
                }
            } }
        } }
        @if let Some(next) = &keys.next {
            p { a rel="next" href={ "/console/api-keys?after=" (enc(next.as_str())) } { "Next page" } }
        }
    }
}

/// The API keys page; `created` is a key just made, with its secret, shown this once.
pub fn api_keys_page(
    state: &SharedState,
    session: &Session,
    created: Option<(&str, &str)>,
    keys: Option<&Page<ApiKey, ApiKeyName>>,
) -> Response {
    let form = html! {
        label for="key-name" { "Name" }
        input id="key-name" name="name" type="text" required maxlength="64";
        fieldset {
            legend { "Scopes" }
            @for scope in ["read", "write", "admin"] {
                label class="check" {
                    input type="checkbox" name="scopes" value=(scope) checked[scope == "read"];
                    " " (scope)
                }
            }
        }
        label for="key-customer" { "Only this customer (optional)" }
        input id="key-customer" name="customer_id" type="text" maxlength="64";
        button type="submit" { "Create key" }
    };
    let more = html! {
        @if let Some(keys) = keys { (key_table(session, keys)) }
        @if manages_tenants(state, session) {
            p { a href="/console/tenants" { "Tenants" } }
        }
    };
    secret_page(
        session,
        ("API keys", "/console/api-keys"),
        "A key's secret is shown once, when it is made; prepaid keeps only its SHA-256.",
        created,
        form,
        more,
    )
}

/// A page that makes things with a secret (keys, tenants): the secret just made, if
/// any, shown this once, then the form.
fn secret_page(
    session: &Session,
    (title, action): (&str, &str),
    intro: &str,
    created: Option<(&str, &str)>,
    form: Markup,
    more: Markup,
) -> Response {
    let body = html! {
        h1 { (title) }
        (secret_shown_once(created))
        p { (intro) }
        form method="post" action=(action) class="card" data-write {
            (hidden(session))
            (form)
        }
        (more)
    };
    view::page(session, title, body)
}

fn secret_shown_once(created: Option<(&str, &str)>) -> Markup {
    html! {
        @if let Some((name, secret)) = created {
            div class="notice" role="status" {
                p { "Key " strong { (name) } " was made. Copy its secret now: it is not shown again." }
                p { code id="new-secret" { (secret) } }
            }
        }
    }
}

pub async fn tenants(State(state): State<SharedState>, session: Session, uri: Uri) -> Answer {
    if !manages_tenants(&state, &session) {
        return Err(ConsoleError::NotFound);
    }
    let pairs = query(&uri)?;
    let after = cursor(&pairs, TenantId::parse)?;
    let tenants = state
        .store
        .tenants(after.as_ref(), CONSOLE_PAGE_SIZE)
        .await
        .map_err(|e| ConsoleError::store(&e, "listing tenants"))?;
    let table = html! {
        h2 { "Every tenant" }
        div class="scroll" { table {
            thead { tr { th scope="col" { "Id" } th scope="col" { "Name" } th scope="col" { "Created" } } }
            tbody { @for t in &tenants.items {
                tr {
                    td { (t.id) @if t.operator { " (operator)" } }
                    td { (t.name) }
                    td { (time(t.created_at)) }
                }
            } }
        } }
        @if let Some(next) = &tenants.next {
            p { a rel="next" href={ "/console/tenants?after=" (enc(next.as_str())) } { "Next page" } }
        }
    };
    Ok(tenants_page(&session, None, table))
}

/// The tenants page; `created` is a tenant just made, with its admin key's secret.
pub fn tenants_page(session: &Session, created: Option<(&str, &str)>, list: Markup) -> Response {
    let form = html! {
        label for="tenant-id" { "Id (optional)" }
        input id="tenant-id" name="id" type="text" maxlength="64";
        label for="tenant-name" { "Name" }
        input id="tenant-name" name="name" type="text" maxlength="255";
        button type="submit" { "Create tenant" }
    };
    secret_page(
        session,
        ("Tenants", "/console/tenants"),
        "A new tenant gets an admin key named admin; its secret is shown once.",
        created,
        form,
        list,
    )
}
