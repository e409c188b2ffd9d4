//! The dialects' filters as the stores run them: bound to the stores' columns, rendered
//! to SQL by the store for each backend.

use prepaid_dialect_talkdesk as talkdesk;
use prepaid_dialect_topdesk as topdesk;
use prepaid_query::{Dialect, Filter, Value};
use prepaid_store::columns::to_sql;

#[test]
fn the_served_filter_compiles_for_both_backends() {
    let sql = to_sql(
        &talkdesk::served(talkdesk::parse_filter("name eq 'a'").unwrap()),
        Dialect::Postgres,
        3,
    )
    .unwrap();
    assert_eq!(
        sql.text,
        "(w.unit_code = $3 AND CAST(w.unit_scale AS BIGINT) <= $4 AND w.name <> $5 AND \
         w.product <> $6 AND w.name = $7)"
    );
    let sql = to_sql(&talkdesk::served(None), Dialect::Sqlite, 1).unwrap();
    assert_eq!(sql.params.len(), 4);
}

#[test]
fn hidden_tests_compile_for_both_backends() {
    for d in [Dialect::Sqlite, Dialect::Postgres] {
        let f = Filter::And(vec![
            topdesk::query::prepaid_services_only(),
            topdesk::query::top_ups(),
        ]);
        let sql = to_sql(&f, d, 3).unwrap();
        assert!(sql.text.contains("m.wallet = m.customer"), "{}", sql.text);
        assert_eq!(
            sql.params,
            vec![Value::Bool(true), Value::Text("MIN".into()), Value::Int(0)]
        );
    }
}

#[test]
fn every_topdesk_query_field_renders_for_both_backends() {
    for q in [
        "amountOfMinutes=ge=600;on.type==EXTERNAL_SYSTEM",
        "on.type=in=(INCIDENT,EXTERNAL_SYSTEM);on.type!=SIMPLE_CHANGE",
        "on.reference=sw='invoice 2026',on.reference==null",
        "on.referenceLink!=null;_links.for.href=sw=https://acme.topdesk.net/",
        "modificationDate=lt=2026-11-25T10:00:00Z",
    ] {
        let f = topdesk::query::parse_filter(q).unwrap();
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            to_sql(&f, d, 1).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }
}
