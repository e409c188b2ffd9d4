//! The secrets of the TouchTopUp dialect: user passwords, password reset codes, account
//! link keys and the throttle of failed logins.
//!
//! - Passwords are kept as argon2id PHC strings ([`hash_password`], [`verify_password`])
//!   with the parameters OWASP recommends ([`ARGON2_M_COST_KIB`], [`ARGON2_T_COST`],
//!   [`ARGON2_P_COST`]). Hashing takes tens of milliseconds of CPU on purpose, so async
//!   callers run it on `tokio::task::spawn_blocking`.
//! - A reset code ([`new_reset_code`]) is 16 bytes of the operating system's random
//!   source as 32 lowercase hex digits. The client sees it once; only its SHA-256
//!   ([`digest_reset_code`]) is kept, so a copy of the database does not reset passwords.
//! - A link key ties a TouchTopUp user to a customer account. Its grammar:
//!
//!   ```text
//!   link-key = id "-" id "-" check
//!   id       = 6DIGIT / %x31-39 6*9DIGIT   ; zero-padded to 6 digits, no other leading zero
//!   check    = 9DIGIT                      ; see below
//!   ```
//!
//!   `check` is the HMAC-SHA256 of `"<coid>:<custid>"` (decimal, unpadded) under the
//!   tenant's link secret, its first 8 bytes as a big-endian u64, modulo 10^9, zero-padded
//!   to 9 digits: `000001-000001-463607569`. The secret is 32 random bytes per tenant,
//!   kept as a record (kind [`LINK_SECRET_KIND`]) and made by whichever instance needs
//!   it first ([`LinkKeys::for_tenant`]). A key cannot be forged without the secret;
//!   guessing one check succeeds once in 10^9 tries.
//! - [`LoginThrottle`] locks a user name after [`LOGIN_FAILURES_MAX`] failed logins in a
//!   row, for [`LOGIN_LOCK_SECS`], doubling with each further lock up to
//!   [`LOGIN_LOCK_SECS_MAX`]. The same throttle, under other names, locks a user's
//!   reset codes after as many wrong ones, and a customer's link key after as many
//!   wrong checks ([`link_key_target`] names the customer a guess is aimed at).

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac as _};
use prepaid_edge::AppState;
use prepaid_ledger::{RecordKey, RecordKind};
use prepaid_ledger::{TenantId, Timestamp};
use prepaid_store::StoreError;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use subtle::ConstantTimeEq as _;

/// Argon2id memory cost, KiB (OWASP: 19 MiB with two passes and one lane).
pub const ARGON2_M_COST_KIB: u32 = 19 * 1024;
/// Argon2id passes over the memory.
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_P_COST: u32 = 1;
/// The bytes of a password hash's salt.
pub const PASSWORD_SALT_BYTES: usize = 16;
/// The longest password accepted, in bytes.
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// The random bytes of a reset code (32 hex digits).
pub const RESET_CODE_BYTES: usize = 16;

/// Why a password could not be hashed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The password is longer than [`PASSWORD_BYTES_MAX`].
    #[error("the password is longer than {PASSWORD_BYTES_MAX} bytes")]
    PasswordTooLong,
    /// The hash function failed (a bug; never the password's fault).
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// `N` bytes of the operating system's random source.
///
/// # Panics
/// When the operating system cannot give random bytes: nothing secret can be made then.
fn os_random<const N: usize>() -> [u8; N] {
    use rand::TryRngCore as _;
    let mut bytes = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source failed");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .expect("the argon2 parameters are valid constants");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(SecretError::PasswordTooLong);
    }
    let salt = SaltString::encode_b64(&os_random::<PASSWORD_SALT_BYTES>())
        .map_err(|e| SecretError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (made by [`hash_password`], with the
/// parameters it names, so that hashes made with older parameters still verify). The
/// comparison is constant-time; a malformed `phc` or an overlong password is `false`.
pub fn verify_password(phc: &str, password: &str) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        tracing::error!("a stored password hash is not a PHC string");
        return false;
    };
    argon2().verify_password(password.as_bytes(), &hash).is_ok()
}

/// A new reset code: the code to show the client once (32 lowercase hex digits) and its
/// digest, the only thing to keep.
pub fn new_reset_code() -> (String, String) {
    let code = hex(&os_random::<RESET_CODE_BYTES>());
    let digest = digest_reset_code(&code);
    (code, digest)
}

/// The SHA-256 of a reset code as 64 lowercase hex digits. Compare digests, never codes.
pub fn digest_reset_code(code: &str) -> String {
    hex(&Sha256::digest(code.as_bytes()))
}

/// The record kind of a tenant's link key secret.
pub const LINK_SECRET_KIND: RecordKind = RecordKind::new("icrtouch.secret");
/// The record key of the link key secret among the tenant's secrets.
pub const LINK_SECRET_KEY: &str = "link";

fn link_secret_key() -> RecordKey {
    RecordKey::parse(LINK_SECRET_KEY).expect("the link secret's key is a valid key")
}
/// The bytes of a link key secret.
pub const LINK_SECRET_BYTES: usize = 32;
/// The digits an id of a link key is padded to.
pub const LINK_ID_DIGITS: usize = 6;
/// The most digits of an id of a link key (`u32::MAX` has 10).
pub const LINK_ID_DIGITS_MAX: usize = 10;
/// The digits of a link key's check.
pub const LINK_CHECK_DIGITS: usize = 9;
/// The longest link key, in bytes.
pub const LINK_KEY_LEN_MAX: usize = 2 * LINK_ID_DIGITS_MAX + LINK_CHECK_DIGITS + 2;
/// How often [`LinkKeys::for_tenant`] reads the secret again after losing the race to
/// create it before it gives up (another instance deleting it each time is a bug).
const LINK_SECRET_ATTEMPTS_MAX: usize = 3;

/// A tenant's link keys: issues and checks them (see the module documentation).
#[derive(Clone)]
pub struct LinkKeys {
    secret: [u8; LINK_SECRET_BYTES],
}

// By hand, so that the secret never reaches a log.
impl fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKeys(<redacted>)")
    }
}

impl LinkKeys {
    /// The link keys of `tenant`, creating its secret on first use. Two instances that
    /// create it at once agree: the store's insert-if-absent lets one win, and the
    /// other reads the winner's secret.
    pub async fn for_tenant(state: &AppState, tenant: &TenantId) -> Result<LinkKeys, StoreError> {
        for _ in 0..LINK_SECRET_ATTEMPTS_MAX {
            if let Some(record) = state
                .store
                .record(tenant, LINK_SECRET_KIND, &link_secret_key())
                .await?
            {
                let secret = unhex::<LINK_SECRET_BYTES>(&record.value).ok_or_else(|| {
                    StoreError::internal(format!(
                        "the {LINK_SECRET_KIND} record {LINK_SECRET_KEY} is malformed"
                    ))
                })?;
                return Ok(LinkKeys { secret });
            }
            let secret = os_random::<LINK_SECRET_BYTES>();
            let created = state
                .store
                .put_record(
                    tenant,
                    LINK_SECRET_KIND,
                    &link_secret_key(),
                    &hex(&secret),
                    None,
                    state.clock.now(),
                )
                .await?;
            if created.is_some() {
                return Ok(LinkKeys { secret });
            }
        }
        Err(StoreError::internal(format!(
            "the {LINK_SECRET_KIND} record {LINK_SECRET_KEY} could be neither read nor created"
        )))
    }

    /// Link keys over a known secret (tests).
    pub fn from_secret(secret: [u8; LINK_SECRET_BYTES]) -> LinkKeys {
        LinkKeys { secret }
    }

    /// The check digits of `coid`, `custid`.
    fn check_digits(&self, coid: u32, custid: u32) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(format!("{coid}:{custid}").as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        let modulus = 10u64.pow(LINK_CHECK_DIGITS as u32);
        format!(
            "{:0width$}",
            u64::from_be_bytes(first) % modulus,
            width = LINK_CHECK_DIGITS
        )
    }

    /// The link key of customer `custid` of company `coid`.
    pub fn issue(&self, coid: u32, custid: u32) -> String {
        format!(
            "{coid:0w$}-{custid:0w$}-{}",
            self.check_digits(coid, custid),
            w = LINK_ID_DIGITS
        )
    }

    /// The company and customer of a genuine link key; `None` for anything else
    /// (malformed, not in the canonical form [`LinkKeys::issue`] gives, or a wrong check).
    pub fn check(&self, key: &str) -> Option<(u32, u32)> {
        let (coid, custid) = link_key_target(key)?;
        let check = key.rsplit('-').next()?;
        let expected = self.check_digits(coid, custid);
        bool::from(expected.as_bytes().ct_eq(check.as_bytes())).then_some((coid, custid))
    }
}

/// The company and customer a link key names if it is well formed (see the grammar in
/// the module docs), whether or not its check is right: the subject of a guess.
pub fn link_key_target(key: &str) -> Option<(u32, u32)> {
    if key.len() > LINK_KEY_LEN_MAX {
        return None;
    }
    let mut parts = key.split('-');
    let coid = parse_link_id(parts.next()?)?;
    let custid = parse_link_id(parts.next()?)?;
    let check = parts.next()?;
    let well_formed = parts.next().is_none()
        && check.len() == LINK_CHECK_DIGITS
        && check.bytes().all(|b| b.is_ascii_digit());
    well_formed.then_some((coid, custid))
}

/// An id of a link key in its canonical form (see the grammar in the module docs).
fn parse_link_id(s: &str) -> Option<u32> {
    let canonical_len = s.len() == LINK_ID_DIGITS
        || (s.len() > LINK_ID_DIGITS && s.len() <= LINK_ID_DIGITS_MAX && !s.starts_with('0'));
    if !canonical_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Failed logins in a row that lock a user name.
pub const LOGIN_FAILURES_MAX: u32 = 5;
/// How long the first lock lasts, in seconds; each further lock lasts twice as long.
pub const LOGIN_LOCK_SECS: i64 = 15 * 60;
/// The longest lock, in seconds. A user name whose last failure is older than this is
/// forgotten, so that the doubling starts over.
pub const LOGIN_LOCK_SECS_MAX: i64 = 24 * 60 * 60;
/// The most user names the throttle keeps; past it the least recently failed is
/// forgotten, so memory stays bounded whatever names clients try.
pub const LOGIN_THROTTLE_ENTRIES_MAX: usize = 10_000;

const MICROS_PER_SEC: i64 = 1_000_000;

/// How long to wait before trying again, in whole seconds (at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfterSecs(pub u64);

/// What the throttle knows of one user name.
#[derive(Clone, Copy, Debug)]
struct Attempts {
    /// Failures since the last lock (or success).
    failures: u32,
    /// Locks so far; the next one lasts `LOGIN_LOCK_SECS * 2^locks`.
    locks: u32,
    locked_until: Option<Timestamp>,
    last_failure: Timestamp,
}

/// The throttle of failed logins (see the module documentation).
///
/// It lives in the memory of one instance: several instances behind a load balancer
/// each keep their own count, so a client spreading its guesses over `n` instances gets
/// up to `n` times [`LOGIN_FAILURES_MAX`] tries before every instance locks it. The
/// argon2 cost of each try still bounds the rate of guessing. User names are kept as
/// SHA-256 digests (with the tenant, case-folded), so entries have a fixed size.
pub struct LoginThrottle {
    entries: Mutex<HashMap<[u8; 32], Attempts>>,
    entries_max: usize,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_entries_max(LOGIN_THROTTLE_ENTRIES_MAX)
    }
}

impl fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("entries_max", &self.entries_max)
            .finish_non_exhaustive()
    }
}

impl LoginThrottle {
    /// A throttle that keeps at most `entries_max` user names (at least 1).
    pub fn with_entries_max(entries_max: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            entries_max: entries_max.max(1),
        }
    }

    fn key(tenant: &TenantId, username: &str) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(tenant.as_str().as_bytes());
        hash.update([0]);
        hash.update(username.to_lowercase().as_bytes());
        hash.finalize().into()
    }

    /// `Ok` when `username` may try to log in at `now`, or how long it must wait.
    pub fn check(
        &self,
        tenant: &TenantId,
        username: &str,
        now: Timestamp,
    ) -> Result<(), RetryAfterSecs> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(&Self::key(tenant, username)) {
            Some(Attempts {
                locked_until: Some(until),
                ..
            }) if now < *until => {
                let micros = until.as_micros().saturating_sub(now.as_micros());
                let secs = (micros + MICROS_PER_SEC - 1) / MICROS_PER_SEC;
                Err(RetryAfterSecs(u64::try_from(secs.max(1)).unwrap_or(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login of `username` at `now`; the failure that reaches
    /// [`LOGIN_FAILURES_MAX`] locks it.
    pub fn record_failure(&self, tenant: &TenantId, username: &str, now: Timestamp) {
        let key = Self::key(tenant, username);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.contains_key(&key) && entries.len() >= self.entries_max {
            evict(&mut entries, now);
        }
        let quiet = Attempts {
            failures: 0,
            locks: 0,
            locked_until: None,
            last_failure: now,
        };
        let entry = entries.entry(key).or_insert(quiet);
        if entry.locked_until.is_some_and(|until| now < until) {
            // A try that raced the lock: the lock already answers for it.
            return;
        }
        if now
            .as_micros()
            .saturating_sub(entry.last_failure.as_micros())
            > LOGIN_LOCK_SECS_MAX * MICROS_PER_SEC
        {
            *entry = quiet;
        }
        entry.last_failure = now;
        entry.failures += 1;
        if entry.failures >= LOGIN_FAILURES_MAX {
            let secs = LOGIN_LOCK_SECS
                .checked_mul(1i64 << entry.locks.min(20))
                .map_or(LOGIN_LOCK_SECS_MAX, |s| s.min(LOGIN_LOCK_SECS_MAX));
            entry.locked_until = Some(Timestamp::from_micros(
                now.as_micros().saturating_add(secs * MICROS_PER_SEC),
            ));
            entry.locks = entry.locks.saturating_add(1);
            entry.failures = 0;
        }
    }

    /// Forgets the failures of `username` after a successful login.
    pub fn record_success(&self, tenant: &TenantId, username: &str) {
        let key = Self::key(tenant, username);
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    /// How many user names the throttle keeps now.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the throttle keeps no user name.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Makes room for one entry: drops every entry that would be forgotten anyway at `now`,
/// or else the one whose last failure is oldest. A linear scan, only when full.
fn evict(entries: &mut HashMap<[u8; 32], Attempts>, now: Timestamp) {
    let before = entries.len();
    entries.retain(|_, a| {
        now.as_micros().saturating_sub(a.last_failure.as_micros())
            <= LOGIN_LOCK_SECS_MAX * MICROS_PER_SEC
    });
    if entries.len() < before {
        return;
    }
    if let Some(oldest) = entries
        .iter()
        .min_by_key(|(_, a)| a.last_failure)
        .map(|(k, _)| *k)
    {
        entries.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "correct horsE"));
        assert!(!verify_password(&phc, ""));
        assert!(!verify_password("not a phc string", "correct horse"));
        assert!(!verify_password("", ""));
        // The salt is fresh each time.
        assert_ne!(hash_password("correct horse").unwrap(), phc);
    }

    #[test]
    fn passwords_are_limited_in_length() {
        let at_limit = "p".repeat(PASSWORD_BYTES_MAX);
        let phc = hash_password(&at_limit).unwrap();
        assert!(verify_password(&phc, &at_limit));
        let over = "p".repeat(PASSWORD_BYTES_MAX + 1);
        assert!(matches!(
            hash_password(&over),
            Err(SecretError::PasswordTooLong)
        ));
        assert!(!verify_password(&phc, &over));
    }

    #[test]
    fn reset_codes_are_random_hex_kept_as_digests() {
        let (code, digest) = new_reset_code();
        assert_eq!(code.len(), 2 * RESET_CODE_BYTES);
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(digest, digest_reset_code(&code));
        assert_ne!(digest, code);
        assert_ne!(new_reset_code().0, code);
        // The SHA-256 test vector of "abc".
        assert_eq!(
            digest_reset_code("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_well_formed_key_names_its_target_whatever_its_check() {
        let keys = LinkKeys::from_secret([7; LINK_SECRET_BYTES]);
        assert_eq!(link_key_target(&keys.issue(1, 5)), Some((1, 5)));
        assert_eq!(link_key_target("000001-000005-000000000"), Some((1, 5)));
        for malformed in ["1-5-000000000", "000001-000005-1", "000001-000005", ""] {
            assert_eq!(link_key_target(malformed), None, "{malformed:?}");
        }
    }

    #[test]
    fn link_keys_round_trip() {
        let keys = LinkKeys::from_secret([7; LINK_SECRET_BYTES]);
        let key = keys.issue(1, 5);
        assert!(key.starts_with("000001-000005-"), "{key}");
        assert_eq!(key.len(), 6 + 1 + 6 + 1 + LINK_CHECK_DIGITS);
        assert_eq!(keys.check(&key), Some((1, 5)));
        for (coid, custid) in [(0, 0), (999_999, 1), (1_000_000, 42), (u32::MAX, u32::MAX)] {
            let key = keys.issue(coid, custid);
            assert_eq!(keys.check(&key), Some((coid, custid)), "{key}");
        }
        let longest = keys.issue(u32::MAX, u32::MAX);
        assert_eq!(longest.len(), LINK_KEY_LEN_MAX);
        // Another tenant's secret gives other checks.
        let other = LinkKeys::from_secret([8; LINK_SECRET_BYTES]);
        assert_ne!(other.issue(1, 5), key);
        assert_eq!(other.check(&key), None);
        assert_eq!(format!("{keys:?}"), "LinkKeys(<redacted>)");
    }

    #[test]
    fn tampered_and_malformed_link_keys_are_refused() {
        let keys = LinkKeys::from_secret([7; LINK_SECRET_BYTES]);
        let good = keys.issue(1, 5);
        let check = &good[14..];
        let wrong_check = {
            let mut c: Vec<u8> = check.bytes().collect();
            c[8] = if c[8] == b'9' { b'0' } else { c[8] + 1 };
            String::from_utf8(c).unwrap()
        };
        let cases = [
            format!("000001-000005-{wrong_check}"),
            format!("000001-000006-{check}"),
            format!("000002-000005-{check}"),
            format!("000005-000001-{check}"),
            format!("1-5-{check}"),
            format!("0000001-000005-{check}"),
            format!("000001-0000005-{check}"),
            format!("000001-000005-0{check}"),
            format!("000001-000005-{}", &check[1..]),
            format!("000001-000005-{check}-"),
            format!("000001-000005-{check}-1"),
            format!(" 000001-000005-{check}"),
            format!("000001-000005-{check} "),
            format!("000001_000005_{check}"),
            format!("+00001-000005-{check}"),
            format!("00000a-000005-{check}"),
            format!("000001-000005-{}", check.replace(|_: char| true, "x")),
            format!("4294967296-000005-{check}"),
            format!("99999999999-000005-{check}"),
            format!("000001--{check}"),
            "000001-000005".to_owned(),
            "000001".to_owned(),
            String::new(),
            "--".to_owned(),
            "x".repeat(LINK_KEY_LEN_MAX + 1),
        ];
        for key in &cases {
            assert_eq!(keys.check(key), None, "{key:?} must be refused");
        }
    }

    #[test]
    fn five_failures_lock_for_fifteen_minutes() {
        let throttle = LoginThrottle::default();
        let t = tenant("acme");
        for i in 0..LOGIN_FAILURES_MAX - 1 {
            assert_eq!(throttle.check(&t, "fred", at(i64::from(i))), Ok(()));
            throttle.record_failure(&t, "fred", at(i64::from(i)));
        }
        assert_eq!(throttle.check(&t, "fred", at(10)), Ok(()));
        throttle.record_failure(&t, "fred", at(10));
        assert_eq!(
            throttle.check(&t, "fred", at(10)),
            Err(RetryAfterSecs(LOGIN_LOCK_SECS as u64))
        );
        // Case does not matter, the tenant does.
        assert!(throttle.check(&t, "FRED", at(11)).is_err());
        assert_eq!(throttle.check(&tenant("other"), "fred", at(11)), Ok(()));
        assert_eq!(throttle.check(&t, "wilma", at(11)), Ok(()));
        // Partial seconds round up.
        assert_eq!(
            throttle.check(&t, "fred", Timestamp::from_micros(at(11).as_micros() + 1)),
            Err(RetryAfterSecs(LOGIN_LOCK_SECS as u64 - 1))
        );
        let end = 10 + LOGIN_LOCK_SECS;
        assert_eq!(
            throttle.check(&t, "fred", at(end - 1)),
            Err(RetryAfterSecs(1))
        );
        assert_eq!(throttle.check(&t, "fred", at(end)), Ok(()));
    }

    #[test]
    fn each_further_lock_doubles_up_to_the_limit() {
        let throttle = LoginThrottle::default();
        let t = tenant("acme");
        let mut now = 0;
        let mut expected = LOGIN_LOCK_SECS;
        for _ in 0..10 {
            for _ in 0..LOGIN_FAILURES_MAX {
                throttle.record_failure(&t, "fred", at(now));
            }
            assert_eq!(
                throttle.check(&t, "fred", at(now)),
                Err(RetryAfterSecs(expected as u64))
            );
            now += expected;
            expected = (expected * 2).min(LOGIN_LOCK_SECS_MAX);
        }
        assert_eq!(expected, LOGIN_LOCK_SECS_MAX);
    }

    #[test]
    fn success_and_quiet_time_forget_failures() {
        let throttle = LoginThrottle::default();
        let t = tenant("acme");
        for _ in 0..LOGIN_FAILURES_MAX - 1 {
            throttle.record_failure(&t, "fred", at(0));
        }
        throttle.record_success(&t, "fred");
        assert!(throttle.is_empty());
        throttle.record_failure(&t, "fred", at(1));
        assert_eq!(throttle.check(&t, "fred", at(1)), Ok(()));

        // A lock, then a day of quiet: the next lock is the first again.
        for _ in 0..LOGIN_FAILURES_MAX {
            throttle.record_failure(&t, "wilma", at(0));
        }
        let later = LOGIN_LOCK_SECS_MAX + 1;
        for _ in 0..LOGIN_FAILURES_MAX {
            throttle.record_failure(&t, "wilma", at(later));
        }
        assert_eq!(
            throttle.check(&t, "wilma", at(later)),
            Err(RetryAfterSecs(LOGIN_LOCK_SECS as u64))
        );
    }

    #[test]
    fn failures_during_a_lock_do_not_extend_it() {
        let throttle = LoginThrottle::default();
        let t = tenant("acme");
        for _ in 0..LOGIN_FAILURES_MAX {
            throttle.record_failure(&t, "fred", at(0));
        }
        throttle.record_failure(&t, "fred", at(5));
        assert_eq!(
            throttle.check(&t, "fred", at(5)),
            Err(RetryAfterSecs(LOGIN_LOCK_SECS as u64 - 5))
        );
    }

    #[test]
    fn memory_is_bounded_by_evicting_the_oldest() {
        let entries_max = 100;
        let throttle = LoginThrottle::with_entries_max(entries_max);
        let t = tenant("acme");
        for _ in 0..LOGIN_FAILURES_MAX {
            throttle.record_failure(&t, "victim", at(0));
        }
        for i in 0..entries_max - 1 {
            throttle.record_failure(&t, &format!("user{i}"), at(1 + i as i64));
        }
        assert_eq!(throttle.len(), entries_max);
        let now = entries_max as i64;
        assert!(now < LOGIN_LOCK_SECS, "the victim is still locked");
        assert!(throttle.check(&t, "victim", at(now)).is_err());
        // One more name evicts the oldest, the victim's.
        throttle.record_failure(&t, "newcomer", at(now));
        assert_eq!(throttle.len(), entries_max);
        assert_eq!(throttle.check(&t, "victim", at(now)), Ok(()));
        // Entries past their memory go first, all at once.
        let much_later = now + LOGIN_LOCK_SECS_MAX + 1;
        throttle.record_failure(&t, "fresh", at(much_later));
        assert_eq!(throttle.len(), 1);
        assert_eq!(
            LoginThrottle::default().entries_max,
            LOGIN_THROTTLE_ENTRIES_MAX
        );
    }
}
