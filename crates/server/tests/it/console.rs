//! The web console over plain HTTP: sessions, CSRF and origin checks, one change per
//! form however often it is posted, and what each kind of key may see. The browser's
//! view of it is `console_browser`.

use crate::common;

use common::*;
use reqwest::redirect::Policy;
use serde_json::json;

/// A browser-like client of the console: no redirects followed, its session cookie
/// kept by hand so each test sees exactly what the server set.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    pub cookie: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub text: String,
}

impl Page {
    /// The value of the first hidden input `name` after `anchor` in the page.
    pub fn hidden_after(&self, anchor: &str, name: &str) -> String {
        let from = self
            .text
            .find(anchor)
            .unwrap_or_else(|| panic!("{anchor} is not in the page:\n{}", self.text));
        let rest = &self.text[from..];
        let marker = format!("name=\"{name}\" value=\"");
        let at = rest
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} after {anchor}"));
        let value = &rest[at + marker.len()..];
        value[..value.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookie: None,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(c) => request.header("cookie", format!("prepaid_console={c}")),
            None => request,
        };
        let response = request.send().await.expect("the console answers");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        Page {
            status: response.status().as_u16(),
            location,
            set_cookie,
            text: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// Posts a form with these fields and extra headers.
    pub async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap());
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        self.send(request).await
    }

    /// Signs in with a key; panics unless the console opened a session.
    pub async fn sign_in(base: &str, name: &str, secret: &str) -> Browser {
        let mut browser = Browser::new(base);
        let page = browser
            .post(
                "/console/sign-in",
                &[("name", name), ("secret", secret)],
                &[],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.text);
        let cookie = page.set_cookie.expect("a session cookie");
        let value = cookie
            .strip_prefix("prepaid_console=")
            .and_then(|c| c.split(';').next())
            .unwrap();
        browser.cookie = Some(value.to_owned());
        browser
    }
}

/// A server with customer `acme` and its wallet `acme-eur` (EUR).
async fn setup() -> (Server, Api) {
    let server = Server::start().await;
    let admin = server.admin();
    admin.create_customer("acme").await;
    admin.create_wallet("acme", "acme-eur", "EUR", 2).await;
    (server, admin)
}

#[tokio::test]
async fn a_form_posted_twice_changes_the_balance_once() {
    let (server, admin) = setup().await;
    let browser = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    let page = browser.get("/console/wallets/acme-eur").await;
    assert_eq!(page.status, 200);
    let form = "action=\"/console/wallets/acme-eur/mutations\"";
    let csrf = page.hidden_after(form, "csrf");
    let key = page.hidden_after(form, "idempotency_key");
    let fields = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", key.as_str()),
        ("kind", "top_up"),
        ("amount", "50.00"),
        ("reference", "double click"),
    ];
    for _ in 0..2 {
        let answer = browser
            .post("/console/wallets/acme-eur/mutations", &fields, &[])
            .await;
        assert_eq!(answer.status, 303, "{}", answer.text);
        assert_eq!(
            answer.location.as_deref(),
            Some("/console/wallets/acme-eur")
        );
    }
    assert_eq!(admin.balance("acme-eur").await, 5000);
    assert_eq!(admin.mutations("acme-eur").await.len(), 1);
    // The same key with other fields is another request, refused.
    let mut other = fields;
    other[3] = ("amount", "7.00");
    let refused = browser
        .post("/console/wallets/acme-eur/mutations", &other, &[])
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    // A fresh form moves money again, and the page shows it in the unit's scale.
    let page = browser.get("/console/wallets/acme-eur").await;
    let fresh = [
        ("csrf", csrf.as_str()),
        (
            "idempotency_key",
            &page.hidden_after(form, "idempotency_key"),
        ),
        ("kind", "debit"),
        ("amount", "12.5"),
        ("reference", ""),
    ];
    let answer = browser
        .post("/console/wallets/acme-eur/mutations", &fresh, &[])
        .await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    assert_eq!(admin.balance("acme-eur").await, 3750);
    let page = browser.get("/console/wallets/acme-eur").await;
    assert!(
        page.text.contains("<dd id=\"balance\">37.50 EUR</dd>"),
        "{}",
        page.text
    );
    assert_eq!(page.text.matches("class=\"point\"").count(), 3);
}

#[tokio::test]
async fn cross_site_posts_without_the_token_are_refused() {
    let (server, admin) = setup().await;
    let browser = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    let page = browser.get("/console/wallets/acme-eur").await;
    let form = "action=\"/console/wallets/acme-eur/mutations\"";
    let csrf = page.hidden_after(form, "csrf");
    let key = page.hidden_after(form, "idempotency_key");
    let path = "/console/wallets/acme-eur/mutations";
    let body = |csrf: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![("csrf", csrf), ("kind", "top_up"), ("amount", "1.00")]
    };
    // No token, and another session's token.
    assert_eq!(browser.post(path, &body(""), &[]).await.status, 403);
    let other = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    let theirs = other
        .get("/console/customers")
        .await
        .hidden_after("sign-out", "csrf");
    assert_ne!(theirs, csrf);
    let theirs: &'static str = Box::leak(theirs.into_boxed_str());
    assert_eq!(browser.post(path, &body(theirs), &[]).await.status, 403);
    // The right token from another site, as the browser says or as Origin shows.
    let csrf: &'static str = Box::leak(csrf.into_boxed_str());
    let cross = [("sec-fetch-site", "cross-site")];
    let page = browser.post(path, &body(csrf), &cross).await;
    assert_eq!(page.status, 403, "{}", page.text);
    let evil = [("origin", "http://evil.example")];
    assert_eq!(browser.post(path, &body(csrf), &evil).await.status, 403);
    let signin = Browser::new(server.base())
        .post(
            "/console/sign-in",
            &[("name", "admin"), ("secret", server.admin_secret())],
            &evil,
        )
        .await;
    assert_eq!(signin.status, 403);
    assert!(signin.set_cookie.is_none());
    assert_eq!(admin.balance("acme-eur").await, 0);
    // The same post from the console's own origin goes through.
    let own = server.base().to_owned();
    let mut fields = body(csrf);
    fields.push(("idempotency_key", Box::leak(key.into_boxed_str())));
    let ok = browser
        .post(
            path,
            &fields,
            &[("origin", &own), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text);
    assert_eq!(admin.balance("acme-eur").await, 100);
}

#[tokio::test]
async fn sessions_need_a_valid_signed_cookie() {
    let (server, _admin) = setup().await;
    let anonymous = Browser::new(server.base());
    let page = anonymous.get("/console/customers").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/console/sign-in"));
    let form = anonymous.get("/console/sign-in").await;
    assert_eq!(form.status, 200);
    assert!(form.text.contains("<label for=\"key-secret\">"));
    // A wrong secret, or the right secret under another key's name.
    let wrong = anonymous
        .post(
            "/console/sign-in",
            &[("name", "admin"), ("secret", "pp_nope")],
            &[],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.set_cookie.is_none());
    let misnamed = anonymous
        .post(
            "/console/sign-in",
            &[("name", "root"), ("secret", server.admin_secret())],
            &[],
        )
        .await;
    assert_eq!(misnamed.status, 401);
    // The cookie: HttpOnly, SameSite=Strict, an expiry, no secret; Secure over HTTPS.
    let signin = anonymous
        .post(
            "/console/sign-in",
            &[("name", "admin"), ("secret", server.admin_secret())],
            &[],
        )
        .await;
    let cookie = signin.set_cookie.unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=43200",
        "Path=/console",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(!cookie.contains(server.admin_secret()));
    let https = anonymous
        .post(
            "/console/sign-in",
            &[("name", "admin"), ("secret", server.admin_secret())],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert!(https.set_cookie.unwrap().contains("; Secure"));
    // A cookie changed by hand is no session.
    let mut browser = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    assert_eq!(browser.get("/console/customers").await.status, 200);
    let value = browser.cookie.clone().unwrap();
    let mut parts: Vec<&str> = value.split('.').collect();
    let later = (parts[1].parse::<i64>().unwrap() + 3600).to_string();
    parts[1] = &later;
    browser.cookie = Some(parts.join("."));
    assert_eq!(browser.get("/console/customers").await.status, 303);
    // Signing out clears the cookie.
    browser.cookie = Some(value);
    let page = browser.get("/console/customers").await;
    let csrf = page.hidden_after("sign-out", "csrf");
    let out = browser
        .post("/console/sign-out", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(out.status, 303);
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn pages_follow_the_keys_scopes_and_customer() {
    let (server, admin) = setup().await;
    admin.create_customer("globex").await;
    admin.create_wallet("globex", "globex-eur", "EUR", 2).await;
    let (read_key, _) = admin.create_key("reports", &["read"], None).await;
    let (acme_key, _) = admin
        .create_key("acme-self", &["read", "write"], Some("acme"))
        .await;
    let reader = Browser::sign_in(
        server.base(),
        "reports",
        read_key["secret"].as_str().unwrap(),
    )
    .await;
    for path in [
        "/console/customers",
        "/console/customers/acme",
        "/console/wallets/acme-eur",
    ] {
        let page = reader.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.text.contains("data-write"), "{path} has a write form");
        assert!(!page.text.contains("idempotency_key"), "{path}");
    }
    assert_eq!(reader.get("/console/api-keys").await.status, 404);
    assert_eq!(reader.get("/console/tenants").await.status, 404);
    let csrf = reader
        .get("/console/customers")
        .await
        .hidden_after("sign-out", "csrf");
    let refused = reader
        .post(
            "/console/wallets/acme-eur/mutations",
            &[("csrf", &csrf), ("kind", "top_up"), ("amount", "1")],
            &[],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(admin.balance("acme-eur").await, 0);

    let acme = Browser::sign_in(
        server.base(),
        "acme-self",
        acme_key["secret"].as_str().unwrap(),
    )
    .await;
    let home = acme.get("/console").await;
    assert_eq!(home.location.as_deref(), Some("/console/customers/acme"));
    assert_eq!(acme.get("/console/customers/acme").await.status, 200);
    assert_eq!(acme.get("/console/wallets/acme-eur").await.status, 200);
    assert_eq!(
        acme.get("/console/wallets/acme-eur/mutations.csv")
            .await
            .status,
        200
    );
    for path in [
        "/console/customers",
        "/console/customers/globex",
        "/console/wallets/globex-eur",
        "/console/wallets/globex-eur/mutations.csv",
        "/console/api-keys",
        "/console/tenants",
        "/console/no-such-page",
    ] {
        let page = acme.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.text.contains("globex-eur"), "{path}");
    }
    let csrf = acme
        .get("/console/customers/acme")
        .await
        .hidden_after("sign-out", "csrf");
    let post = acme
        .post(
            "/console/wallets/globex-eur/mutations",
            &[("csrf", &csrf), ("kind", "top_up"), ("amount", "1")],
            &[],
        )
        .await;
    assert_eq!(post.status, 404);
    assert_eq!(admin.balance("globex-eur").await, 0);

    // Another tenant's admin sees none of the operator tenant's data.
    let (tenant, _) = admin.create_tenant("other").await;
    let other = Browser::sign_in(
        server.base(),
        "admin",
        tenant["admin_key"]["secret"].as_str().unwrap(),
    )
    .await;
    assert_eq!(other.get("/console/customers/acme").await.status, 404);
    assert_eq!(other.get("/console/wallets/acme-eur").await.status, 404);
    assert_eq!(other.get("/console/tenants").await.status, 404);
    let list = other.get("/console/customers").await;
    assert!(!list.text.contains("acme"));
}

#[tokio::test]
async fn keys_and_tenants_show_their_secret_once() {
    let (server, admin) = setup().await;
    let browser = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    let page = browser.get("/console/api-keys").await;
    assert_eq!(page.status, 200);
    let form = "action=\"/console/api-keys\"";
    let csrf = page.hidden_after(form, "csrf");
    let key = page.hidden_after(form, "idempotency_key");
    let fields = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", key.as_str()),
        ("name", "ops"),
        ("scopes", "read"),
        ("scopes", "write"),
        ("customer_id", ""),
    ];
    let made = browser.post("/console/api-keys", &fields, &[]).await;
    assert_eq!(made.status, 200, "{}", made.text);
    let at = made.text.find("id=\"new-secret\">").unwrap() + "id=\"new-secret\">".len();
    let secret = &made.text[at..at + made.text[at..].find('<').unwrap()];
    let ops = admin.with_bearer(secret);
    ops.top_up("acme-eur", 100).await;
    assert!(
        ops.post("/v1/api-keys", &json!({"name": "x", "scopes": ["read"]}))
            .await
            .status
            == 403
    );
    // Posted again, the form makes no second key and shows no secret.
    let again = browser.post("/console/api-keys", &fields, &[]).await;
    assert_eq!(again.status, 400);
    assert!(!again.text.contains(secret));
    // Listed, and revoked: the key stops working at once.
    let list = browser.get("/console/api-keys").await;
    assert!(
        list.text
            .contains("<td>ops</td><td>read, write</td><td>all</td>"),
        "{}",
        list.text
    );
    assert!(list.text.contains("this session's key"));
    let revoke = [("csrf", csrf.as_str())];
    let gone = browser
        .post("/console/api-keys/ops/revoke", &revoke, &[])
        .await;
    assert_eq!(gone.status, 303, "{}", gone.text);
    assert_eq!(ops.get("/v1/wallets/acme-eur").await.status, 401);
    assert!(
        !browser
            .get("/console/api-keys")
            .await
            .text
            .contains("<td>ops</td>")
    );
    let again = browser
        .post("/console/api-keys/ops/revoke", &revoke, &[])
        .await;
    assert_eq!(again.status, 404);
    let own = browser
        .post("/console/api-keys/admin/revoke", &revoke, &[])
        .await;
    assert_eq!(own.status, 400);
    admin.get("/v1/wallets/acme-eur").await.ok(200);

    let page = browser.get("/console/tenants").await;
    let form = "action=\"/console/tenants\"";
    let made = browser
        .post(
            "/console/tenants",
            &[
                ("csrf", &page.hidden_after(form, "csrf")),
                (
                    "idempotency_key",
                    &page.hidden_after(form, "idempotency_key"),
                ),
                ("id", "school"),
                ("name", "Meal money"),
            ],
            &[],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let at = made.text.find("id=\"new-secret\">").unwrap() + "id=\"new-secret\">".len();
    let secret = &made.text[at..at + made.text[at..].find('<').unwrap()];
    let list = browser.get("/console/tenants").await;
    assert!(
        list.text.contains("<td>school</td><td>Meal money</td>"),
        "{}",
        list.text
    );
    assert!(list.text.contains("<td>default (operator)</td>"));
    let school = Browser::sign_in(server.base(), "admin", secret).await;
    assert_eq!(school.get("/console/customers").await.status, 200);
}

#[tokio::test]
async fn the_csv_lists_every_mutation_in_the_units_scale() {
    let (server, admin) = setup().await;
    admin.top_up("acme-eur", 5000).await;
    admin
        .post(
            "/v1/wallets/acme-eur/mutations",
            &json!({"kind": "debit", "amount": 1250,
                "reference": {"type": "order", "text": "=HYPERLINK(\"x\"), A-17", "link": ""}}),
        )
        .await
        .ok(201);
    let browser = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    let csv = browser.get("/console/wallets/acme-eur/mutations.csv").await;
    assert_eq!(csv.status, 200);
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert!(lines[0].starts_with("id,recorded_at,"));
    assert!(
        lines[1].contains(",top_up,50.00,50.00,EUR,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(",debit,-12.50,37.50,EUR,order,\"'=HYPERLINK(\"\"x\"\"), A-17\""),
        "{}",
        lines[2]
    );
}

/// The form fields a post to `path` would carry, with `csrf` and a fresh key.
fn realistic_fields(path: &str, csrf: &str) -> Vec<(String, String)> {
    let mut fields = vec![
        ("csrf".to_owned(), csrf.to_owned()),
        (
            "idempotency_key".to_owned(),
            format!("walk-{}", uuid::Uuid::new_v4().simple()),
        ),
    ];
    let extra: &[(&str, &str)] = if path.ends_with("/mutations") {
        &[("kind", "debit"), ("amount", "1.00")]
    } else if path.ends_with("/holds") || path.ends_with("/commit") {
        &[("amount", "1.00")]
    } else if path.ends_with("/status") {
        &[("status", "suspended")]
    } else if path.ends_with("/wallets") {
        &[("unit", "EUR"), ("name", "intruder")]
    } else {
        &[("name", "intruder")]
    };
    fields.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    fields
}

/// Every route of the console's table (so a new route is walked without editing this
/// test), with A's objects in its path: anonymous callers are sent to sign in, and a
/// session of another tenant or of another customer's key gets none of A's data and
/// changes none of it.
#[tokio::test]
async fn every_console_route_keeps_other_tenants_and_customers_out() {
    let (server, admin) = setup().await;
    admin.top_up("acme-eur", 5000).await;
    let hold = admin
        .post("/v1/wallets/acme-eur/holds", &json!({"amount": 1000}))
        .await
        .ok(201);
    let hold = hold["id"].as_str().unwrap().to_owned();
    admin.create_customer("globex").await;
    let (globex_key, _) = admin
        .create_key("globex-self", &["read", "write"], Some("globex"))
        .await;
    let (_, victim_key) = admin.create_key("victim-key", &["read"], None).await;
    let (tenant, _) = admin.create_tenant("intruder").await;
    let intruders = [
        Browser::sign_in(
            server.base(),
            "admin",
            tenant["admin_key"]["secret"].as_str().unwrap(),
        )
        .await,
        Browser::sign_in(
            server.base(),
            "globex-self",
            globex_key["secret"].as_str().unwrap(),
        )
        .await,
    ];
    let secrets = ["acme-eur", "50.00", &hold];
    let anonymous = Browser::new(server.base());
    for route in prepaid_console::route_table() {
        if route.scope.is_none() {
            continue;
        }
        let id = if route.path.starts_with("/customers/") {
            "acme"
        } else if route.path.starts_with("/wallets/") {
            "acme-eur"
        } else if route.path.starts_with("/api-keys/") {
            "victim-key"
        } else {
            hold.as_str()
        };
        // The router's "/" is the mount itself.
        let path = format!("/console{}", route.path.replace("{id}", id))
            .trim_end_matches('/')
            .to_owned();
        let anon = match route.method {
            "get" => anonymous.get(&path).await,
            _ => anonymous.post(&path, &[("csrf", "x")], &[]).await,
        };
        assert_eq!(anon.status, 303, "{} {path}", route.method);
        assert_eq!(anon.location.as_deref(), Some("/console/sign-in"));
        for intruder in &intruders {
            let csrf = intruder.get("/console").await;
            let home = intruder.get(csrf.location.as_deref().unwrap()).await;
            let csrf = home.hidden_after("sign-out", "csrf");
            let page = match route.method {
                "get" => intruder.get(&path).await,
                _ => {
                    let fields = realistic_fields(&path, &csrf);
                    let fields: Vec<(&str, &str)> = fields
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    intruder.post(&path, &fields, &[]).await
                }
            };
            for secret in secrets {
                assert!(
                    !page.text.contains(secret),
                    "{} {path} showed {secret}: {}",
                    route.method,
                    page.text
                );
            }
            let victims = ["acme", "victim-key", hold.as_str()];
            if victims.iter().any(|v| path.contains(v)) {
                assert_eq!(page.status, 404, "{} {path}: {}", route.method, page.text);
            }
        }
    }
    let wallet = admin.wallet("acme-eur").await;
    assert_eq!(
        (int(&wallet, "balance"), int(&wallet, "held")),
        (5000, 1000),
        "{wallet}"
    );
    assert_eq!(str_of(&wallet, "status"), "active");
    let hold = admin.get(&format!("/v1/holds/{hold}")).await.ok(200);
    assert_eq!(str_of(&hold, "status"), "pending");
    victim_key.get("/v1/wallets/acme-eur").await.ok(200);
}

#[tokio::test]
async fn holds_are_placed_committed_and_released_from_the_wallet_page() {
    let (server, admin) = setup().await;
    admin.top_up("acme-eur", 5000).await;
    let browser = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    let post = |path: &'static str, anchor: &'static str, extra: Vec<(&'static str, String)>| {
        let browser = &browser;
        async move {
            let page = browser.get("/console/wallets/acme-eur").await;
            let mut fields = vec![
                ("csrf", page.hidden_after(anchor, "csrf")),
                (
                    "idempotency_key",
                    page.hidden_after(anchor, "idempotency_key"),
                ),
            ];
            fields.extend(extra);
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = browser.post(path, &fields, &[]).await;
            assert_eq!(answer.status, 303, "{path}: {}", answer.text);
        }
    };
    let place = "action=\"/console/wallets/acme-eur/holds\"";
    post(
        "/console/wallets/acme-eur/holds",
        place,
        vec![("amount", "10.00".into())],
    )
    .await;
    post(
        "/console/wallets/acme-eur/holds",
        place,
        vec![("amount", "5".into())],
    )
    .await;
    let wallet = admin.wallet("acme-eur").await;
    assert_eq!(int(&wallet, "held"), 1500);
    let page = browser.get("/console/wallets/acme-eur").await;
    assert!(
        page.text.contains("<dd id=\"held\">15.00 EUR</dd>"),
        "{}",
        page.text
    );
    assert!(page.text.contains("<dd id=\"available\">35.00 EUR</dd>"));
    // Commit 7.50 of the first hold, release the second.
    let ids: Vec<String> = page
        .text
        .match_indices("action=\"/console/holds/")
        .map(|(at, _)| {
            let rest = &page.text[at + "action=\"/console/holds/".len()..];
            rest[..rest.find('/').unwrap()].to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 4, "a commit and a release form per pending hold");
    let mut amounts = Vec::new();
    for id in [&ids[0], &ids[2]] {
        let hold = admin.get(&format!("/v1/holds/{id}")).await.ok(200);
        amounts.push((id.clone(), int(&hold, "amount")));
    }
    let ten = amounts.iter().find(|(_, a)| *a == 1000).unwrap().0.clone();
    let five = amounts.iter().find(|(_, a)| *a == 500).unwrap().0.clone();
    let commit: &'static str = Box::leak(format!("/console/holds/{ten}/commit").into_boxed_str());
    let release: &'static str =
        Box::leak(format!("/console/holds/{five}/release").into_boxed_str());
    let commit_anchor: &'static str = Box::leak(format!("action=\"{commit}\"").into_boxed_str());
    let release_anchor: &'static str = Box::leak(format!("action=\"{release}\"").into_boxed_str());
    post(commit, commit_anchor, vec![("amount", "7.50".into())]).await;
    post(release, release_anchor, vec![]).await;
    let wallet = admin.wallet("acme-eur").await;
    assert_eq!((int(&wallet, "balance"), int(&wallet, "held")), (4250, 0));
    // Suspend, then reactivate.
    let status = "action=\"/console/wallets/acme-eur/status\"";
    post(
        "/console/wallets/acme-eur/status",
        status,
        vec![("status", "suspended".into())],
    )
    .await;
    assert_eq!(
        str_of(&admin.wallet("acme-eur").await, "status"),
        "suspended"
    );
    post(
        "/console/wallets/acme-eur/status",
        status,
        vec![("status", "active".into())],
    )
    .await;
    assert_eq!(str_of(&admin.wallet("acme-eur").await, "status"), "active");
}

#[tokio::test]
async fn lists_page_and_search_at_the_console_page_size() {
    let (server, admin) = setup().await;
    for i in 0..=prepaid_console::CONSOLE_PAGE_SIZE {
        admin
            .post(
                "/v1/customers",
                &json!({"id": format!("c{i:02}"), "name": format!("Person {i:02}")}),
            )
            .await
            .ok(201);
    }
    let browser = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    let rows = |page: &Page| {
        page.text
            .matches("<td><a href=\"/console/customers/")
            .count()
    };
    let first = browser.get("/console/customers").await;
    assert_eq!(rows(&first), prepaid_console::CONSOLE_PAGE_SIZE);
    let at = first.text.find("rel=\"next\" href=\"").unwrap() + "rel=\"next\" href=\"".len();
    let next = first.text[at..at + first.text[at..].find('"').unwrap()].replace("&amp;", "&");
    let second = browser.get(&next).await;
    // 51 made here and acme.
    assert_eq!(rows(&second), 2, "{next}");
    assert!(!second.text.contains("rel=\"next\""));
    // By id or name, any case.
    let found = browser.get("/console/customers?q=C1").await;
    assert_eq!(rows(&found), 10);
    let found = browser.get("/console/customers?q=person%2007").await;
    assert_eq!(rows(&found), 1);
    assert!(found.text.contains("/console/customers/c07"));
}

#[tokio::test]
async fn the_chart_shows_the_newest_mutations_up_to_its_limit() {
    let (server, admin) = setup().await;
    let max = prepaid_console::CHART_POINTS_MAX;
    let items: Vec<_> = (0..max)
        .map(|_| json!({"wallet_id": "acme-eur", "kind": "top_up", "amount": 1}))
        .collect();
    admin
        .post("/v1/batch", &json!({"mutations": items}))
        .await
        .ok(200);
    let browser = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    let points = |page: &Page| page.text.matches("class=\"point\"").count();
    // At the limit: the opening zero and every mutation.
    let page = browser.get("/console/wallets/acme-eur").await;
    assert_eq!(points(&page), max + 1);
    admin.debit("acme-eur", 1).await;
    // Past it: the newest, without the opening point.
    let page = browser.get("/console/wallets/acme-eur").await;
    assert_eq!(points(&page), max);
    // The history filters by kind, and pages to its limit.
    let debits = browser.get("/console/wallets/acme-eur?kind=debit").await;
    assert!(
        debits.text.contains("1 mutations, newest first"),
        "{}",
        debits.text
    );
    let day = |offset: i64| {
        (chrono::Utc::now() + chrono::TimeDelta::days(offset))
            .format("%Y-%m-%d")
            .to_string()
    };
    let (yesterday, tomorrow) = (day(-1), day(1));
    let dated = browser
        .get(&format!(
            "/console/wallets/acme-eur?kind=top_up&from={yesterday}&to={tomorrow}"
        ))
        .await;
    assert!(
        dated
            .text
            .contains(&format!("{max} mutations, newest first"))
    );
    let later = browser
        .get(&format!("/console/wallets/acme-eur?from={}", day(2)))
        .await;
    assert!(later.text.contains("0 mutations, newest first"));
    let last = prepaid_console::PAGE_NUMBER_MAX;
    let page = browser
        .get(&format!("/console/wallets/acme-eur?page={last}"))
        .await;
    assert_eq!(page.status, 200);
    let page = browser
        .get(&format!("/console/wallets/acme-eur?page={}", last + 1))
        .await;
    assert_eq!(page.status, 400);
    assert_eq!(
        browser
            .get("/console/wallets/acme-eur?kind=gift")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn form_bodies_are_bounded() {
    let (server, admin) = setup().await;
    let browser = Browser::sign_in(server.base(), "admin", server.admin_secret()).await;
    let page = browser.get("/console/customers").await;
    let form = "action=\"/console/customers\"";
    let csrf = page.hidden_after(form, "csrf");
    let body = |key: &str, len: usize| {
        let head = format!("csrf={csrf}&idempotency_key={key}&id=padded&name=P&pad=");
        format!("{head}{}", "x".repeat(len - head.len()))
    };
    let max = prepaid_console::forms::FORM_BYTES_MAX;
    let post = |text: String| {
        reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/console/customers", server.base()))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "cookie",
                format!("prepaid_console={}", browser.cookie.as_deref().unwrap()),
            )
            .body(text)
            .send()
    };
    let over = post(body("k-over", max + 1)).await.unwrap();
    assert_eq!(over.status(), 413);
    let at = post(body("k-at", max)).await.unwrap();
    assert_eq!(at.status(), 303);
    admin.get("/v1/customers/padded").await.ok(200);
}
