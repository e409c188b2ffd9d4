//! The Talkdesk dialect's wire types: the wallet list and the single wallet, exactly
//! with the members the document lists, as borrowed views of ledger wallets.

use prepaid_edge::time::WireTime;
use serde::{Serialize, Serializer};

/// A hypertext reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    pub href: String,
}

/// The links of a list page. `prev` and `next` appear only where such a page exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListLinks {
    #[serde(rename = "self")]
    pub this: Link,
    pub first: Link,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<Link>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Link>,
    pub last: Link,
}

/// The links of one wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletLinks {
    #[serde(rename = "self")]
    pub this: Link,
}

/// A balance in credits: x10000 of the currency value. An `i128` because a wallet's
/// largest balance in its minor units, scaled up to credits, can pass `i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credits(pub i128);

impl Serialize for Credits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Most balances fit an i64; writing those as one keeps them readable by any
        // serializer, not only those that support 128-bit integers.
        match i64::try_from(self.0) {
            Ok(small) => serializer.serialize_i64(small),
            Err(_) => serializer.serialize_i128(self.0),
        }
    }
}

/// One wallet of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletOut<'a> {
    pub name: &'a str,
    pub product_name: &'a str,
    pub balance: Credits,
    pub account_id: &'a str,
    pub created_at: WireTime,
    pub updated_at: WireTime,
    pub _links: WalletLinks,
}

/// The embedded resources of a list page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Embedded<'a> {
    pub wallets: Vec<WalletOut<'a>>,
}

/// `200 (account wallet list)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletListOut<'a> {
    /// The wallets that match, on every page.
    pub total: u64,
    /// The wallets on this page.
    pub count: usize,
    pub page: u64,
    pub per_page: usize,
    pub _links: ListLinks,
    pub _embedded: Embedded<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prepaid_ledger::Timestamp;
    use serde_json::json;

    fn link(href: &str) -> Link {
        Link { href: href.into() }
    }

    #[test]
    fn a_list_has_exactly_the_documented_members() {
        let t = WireTime(Timestamp::from_secs(1_795_000_000));
        let page = WalletListOut {
            total: 3,
            count: 1,
            page: 2,
            per_page: 1,
            _links: ListLinks {
                this: link("h/2"),
                first: link("h/1"),
                prev: Some(link("h/1")),
                next: None,
                last: link("h/3"),
            },
            _embedded: Embedded {
                wallets: vec![WalletOut {
                    name: "saas_licenses",
                    product_name: "Talkdesk Fax",
                    balance: Credits(1_230_000),
                    account_id: "acme",
                    created_at: t,
                    updated_at: t,
                    _links: WalletLinks { this: link("w") },
                }],
            },
        };
        let when = "2026-11-18T11:06:40.000000Z";
        assert_eq!(
            serde_json::to_value(&page).unwrap(),
            json!({"total": 3, "count": 1, "page": 2, "per_page": 1,
                "_links": {"self": {"href": "h/2"}, "first": {"href": "h/1"},
                    "prev": {"href": "h/1"}, "last": {"href": "h/3"}},
                "_embedded": {"wallets": [{"name": "saas_licenses",
                    "product_name": "Talkdesk Fax", "balance": 1_230_000, "account_id": "acme",
                    "created_at": when, "updated_at": when,
                    "_links": {"self": {"href": "w"}}}]}})
        );
    }

    #[test]
    fn credits_past_i64_stay_exact() {
        let big = i128::from(i64::MAX) * 10_000;
        assert_eq!(
            serde_json::to_string(&Credits(big)).unwrap(),
            big.to_string()
        );
        assert_eq!(serde_json::to_string(&Credits(-5)).unwrap(), "-5");
    }
}
