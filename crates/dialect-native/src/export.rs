//! CSV exports of mutations: one wallet's (`GET /v1/wallets/{id}/mutations.csv`) and
//! the tenant's (`GET /v1/mutations.csv`), with the filters of the JSON lists
//! (`metadata[<key>]=<value>`, `customer_id=` on the tenant's) and a range of recorded
//! times (`from=`, inclusive, and `to=`, exclusive: the export is in commit order, which
//! is the order of recorded times, so a range of them is a run of the export).
//!
//! The body is streamed: the store is read one page of [`PAGE_SIZE_MAX`] rows at a time
//! with the list's cursor (keyset pagination, each page its own read), each page is
//! written as CSV and handed to the connection, and the next page is read only when the
//! connection has taken it. So an export of any size holds one page in memory. The
//! first page is read before the answer starts, so what fails before (a bad query, an
//! unknown wallet, an unreachable store) is a problem like any other answer's; a store
//! failure later can only end the body early, which the client sees as a connection
//! closed before the chunked body's end.

use crate::{Answer, path_id, visible_wallet};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use prepaid_edge::auth::{Caller, Read};
use prepaid_edge::page::parse_query;
use prepaid_edge::problem::Problem;
use prepaid_edge::wire::{DrawOut, MetadataOut};
use prepaid_edge::{PathSegment, SharedState, store_problem, time};
use prepaid_ledger::{CustomerId, Mutation, TenantId, Timestamp, WalletId};
use prepaid_store::{MutationQuery, PAGE_SIZE_MAX, Page};

/// The columns of an export, in order: the fields of a mutation of the JSON API, a
/// reference's parts, draws and metadata as JSON text.
pub const COLUMNS: [&str; 19] = [
    "id",
    "wallet_id",
    "customer_id",
    "kind",
    "amount",
    "unit",
    "scale",
    "balance_after",
    "reference_type",
    "reference_text",
    "reference_link",
    "hold_id",
    "transfer_id",
    "counter_wallet_id",
    "occurred_at",
    "recorded_at",
    "reverses",
    "drawn",
    "metadata",
];

/// What an export asks for besides a list's filters: the range of recorded times.
struct Range {
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

fn range(uri: &Uri) -> Result<Range, Problem> {
    let pairs = prepaid_edge::form::pairs(uri.query().unwrap_or_default())
        .map_err(|e| Problem::invalid_field(e.name(), prepaid_edge::form::NOT_UTF8))?;
    let time_of = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| time::parse(v).map_err(|e| Problem::invalid_field(name, e)))
            .transpose()
    };
    let range = Range {
        from: time_of("from")?,
        to: time_of("to")?,
    };
    if let (Some(from), Some(to)) = (range.from, range.to)
        && to < from
    {
        return Err(Problem::invalid_field("to", "must not be before `from`"));
    }
    Ok(range)
}

/// The query of the first page: the list's filters, the range, pages as large as the
/// store gives.
fn first_page(uri: &Uri) -> Result<(MutationQuery, Option<String>), Problem> {
    let list = parse_query(uri).map_err(Problem::from)?;
    let range = range(uri)?;
    let query = MutationQuery {
        metadata: list.metadata,
        recorded_from: range.from,
        recorded_before: range.to,
        limit: PAGE_SIZE_MAX,
        ..MutationQuery::default()
    };
    Ok((query, list.customer_id))
}

#[utoipa::path(get, path = "/v1/wallets/{id}/mutations.csv", tag = "mutations",
    params(("id" = String, Path, description = "The wallet id"),
        ("metadata" = Option<crate::types::MetadataOut>, Query, style = DeepObject, explode,
            description = "`metadata[<key>]=<value>`: only those carrying every pair given (at most 8)"),
        ("from" = Option<String>, Query, format = DateTime,
            description = "Only mutations recorded at or after this instant"),
        ("to" = Option<String>, Query, format = DateTime,
            description = "Only mutations recorded before this instant")),
    responses((status = 200, body = String, content_type = "text/csv",
            description = "A header row, then one row per mutation in commit order"),
        (status = "4XX", body = crate::types::ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// A wallet's mutations as CSV, oldest first, streamed.
pub(crate) async fn wallet_mutations_csv(
    axum::extract::State(state): axum::extract::State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
    uri: Uri,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let (mut query, _) = first_page(&uri)?;
    visible_wallet(&state, &caller, &wallet).await?;
    let filename = format!("mutations-{}.csv", filename_part(wallet.as_str()));
    query.wallet = Some(wallet);
    export(state, caller.tenant.clone(), query, &filename).await
}

#[utoipa::path(get, path = "/v1/mutations.csv", tag = "mutations",
    params(
        ("customer_id" = Option<String>, Query, description = "Only this customer's mutations"),
        ("metadata" = Option<crate::types::MetadataOut>, Query, style = DeepObject, explode,
            description = "`metadata[<key>]=<value>`: only those carrying every pair given (at most 8)"),
        ("from" = Option<String>, Query, format = DateTime,
            description = "Only mutations recorded at or after this instant"),
        ("to" = Option<String>, Query, format = DateTime,
            description = "Only mutations recorded before this instant")),
    responses((status = 200, body = String, content_type = "text/csv",
            description = "A header row, then one row per mutation in commit order"),
        (status = "4XX", body = crate::types::ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Every mutation of the tenant (of its customer, for a key restricted to one) as CSV,
/// in commit order, streamed.
pub(crate) async fn mutations_csv(
    axum::extract::State(state): axum::extract::State<SharedState>,
    caller: Caller<Read>,
    uri: Uri,
) -> Answer {
    let (mut query, asked) = first_page(&uri)?;
    let asked = asked
        .as_deref()
        .map(|c| CustomerId::parse(c).map_err(|e| Problem::invalid_field("customer_id", e)))
        .transpose()?;
    query.customer = match (&caller.customer, asked) {
        // Another customer's rows are none of this key's: an export of nothing.
        (Some(only), Some(asked)) if *only != asked => {
            return Ok(csv_response(Body::from(header_row()), "mutations.csv"));
        }
        (Some(only), _) => Some(only.clone()),
        (None, asked) => asked,
    };
    export(state, caller.tenant.clone(), query, "mutations.csv").await
}

/// A file name's part made of `text`: what is not `[A-Za-z0-9._-]` becomes `_`, so the
/// header needs no quoting rules beyond its quotes.
fn filename_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn csv_response(body: Body, filename: &str) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Where a streamed export stands between pages.
struct Cursor {
    state: SharedState,
    tenant: TenantId,
    query: MutationQuery,
    /// No page follows.
    done: bool,
}

async fn read_page(
    state: &SharedState,
    tenant: &TenantId,
    query: &MutationQuery,
) -> Result<Page<Mutation, i64>, prepaid_store::StoreError> {
    state.store.mutations(tenant, query).await
}

/// Answers the header row and the first page at once and streams the rest.
async fn export(
    state: SharedState,
    tenant: TenantId,
    mut query: MutationQuery,
    filename: &str,
) -> Answer {
    let page = read_page(&state, &tenant, &query)
        .await
        .map_err(|e| Problem::from(store_problem(&e, "exporting mutations")))?;
    let mut first = header_row();
    write_rows(&mut first, &page.items);
    query.after = page.next;
    let cursor = Cursor {
        state,
        tenant,
        query,
        done: page.next.is_none(),
    };
    let head = futures_util::stream::once(async move { Ok(Bytes::from(first)) });
    let rest = futures_util::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        match read_page(&c.state, &c.tenant, &c.query).await {
            Ok(page) => {
                let mut chunk = Vec::with_capacity(page.items.len() * 256);
                write_rows(&mut chunk, &page.items);
                c.query.after = page.next;
                c.done = page.next.is_none();
                Some((Ok(Bytes::from(chunk)), c))
            }
            Err(e) => {
                // The answer has begun: all that is left is to end it early.
                let _ = store_problem(&e, "exporting mutations");
                c.done = true;
                Some((Err(std::io::Error::other("the export ended early")), c))
            }
        }
    });
    use futures_util::StreamExt as _;
    Ok(csv_response(Body::from_stream(head.chain(rest)), filename))
}

/// A CSV writer of RFC 4180's shape: fields quoted when they need it, `\r\n` after
/// each row.
fn writer<W: std::io::Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

fn header_row() -> Vec<u8> {
    let mut w = writer(Vec::new());
    w.write_record(COLUMNS)
        .expect("writing to memory does not fail");
    w.into_inner().expect("writing to memory does not fail")
}

/// Appends one CSV row per mutation to `out`.
fn write_rows(out: &mut Vec<u8>, items: &[Mutation]) {
    let mut w = writer(out);
    for m in items {
        let (kind, text, link) = m.reference.parts();
        let uuid = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
        let drawn = serde_json::to_string(&DrawOut::list(&m.drawn)).expect("draws serialise");
        let metadata =
            serde_json::to_string(&MetadataOut(&m.metadata)).expect("metadata serialises");
        let record: [&str; 19] = [
            &m.id.0.to_string(),
            m.wallet.as_str(),
            m.customer.as_str(),
            m.kind.as_str(),
            &m.amount.to_string(),
            m.unit.code(),
            &m.unit.scale().to_string(),
            &m.balance_after.to_string(),
            kind,
            text,
            link,
            &uuid(m.hold.map(|h| h.0)),
            &uuid(m.transfer.map(|t| t.0)),
            m.counter_wallet.as_ref().map_or("", WalletId::as_str),
            &time::format(m.occurred_at),
            &time::format(m.recorded_at),
            &uuid(m.reverses.map(|r| r.0)),
            &drawn,
            &metadata,
        ];
        w.write_record(record)
            .expect("writing to memory does not fail");
    }
    w.flush().expect("writing to memory does not fail");
}
