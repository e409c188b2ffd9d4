//! No TouchTopUp password or reset code is logged or stored in clear, and no link key,
//! payment token or API secret is logged: a server logging at trace level (which logs
//! every request's path, and everything its libraries log) is sent these secrets in the
//! path under every name a handler accepts for them, and in bodies, and afterwards its
//! whole log holds none of them, nor any file of its data directory a password or a
//! reset code.
//!
//! This test runs its own `prepaid` process on SQLite whatever the suite's backend,
//! since it needs the debug log and the database files at hand.

use crate::common;
use crate::icrtouch_support;

use common::*;
use icrtouch_support::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const PASSWORD: &str = "Correct-Horse-Battery-9";
const NEW_PASSWORD: &str = "Another-Secret-Phrase-7";
const OTHER_PASSWORD: &str = "Third-Secret-Phrase-5";
const THIRD_PASSWORD: &str = "Fourth-Secret-Phrase-3";
const FOURTH_PASSWORD: &str = "Fifth-Secret-Phrase-1";
const ADMIN_SECRET: &str = "test-admin-icrtouch-logs-secret";

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(data_dir: &Path, log: &Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_prepaid"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("PREPAID_ADMIN_KEY", ADMIN_SECRET)
        .env("PREPAID_LOG", "trace")
        .env_remove("PREPAID_DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(log).expect("log file")))
        .spawn()
        .expect("spawn prepaid");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read stdout");
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    let base = line
        .trim_end()
        .strip_prefix("prepaid listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Running(child), base)
}

/// Every file under `dir`, read in full.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn passwords_and_reset_codes_are_never_logged_or_stored_in_clear() {
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let log = logs.path().join("server.log");
    let (server, base) = spawn(data.path(), &log);
    let admin = Api::new(&base, Auth::Bearer(ADMIN_SECRET.to_owned()));
    put_company(&admin, 1, "ICRTouch Testing", "10").await;
    let customer = put_customer(&admin, 1, 5, "Mr", "John", "Smith", "54321").await;
    let link_key = customer["link_key"].as_str().unwrap().to_owned();
    let (key, _) = admin.create_key("portal", &["read", "write"], None).await;
    let api_secret = key["secret"].as_str().unwrap().to_owned();
    let ttu = Ttu {
        api: Api::new(&base, Auth::None),
        key: Some(api_secret.clone()),
    };

    let created = ok1(ttu
        .post_form(
            "/users/user_create",
            &[
                ("firstname", "John"),
                ("surname", "Smith"),
                ("email", "someone@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await);
    let uid = created["uid"].to_string();
    ok1(ttu
        .get(&format!(
            "/accounts/auth_user/username/someone@example.com/password/{PASSWORD}"
        ))
        .await);
    let r = ttu
        .get("/accounts/auth_user/username/someone@example.com/password/Wrong-Guess-1234")
        .await;
    fail0(&r, 401, "Could not login");
    for name in ["linkkey", "accountkey", "link_key"] {
        ok1(ttu
            .get(&format!("/accounts/validate_accountkey/{name}/{link_key}"))
            .await);
    }
    ok1(ttu
        .post_form(
            &format!("/users/user_link_account/uid/{uid}"),
            &[("link_key", &link_key)],
        )
        .await);
    let token = ok1(ttu
        .get("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/5.00")
        .await)["response"]
        .as_str()
        .unwrap()
        .to_owned();
    ok1(ttu
        .post_form(
            &format!("/accounts/record_payment/pmtType/1/token/{token}"),
            &[],
        )
        .await);
    let forgot = ok1(ttu
        .get("/users/user_forgot_password/email/someone@example.com")
        .await);
    let code = forgot["resetcode"].as_str().unwrap().to_owned();
    ok1(ttu
        .get(&format!(
            "/users/user_check_reset_code/userid/{uid}/resetcode/{code}"
        ))
        .await);
    ok1(ttu
        .get(&format!(
            "/users/user_check_reset_code/userid/{uid}/reset_code/{code}"
        ))
        .await);
    // A second code, left pending, must not be stored in clear either.
    ok1(ttu
        .post_json(
            "/users/user_change_password",
            &json!({"uid": uid, "resetcode": code, "newpassword": NEW_PASSWORD}),
        )
        .await);
    // The other names of the old and the new password, in the path.
    for (old_name, old, new_name, new) in [
        ("oldpassword", NEW_PASSWORD, "new_password", OTHER_PASSWORD),
        (
            "old_password",
            OTHER_PASSWORD,
            "password_new",
            THIRD_PASSWORD,
        ),
        (
            "currentpassword",
            THIRD_PASSWORD,
            "newpassword",
            FOURTH_PASSWORD,
        ),
        ("password_old", FOURTH_PASSWORD, "newpassword", NEW_PASSWORD),
    ] {
        ok1(ttu
            .post_form(
                &format!("/users/user_change_password/uid/{uid}/{old_name}/{old}/{new_name}/{new}"),
                &[],
            )
            .await);
    }
    let pending = ok1(ttu
        .get("/users/user_forgot_password/email/someone@example.com")
        .await)["resetcode"]
        .as_str()
        .unwrap()
        .to_owned();
    ok1(ttu
        .post_form(
            "/accounts/auth_user",
            &[
                ("username", "someone@example.com"),
                ("password", NEW_PASSWORD),
            ],
        )
        .await);
    drop(server);

    let text = std::fs::read_to_string(&log).expect("read log");
    // Paths are logged at this level: the redacted ones are there.
    assert!(
        text.contains(
            "/index.php/accounts/auth_user/username/someone@example.com/password/REDACTED"
        ),
        "the debug log shows no redacted path:\n{text}"
    );
    for redacted in [
        "/record_payment/pmtType/1/token/REDACTED",
        "/old_password/REDACTED/password_new/REDACTED",
        "/validate_accountkey/link_key/REDACTED",
        "/reset_code/REDACTED",
    ] {
        assert!(text.contains(redacted), "the log lacks {redacted}:\n{text}");
    }
    for secret in [
        PASSWORD,
        NEW_PASSWORD,
        OTHER_PASSWORD,
        THIRD_PASSWORD,
        FOURTH_PASSWORD,
        "Wrong-Guess-1234",
        &code,
        &pending,
        &link_key,
        &token,
        &api_secret,
        ADMIN_SECRET,
    ] {
        assert!(!text.contains(secret), "the log holds {secret:?}:\n{text}");
    }
    for (path, bytes) in files(data.path()) {
        for secret in [PASSWORD, NEW_PASSWORD, &code, &pending] {
            assert!(
                !contains(&bytes, secret),
                "{path} holds {secret:?} in clear"
            );
        }
    }
}
