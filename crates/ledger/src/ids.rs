//! Identifiers, parsed once at the edge.
//!
//! Client-chosen ids (tenants, customers, wallets, API key names, idempotency keys) are
//! short strings of visible ASCII without `/`, so that every one of them can stand as a
//! URL path segment in every dialect. Ids the server makes are UUIDs (version 7, so
//! they sort by creation time).

use std::fmt;
use uuid::Uuid;

/// The longest client-chosen id, in bytes.
pub const ID_LEN_MAX: usize = 64;

/// The longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} bytes long, got {len}")]
    TooLong { len: usize, max: usize },
    #[error(
        "character {ch:?} at position {at} is not allowed (use visible ASCII other than '/', '?', '#', '%' and '\\\\')"
    )]
    BadChar { ch: char, at: usize },
}

fn check_text_id(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > max {
        return Err(IdError::TooLong { len: s.len(), max });
    }
    for (at, ch) in s.chars().enumerate() {
        if !ch.is_ascii_graphic() || matches!(ch, '/' | '?' | '#' | '%' | '\\') {
            return Err(IdError::BadChar { ch, at });
        }
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_text_id(s, $max)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A tenant: one business whose customers, wallets and keys are invisible to others.
    TenantId,
    ID_LEN_MAX
);
text_id!(
    /// A customer, chosen by the client or a generated UUID.
    CustomerId,
    ID_LEN_MAX
);
text_id!(
    /// A wallet, chosen by the client (a TMF bucket id, say) or a generated UUID.
    WalletId,
    ID_LEN_MAX
);
text_id!(
    /// The name of an API key, unique within its tenant (the user name of HTTP Basic).
    ApiKeyName,
    ID_LEN_MAX
);
text_id!(
    /// A client's key that makes a mutating call safe to repeat.
    IdempotencyKey,
    IDEMPOTENCY_KEY_LEN_MAX
);
text_id!(
    /// The name of a per-tenant setting (`topdesk.service-user`, say).
    SettingKey,
    ID_LEN_MAX
);

impl TenantId {
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id.to_string())
    }
}
impl CustomerId {
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id.to_string())
    }
}
impl WalletId {
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id.to_string())
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A balance mutation.
    MutationId
);
uuid_id!(
    /// A hold (reservation).
    HoldId
);
uuid_id!(
    /// A transfer between two wallets (it owns one mutation on each).
    TransferId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ids_at_and_over_the_limit() {
        let at = "a".repeat(ID_LEN_MAX);
        assert!(CustomerId::parse(&at).is_ok());
        assert_eq!(
            CustomerId::parse(&format!("{at}a")),
            Err(IdError::TooLong {
                len: ID_LEN_MAX + 1,
                max: ID_LEN_MAX
            })
        );
        assert_eq!(WalletId::parse(""), Err(IdError::Empty));
        assert_eq!(
            WalletId::parse("a/b"),
            Err(IdError::BadChar { ch: '/', at: 1 })
        );
        assert_eq!(
            WalletId::parse("a b"),
            Err(IdError::BadChar { ch: ' ', at: 1 })
        );
        assert!(WalletId::parse("0.0.0.1+-balance_group+6336883+840+0").is_ok());
        assert!(SettingKey::parse(&"s".repeat(ID_LEN_MAX)).is_ok());
        assert!(SettingKey::parse(&"s".repeat(ID_LEN_MAX + 1)).is_err());
        let key = "k".repeat(IDEMPOTENCY_KEY_LEN_MAX);
        assert!(IdempotencyKey::parse(&key).is_ok());
        assert!(IdempotencyKey::parse(&format!("{key}k")).is_err());
    }
}
