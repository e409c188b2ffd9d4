//! Helpers of the TouchTopUp tests: a client that sends `X-API-KEY`, the fixtures of the
//! document's samples (company 1, customer 5), the document's sample answers, a check
//! that an answer has a sample's shape, and a reading of XML answers back into JSON
//! values to compare with the JSON answer.

#![allow(dead_code)]

use crate::common::*;
use reqwest::Method;
use serde_json::{Map, Value, json};

pub const MOUNT: &str = "/index.php";

/// A TouchTopUp client: no `Authorization`, the key in `X-API-KEY`.
#[derive(Clone)]
pub struct Ttu {
    pub api: Api,
    pub key: Option<String>,
}

impl Ttu {
    pub fn new(server: &Server, key: Option<&str>) -> Ttu {
        Ttu {
            api: server.anonymous(),
            key: key.map(str::to_owned),
        }
    }

    fn headers<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut h: Vec<(&str, &str)> = extra.to_vec();
        if let Some(k) = &self.key {
            h.push(("x-api-key", k.as_str()));
        }
        h
    }

    /// `GET /index.php<path>`.
    pub async fn get(&self, path: &str) -> Resp {
        self.get_with(path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let h = self.headers(headers);
        self.api
            .send(Method::GET, &format!("{MOUNT}{path}"), &h, None)
            .await
    }

    /// A form-encoded `POST /index.php<path>`.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(fields).expect("form");
        self.post_form_raw(path, &body).await
    }

    /// A `POST /index.php<path>` of `body`, already form-encoded.
    pub async fn post_form_raw(&self, path: &str, body: &str) -> Resp {
        let h = self.headers(&[("content-type", "application/x-www-form-urlencoded")]);
        self.api
            .send(
                Method::POST,
                &format!("{MOUNT}{path}"),
                &h,
                Some(body.as_bytes().to_vec()),
            )
            .await
    }

    /// A JSON `POST /index.php<path>`.
    pub async fn post_json(&self, path: &str, body: &Value) -> Resp {
        let h = self.headers(&[("content-type", "application/json")]);
        self.api
            .send(
                Method::POST,
                &format!("{MOUNT}{path}"),
                &h,
                Some(serde_json::to_vec(body).expect("json")),
            )
            .await
    }
}

/// Asserts a `status` 1 JSON answer (HTTP 200) and returns it.
#[track_caller]
pub fn ok1(r: Resp) -> Value {
    assert_eq!(
        r.status, 200,
        "{} {} -> {} {}",
        r.method, r.path, r.status, r.text
    );
    assert!(
        r.content_type().starts_with("application/json"),
        "{}: content-type {}",
        r.path,
        r.content_type()
    );
    assert_eq!(r.json["status"], json!(1), "{}: {}", r.path, r.text);
    r.json
}

/// Asserts a `status` 0 JSON answer with HTTP `http` whose `msg` contains `needle`.
#[track_caller]
pub fn fail0(r: &Resp, http: u16, needle: &str) {
    assert_eq!(
        r.status, http,
        "{} {} -> {} {}",
        r.method, r.path, r.status, r.text
    );
    assert_eq!(r.json["status"], json!(0), "{}: {}", r.path, r.text);
    let msg = r.json["msg"]
        .as_str()
        .unwrap_or_else(|| panic!("no msg: {}", r.text));
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "{}: msg {msg:?} lacks {needle:?}",
        r.path
    );
}

/// A server whose default tenant has company 1 (`GBP`) with customer 5 (John Smith,
/// account 54321), and a TouchTopUp client with a tenant-wide read/write key.
pub async fn fixture() -> (Server, Api, Ttu) {
    let server = Server::start().await;
    let admin = server.admin();
    put_company(&admin, 1, "ICRTouch Testing", "10").await;
    put_customer(&admin, 1, 5, "Mr", "John", "Smith", "54321").await;
    let (key, _) = admin.create_key("portal", &["read", "write"], None).await;
    let secret = key["secret"].as_str().expect("secret").to_owned();
    let ttu = Ttu::new(&server, Some(&secret));
    (server, admin, ttu)
}

/// A TouchTopUp client whose key (`name`) is limited to company `coid`.
pub async fn company_key(server: &Server, admin: &Api, name: &str, coid: u32) -> Ttu {
    let (key, _) = admin.create_key(name, &["read", "write"], None).await;
    admin
        .json(
            Method::PUT,
            &format!("/v1/icrtouch/keys/{name}"),
            &json!({"coid": coid}),
        )
        .await
        .ok(200);
    Ttu::new(server, key["secret"].as_str())
}

pub async fn put_company(admin: &Api, coid: u32, name: &str, db: &str) -> Value {
    admin
        .json(
            Method::PUT,
            &format!("/v1/icrtouch/companies/{coid}"),
            &json!({"name": name, "db": db, "currency": "GBP"}),
        )
        .await
        .ok(200)
}

pub async fn put_customer(
    admin: &Api,
    coid: u32,
    custid: u32,
    title: &str,
    first: &str,
    last: &str,
    account: &str,
) -> Value {
    admin
        .json(
            Method::PUT,
            &format!("/v1/icrtouch/companies/{coid}/customers/{custid}"),
            &json!({"title": title, "firstname": first, "lastname": last,
                    "account_number": account}),
        )
        .await
        .ok(200)
}

/// A till sale of `amount` pence from customer `coid.custid`'s main balance.
pub async fn sale(admin: &Api, coid: u32, custid: u32, amount: i64, items: Value) -> Value {
    admin
        .post(
            &format!("/v1/icrtouch/companies/{coid}/customers/{custid}/sales"),
            &json!({"amount": amount, "site": 0, "consec_number": 84, "sale_id": 1_000_084,
                    "items": items}),
        )
        .await
        .ok(201)
}

/// Checks that `actual` has the shape of `sample`: every member of the sample is there
/// with a value of the same JSON type, recursively; array elements and the members of
/// objects keyed by numbers are checked against the sample's first one.
#[track_caller]
pub fn assert_shape(sample: &Value, actual: &Value) {
    if let Err(e) = shape(sample, actual, "$") {
        panic!("{e}\nsample: {sample}\nactual: {actual}");
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn numeric_keys(m: &Map<String, Value>) -> bool {
    !m.is_empty() && m.keys().all(|k| k.bytes().all(|b| b.is_ascii_digit()))
}

fn shape(sample: &Value, actual: &Value, at: &str) -> Result<(), String> {
    if kind(sample) != kind(actual) {
        return Err(format!(
            "{at}: the sample has a {}, the answer a {}",
            kind(sample),
            kind(actual)
        ));
    }
    match (sample, actual) {
        (Value::Object(s), Value::Object(a)) if numeric_keys(s) => {
            let first = s.values().next().expect("non-empty");
            for (k, v) in a {
                if !k.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{at}: key {k:?} is not a number"));
                }
                shape(first, v, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Object(s), Value::Object(a)) => {
            for (k, v) in s {
                let Some(av) = a.get(k) else {
                    return Err(format!("{at}: member {k:?} is missing"));
                };
                shape(v, av, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(s), Value::Array(a)) => match s.first() {
            Some(first) => {
                for (i, v) in a.iter().enumerate() {
                    shape(first, v, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The JSON value an XML answer carries under the mapping of the dialect: numbers and
/// strings as text, arrays and number-keyed objects as lists of entries (named by the
/// singular of their parent, or `<item>`), an empty array or object as an empty
/// element.
pub fn as_xml_value(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(_) => v.clone(),
        Value::Bool(b) => Value::String(if *b { "1" } else { "0" }.into()),
        Value::Null => Value::String(String::new()),
        Value::Array(items) if items.is_empty() => Value::String(String::new()),
        Value::Array(items) => Value::Array(items.iter().map(as_xml_value).collect()),
        Value::Object(m) if m.is_empty() => Value::String(String::new()),
        Value::Object(m) if numeric_keys(m) => Value::Array(m.values().map(as_xml_value).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), as_xml_value(v)))
                .collect(),
        ),
    }
}

/// An element being read: its name, children and text.
type Open = (String, Vec<(String, Value)>, String);

/// Whether `child` names an entry of a list `parent`: `item`, or the singular of the
/// parent (`payments`/`payment`, `companies`/`company`, `boxes`/`box`).
fn is_entry_of(child: &str, parent: &str) -> bool {
    child == "item"
        || parent == format!("{child}s")
        || parent == format!("{child}es")
        || child
            .strip_suffix('y')
            .is_some_and(|stem| parent == format!("{stem}ies"))
}

/// Reads an XML answer back: an element whose children are all entries of it (see
/// [`is_entry_of`]) is an array, one with other children an object, one with text or
/// nothing a string.
pub fn read_xml(text: &str) -> Value {
    use quick_xml::events::Event;
    let declaration = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<xml>";
    assert!(text.starts_with(declaration), "not CodeIgniter XML: {text}");
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root = None;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).expect("utf-8 name");
                stack.push((name, Vec::new(), String::new()));
            }
            Event::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).expect("utf-8 name");
                let parent = stack.last_mut().expect("inside the root");
                parent.1.push((name, Value::String(String::new())));
            }
            Event::Text(t) => {
                let raw = String::from_utf8(t.to_vec()).expect("utf-8 text");
                let s = quick_xml::escape::unescape(&raw).expect("valid escapes");
                match stack.last_mut() {
                    Some(top) => top.2.push_str(&s),
                    None => assert!(s.trim().is_empty(), "text outside the root: {s:?}"),
                }
            }
            Event::GeneralRef(r) => {
                let name = String::from_utf8(r.to_vec()).expect("utf-8 ref");
                let entity = format!("&{name};");
                let s = quick_xml::escape::unescape(&entity).expect("known entity");
                stack.last_mut().expect("inside an element").2.push_str(&s);
            }
            Event::End(_) => {
                let (name, children, text) = stack.pop().expect("balanced");
                let value = if children.is_empty() {
                    Value::String(text)
                } else if children.iter().all(|(n, _)| is_entry_of(n, &name)) {
                    Value::Array(children.into_iter().map(|(_, v)| v).collect())
                } else {
                    let mut m = Map::new();
                    for (n, v) in children {
                        assert!(m.insert(n.clone(), v).is_none(), "{n} repeated");
                    }
                    Value::Object(m)
                };
                match stack.last_mut() {
                    Some(parent) => parent.1.push((name, value)),
                    None => root = Some(value),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    root.expect("a root element")
}

/// Asks for `path` in JSON, then in XML by `/format/xml`, and checks that both carry
/// the same answer; returns the JSON answer.
pub async fn json_and_xml(ttu: &Ttu, path: &str) -> (Resp, Resp) {
    let json = ttu.get(path).await;
    let xml_path = if path.contains('?') {
        format!("{path}&format=xml")
    } else {
        format!("{}/format/xml", path.trim_end_matches('/'))
    };
    let xml = ttu.get(&xml_path).await;
    check_xml_matches(&json, &xml);
    (json, xml)
}

/// Checks that an XML answer carries what the JSON answer does, with the same status.
#[track_caller]
pub fn check_xml_matches(json: &Resp, xml: &Resp) {
    assert_eq!(json.status, xml.status, "{} vs {}", json.text, xml.text);
    assert!(
        xml.content_type().starts_with("application/xml"),
        "{}: content-type {}",
        xml.path,
        xml.content_type()
    );
    assert_eq!(
        read_xml(&xml.text),
        as_xml_value(&json.json),
        "{}\nJSON: {}\nXML: {}",
        xml.path,
        json.text,
        xml.text
    );
}

/// The document's sample answers, by method.
pub fn sample(method: &str) -> Value {
    let text = match method {
        "auth_user" => {
            r#"{"status":1,"auth":"true","userid":"1","companies":{"1":{"company_id":"1","customers":["5","10"]},"3":{"company_id":"3","customers":["16"]}}}"#
        }
        "auth_user_failed" => {
            r#"{"status":0,"auth":"false","msg":"Could not login user with username fred using password supplied"}"#
        }
        "no_data" => r#"{"status":0,"msg":"No Data Available for the parameters you supplied"}"#,
        "company_details" => r#"{"status":1,"name":"ICRTouch Testing","db":"10"}"#,
        "customer_details" => {
            r#"{"customer":{"TITLE":"Mr","FIRSTNAME":"John","LASTNAME":"Smith","ACCOUNTNUMBER":"54321"},"status":1}"#
        }
        "customer_balance" => {
            r#"{"balance":{"BALANCE":"610","LAST_UPDATE":"2014-05-06 12:44:19"},"status":1}"#
        }
        "payment_history" => {
            r#"{"payments":[{"ADJUSTMENT":"500","SENTTOPOS":"2014-06-16 08:54:07","RECIEVED":"2014-06-16 08:54:06","PAYMENTSOURCE":"1","TRANSACTIONID":"1G653499EP2221416"}],"status":1}"#
        }
        "transaction_history" => {
            r#"{"transactions":[{"HEADERID":"24","SITE":"0","DATE":"0000-00-00","TIME":"00:15:16","SALETOTAL":"995","ACCOUNTADJ":"-995","CONSECNUMBER":"84","SALEID":"1000084","BALANCE":"5905"}],"status":1}"#
        }
        "transaction_detail" => {
            r#"{"transaction":{"HEADERID":"67","SITE":"0","DATE":"31032014","TIME":"1039","SALETOTAL":"7","CONSECNUMBER":"0","SALEID":"0","BALANCE":"0","items":[{"ITEMRECORD":"4","QTY":"1","TEXT":"Ale Of Wight "}]},"status":1}"#
        }
        "make_payment" => r#"{"response":"EC-1Y43567715771310G","status":1}"#,
        "record_payment" => r#"{"payment_id":114,"status":1}"#,
        "user_create" => r#"{"status":1,"uid":8}"#,
        "user_create_2" => r#"{"status":1,"user":"1"}"#,
        "user_details" => {
            r#"{"status":1,"user":{"title":"Mr","firstname":"John","surname":"Smith","address_1":"26","address_2":"daish way","address_3":"","address_4":"","postcode":"po30 5xb","tel":"08446931119","email":"someone@example.com"}}"#
        }
        "user_change_password" => r#"{"status":1,"msg":"User password changed"}"#,
        "user_forgot_password" => {
            r#"{"status":1,"msg":"Email match, User id retrieved, Resetcode generated","userid":"19","resetcode":"4bdd29dbe74db8f969deec72c0f8b651"}"#
        }
        "user_check_email_exists" => r#"{"status":1,"msg":"Email Found"}"#,
        "user_check_reset_code" => {
            r#"{"status":1,"msg":"Reset code found","databaseresetcode":"4bdd29dbe74db8f969deec72c0f8b651"}"#
        }
        "user_link_account" => r#"{"status":1,"uid":"7","coid":"1","custid":"1"}"#,
        "validate_accountkey" => r#"{"status":1,"msg":"linkkey is valid"}"#,
        "customer_wallets" | "wallet_list" => {
            r#"{"status":1,"wallets":[{"WALLETID":"1","NAME":"Trip to the museum","DESCRIPTION":"d","STATUS":"1","TYPE":"0"}]}"#
        }
        "customer_wallet_details" => {
            r#"{"status":1,"wallet":{"WALLETID":"1","NAME":"Trip to the museum","DESCRIPTION":"d","PAYBYDATE":"2017-09-01","PURPOSEDATE":"2017-09-30","STATUS":"1","ALLOWOVERPAY":"0"},"payments":[{"ADJUSTMENT":"500","RECIEVED":"2017-08-29 12:33:22","PAYMENTSOURCE":"3","TRANSACTIONID":"4db477090337098aac47e90196789448","CHARGEID":"2"}],"charges":[{"ID":"1","CHARGE":"25.00","DUEDATE":"2017-07-31"}]}"#
        }
        "wallet_create" => r#"{"msg":"Wallet created","status":1}"#,
        "wallet_update" => r#"{"msg":"Wallet updated","status":1}"#,
        "wallet_customers_assigned" => {
            r#"{"customers":[{"NUMBER":"2","ACCOUNTNUMBER":"576576245","LASTNAME":"Bloggs","FIRSTNAME":"Matt","TITLE":"Mr"}],"status":1}"#
        }
        "wallet_add_charge" => r#"{"customers_charged":["2"],"status":1}"#,
        "wallet_revoke_charge" | "wallet_revoke_charge_from_all" => {
            r#"{"msg":"Charge has been removed from Wallet","status":1}"#
        }
        "wallet_add_customer" => r#"{"customers":2065,"status":1}"#,
        "wallet_remove_customer" => r#"{"msg":"Customer has been removed from Wallet","status":1}"#,
        other => panic!("no sample {other}"),
    };
    serde_json::from_str(text).expect("a sample is JSON")
}
