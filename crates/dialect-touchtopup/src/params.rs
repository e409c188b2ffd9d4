//! TouchTopUp's `/name/value` path parameters, and the one bag of parameters a request
//! carries (path pairs, query string and form or JSON body together).
//!
//! TouchTopUp's server follows CodeIgniter: after `/<controller>/<method>` the path is a
//! list of name/value pairs, `.../customer_balance/coid/1/custid/5`. The grammar of that
//! tail, after the router has taken the controller and method:
//!
//! ```text
//! tail   = [ pair *( "/" pair ) ] [ "/" ]       ; one trailing slash is allowed
//! pair   = name "/" value
//! name   = 1*32( ALPHA / DIGIT / "_" )          ; matched case-insensitively
//! value  = 1*( unreserved / sub-delims / ":" / "@" / pct-encoded )
//! ```
//!
//! A value is percent-decoded once and must then be UTF-8 without control characters,
//! at most [`VALUE_LEN_MAX`] bytes. The tail holds at most [`PAIRS_MAX`] pairs and
//! [`TAIL_LEN_MAX`] bytes. A name without a value (`/coid/1/custid`), an empty segment
//! (`/coid//custid/5`), a malformed escape and a name given twice are errors that name
//! the parameter, never silently dropped or overwritten.
//!
//! The same names may come in the query string and, for `POST`, in a form-encoded or
//! JSON object body; all three are merged into one [`Params`], and a name given twice
//! with different values anywhere is an error. Names are kept lower-cased, so `pmtType`
//! and `pmttype` are one parameter.
//!
//! Secret parameters (passwords, reset codes, link keys, payment tokens) are named in
//! one list, [`SECRETS`]: handlers read a secret only through its [`Secret`] (never by a
//! name of their own, which [`Params::get`] refuses in debug builds), and
//! [`redact_path`] hides the value after every name of that list before a path reaches
//! a log. So an alias cannot be accepted without being redacted.

use std::borrow::Cow;
use std::fmt;

/// The mount point of the dialect, whose paths alone carry parameters (the same as
/// `super::MOUNT`, repeated so that this file stands alone).
pub const PATH_PREFIX: &str = "/index.php";

/// The most name/value pairs in one path tail (and in one request, all sources merged).
pub const PAIRS_MAX: usize = 32;
/// The longest parameter name, in bytes.
pub const NAME_LEN_MAX: usize = 32;
/// The longest parameter value after percent-decoding, in bytes.
pub const VALUE_LEN_MAX: usize = 1024;
/// The longest path tail, in bytes, before decoding.
pub const TAIL_LEN_MAX: usize = 8192;

/// A secret parameter: every name (lower-case) a handler accepts for it, in the order
/// they are looked for. Made only by `secret_params!`, so each one is in [`SECRETS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secret(&'static [&'static str]);

impl Secret {
    /// The names of the parameter; the first is the one error messages use.
    pub fn names(self) -> &'static [&'static str] {
        self.0
    }
}

/// Declares each secret parameter and [`SECRETS`], the list of them all, from one table.
macro_rules! secret_params {
    ($($(#[$doc:meta])* $name:ident = [$($alias:literal),+];)+) => {
        $($(#[$doc])* pub const $name: Secret = Secret(&[$($alias),+]);)+
        /// Every secret parameter: the values of these names never reach a log.
        pub const SECRETS: &[Secret] = &[$($name),+];
    };
}

secret_params! {
    /// A user's password (`auth_user`, `user_create`).
    PASSWORD = ["password"];
    /// The password a change replaces.
    OLD_PASSWORD = ["oldpassword", "old_password", "currentpassword", "password_old"];
    /// The password a change sets.
    NEW_PASSWORD = ["newpassword", "new_password", "password_new"];
    /// A password reset code.
    RESET_CODE = ["resetcode", "reset_code"];
    /// An account link key.
    LINK_KEY = ["linkkey", "accountkey", "link_key"];
    /// A payment provider's token, which finishes a payment.
    PAYMENT_TOKEN = ["token"];
}

/// Whether `name` (any case) is a name of a secret parameter.
pub fn is_secret(name: &str) -> bool {
    SECRETS
        .iter()
        .flat_map(|s| s.names())
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// Why a path tail or a parameter bag is malformed; the text is the client's `msg`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    TooLong,
    TooMany,
    EmptyName,
    BadName(String),
    NoValue(String),
    BadEscape(String),
    BadText(String),
    ValueTooLong(String),
    Twice(String),
}

// By hand rather than derived, so that this file uses nothing outside `std` and the
// fuzz target can include it as it is.
impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "the path is longer than {TAIL_LEN_MAX} bytes"),
            Self::TooMany => write!(f, "more than {PAIRS_MAX} parameters"),
            Self::EmptyName => {
                f.write_str("the path has an empty segment where a parameter name should be")
            }
            Self::BadName(n) => write!(
                f,
                "parameter name {n:?} is not 1 to {NAME_LEN_MAX} letters, digits or '_'"
            ),
            Self::NoValue(n) => write!(f, "parameter {n} has no value"),
            Self::BadEscape(n) => write!(f, "parameter {n} has a malformed %-escape"),
            Self::BadText(n) => write!(
                f,
                "parameter {n} is not UTF-8 text without control characters"
            ),
            Self::ValueTooLong(n) => {
                write!(f, "parameter {n} is longer than {VALUE_LEN_MAX} bytes")
            }
            Self::Twice(n) => write!(f, "parameter {n} is given twice with different values"),
        }
    }
}

impl std::error::Error for ParamError {}

/// Whether `name` is a parameter name of the grammar.
fn name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Percent-decodes `raw` once; `None` on a malformed escape.
fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Checks a decoded value of parameter `name`.
fn checked_value(name: &str, bytes: Vec<u8>) -> Result<String, ParamError> {
    if bytes.len() > VALUE_LEN_MAX {
        return Err(ParamError::ValueTooLong(name.to_owned()));
    }
    let text = String::from_utf8(bytes).map_err(|_| ParamError::BadText(name.to_owned()))?;
    if text.chars().any(char::is_control) {
        return Err(ParamError::BadText(name.to_owned()));
    }
    Ok(text)
}

/// Parses a path tail (`coid/1/custid/5/`, without the leading slash) into its pairs,
/// names lower-cased, in order.
pub fn parse_tail(tail: &str) -> Result<Vec<(String, String)>, ParamError> {
    if tail.len() > TAIL_LEN_MAX {
        return Err(ParamError::TooLong);
    }
    let tail = tail.strip_prefix('/').unwrap_or(tail);
    let tail = tail.strip_suffix('/').unwrap_or(tail);
    let mut pairs: Vec<(String, String)> = Vec::new();
    if tail.is_empty() {
        return Ok(pairs);
    }
    let mut segments = tail.split('/');
    while let Some(name) = segments.next() {
        if name.is_empty() {
            return Err(ParamError::EmptyName);
        }
        if !name_is_valid(name) {
            let shown: String = name.chars().take(NAME_LEN_MAX).collect();
            return Err(ParamError::BadName(shown));
        }
        let name = name.to_ascii_lowercase();
        let raw = match segments.next() {
            Some(raw) if !raw.is_empty() => raw,
            _ => return Err(ParamError::NoValue(name)),
        };
        let decoded = percent_decode(raw).ok_or_else(|| ParamError::BadEscape(name.clone()))?;
        let value = checked_value(&name, decoded)?;
        if pairs.len() == PAIRS_MAX {
            return Err(ParamError::TooMany);
        }
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(ParamError::Twice(name));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Hides the value after every segment named in [`SECRETS`] (any case); other paths
/// are returned as they are, without copying.
pub fn redact_path(path: &str) -> Cow<'_, str> {
    // Only TouchTopUp's paths carry parameters; every other request stays cheap.
    if !path.starts_with(PATH_PREFIX) {
        return Cow::Borrowed(path);
    }
    if !path.split('/').any(is_secret) {
        return Cow::Borrowed(path);
    }
    let mut out = Vec::new();
    let mut hide_next = false;
    for segment in path.split('/') {
        if hide_next && !segment.is_empty() {
            out.push("REDACTED");
        } else {
            out.push(segment);
        }
        hide_next = is_secret(segment);
    }
    Cow::Owned(out.join("/"))
}

/// Every parameter of one request, names lower-cased.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Adds the pairs of one more source; a name already present with another value
    /// is an error, the same value is accepted once more.
    pub fn merge(&mut self, more: Vec<(String, String)>) -> Result<(), ParamError> {
        for (name, value) in more {
            if !name_is_valid(&name) {
                let shown: String = name.chars().take(NAME_LEN_MAX).collect();
                return Err(ParamError::BadName(shown));
            }
            let name = name.to_ascii_lowercase();
            if value.len() > VALUE_LEN_MAX {
                return Err(ParamError::ValueTooLong(name));
            }
            if value.chars().any(char::is_control) {
                return Err(ParamError::BadText(name));
            }
            match self.pairs.iter().find(|(n, _)| *n == name) {
                Some((_, v)) if *v == value => {}
                Some(_) => return Err(ParamError::Twice(name)),
                None => {
                    if self.pairs.len() == PAIRS_MAX {
                        return Err(ParamError::TooMany);
                    }
                    self.pairs.push((name, value));
                }
            }
        }
        Ok(())
    }

    /// The value of the first of `names` (lower-case aliases) that is present and not
    /// blank. A secret is read with [`Params::secret`] instead.
    pub fn get(&self, names: &[&str]) -> Option<&str> {
        debug_assert!(
            !names.iter().any(|n| is_secret(n)),
            "read the secret parameter {names:?} with Params::secret"
        );
        self.first(names)
    }

    /// The value of secret parameter `secret`, as [`Params::get`] reads others.
    pub fn secret(&self, secret: Secret) -> Option<&str> {
        self.first(secret.names())
    }

    fn first(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|want| {
            self.pairs
                .iter()
                .find(|(n, v)| n == want && !v.trim().is_empty())
                .map(|(_, v)| v.as_str())
        })
    }

    /// Whether any of `names` is present at all (even blank).
    pub fn has(&self, names: &[&str]) -> bool {
        names
            .iter()
            .any(|want| self.pairs.iter().any(|(n, _)| n == want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn tails_parse() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("/", &[]),
            ("coid/1/custid/5", &[("coid", "1"), ("custid", "5")]),
            ("coid/1/custid/5/", &[("coid", "1"), ("custid", "5")]),
            ("/coid/1", &[("coid", "1")]),
            ("pmtType/1/amt/5.00", &[("pmttype", "1"), ("amt", "5.00")]),
            (
                "username/someone@example.com/password/my%20secret%2Fpw",
                &[
                    ("username", "someone@example.com"),
                    ("password", "my secret/pw"),
                ],
            ),
            ("email/a%2Bb%40x.com", &[("email", "a+b@x.com")]),
            ("text/caf%C3%A9", &[("text", "café")]),
            ("format/xml", &[("format", "xml")]),
        ];
        for (tail, want) in cases {
            assert_eq!(parse_tail(tail), Ok(pairs(want)), "{tail}");
        }
    }

    #[test]
    fn bad_tails_say_what_is_wrong() {
        let cases: &[(&str, ParamError)] = &[
            ("coid", ParamError::NoValue("coid".into())),
            ("coid/1/custid", ParamError::NoValue("custid".into())),
            ("coid//custid/5", ParamError::NoValue("coid".into())),
            ("coid/1//custid/5", ParamError::EmptyName),
            ("co-id/1", ParamError::BadName("co-id".into())),
            ("coid/%zz", ParamError::BadEscape("coid".into())),
            ("coid/%4", ParamError::BadEscape("coid".into())),
            ("coid/%0A", ParamError::BadText("coid".into())),
            ("coid/%FF", ParamError::BadText("coid".into())),
            ("coid/1/COID/2", ParamError::Twice("coid".into())),
        ];
        for (tail, want) in cases {
            assert_eq!(parse_tail(tail).as_ref(), Err(want), "{tail}");
        }
    }

    #[test]
    fn limits_hold_at_the_edge() {
        let name = "n".repeat(NAME_LEN_MAX);
        assert!(parse_tail(&format!("{name}/1")).is_ok());
        assert!(matches!(
            parse_tail(&format!("{name}n/1")),
            Err(ParamError::BadName(_))
        ));
        let value = "v".repeat(VALUE_LEN_MAX);
        assert!(parse_tail(&format!("a/{value}")).is_ok());
        assert!(matches!(
            parse_tail(&format!("a/{value}v")),
            Err(ParamError::ValueTooLong(_))
        ));
        let full: Vec<String> = (0..PAIRS_MAX).map(|i| format!("p{i}/1")).collect();
        assert!(parse_tail(&full.join("/")).is_ok());
        let over = format!("{}/extra/1", full.join("/"));
        assert_eq!(parse_tail(&over), Err(ParamError::TooMany));
        let long = format!("a/{}", "v".repeat(TAIL_LEN_MAX));
        assert_eq!(parse_tail(&long), Err(ParamError::TooLong));
    }

    #[test]
    fn sources_merge_and_conflicts_are_errors() {
        let mut p = Params::default();
        p.merge(pairs(&[("coid", "1")])).unwrap();
        p.merge(pairs(&[("COID", "1"), ("Custid", "5")])).unwrap();
        assert_eq!(p.get(&["custid"]), Some("5"));
        assert_eq!(p.get(&["cid", "coid"]), Some("1"));
        assert_eq!(
            p.merge(pairs(&[("coid", "2")])),
            Err(ParamError::Twice("coid".into()))
        );
        p.merge(pairs(&[("blank", " ")])).unwrap();
        assert_eq!(p.get(&["blank"]), None);
        assert!(p.has(&["blank"]));
    }

    #[test]
    fn the_prefix_is_the_mount_point() {
        assert_eq!(PATH_PREFIX, crate::MOUNT);
    }

    #[test]
    fn secrets_are_redacted_from_paths() {
        let cases = [
            (
                "/index.php/accounts/auth_user/username/a@b.c/password/hunter2",
                "/index.php/accounts/auth_user/username/a@b.c/password/REDACTED",
            ),
            (
                "/index.php/accounts/auth_user/username/a@b.c/PASSWORD/hunter2/format/xml",
                "/index.php/accounts/auth_user/username/a@b.c/PASSWORD/REDACTED/format/xml",
            ),
            (
                "/index.php/users/user_check_reset_code/userid/1/resetcode/abc",
                "/index.php/users/user_check_reset_code/userid/1/resetcode/REDACTED",
            ),
            (
                "/index.php/accounts/validate_accountkey/linkkey/000001-000001-1",
                "/index.php/accounts/validate_accountkey/linkkey/REDACTED",
            ),
            (
                "/index.php/accounts/record_payment/pmtType/1/Token/TEST-1/format/xml",
                "/index.php/accounts/record_payment/pmtType/1/Token/REDACTED/format/xml",
            ),
            (
                "/index.php/users/user_change_password/uid/1/old_password/a/new_password/b",
                "/index.php/users/user_change_password/uid/1/old_password/REDACTED/new_password/REDACTED",
            ),
            ("/v1/wallets/password/x", "/v1/wallets/password/x"),
            (
                "/index.php/accounts/customer_balance/coid/1",
                "/index.php/accounts/customer_balance/coid/1",
            ),
        ];
        for (path, want) in cases {
            assert_eq!(redact_path(path), want, "{path}");
        }
        assert!(matches!(redact_path("/v1/customers"), Cow::Borrowed(_)));
        // Every name of every secret is redacted.
        for name in SECRETS.iter().flat_map(|s| s.names()) {
            let path = format!("/index.php/users/user_details/uid/1/{name}/s3cret");
            assert_eq!(
                redact_path(&path),
                format!("/index.php/users/user_details/uid/1/{name}/REDACTED")
            );
        }
    }

    #[test]
    fn secrets_are_read_as_secrets() {
        let mut params = Params::default();
        params
            .merge(pairs(&[("reset_code", "abc"), ("coid", "1")]))
            .unwrap();
        assert_eq!(params.secret(RESET_CODE), Some("abc"));
        assert_eq!(params.secret(PASSWORD), None);
        assert_eq!(params.get(&["coid"]), Some("1"));
        assert!(is_secret("ResetCode") && !is_secret("coid"));
    }
}
