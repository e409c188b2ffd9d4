//! Data-driven cases of both languages, checked against snapshots: the tree of each valid
//! query (and that it renders back to itself), the rendered error of each invalid one,
//! the bound filter or binding error against a schema, and the SQL for both backends.

use prepaid_query::{
    DEPTH_MAX, Dialect, ErrorKind, FIELD_LEN_MAX, Field, FieldType, IN_LIST_LEN_MAX, Language, Op,
    QUERY_LEN_MAX, Schema, TERMS_MAX, VALUE_LEN_MAX, fiql, talkdesk,
};

/// One query, whether it must parse, and a label that stands in for long generated text.
struct Case {
    label: Option<String>,
    query: String,
    ok: bool,
}

fn ok(query: &str) -> Case {
    Case {
        label: None,
        query: query.to_owned(),
        ok: true,
    }
}

fn err(query: &str) -> Case {
    Case {
        label: None,
        query: query.to_owned(),
        ok: false,
    }
}

fn generated(label: &str, query: String, ok: bool) -> Case {
    Case {
        label: Some(label.to_owned()),
        query,
        ok,
    }
}

/// Indents every line of `text` by `prefix`, which keeps carets aligned.
fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|line| format!("{prefix}{line}\n"))
        .collect()
}

/// Parses every case, checks the expectation and the round trip of valid ones, and
/// returns the report to snapshot.
fn run(language: Language, cases: &[Case]) -> String {
    let mut report = String::new();
    for case in cases {
        let title = match &case.label {
            Some(label) => format!("<{label}> ({} bytes)", case.query.len()),
            None => format!("{:?}", case.query),
        };
        match language.parse(&case.query) {
            Ok(expr) => {
                assert!(case.ok, "{title} parsed but should not: {expr}");
                let rendered = language
                    .render(&expr)
                    .unwrap_or_else(|| panic!("{title}: a parsed tree always renders"));
                let again = language
                    .parse(&rendered)
                    .unwrap_or_else(|e| panic!("{title}: rendering {rendered:?} fails: {e}"));
                assert_eq!(again.to_string(), expr.to_string(), "{title}");
                report.push_str(&format!("ok   {title}\n"));
                if case.label.is_none() {
                    report.push_str(&format!("     tree: {expr}\n"));
                    if rendered != case.query {
                        report.push_str(&format!("     renders: {rendered:?}\n"));
                    }
                } else {
                    report.push_str(&format!("     terms: {}\n", expr.terms()));
                }
            }
            Err(error) => {
                assert!(!case.ok, "{title} failed: {error}");
                assert!(error.offset <= case.query.len());
                report.push_str(&format!("err  {title}\n"));
                report.push_str(&indent(&error.render(&case.query), "     "));
            }
        }
    }
    report
}

/// The generated cases at and just past every limit, for `make` building one query of a
/// language from a field, an operator word and a value.
fn limit_cases(language: Language) -> Vec<Case> {
    let cmp = |field: &str, value: &str| match language {
        Language::Fiql => format!("{field}=='{value}'"),
        Language::Talkdesk => format!("{field} eq '{value}'"),
    };
    let and = match language {
        Language::Fiql => ";",
        Language::Talkdesk => " and ",
    };
    let terms = |n: usize| vec![cmp("a", "1"); n].join(and);
    let parens = |n: usize| format!("{}{}{}", "(".repeat(n), cmp("a", "1"), ")".repeat(n));
    // A query of exactly `len` bytes: comparisons padded by their values.
    let sized = |len: usize| {
        let chunk = VALUE_LEN_MAX - 24;
        let mut parts = Vec::new();
        let mut total = 0;
        loop {
            let empty = cmp("a", "").len() + if parts.is_empty() { 0 } else { and.len() };
            let left = len - total;
            if left <= empty + chunk {
                parts.push(cmp("a", &"x".repeat(left - empty)));
                break;
            }
            parts.push(cmp("a", &"x".repeat(chunk)));
            total += empty + chunk;
        }
        parts.join(and)
    };
    let mut cases = vec![
        generated("query_len_max", sized(QUERY_LEN_MAX), true),
        generated("query_len_max + 1", sized(QUERY_LEN_MAX + 1), false),
        generated("depth_max parentheses", parens(DEPTH_MAX), true),
        generated("depth_max + 1 parentheses", parens(DEPTH_MAX + 1), false),
        generated("terms_max", terms(TERMS_MAX), true),
        generated("terms_max + 1", terms(TERMS_MAX + 1), false),
        generated("value_len_max", cmp("a", &"x".repeat(VALUE_LEN_MAX)), true),
        generated(
            "value_len_max + 1",
            cmp("a", &"x".repeat(VALUE_LEN_MAX + 1)),
            false,
        ),
        generated(
            "value_len_max in 4-byte characters",
            cmp("a", &"🎉".repeat(VALUE_LEN_MAX / 4)),
            true,
        ),
        generated(
            "value_len_max + 1 with a 2-byte character",
            cmp("a", &format!("é{}", "x".repeat(VALUE_LEN_MAX - 1))),
            false,
        ),
        generated("field_len_max", cmp(&"f".repeat(FIELD_LEN_MAX), "1"), true),
        generated(
            "field_len_max + 1",
            cmp(&"f".repeat(FIELD_LEN_MAX + 1), "1"),
            false,
        ),
    ];
    match language {
        Language::Fiql => {
            let list = |n: usize| format!("a=in=({})", vec!["1"; n].join(","));
            cases.push(generated("in_list_len_max", list(IN_LIST_LEN_MAX), true));
            cases.push(generated(
                "in_list_len_max + 1",
                list(IN_LIST_LEN_MAX + 1),
                false,
            ));
            // Escapes do not count: the limit is on the value, not its spelling.
            cases.push(generated(
                "value_len_max spelled with escapes",
                format!("a=='{}'", "\\'".repeat(VALUE_LEN_MAX)),
                true,
            ));
        }
        Language::Talkdesk => {
            let nots = |n: usize| format!("{}{}", "not ".repeat(n), cmp("a", "1"));
            cases.push(generated("depth_max nots", nots(DEPTH_MAX), true));
            cases.push(generated("depth_max + 1 nots", nots(DEPTH_MAX + 1), false));
            cases.push(generated(
                "depth_max mixing not and parentheses",
                format!("{}{}", "not (".repeat(DEPTH_MAX / 2), cmp("a", "1"))
                    + &")".repeat(DEPTH_MAX / 2),
                true,
            ));
            cases.push(generated(
                "value_len_max spelled with doubled quotes",
                cmp("a", &"''".repeat(VALUE_LEN_MAX)),
                true,
            ));
        }
    }
    for case in &cases {
        assert_eq!(
            language.parse(&case.query).is_ok(),
            case.ok,
            "{:?}",
            case.label
        );
    }
    cases
}

#[test]
fn limits_are_exact() {
    for language in [Language::Fiql, Language::Talkdesk] {
        let cases = limit_cases(language);
        // The generated sizes are what their labels say.
        assert_eq!(cases[0].query.len(), QUERY_LEN_MAX);
        assert_eq!(cases[1].query.len(), QUERY_LEN_MAX + 1);
        let kinds: Vec<ErrorKind> = cases
            .iter()
            .filter_map(|c| language.parse(&c.query).err().map(|e| e.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ErrorKind::QueryTooLong { max: QUERY_LEN_MAX },
                ErrorKind::TooDeep { max: DEPTH_MAX },
                ErrorKind::TooManyTerms { max: TERMS_MAX },
                ErrorKind::ValueTooLong { max: VALUE_LEN_MAX },
                ErrorKind::ValueTooLong { max: VALUE_LEN_MAX },
                ErrorKind::FieldTooLong { max: FIELD_LEN_MAX },
                match language {
                    Language::Fiql => ErrorKind::ListTooLong {
                        max: IN_LIST_LEN_MAX,
                    },
                    Language::Talkdesk => ErrorKind::TooDeep { max: DEPTH_MAX },
                },
            ],
            "{language:?}"
        );
    }
}

#[test]
fn fiql_cases() {
    let mut cases = vec![
        // Every operator.
        ok("amountOfMinutes==600"),
        ok("amountOfMinutes!=600"),
        ok("amountOfMinutes=gt=600"),
        ok("amountOfMinutes=ge=600"),
        ok("amountOfMinutes=lt=-5"),
        ok("amountOfMinutes=le=0"),
        ok("remark=sw=Invoice"),
        ok("on.type=in=(EXTERNAL,INTERNAL)"),
        ok("on.type=out=(CORRECTION)"),
        ok("on.type=in=EXTERNAL"),
        ok("remark==null"),
        ok("remark!=null"),
        // The example of the API document.
        ok("amountOfMinutes==600;on.type==EXTERNAL"),
        // Quoting and escapes.
        ok("remark=='null'"),
        ok("remark=='a;b,c'"),
        ok(r#"remark=="it's""#),
        ok(r"remark=='it\'s'"),
        ok(r#"remark=="say \"hi\"""#),
        ok(r"remark=='back\\slash'"),
        ok(r"remark=='\q'"),
        ok("remark==''"),
        ok(r#"remark=="""#),
        ok(r#"remark=="both ' and \"""#),
        ok("remark=='  spaced  '"),
        ok("remark==a-b.c:d+e*f/g"),
        ok("remark=sw='%_'"),
        ok(r#"remark=in=(a,'b,c',"d)e")"#),
        // Unicode.
        ok("remark==Zürich"),
        ok("remark=='日本語 テキスト'"),
        ok("remark==emoji🎉"),
        // Precedence and grouping.
        ok("a==1;b==2,c==3"),
        ok("a==1,b==2;c==3"),
        ok("a==1;(b==2,c==3)"),
        ok("(a==1,b==2);c==3"),
        ok("(a==1;b==2);c==3"),
        ok("((a==1))"),
        ok("a==1,b==2,c==3,d==4"),
        ok("a==1,(b==2,c==3)"),
        // Dates, dotted paths, UUIDs, booleans.
        ok("modificationDate=gt=2024-01-01T00:00:00Z"),
        ok("modificationDate=ge=2024-01-01T00:00:00.000+01:00"),
        ok("modificationDate=lt=2024-01-01"),
        ok("_links.for.href==/tas/api/persons/id/1"),
        ok("id==0f8fad5b-d9cb-469f-a165-70867728950e"),
        ok(
            r#"id=in=("0f8fad5b-d9cb-469f-a165-70867728950e","7c9e6679-7425-40de-944b-e07fc1f90ae7")"#,
        ),
        ok("archived==true"),
        // Errors.
        err(""),
        err("amountOfMinutes=600"),
        err("amountOfMinutes"),
        err("amountOfMinutes=="),
        err("amountOfMinutes==600;"),
        err(";a==1"),
        err("a==1,,b==2"),
        err("(a==1"),
        err("a==1)"),
        err("()"),
        err("a==1 b==2"),
        err("a==1 "),
        err(r#"a =="x""#),
        err("a=foo=1"),
        err("a=GT=1"),
        err("a==="),
        err("a=in=()"),
        err("a=in=(1,2"),
        err("a=in=(1,,2)"),
        err("a==(1,2)"),
        err("a=gt=null"),
        err("a=in=(1,null)"),
        err("a=='unterminated"),
        err(r#"a=="escaped end\""#),
        err("a=='x'y"),
        err("a.==1"),
        err("1a==1"),
        err("ä==1"),
        err("a==b=c"),
        err("a==x\u{1}"),
        err("a=='tab\there'"),
        err("a<5"),
        err("a=~b"),
        err("a==Zürich!"),
    ];
    cases.extend(limit_cases(Language::Fiql));
    let valid = cases.iter().filter(|c| c.ok).count();
    assert!(cases.len() >= 60 && valid >= 30 && cases.len() - valid >= 30);
    insta::assert_snapshot!("fiql_cases", run(Language::Fiql, &cases));
}

#[test]
fn talkdesk_cases() {
    let mut cases = vec![
        // The examples of the API document.
        ok("name eq 'product_usage'"),
        ok("product_name eq 'SaaS Consumption-Licensing'"),
        ok("contains(product_name, 'standard')"),
        ok("name eq 'saas_licenses' and product_name eq 'Talkdesk Fax'"),
        ok("name eq 'saas_licenses' or product_name eq 'Talkdesk Fax'"),
        ok("not product_name eq 'product_usage'"),
        ok("(name eq 'saas_licenses' and product_name eq 'Talkdesk Fax') or name eq 'guardian'"),
        ok("name eq 'saas_licenses' and (product_name eq 'Talkdesk Fax' or name eq 'guardian')"),
        ok("name eq 'ai_premium_batch' or contains(product_name, 'realtime')"),
        // Precedence: not > and > or.
        ok("a eq '1' or b eq '2' and c eq '3'"),
        ok("a eq '1' and b eq '2' or c eq '3'"),
        ok("not a eq '1' and b eq '2'"),
        ok("not (a eq '1' and b eq '2')"),
        ok("not not a eq '1'"),
        ok("not contains(name, 'x') or name eq 'y'"),
        ok("(a eq '1' or b eq '2') and (c eq '3' or d eq '4')"),
        ok("a eq '1' or (b eq '2' or c eq '3')"),
        ok("((name eq 'x'))"),
        // Quoting, unicode, white space, odd but valid names.
        ok("name eq 'it''s'"),
        ok("name eq ''''"),
        ok("name eq ''"),
        ok("name eq 'Zürich 日本 🎉'"),
        ok("name eq 'a;b,c==d\\'"),
        ok("name eq 'not and or'"),
        ok("name eq'x'and(b eq'y')"),
        ok("  name   eq\t'x'\n and\r\nb eq 'y'  "),
        ok("contains ( product_name , 'x' )"),
        ok("contains eq 'x'"),
        ok("on.type eq 'x'"),
        // Errors.
        err(""),
        err("   "),
        err("name = 'x'"),
        err("name ne 'x'"),
        err("name EQ 'x'"),
        err(r#"name eq "x""#),
        err("name eq x"),
        err("name eq 'x"),
        err("name eq 'x' AND b eq 'y'"),
        err("name eq 'x' andb eq 'y'"),
        err("name eq 'x' and"),
        err("not"),
        err("(name eq 'x'"),
        err("name eq 'x')"),
        err("contains(name 'x')"),
        err("contains(name, 'x'"),
        err("contains(name, x)"),
        err("contains('x', name)"),
        err("name eq 'x' name eq 'y'"),
        err("name eq 'a\u{7}b'"),
        err("name eq 'a\nb'"),
        err("name\u{0}eq 'x'"),
        err("nameeq 'x'"),
        err("name eq 'x' or or b eq 'y'"),
        err("and eq 'x'"),
        err("not or eq 'x'"),
        err("'x' eq name"),
        err("name eq 'x' order eq 'y'"),
        err("name.eq 'x'"),
        err("näme eq 'x'"),
    ];
    cases.extend(limit_cases(Language::Talkdesk));
    let valid = cases.iter().filter(|c| c.ok).count();
    assert!(cases.len() >= 40 && valid >= 20 && cases.len() - valid >= 20);
    insta::assert_snapshot!("talkdesk_cases", run(Language::Talkdesk, &cases));
}

/// A schema shaped like TOPdesk's balance mutations.
fn topdesk_schema() -> Schema {
    Schema::new(vec![
        Field::new("id", "m.id", FieldType::Uuid),
        Field::new("amountOfMinutes", "m.amount_minutes", FieldType::Integer),
        Field::new(
            "on.type",
            "m.on_type",
            FieldType::Enum(vec![
                "EXTERNAL".into(),
                "INTERNAL".into(),
                "CORRECTION".into(),
            ]),
        ),
        Field::new("modificationDate", "m.modified_at", FieldType::Timestamp),
        Field::new("remark", "m.remark", FieldType::Text),
        Field::new("_links.for.href", "m.for_href", FieldType::Text),
        Field::new("person.name", "p.name", FieldType::Text).with_ops(&[
            Op::Eq,
            Op::Ne,
            Op::StartsWith,
        ]),
        Field::new("archived", "m.archived", FieldType::Bool),
    ])
}

/// A schema shaped like Talkdesk's wallets.
fn wallet_schema() -> Schema {
    Schema::new(vec![
        Field::new("name", "w.name", FieldType::Text).with_ops(&[Op::Eq, Op::Contains]),
        Field::new("product_name", "w.product", FieldType::Text).with_ops(&[Op::Eq, Op::Contains]),
        Field::new("balance", "w.balance", FieldType::Integer).with_ops(&[Op::Eq]),
    ])
}

fn run_bind(language: Language, schema: &Schema, cases: &[Case]) -> String {
    let mut report = String::new();
    for case in cases {
        let expr = language
            .parse(&case.query)
            .unwrap_or_else(|e| panic!("{:?} must parse: {e}", case.query));
        report.push_str(&format!("{:?}\n", case.query));
        match schema.bind(&expr) {
            Ok(filter) => {
                assert!(case.ok, "{:?} bound but should not: {filter}", case.query);
                report.push_str(&format!("  bound:    {filter}\n"));
                let lite = filter.to_sql(Dialect::Sqlite, 1);
                let pg = filter.to_sql(Dialect::Postgres, 3);
                assert_eq!(lite.params, pg.params);
                report.push_str(&format!("  sqlite:   {}\n", lite.text));
                report.push_str(&format!("  postgres: {}\n", pg.text));
                let params: Vec<String> = lite.params.iter().map(ToString::to_string).collect();
                report.push_str(&format!("  params:   [{}]\n", params.join(", ")));
            }
            Err(error) => {
                assert!(!case.ok, "{:?} failed to bind: {error}", case.query);
                report.push_str(&indent(&error.render(&case.query), "  "));
            }
        }
    }
    report
}

#[test]
fn fiql_binding() {
    let cases = [
        ok("amountOfMinutes==600;on.type==EXTERNAL"),
        ok("amountOfMinutes!=-600"),
        ok("remark==null,remark!=null"),
        ok("id=in=(0f8fad5b-d9cb-469f-a165-70867728950e,{7C9E6679-7425-40DE-944B-E07FC1F90AE7})"),
        ok("modificationDate=gt=2024-01-01T10:00:00+02:00"),
        ok("modificationDate=le=2024-02-29"),
        ok("remark=sw='50%_off\\\\'"),
        ok("archived==false"),
        ok("on.type=out=(INTERNAL,CORRECTION)"),
        ok("remark=gt=abc;remark=lt=abd"),
        ok("(amountOfMinutes=lt=0,amountOfMinutes=ge=100);remark!=null"),
        ok("person.name=sw=Ann;_links.for.href=='/tas/api/persons/id/1'"),
        ok("remark==\"Robert'); DROP TABLE m;--\""),
        err("foo==1"),
        err("on.typo==EXTERNAL"),
        err("amountOfMinutes==abc"),
        err("amountOfMinutes==99999999999999999999"),
        err("amountOfMinutes==1.5"),
        err("on.type==external"),
        err("modificationDate=gt=yesterday"),
        err("modificationDate=gt=2024-02-30"),
        err("id==not-a-uuid"),
        err("archived==yes"),
        err("archived=gt=true"),
        err("on.type=sw=EX"),
        err("person.name=gt=a"),
        err("amountOfMinutes=in=(1,x,3)"),
        err("id=sw=0f"),
        err("amountOfMinutes=sw=1"),
    ];
    insta::assert_snapshot!(
        "fiql_binding",
        run_bind(Language::Fiql, &topdesk_schema(), &cases)
    );
}

#[test]
fn talkdesk_binding() {
    let cases = [
        ok("name eq 'saas_licenses'"),
        ok("contains(product_name, '50%_off')"),
        ok("not name eq 'x'"),
        ok("not contains(product_name, 'x')"),
        ok("not (name eq 'a' or contains(product_name, 'b'))"),
        ok("not (name eq 'a' and not product_name eq 'b')"),
        ok("balance eq '-10000'"),
        ok("name eq 'it''s' or name eq '%'"),
        err("wallet eq 'x'"),
        err("contains(balance, '1')"),
        err("balance eq 'ten'"),
        err("name eq 'a' and not contains(Name, 'b')"),
    ];
    insta::assert_snapshot!(
        "talkdesk_binding",
        run_bind(Language::Talkdesk, &wallet_schema(), &cases)
    );
}

#[test]
fn languages_render_only_what_they_can_express() {
    let from_talkdesk = talkdesk::parse("not name eq 'x'").unwrap();
    assert_eq!(fiql::render(&from_talkdesk), None);
    let contains = talkdesk::parse("contains(name, 'x')").unwrap();
    assert_eq!(fiql::render(&contains), None);
    let from_fiql = fiql::parse("a=gt=1").unwrap();
    assert_eq!(talkdesk::render(&from_fiql), None);
    assert_eq!(talkdesk::render(&fiql::parse("a==null").unwrap()), None);
    // What both share renders in each.
    let shared = fiql::parse(r#"a==x;(b==y,c=="it's")"#).unwrap();
    let as_talkdesk = talkdesk::render(&shared).unwrap();
    assert_eq!(as_talkdesk, "a eq 'x' and (b eq 'y' or c eq 'it''s')");
    assert_eq!(
        talkdesk::parse(&as_talkdesk).unwrap().to_string(),
        shared.to_string()
    );
}

#[test]
fn schema_bind_errors_point_at_the_culprit() {
    let schema = topdesk_schema();
    let q = "remark==x;amountOfMinutes=gt=ten";
    let error = schema.bind(&fiql::parse(q).unwrap()).unwrap_err();
    assert_eq!(&q[error.offset..], "ten");
    let q = "remark==x;nope==1";
    let error = schema.bind(&fiql::parse(q).unwrap()).unwrap_err();
    assert_eq!(&q[error.offset..], "nope==1");
    let q = "remark==x;archived=in=(true)";
    let error = schema.bind(&fiql::parse(q).unwrap()).unwrap_err();
    assert_eq!(&q[error.offset..], "=in=(true)");
}
