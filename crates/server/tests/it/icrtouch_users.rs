//! Company boundaries of TouchTopUp users: a key limited to one company reaches only the
//! users of that company (created through a key of it, or linked to one of its
//! customers). With another company's key every user method answers exactly as for a
//! user that does not exist, so the reset-code takeover of another company's user
//! fails at its first step.

use crate::common;
use crate::icrtouch_support;
use prepaid_dialect_touchtopup::errors::NO_DATA;

use common::*;
use icrtouch_support::*;
use serde_json::{Value, json};

const PASSWORD: &str = "Victims-Password-1";
const NOBODY: &str = "nobody@example.com";
const VICTIM: &str = "victim@example.com";
/// A uid no user has.
const NO_UID: &str = "999999";

/// `auth_user` with a POSTed user name and password.
async fn login(ttu: &Ttu, username: &str, password: &str) -> Resp {
    ttu.post_form(
        "/accounts/auth_user",
        &[("username", username), ("password", password)],
    )
    .await
}

/// A new reset code of user `email`, made through `ttu`.
async fn reset_code(ttu: &Ttu, email: &str) -> String {
    let forgot = ok1(ttu
        .get(&format!("/users/user_forgot_password/email/{email}"))
        .await);
    forgot["resetcode"].as_str().expect("resetcode").to_owned()
}

async fn create_user(ttu: &Ttu, email: &str, password: &str) -> String {
    let created = ok1(ttu
        .post_form(
            "/users/user_create",
            &[
                ("firstname", "Vic"),
                ("surname", "Tim"),
                ("email", email),
                ("password", password),
            ],
        )
        .await);
    created["user"].as_str().expect("user").to_owned()
}

/// One answer with the user's uid and email written as placeholders, so that the
/// answers about two users can be compared.
fn neutral(r: &Resp, uid: &str, email: &str) -> (u16, Option<String>, String) {
    let text = r
        .text
        .replace(email, "<email>")
        .replace(&format!("User {uid} "), "User <uid> ");
    (r.status, r.header("retry-after").map(str::to_owned), text)
}

/// Asserts that `ttu` gets the same answer for `victim` (uid, email) as for a user that
/// does not exist, for the request `make` builds from a uid and an email.
async fn same_as_unknown<F, Fut>(what: &str, victim: (&str, &str), make: F) -> Resp
where
    F: Fn(String, String) -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    let unknown = make(NO_UID.to_owned(), NOBODY.to_owned()).await;
    let theirs = make(victim.0.to_owned(), victim.1.to_owned()).await;
    assert_eq!(
        neutral(&theirs, victim.0, victim.1),
        neutral(&unknown, NO_UID, NOBODY),
        "{what}: another company's user is not answered as an unknown one"
    );
    assert!(
        theirs.status >= 400 && !theirs.text.contains(PASSWORD),
        "{what}: {}",
        theirs.text
    );
    theirs
}

#[tokio::test]
async fn another_companys_key_sees_no_user_of_this_company() {
    let (server, admin, portal) = fixture().await;
    put_company(&admin, 2, "Other School", "20").await;
    let other_customer = put_customer(&admin, 2, 7, "Ms", "Ann", "Other", "7").await;
    let other_link = other_customer["link_key"].as_str().unwrap().to_owned();
    let school1 = company_key(&server, &admin, "school-1", 1).await;
    let school2 = company_key(&server, &admin, "school-2", 2).await;
    let uid = create_user(&school1, VICTIM, PASSWORD).await;
    let victim = (uid.as_str(), VICTIM);

    // The takeover fails at its first step: no reset code for another company's user.
    let r = school2
        .get(&format!("/users/user_forgot_password/email/{VICTIM}"))
        .await;
    fail0(&r, 404, "Email not found");
    assert!(r.json.get("resetcode").is_none(), "{}", r.text);

    // A genuine code, made through the victim's own company, is of no use either.
    let code = reset_code(&school1, VICTIM).await;

    let fill = |template: &str, uid: &str, email: &str| {
        template
            .replace("{uid}", uid)
            .replace("{email}", email)
            .replace("{code}", &code)
            .replace("{password}", PASSWORD)
            .replace("{link}", &other_link)
    };
    for template in [
        "/users/user_forgot_password/email/{email}",
        "/users/user_check_email_exists/email/{email}",
        "/users/user_details/uid/{uid}",
        "/users/user_details/uid/{uid}/format/xml",
        "/users/user_check_reset_code/uid/{uid}/resetcode/{code}",
        "/accounts/auth_user/username/{email}/password/{password}",
    ] {
        same_as_unknown(template, victim, |uid, email| {
            let path = fill(template, &uid, &email);
            let school2 = school2.clone();
            async move { school2.get(&path).await }
        })
        .await;
    }
    let new_password = ("newpassword", "Attackers-Password-2");
    let posts: [(&str, &[(&str, &str)]); 4] = [
        (
            "/users/user_change_password",
            &[("uid", "{uid}"), ("resetcode", "{code}"), new_password],
        ),
        (
            "/users/user_change_password",
            &[
                ("uid", "{uid}"),
                ("oldpassword", "{password}"),
                new_password,
            ],
        ),
        (
            "/users/user_link_account",
            &[("uid", "{uid}"), ("linkkey", "{link}")],
        ),
        (
            "/accounts/auth_user",
            &[("username", "{email}"), ("password", "{password}")],
        ),
    ];
    for (path, fields) in posts {
        same_as_unknown(path, victim, |uid, email| {
            let fields: Vec<(&str, String)> = fields
                .iter()
                .map(|(name, value)| (*name, fill(value, &uid, &email)))
                .collect();
            let school2 = school2.clone();
            async move {
                let fields: Vec<(&str, &str)> =
                    fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
                school2.post_form(path, &fields).await
            }
        })
        .await;
    }

    // Nothing changed: the victim's own company still logs it in with its password,
    // its pending code still stands, and it is linked to no other company's customer.
    let auth = ok1(login(&school1, VICTIM, PASSWORD).await);
    assert_eq!(auth["companies"], json!({}), "{auth}");
    ok1(school1
        .get(&format!(
            "/users/user_check_reset_code/uid/{uid}/resetcode/{code}"
        ))
        .await);
    let auth = ok1(login(&portal, VICTIM, PASSWORD).await);
    assert_eq!(auth["companies"], json!({}), "{auth}");
}

#[tokio::test]
async fn a_company_key_reaches_the_users_it_created_and_those_linked_to_its_customers() {
    let (server, admin, portal) = fixture().await;
    let own_link = put_customer(&admin, 1, 6, "Mr", "Ed", "Own", "6").await["link_key"]
        .as_str()
        .unwrap()
        .to_owned();
    put_company(&admin, 2, "Other School", "20").await;
    let other_link = put_customer(&admin, 2, 7, "Ms", "Ann", "Other", "7").await["link_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let school1 = company_key(&server, &admin, "school-1", 1).await;
    let school2 = company_key(&server, &admin, "school-2", 2).await;

    // A user of the tenant-wide portal reaches a company key once it is linked to one
    // of the company's customers, and then only with that company's accounts.
    let uid = create_user(&portal, "parent@example.com", PASSWORD).await;
    let r = school2.get(&format!("/users/user_details/uid/{uid}")).await;
    fail0(&r, 404, NO_DATA);
    ok1(portal
        .post_form(
            "/users/user_link_account",
            &[("uid", uid.as_str()), ("linkkey", own_link.as_str())],
        )
        .await);
    ok1(portal
        .post_form(
            "/users/user_link_account",
            &[("uid", uid.as_str()), ("linkkey", other_link.as_str())],
        )
        .await);
    let details = ok1(school2.get(&format!("/users/user_details/uid/{uid}")).await);
    assert_eq!(details["user"]["email"], "parent@example.com");
    let auth = ok1(login(&school2, "parent@example.com", PASSWORD).await);
    assert_eq!(
        auth["companies"],
        json!({"2": {"company_id": "2", "customers": ["7"]}})
    );
    let auth = ok1(login(&portal, "parent@example.com", PASSWORD).await);
    assert_eq!(auth["companies"].as_object().map(|m| m.len()), Some(2));

    // A user created through company 2's key is company 2's from the start: its own
    // company may reset its password, company 1 may not even find it.
    let uid2 = create_user(&school2, "pupil@example.com", PASSWORD).await;
    let code = reset_code(&school2, "pupil@example.com").await;
    ok1(school2
        .post_form(
            "/users/user_change_password",
            &[
                ("uid", uid2.as_str()),
                ("resetcode", code.as_str()),
                ("newpassword", "Pupils-New-Password-3"),
            ],
        )
        .await);
    let r = school1
        .get("/users/user_check_email_exists/email/pupil@example.com")
        .await;
    fail0(&r, 404, "Email not found");
    // The address is still taken in the whole tenant: creating it again is refused,
    // and creates nothing.
    let r = school1
        .post_form(
            "/users/user_create",
            &[
                ("firstname", "X"),
                ("surname", "Y"),
                ("email", "pupil@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    fail0(&r, 409, "already exists");
    ok1(portal.get(&format!("/users/user_details/uid/{uid2}")).await);
}

#[tokio::test]
async fn another_companys_failed_logins_do_not_lock_a_user_out() {
    let (server, admin, _portal) = fixture().await;
    put_company(&admin, 2, "Other School", "20").await;
    let school1 = company_key(&server, &admin, "school-1", 1).await;
    let school2 = company_key(&server, &admin, "school-2", 2).await;
    create_user(&school1, VICTIM, PASSWORD).await;
    let mut last: Option<Value> = None;
    for _ in 0..6 {
        let r = login(&school2, VICTIM, "a guess").await;
        last = Some(r.json.clone());
    }
    // Company 2's key is locked out of the name, as for any unknown name it guessed.
    assert_eq!(last.unwrap()["auth"], "false");
    let r = login(&school2, VICTIM, PASSWORD).await;
    fail0(&r, 429, "Too many failed logins");
    // The victim's own company is not.
    ok1(login(&school1, VICTIM, PASSWORD).await);
}

#[tokio::test]
async fn wrong_reset_codes_and_link_keys_lock_like_failed_logins() {
    let (_server, admin, portal) = fixture().await;
    let uid = create_user(&portal, VICTIM, PASSWORD).await;
    let code = reset_code(&portal, VICTIM).await;
    let wrong_code = "0".repeat(code.len());
    for _ in 0..5 {
        let r = portal
            .get(&format!(
                "/users/user_check_reset_code/uid/{uid}/resetcode/{wrong_code}"
            ))
            .await;
        fail0(&r, 404, "Reset code not found or expired");
    }
    // Locked now, even with the right code, for checking and for using it.
    let r = portal
        .get(&format!(
            "/users/user_check_reset_code/uid/{uid}/resetcode/{code}"
        ))
        .await;
    fail0(&r, 429, "Too many wrong reset codes");
    assert!(r.header("retry-after").is_some());
    let r = portal
        .post_form(
            "/users/user_change_password",
            &[
                ("uid", uid.as_str()),
                ("resetcode", code.as_str()),
                ("newpassword", "Guessers-Password-4"),
            ],
        )
        .await;
    fail0(&r, 429, "Too many wrong reset codes");
    ok1(login(&portal, VICTIM, PASSWORD).await);

    // Five wrong checks of customer 5's link key lock that customer's key only.
    let key5 = put_customer(&admin, 1, 5, "Mr", "John", "Smith", "54321").await["link_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let key6 = put_customer(&admin, 1, 6, "Ms", "Jo", "Smith", "6").await["link_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ids, check) = key5.rsplit_once('-').unwrap();
    let wrong_key = format!(
        "{ids}-{}",
        if check == "000000000" {
            "000000001"
        } else {
            "000000000"
        }
    );
    for _ in 0..5 {
        let r = portal
            .get(&format!(
                "/accounts/validate_accountkey/linkkey/{wrong_key}"
            ))
            .await;
        fail0(&r, 404, "linkkey is not valid");
    }
    let r = portal
        .get(&format!("/accounts/validate_accountkey/linkkey/{key5}"))
        .await;
    fail0(&r, 429, "Too many wrong link keys");
    let r = portal
        .post_form(
            "/users/user_link_account",
            &[("uid", uid.as_str()), ("linkkey", key5.as_str())],
        )
        .await;
    fail0(&r, 429, "Too many wrong link keys");
    ok1(portal
        .get(&format!("/accounts/validate_accountkey/linkkey/{key6}"))
        .await);
    // Malformed keys can never be right and are not counted.
    for _ in 0..10 {
        let r = portal
            .get("/accounts/validate_accountkey/linkkey/not-a-key")
            .await;
        fail0(&r, 404, "linkkey is not valid");
    }
    ok1(portal
        .get(&format!("/accounts/validate_accountkey/linkkey/{key6}"))
        .await);
}
