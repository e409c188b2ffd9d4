//! The compiled SQL, run by SQLite over a few hundred generated rows, selects exactly the
//! rows that the in-memory evaluator accepts: for hand-written queries in both languages
//! and for random expressions.

use std::collections::BTreeSet;

use prepaid_query::{
    Dialect, Expr, Field, FieldType, Filter, Op, Operand, Pred, Row, Schema, Span, Spanned, Test,
    Value, fiql, iso8601, talkdesk,
};
use proptest::prelude::*;
use proptest::sample::Index;
use rusqlite::Connection;
use rusqlite::types::Value as SqliteValue;

const ROWS: usize = 300;

const KINDS: [&str; 3] = ["EXTERNAL", "INTERNAL", "CORRECTION"];

/// Texts chosen to catch `LIKE` wildcards, ASCII case folding, escapes and code-point
/// order.
const TEXTS: [&str; 30] = [
    "",
    "a",
    "A",
    "ab",
    "aB",
    "abc",
    "Abc",
    "b",
    "ba",
    "a%c",
    "a_c",
    "axc",
    "%",
    "_",
    "\\",
    "a\\b",
    "ü",
    "üb",
    "Ü",
    "ß",
    "ss",
    "a'b",
    "日本",
    "日本語",
    "ab ",
    " ab",
    "zz",
    "Z",
    "🎉",
    "a🎉b",
];

const INTS: [i64; 9] = [i64::MIN, -5, -1, 0, 1, 2, 10, 600, i64::MAX];

const UUIDS: [&str; 4] = [
    "0f8fad5b-d9cb-469f-a165-70867728950e",
    "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
];

fn timestamps() -> Vec<i64> {
    [
        "1969-12-31T23:59:59.999999Z",
        "1970-01-01",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.000001Z",
        "2024-02-29T12:00:00+02:00",
        "2030-06-01T00:00:00Z",
    ]
    .iter()
    .map(|t| iso8601::parse_micros(t).unwrap())
    .collect()
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("name", "name", FieldType::Text),
        Field::new("product_name", "product", FieldType::Text),
        Field::new("minutes", "minutes", FieldType::Integer),
        Field::new("created", "created", FieldType::Timestamp),
        Field::new("id", "id", FieldType::Uuid),
        Field::new(
            "on.kind",
            "kind",
            FieldType::Enum(KINDS.iter().map(|k| (*k).to_owned()).collect()),
        ),
        Field::new("active", "active", FieldType::Bool),
    ])
}

/// A tiny deterministic generator, so the rows are the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `values`, or null one time in six.
    fn maybe<T: Clone>(&mut self, values: &[T]) -> Option<T> {
        (self.below(6) != 0).then(|| values[self.below(values.len())].clone())
    }
}

#[derive(Clone, Debug)]
struct TestRow {
    name: Option<String>,
    product: Option<String>,
    minutes: Option<i64>,
    created: Option<i64>,
    id: Option<uuid::Uuid>,
    kind: Option<String>,
    active: Option<bool>,
}

impl Row for TestRow {
    fn get(&self, path: &str) -> Value {
        let value = match path {
            "name" => self.name.clone().map(Value::Text),
            "product_name" => self.product.clone().map(Value::Text),
            "minutes" => self.minutes.map(Value::Int),
            "created" => self.created.map(Value::Timestamp),
            "id" => self.id.map(Value::Uuid),
            "on.kind" => self.kind.clone().map(Value::Text),
            "active" => self.active.map(Value::Bool),
            other => panic!("no field {other}"),
        };
        value.unwrap_or(Value::Null)
    }
}

fn rows() -> Vec<TestRow> {
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    let texts: Vec<String> = TEXTS.iter().map(|t| (*t).to_owned()).collect();
    let kinds: Vec<String> = KINDS.iter().map(|k| (*k).to_owned()).collect();
    let uuids: Vec<uuid::Uuid> = UUIDS.iter().map(|u| u.parse().unwrap()).collect();
    let timestamps = timestamps();
    (0..ROWS)
        .map(|_| TestRow {
            name: rng.maybe(&texts),
            product: rng.maybe(&texts),
            minutes: rng.maybe(&INTS),
            created: rng.maybe(&timestamps),
            id: rng.maybe(&uuids),
            kind: rng.maybe(&kinds),
            active: rng.maybe(&[true, false]),
        })
        .collect()
}

/// How this test's table stores each value; a real store decides the same per column.
fn to_sqlite(value: &Value) -> SqliteValue {
    match value {
        Value::Null => SqliteValue::Null,
        Value::Bool(b) => SqliteValue::Integer(i64::from(*b)),
        Value::Int(i) | Value::Timestamp(i) => SqliteValue::Integer(*i),
        Value::Text(s) => SqliteValue::Text(s.clone()),
        Value::Uuid(u) => SqliteValue::Text(u.hyphenated().to_string()),
    }
}

struct Fixture {
    conn: Connection,
    rows: Vec<TestRow>,
}

impl Fixture {
    fn new() -> Self {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE w (rid INTEGER PRIMARY KEY, name TEXT, product TEXT, minutes INTEGER,
                             created INTEGER, id TEXT, kind TEXT, active INTEGER)",
        )
        .unwrap();
        let rows = rows();
        for (rid, row) in rows.iter().enumerate() {
            let values = [
                SqliteValue::Integer(rid as i64),
                to_sqlite(&row.get("name")),
                to_sqlite(&row.get("product_name")),
                to_sqlite(&row.get("minutes")),
                to_sqlite(&row.get("created")),
                to_sqlite(&row.get("id")),
                to_sqlite(&row.get("on.kind")),
                to_sqlite(&row.get("active")),
            ];
            conn.execute(
                "INSERT INTO w VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params_from_iter(values),
            )
            .unwrap();
        }
        Self { conn, rows }
    }

    /// The rows SQLite selects with the compiled filter, after a parameter of its own.
    fn select(&self, filter: &Filter) -> BTreeSet<usize> {
        let sql = filter.to_sql(Dialect::Sqlite, 2);
        let text = format!(
            "SELECT rid FROM w WHERE rid >= ?1 AND {} ORDER BY rid",
            sql.text
        );
        let mut params = vec![SqliteValue::Integer(0)];
        params.extend(sql.params.iter().map(to_sqlite));
        let mut stmt = self
            .conn
            .prepare(&text)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        stmt.query_map(rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|rid| usize::try_from(rid.unwrap()).unwrap())
            .collect()
    }

    fn evaluate(&self, filter: &Filter) -> BTreeSet<usize> {
        (0..self.rows.len())
            .filter(|&i| filter.matches(&self.rows[i]))
            .collect()
    }

    /// Asserts both agree and returns how many rows matched.
    fn check(&self, filter: &Filter) -> usize {
        let expected = self.evaluate(filter);
        let actual = self.select(filter);
        assert_eq!(
            actual,
            expected,
            "filter {filter}\nsql {}",
            filter.to_sql(Dialect::Sqlite, 2).text
        );
        expected.len()
    }
}

const FIQL_QUERIES: [&str; 30] = [
    "name==a",
    "name!=a",
    "name==A",
    "name=sw=a",
    "name=sw=A",
    "name=sw=%",
    "name=sw=_",
    "name=sw='a\\\\'",
    "name=sw=''",
    "name=sw=日本",
    "name=gt=Z",
    "name=ge=a;name=lt=b",
    "name=le=''",
    "name=in=(a,'a%c',ü)",
    "name=out=(a,'a%c',ü)",
    "name==null",
    "name!=null",
    "name=='a\\'b'",
    "minutes=gt=0",
    "minutes=le=-1,minutes==null",
    "minutes=in=(0,1,600)",
    "minutes=out=(0,1,600)",
    "created=ge=2024-01-01",
    "created=lt=1970-01-01T00:00:00Z",
    "created==2024-02-29T10:00:00Z",
    "id=={0F8FAD5B-D9CB-469F-A165-70867728950E}",
    "id=out=(00000000-0000-0000-0000-000000000000)",
    "on.kind==EXTERNAL;active==true",
    "on.kind=in=(INTERNAL,CORRECTION),active!=true",
    "(name=sw=a,product_name=sw=a);(minutes=gt=0,created==null);active!=null",
];

const TALKDESK_QUERIES: [&str; 16] = [
    "name eq 'a'",
    "not name eq 'a'",
    "contains(name, 'a')",
    "contains(name, 'A')",
    "contains(name, '%')",
    "contains(name, '_')",
    "contains(name, '')",
    "not contains(name, '')",
    "contains(name, '\\')",
    "contains(name, '''')",
    "contains(product_name, '🎉')",
    "not contains(product_name, 'b') and not name eq 'ab'",
    "not (name eq 'a' or contains(product_name, 'a'))",
    "not not name eq 'b'",
    "name eq 'a' or name eq 'b' and not product_name eq 'b'",
    "not (contains(name, 'a') and (product_name eq 'ab' or not contains(product_name, 'ü')))",
];

#[test]
fn hand_written_queries_agree() {
    let fixture = Fixture::new();
    let schema = schema();
    let mut counts = Vec::new();
    for query in FIQL_QUERIES {
        let filter = schema
            .bind(&fiql::parse(query).unwrap())
            .unwrap_or_else(|e| panic!("{}", e.render(query)));
        counts.push(fixture.check(&filter));
    }
    for query in TALKDESK_QUERIES {
        let filter = schema
            .bind(&talkdesk::parse(query).unwrap())
            .unwrap_or_else(|e| panic!("{}", e.render(query)));
        counts.push(fixture.check(&filter));
    }
    // The comparison means something only if the queries split the rows.
    let splitting = counts.iter().filter(|&&n| n > 0 && n < ROWS).count();
    assert!(splitting >= 40, "only {splitting} queries split the rows");
}

#[test]
fn semantics_by_example() {
    let fixture = Fixture::new();
    let schema = schema();
    let matching = |query: &str, fiql_query: bool| {
        let expr = if fiql_query {
            fiql::parse(query)
        } else {
            talkdesk::parse(query)
        }
        .unwrap();
        let filter = schema.bind(&expr).unwrap();
        fixture.check(&filter);
        let rows: BTreeSet<Option<String>> = fixture
            .rows
            .iter()
            .filter(|r| filter.matches(*r))
            .map(|r| r.name.clone())
            .collect();
        rows
    };
    let names = |names: &[Option<&str>]| -> BTreeSet<Option<String>> {
        names.iter().map(|n| n.map(str::to_owned)).collect()
    };
    // Case-sensitive, wildcard-free prefixes.
    assert_eq!(
        matching("name=sw=A", true),
        names(&[Some("A"), Some("Abc")])
    );
    assert_eq!(matching("name=sw=a_", true), names(&[Some("a_c")]));
    assert_eq!(
        matching("contains(name, '%')", false),
        names(&[Some("a%c"), Some("%")])
    );
    // Null: `!=` and `=out=` reject it, `not` accepts it.
    assert!(!matching("name!=a", true).contains(&None));
    assert!(!matching("name=out=(a)", true).contains(&None));
    assert!(matching("not name eq 'a'", false).contains(&None));
    // Code-point order: lower case after upper case, non-ASCII after both.
    let after_z = matching("name=gt=Z", true);
    assert!(after_z.contains(&Some("a".to_owned())));
    assert!(after_z.contains(&Some("ü".to_owned())));
    assert!(!after_z.contains(&Some("A".to_owned())));
}

/// The query texts of one field's type, some valid values and some that only parse.
fn value_texts(ty: &FieldType) -> Vec<String> {
    match ty {
        FieldType::Text => TEXTS
            .iter()
            .map(|t| (*t).to_owned())
            .chain(["a\\".to_owned(), "日".to_owned(), "x".to_owned()])
            .collect(),
        FieldType::Integer => INTS
            .iter()
            .map(i64::to_string)
            .chain(["3".into()])
            .collect(),
        FieldType::Timestamp => timestamps()
            .into_iter()
            .flat_map(|t| [t - 1, t, t + 1])
            .map(iso8601::format_micros)
            .chain([
                "2024-01-01".to_owned(),
                "2024-01-01T01:00:00+01:00".to_owned(),
            ])
            .collect(),
        FieldType::Uuid => UUIDS
            .iter()
            .map(|u| (*u).to_owned())
            .chain([
                UUIDS[1].to_uppercase(),
                "11111111-2222-3333-4444-555555555555".into(),
            ])
            .collect(),
        FieldType::Enum(values) => values.clone(),
        FieldType::Bool => vec!["true".into(), "false".into()],
    }
}

fn spanned<T>(node: T) -> Spanned<T> {
    Spanned::new(node, Span::default())
}

/// A random comparison on a random field, with an operator the field allows.
fn comparison() -> impl Strategy<Value = Expr> {
    (
        any::<Index>(),
        any::<Index>(),
        proptest::collection::vec(any::<Index>(), 1..4),
        0..8u8,
    )
        .prop_map(|(field, op, values, null_roll)| {
            let schema = schema();
            let field = field.get(schema.fields());
            let ops = field.ty().ops_supported();
            let op = *op.get(ops);
            let texts = value_texts(field.ty());
            let mut values: Vec<Spanned<String>> = values
                .iter()
                .map(|i| spanned(i.get(&texts).clone()))
                .collect();
            let value = match op {
                Op::Eq | Op::Ne if null_roll == 0 => Operand::Null(Span::default()),
                Op::In | Op::Out => Operand::List(values),
                _ => Operand::One(values.swap_remove(0)),
            };
            Expr::Cmp {
                field: spanned(field.path().to_owned()),
                op: spanned(op),
                value,
            }
        })
}

fn expression() -> impl Strategy<Value = Expr> {
    comparison().prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_expressions_agree(expr in expression()) {
        thread_local! {
            static FIXTURE: Fixture = Fixture::new();
        }
        let schema = schema();
        let filter = schema.bind(&expr).unwrap();
        FIXTURE.with(|fixture| fixture.check(&filter));
        // Through each language's text and back, where the language can say it.
        for (text, parsed) in [
            (fiql::render(&expr), fiql::render(&expr).map(|t| fiql::parse(&t))),
            (talkdesk::render(&expr), talkdesk::render(&expr).map(|t| talkdesk::parse(&t))),
        ] {
            if let (Some(text), Some(parsed)) = (text, parsed) {
                let parsed = parsed.unwrap_or_else(|e| panic!("{}", e.render(&text)));
                prop_assert_eq!(parsed.to_string(), expr.to_string());
                prop_assert_eq!(schema.bind(&parsed).unwrap(), filter.clone());
            }
        }
    }
}

#[test]
fn empty_groups_and_lists_agree() {
    let fixture = Fixture::new();
    let test = |pred| {
        Filter::Test(Test {
            path: "name".into(),
            column: "name".into(),
            pred,
        })
    };
    for filter in [
        Filter::And(vec![]),
        Filter::Or(vec![]),
        test(Pred::In(vec![])),
        test(Pred::NotIn(vec![])),
    ] {
        fixture.check(&filter);
        fixture.check(&Filter::Not(Box::new(filter)));
    }
}
