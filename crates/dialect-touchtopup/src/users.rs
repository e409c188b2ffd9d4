//! `/users/...` and `/accounts/auth_user`: portal users, their passwords and reset
//! codes, and the customer accounts linked to them.
//!
//! A user is a record (`icrtouch.user`, keyed by uid) found by email through an index
//! record (`icrtouch.email`, keyed by the lower-cased address). Only the argon2id hash of
//! a password and the SHA-256 of a reset code are kept. A reset code lasts
//! [`RESET_CODE_TTL_SECS`] and is used up by the password change it allows;
//! `user_check_reset_code` only checks it. Failed logins (and wrong old passwords),
//! wrong reset codes of a uid and wrong link keys of a customer each count towards a
//! lock of [`super::secrets::LoginThrottle`], as logins do.
//!
//! Fields (form or JSON body, names in any case): `user_create` takes `title`,
//! `firstname`, `surname` (or `lastname`), `address_1` to `address_4`, `postcode`,
//! `tel`, `email` and `password`; `user_change_password` takes `uid` (or `userid`),
//! `newpassword` (or `new_password`) and either `oldpassword` (or `old_password`,
//! `currentpassword`) or `resetcode`; `user_link_account` takes `uid` and `linkkey`.
//!
//! Who may see and act on a user. Users belong to the tenant, and a tenant-wide key
//! reaches every one of them. A key limited to a company reaches only the users of that
//! company: those created through a key of the company (the user record keeps the
//! creating company) and those linked to one of the company's customers. Every user
//! method with a key that does not reach the user answers exactly as for a user that
//! does not exist (`Email not found`, `User <uid> not found`, a failed login that counts
//! towards the throttle and takes as long as a wrong password), so another company's
//! key can neither read a user, nor be handed its reset code, nor change its password,
//! nor learn that it exists. Such a key sees only its own company among a user's linked
//! accounts and may link only its own company's customers. Users created before the
//! creating company was recorded, or through a tenant-wide key, reach company keys only
//! through their links. An email address names one user in the whole tenant, so
//! `user_create` with an address taken in another company still answers that the
//! address is taken (as any sign-up form does), and creates nothing.
//!
//! Failed guesses are counted per key scope ([`Ctx::throttle_name`]): a company key's
//! failed logins lock the user name for that company's keys only, so one company's
//! portal cannot lock another company's users out.

use super::accounts::check_link_key;
use super::ctx::Ctx;
use super::errors::Fail;
use super::model::{
    CAS_RETRIES_MAX, EMAIL_KIND, EmailIndex, Link, Recs, Reset, USER_KIND, User, encode, pad,
};
use super::params::{LINK_KEY, NEW_PASSWORD, OLD_PASSWORD, PASSWORD, RESET_CODE};
use super::secrets::{digest_reset_code, hash_password, new_reset_code, verify_password};
use super::types::{NUMBER_ID_MAX, email, new_password, text};
use super::xml::Node;
use crate::model::record_key;
use axum::http::StatusCode;
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Read, Role, Write};
use prepaid_edge::submit::Operation;
use prepaid_ledger::Refusal;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use subtle::ConstantTimeEq as _;

/// How long a password reset code lasts, in seconds.
pub const RESET_CODE_TTL_SECS: i64 = 60 * 60;
/// The most customer accounts linked to one user.
pub const LINKS_MAX: usize = 100;

const MICROS_PER_SEC: i64 = 1_000_000;

/// Hashes on the blocking pool: argon2id takes tens of milliseconds on purpose.
async fn hash(password: String) -> Result<String, Fail> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the password hashing task failed");
            Fail::internal()
        })?
        .map_err(|e| {
            tracing::error!(error = %e, "hashing a password failed");
            Fail::bad("The password cannot be used")
        })
}

/// A hash to verify against when the user does not exist, so that an unknown user
/// takes as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password of no user").unwrap_or_default())
}

async fn verify(phc: Option<String>, password: String) -> Result<bool, Fail> {
    tokio::task::spawn_blocking(move || {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| decoy_hash().to_owned());
        verify_password(&phc, &password) && known
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "the password verifying task failed");
        Fail::internal()
    })
}

/// The user of `address` if there is one that `ctx`'s key reaches.
async fn user_by_email<R: Role>(
    recs: &Recs<'_>,
    ctx: &Ctx<R>,
    address: &str,
) -> Result<Option<(User, i64)>, Fail> {
    let key = address.to_lowercase();
    if key.len() > super::types::EMAIL_LEN_MAX {
        return Ok(None);
    }
    let Some((index, _)) = recs.get::<EmailIndex>(EMAIL_KIND, &key).await? else {
        return Ok(None);
    };
    Ok(recs
        .get::<User>(USER_KIND, &pad(index.uid.into()))
        .await?
        .filter(|(user, _)| ctx.reaches_user(user)))
}

/// User `uid`, which must exist and be reached by `ctx`'s key; a user the key does not
/// reach is not found, word for word.
async fn user_by_uid<R: Role>(
    recs: &Recs<'_>,
    ctx: &Ctx<R>,
    uid: u32,
) -> Result<(User, i64), Fail> {
    recs.get::<User>(USER_KIND, &pad(uid.into()))
        .await?
        .filter(|(user, _)| ctx.reaches_user(user))
        .ok_or_else(Fail::no_data)
}

fn uid_of<R: Role>(ctx: &Ctx<R>) -> Result<u32, Fail> {
    ctx.number(&["uid", "userid", "user_id"], NUMBER_ID_MAX)
}

/// `Retry-After` for a locked user name.
fn locked(secs: u64) -> Fail {
    locked_for("failed logins", secs)
}

/// The answer while the throttle locks guesses of `what` (`wrong reset codes`, ...).
pub(super) fn locked_for(what: &str, secs: u64) -> Fail {
    let mut f = Fail::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too many {what}; try again in {secs} seconds"),
    );
    f.retry_after = Some(secs);
    f
}

/// User `uid` if `code` is its pending reset code. A wrong code, or a user the key does
/// not reach, counts towards the lock of the uid's reset codes for this key's scope,
/// as failed logins do; the right code forgets the failures.
async fn check_reset_code<R: Role>(
    ctx: &Ctx<R>,
    recs: &Recs<'_>,
    uid: u32,
    code: &str,
) -> Result<(User, i64), Fail> {
    let tenant = &ctx.principal.tenant;
    let throttled = ctx.throttle_name("reset", &uid.to_string());
    if let Err(wait) = ctx.own.login_throttle.check(tenant, &throttled, ctx.now) {
        return Err(locked_for("wrong reset codes", wait.0));
    }
    let fail = match user_by_uid(recs, ctx, uid).await {
        Ok((user, version)) if reset_matches(&user, code, ctx.now.as_micros()) => {
            ctx.own.login_throttle.record_success(tenant, &throttled);
            return Ok((user, version));
        }
        Ok(_) => Fail::not_found("Reset code not found or expired"),
        Err(fail) if fail.http == StatusCode::NOT_FOUND => fail,
        Err(fail) => return Err(fail),
    };
    ctx.own
        .login_throttle
        .record_failure(tenant, &throttled, ctx.now);
    Err(fail)
}

pub async fn auth_user(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let username = ctx
        .require(&["username", "email"])
        .map_err(Fail::with_auth_false)?
        .to_owned();
    let password = ctx
        .require_secret(PASSWORD)
        .map_err(Fail::with_auth_false)?
        .to_owned();
    let tenant = &ctx.principal.tenant;
    let throttled = ctx.throttle_name("login", &username);
    if let Err(wait) = ctx.own.login_throttle.check(tenant, &throttled, ctx.now) {
        return Err(locked(wait.0).with_auth_false());
    }
    let recs = ctx.recs(state);
    let user = user_by_email(&recs, ctx, &username).await?;
    let phc = user.as_ref().map(|(u, _)| u.password_phc.clone());
    if !verify(phc, password).await? {
        ctx.own
            .login_throttle
            .record_failure(tenant, &throttled, ctx.now);
        return Err(Fail::new(
            StatusCode::UNAUTHORIZED,
            format!("Could not login user with username {username} using password supplied"),
        )
        .with_auth_false());
    }
    ctx.own.login_throttle.record_success(tenant, &throttled);
    let Some((user, _)) = user else {
        return Err(Fail::internal());
    };
    let mut companies: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for link in user.links.iter().filter(|l| ctx.sees_company(l.coid)) {
        companies.entry(link.coid).or_default().push(link.custid);
    }
    let mut map = Node::map();
    for (coid, customers) in companies {
        map = map.with(
            coid.to_string(),
            Node::map().with("company_id", coid.to_string()).with(
                "customers",
                customers
                    .iter()
                    .map(|c| Node::from(c.to_string()))
                    .collect::<Vec<_>>(),
            ),
        );
    }
    Ok(Node::map()
        .with("status", 1i64)
        .with("auth", "true")
        .with("userid", user.uid.to_string())
        .with("companies", map))
}

pub async fn user_create(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let address = email("email", ctx.require(&["email"])?)?;
    let password = ctx.require_secret(PASSWORD)?.to_owned();
    new_password("password", &password)?;
    let firstname = text("firstname", ctx.require(&["firstname", "first_name"])?)?;
    let surname = text(
        "surname",
        ctx.require(&["surname", "lastname", "last_name"])?,
    )?;
    let recs = ctx.recs(state);
    let index_key = address.to_lowercase();
    if recs
        .get::<EmailIndex>(EMAIL_KIND, &index_key)
        .await?
        .is_some()
    {
        return Err(Fail::conflict("A user with this email already exists"));
    }
    let mut user = User {
        uid: 0,
        title: ctx.text(&["title"])?,
        firstname,
        surname,
        address_1: ctx.text(&["address_1", "address1"])?,
        address_2: ctx.text(&["address_2", "address2"])?,
        address_3: ctx.text(&["address_3", "address3"])?,
        address_4: ctx.text(&["address_4", "address4"])?,
        postcode: ctx.text(&["postcode"])?,
        tel: ctx.text(&["tel", "telephone"])?,
        email: address,
        password_phc: hash(password).await?,
        reset: None,
        links: Vec::new(),
        company: ctx.only_company,
    };
    // The user's number, the user and its email index are one unit: a request that
    // took the number or the email meanwhile refuses it whole, so an email always names
    // one user and no user is left without its index.
    let mut rounds = 0;
    loop {
        let (uid, take) = recs.number_to_take("user").await?;
        user.uid = u32::try_from(uid)
            .ok()
            .filter(|u| *u <= NUMBER_ID_MAX)
            .ok_or_else(|| Fail::conflict("No more users can be created"))?;
        let op = take
            .link(Operation::records(&ctx.principal))
            .put_record(
                USER_KIND,
                &record_key(&pad(uid))?,
                encode(USER_KIND, &user)?,
                None,
            )
            .put_record(
                EMAIL_KIND,
                &record_key(&index_key)?,
                encode(EMAIL_KIND, &EmailIndex { uid: user.uid })?,
                None,
            );
        match op.submit(state, "creating a TouchTopUp user").await? {
            Ok(_) => break,
            Err(Refusal::RecordConflict) => {
                if recs
                    .get::<EmailIndex>(EMAIL_KIND, &index_key)
                    .await?
                    .is_some()
                {
                    return Err(Fail::conflict("A user with this email already exists"));
                }
                rounds += 1;
                if rounds >= CAS_RETRIES_MAX {
                    tracing::warn!("the TouchTopUp user counter stayed contended");
                    return Err(Fail::unavailable("The service is busy; try again"));
                }
            }
            Err(r) => return Err(super::errors::refusal(&r)),
        }
    }
    Ok(Node::map()
        .with("status", 1i64)
        .with("uid", i64::from(user.uid))
        .with("user", user.uid.to_string()))
}

pub async fn user_details(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let uid = uid_of(ctx)?;
    let (u, _) = user_by_uid(&ctx.recs(state), ctx, uid).await?;
    Ok(Node::map().with("status", 1i64).with(
        "user",
        Node::map()
            .with("title", u.title)
            .with("firstname", u.firstname)
            .with("surname", u.surname)
            .with("address_1", u.address_1)
            .with("address_2", u.address_2)
            .with("address_3", u.address_3)
            .with("address_4", u.address_4)
            .with("postcode", u.postcode)
            .with("tel", u.tel)
            .with("email", u.email),
    ))
}

/// Whether `code` is the user's pending, unexpired reset code.
fn reset_matches(user: &User, code: &str, now_micros: i64) -> bool {
    let Some(reset) = &user.reset else {
        return false;
    };
    let digest = digest_reset_code(code);
    bool::from(digest.as_bytes().ct_eq(reset.digest.as_bytes()))
        && now_micros < reset.expires_at_micros
}

pub async fn user_change_password(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let uid = uid_of(ctx)?;
    let new = ctx.require_secret(NEW_PASSWORD)?.to_owned();
    new_password("newpassword", &new)?;
    let old = ctx.params.secret(OLD_PASSWORD);
    let code = ctx.params.secret(RESET_CODE);
    let recs = ctx.recs(state);
    let tenant = &ctx.principal.tenant;
    let (user, version) = match (old, code) {
        (Some(old), _) => {
            let (user, version) = user_by_uid(&recs, ctx, uid).await?;
            let throttled = ctx.throttle_name("login", &user.email);
            if let Err(wait) = ctx.own.login_throttle.check(tenant, &throttled, ctx.now) {
                return Err(locked(wait.0));
            }
            if !verify(Some(user.password_phc.clone()), old.to_owned()).await? {
                ctx.own
                    .login_throttle
                    .record_failure(tenant, &throttled, ctx.now);
                return Err(Fail::new(
                    StatusCode::UNAUTHORIZED,
                    "The old password is not correct",
                ));
            }
            (user, version)
        }
        (None, Some(code)) => check_reset_code(ctx, &recs, uid, code).await?,
        (None, None) => return Err(Fail::bad("oldpassword (or resetcode) is required")),
    };
    let throttled = ctx.throttle_name("login", &user.email);
    let changed = User {
        password_phc: hash(new).await?,
        // A password change uses up any reset code.
        reset: None,
        ..user
    };
    replace_user(&recs, &changed, version).await?;
    ctx.own.login_throttle.record_success(tenant, &throttled);
    Ok(Node::map()
        .with("status", 1i64)
        .with("msg", "User password changed"))
}

/// Replaces the user record `user` if it is still at `version`; a change made at the
/// same time is a conflict for the client to retry.
async fn replace_user(recs: &Recs<'_>, user: &User, version: i64) -> Result<(), Fail> {
    if recs
        .put(USER_KIND, &pad(user.uid.into()), user, Some(version))
        .await?
    {
        Ok(())
    } else {
        Err(Fail::conflict(
            "The user was changed at the same time; try again",
        ))
    }
}

pub async fn user_forgot_password(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let address = ctx.require(&["email"])?;
    let recs = ctx.recs(state);
    let Some((user, version)) = user_by_email(&recs, ctx, address).await? else {
        return Err(Fail::not_found("Email not found"));
    };
    let (code, digest) = new_reset_code();
    let uid = user.uid;
    let changed = User {
        reset: Some(Reset {
            digest,
            expires_at_micros: ctx
                .now
                .plus_micros(RESET_CODE_TTL_SECS * MICROS_PER_SEC)
                .as_micros(),
        }),
        ..user
    };
    replace_user(&recs, &changed, version).await?;
    Ok(Node::map()
        .with("status", 1i64)
        .with("msg", "Email match, User id retrieved, Resetcode generated")
        .with("userid", uid.to_string())
        .with("resetcode", code))
}

pub async fn user_check_email_exists(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let address = ctx.require(&["email"])?;
    match user_by_email(&ctx.recs(state), ctx, address).await? {
        Some(_) => Ok(Node::map().with("status", 1i64).with("msg", "Email Found")),
        None => Err(Fail::not_found("Email not found")),
    }
}

pub async fn user_check_reset_code(state: &SharedState, ctx: &Ctx<Read>) -> Result<Node, Fail> {
    let uid = uid_of(ctx)?;
    let code = ctx.require_secret(RESET_CODE)?;
    check_reset_code(ctx, &ctx.recs(state), uid, code).await?;
    Ok(Node::map()
        .with("status", 1i64)
        .with("msg", "Reset code found")
        .with("databaseresetcode", code.to_owned()))
}

pub async fn user_link_account(state: &SharedState, ctx: &Ctx<Write>) -> Result<Node, Fail> {
    let uid = uid_of(ctx)?;
    let key = ctx.require_secret(LINK_KEY)?;
    let (coid, custid) = check_link_key(state, ctx, key).await?;
    ctx.check_company(coid)?;
    let recs = ctx.recs(state);
    let (user, version) = user_by_uid(&recs, ctx, uid).await?;
    let link = Link { coid, custid };
    if !user.links.contains(&link) {
        if user.links.len() >= LINKS_MAX {
            return Err(Fail::conflict(format!(
                "A user may have at most {LINKS_MAX} linked accounts"
            )));
        }
        let mut changed = user;
        changed.links.push(link);
        replace_user(&recs, &changed, version).await?;
    }
    Ok(Node::map()
        .with("status", 1i64)
        .with("uid", uid.to_string())
        .with("coid", coid.to_string())
        .with("custid", custid.to_string()))
}
