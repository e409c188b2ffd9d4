//! A wallet's mutations as CSV, oldest first, streamed a store page at a time so that
//! a long history never sits in memory whole; at most [`CSV_ROWS_MAX`] rows.
//!
//! Amounts are decimals in the unit's scale. A text field that a spreadsheet would
//! take for a formula (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return)
//! is written with a leading `'`.

use crate::pages::visible_wallet;
use crate::session::Session;
use crate::view::decimal;
use crate::{CSV_ROWS_MAX, ConsoleError};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use prepaid_edge::{PathSegment, SharedState};
use prepaid_ledger::{Mutation, TenantId, WalletId};
use prepaid_store::{MutationQuery, PAGE_SIZE_MAX};

/// The header row.
pub const HEADER: &str =
    "id,recorded_at,occurred_at,kind,amount,balance_after,unit,reference_type,reference_text\r\n";

fn field(out: &mut String, text: &str) {
    let guarded = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = guarded || text.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push('"');
    }
    if guarded {
        out.push('\'');
    }
    out.push_str(&text.replace('"', "\"\""));
    if quoted {
        out.push('"');
    }
}

/// One mutation as a CSV row.
pub fn row(m: &Mutation) -> String {
    let scale = m.unit.scale();
    let (kind, text, _) = m.reference.parts();
    let mut out = format!(
        "{},{},{},{},{},{},{},",
        m.id,
        prepaid_edge::time::format(m.recorded_at),
        prepaid_edge::time::format(m.occurred_at),
        m.kind.as_str(),
        decimal(m.amount, scale),
        decimal(m.balance_after, scale),
        m.unit.code(),
    );
    field(&mut out, kind);
    out.push(',');
    field(&mut out, text);
    out.push_str("\r\n");
    out
}

struct Cursor {
    state: SharedState,
    tenant: TenantId,
    wallet: WalletId,
    after: Option<i64>,
    rows: usize,
    done: bool,
}

/// The next chunk: a page of rows, or the end.
async fn next_chunk(mut c: Cursor) -> Option<(Result<Bytes, std::io::Error>, Cursor)> {
    if c.done {
        return None;
    }
    let query = MutationQuery {
        wallet: Some(c.wallet.clone()),
        after: c.after,
        limit: PAGE_SIZE_MAX.min(CSV_ROWS_MAX - c.rows),
        ..Default::default()
    };
    let page = match c.state.store.mutations(&c.tenant, &query).await {
        Ok(page) => page,
        Err(e) => {
            // The status is sent already: cut the download short so it is seen to fail.
            tracing::error!(error = %e, "reading a wallet's mutations for a CSV download");
            c.done = true;
            return Some((Err(std::io::Error::other("the store failed")), c));
        }
    };
    let mut chunk = String::with_capacity(page.items.len() * 160);
    for m in &page.items {
        chunk.push_str(&row(m));
    }
    c.rows += page.items.len();
    c.after = page.next;
    c.done = c.after.is_none() || c.rows >= CSV_ROWS_MAX;
    Some((Ok(Bytes::from(chunk)), c))
}

pub async fn download(
    State(state): State<SharedState>,
    session: Session,
    seg: PathSegment,
) -> Result<Response, ConsoleError> {
    let wallet = visible_wallet(&state, &session, &seg.0).await?;
    let cursor = Cursor {
        state,
        tenant: session.principal.tenant.clone(),
        wallet: wallet.id.clone(),
        after: None,
        rows: 0,
        done: false,
    };
    let rows = futures_util::stream::unfold(cursor, next_chunk);
    let header_row =
        futures_util::stream::once(async { Ok(Bytes::from_static(HEADER.as_bytes())) });
    let body = Body::from_stream(futures_util::StreamExt::chain(header_row, rows));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let safe: String = wallet
        .id
        .as_str()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let disposition = format!("attachment; filename=\"{safe}-mutations.csv\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_guarded() {
        let mut out = String::new();
        field(&mut out, "plain");
        out.push('|');
        field(&mut out, "a,b \"c\"");
        out.push('|');
        field(&mut out, "=SUM(A1)");
        assert_eq!(out, "plain|\"a,b \"\"c\"\"\"|\"'=SUM(A1)\"");
    }
}
