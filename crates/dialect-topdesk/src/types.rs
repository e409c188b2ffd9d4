//! The TOPdesk dialect's wire types: the `BalanceMutationDto` a client posts (read
//! with serde, then parsed into a [`NewMutation`] whose every field is checked), and
//! the HAL+JSON shapes it gets back.

use super::errors::Error;
use prepaid_edge::time::WireTime;
use prepaid_ledger::{Fingerprint, IdempotencyKey, Mutation, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The largest magnitude of `amountOfMinutes`, as TOPdesk documents it.
pub const MINUTES_ABS_MAX: i64 = 600_000;
/// The longest `on.reference`, in characters, as TOPdesk documents it.
pub const REFERENCE_CHARS_MAX: usize = 255;
/// The longest href accepted in `_links`, in bytes: a customer's href becomes its
/// link, so the ledger's bound on links.
pub const HREF_LEN_MAX: usize = prepaid_ledger::LINK_LEN_MAX;
/// The longest `modificationDate` accepted, in bytes.
pub const DATE_LEN_MAX: usize = 64;

/// What a resource refers to (`on.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceType {
    Incident,
    SimpleChange,
    ChangeActivity,
    ExternalSystem,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] = [
        Self::Incident,
        Self::SimpleChange,
        Self::ChangeActivity,
        Self::ExternalSystem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incident => "INCIDENT",
            Self::SimpleChange => "SIMPLE_CHANGE",
            Self::ChangeActivity => "CHANGE_ACTIVITY",
            Self::ExternalSystem => "EXTERNAL_SYSTEM",
        }
    }

    /// The type a mutation shows: its reference type when that is one of TOPdesk's
    /// ticket types, else `EXTERNAL_SYSTEM` (a top-up through this API, or anything
    /// recorded through the native API without a ticket type).
    pub fn of_reference_kind(kind: &str) -> Self {
        match kind {
            "INCIDENT" => Self::Incident,
            "SIMPLE_CHANGE" => Self::SimpleChange,
            "CHANGE_ACTIVITY" => Self::ChangeActivity,
            _ => Self::ExternalSystem,
        }
    }
}

// ---------------------------------------------------------------------------------
// What clients send.

/// A HAL link as sent: its `href`, and the other members a link object may carry
/// (draft-kelly-json-hal §5), which are taken and ignored. Anything else is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HalLinkIn {
    pub href: String,
    #[serde(default, rename = "templated")]
    pub _templated: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "type")]
    pub _media_type: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "deprecation")]
    pub _deprecation: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "name")]
    pub _name: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "profile")]
    pub _profile: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "title")]
    pub _title: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "hreflang")]
    pub _hreflang: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutationLinksIn {
    #[serde(rename = "for")]
    pub for_: HalLinkIn,
    #[serde(rename = "self")]
    pub self_: Option<HalLinkIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalResourceIn {
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub reference: Option<String>,
    #[serde(rename = "referenceLink")]
    pub reference_link: Option<String>,
}

/// `BalanceMutationDto` as a client posts it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceMutationIn {
    #[serde(rename = "_links")]
    pub links: MutationLinksIn,
    #[serde(rename = "amountOfMinutes")]
    pub amount_of_minutes: i64,
    #[serde(rename = "modificationDate")]
    pub modification_date: String,
    pub on: ExternalResourceIn,
}

/// An href that names a resource by the UUID in its last path segment
/// (`https://acme.topdesk.net/tas/api/branches/id/<uuid>`), or a `urn:uuid:<uuid>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UuidHref {
    pub href: String,
    pub id: Uuid,
}

/// The UUID an href names, or why it names none.
pub fn uuid_of_href(href: &str) -> Result<Uuid, String> {
    if href.is_empty() {
        return Err("must not be empty".into());
    }
    if href.len() > HREF_LEN_MAX {
        return Err(format!(
            "must be at most {HREF_LEN_MAX} bytes long, got {}",
            href.len()
        ));
    }
    if let Some(c) = href.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("must be a URI, without {c:?}"));
    }
    let path = href.split(['?', '#']).next().unwrap_or_default();
    let last = match path.strip_prefix("urn:uuid:") {
        Some(rest) => rest,
        None => path.rsplit('/').next().unwrap_or_default(),
    };
    Uuid::try_parse(last)
        .map_err(|_| format!("must end in a UUID (the identifier of the resource), got {href:?}"))
}

impl UuidHref {
    pub fn parse(href: &str) -> Result<Self, String> {
        uuid_of_href(href).map(|id| Self {
            href: href.to_owned(),
            id,
        })
    }
}

/// A balance mutation to record, parsed and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMutation {
    /// The id the client chose in `_links.self.href`, if any.
    pub id: Option<Uuid>,
    /// The customer (`_links.for.href`).
    pub customer: UuidHref,
    /// Within ±[`MINUTES_ABS_MAX`].
    pub minutes: i64,
    pub occurred_at: Timestamp,
    pub reference: String,
}

impl NewMutation {
    /// Checks every field of a posted DTO; the error names the first field at fault.
    pub fn parse(v: BalanceMutationIn) -> Result<Self, Error> {
        let customer =
            UuidHref::parse(&v.links.for_.href).map_err(|e| Error::field("_links.for.href", e))?;
        let id = v
            .links
            .self_
            .map(|l| uuid_of_href(&l.href))
            .transpose()
            .map_err(|e| Error::field("_links.self.href", e))?;
        let minutes = v.amount_of_minutes;
        if !(-MINUTES_ABS_MAX..=MINUTES_ABS_MAX).contains(&minutes) {
            return Err(Error::field(
                "amountOfMinutes",
                format!("must be from -{MINUTES_ABS_MAX} to {MINUTES_ABS_MAX}, got {minutes}"),
            ));
        }
        let occurred_at =
            parse_date(&v.modification_date).map_err(|e| Error::field("modificationDate", e))?;
        if v.on.kind != ResourceType::ExternalSystem {
            return Err(Error::field(
                "on.type",
                format!(
                    "only EXTERNAL_SYSTEM can be used when creating balance mutations through \
                     this API, got {}",
                    v.on.kind.as_str()
                ),
            ));
        }
        if v.on
            .reference_link
            .as_deref()
            .is_some_and(|l| !l.is_empty())
        {
            return Err(Error::field(
                "on.referenceLink",
                "must be empty for a balance mutation on EXTERNAL_SYSTEM",
            ));
        }
        let reference = v.on.reference.unwrap_or_default();
        let chars = reference.chars().count();
        if chars > REFERENCE_CHARS_MAX {
            return Err(Error::field(
                "on.reference",
                format!("must be at most {REFERENCE_CHARS_MAX} characters long, got {chars}"),
            ));
        }
        if reference.chars().any(char::is_control) {
            return Err(Error::field(
                "on.reference",
                "must not contain control characters",
            ));
        }
        Ok(Self {
            id,
            customer,
            minutes,
            occurred_at,
            reference,
        })
    }

    /// The idempotency key of a client-chosen id: posting the same id again is a
    /// repeat of the same request.
    pub fn idempotency_key(id: Uuid) -> IdempotencyKey {
        IdempotencyKey::parse(&format!("topdesk-balance-mutation:{id}"))
            .expect("a prefixed UUID is a short visible ASCII key")
    }

    /// The digest of what the mutation says: the customer, the minutes, the instant of
    /// `modificationDate` and the reference. Two posts of one id are the same request
    /// exactly when these are equal, however the JSON was spelled (key order, spacing,
    /// the time zone of the date, the host in the hrefs).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(b"topdesk balance mutation\0");
        h.update(self.customer.id.as_bytes());
        h.update(self.minutes.to_be_bytes());
        h.update(self.occurred_at.as_micros().to_be_bytes());
        h.update(self.reference.as_bytes());
        Fingerprint(h.finalize().into())
    }
}

/// Parses an ISO 8601 date-time (`2026-11-25T10:00:00Z`, `2026-11-25T11:00:00.000+0100`;
/// a date alone is its midnight in UTC).
pub fn parse_date(text: &str) -> Result<Timestamp, String> {
    if text.len() > DATE_LEN_MAX {
        return Err(format!("must be at most {DATE_LEN_MAX} bytes long"));
    }
    prepaid_query::iso8601::parse_micros(text)
        .map(Timestamp::from_micros)
        .ok_or_else(|| format!("not an ISO 8601 date-time such as 2026-11-25T10:00:00Z: {text:?}"))
}

// ---------------------------------------------------------------------------------
// What clients get back.

/// A HAL link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HalLink {
    pub href: String,
}

impl HalLink {
    pub fn new(href: impl Into<String>) -> Self {
        Self { href: href.into() }
    }
}

#[derive(Serialize)]
pub struct MutationLinksOut {
    #[serde(rename = "self")]
    pub self_: HalLink,
    #[serde(rename = "for")]
    pub for_: HalLink,
    /// The prepaid services account the mutation is of, so a HAL client can walk
    /// from one to the other.
    pub account: HalLink,
}

#[derive(Serialize)]
pub struct ExternalResourceOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reference: &'a str,
    #[serde(rename = "referenceLink", skip_serializing_if = "str::is_empty")]
    pub reference_link: &'a str,
}

/// `BalanceMutationDto` as shown; compact items leave out `on`.
#[derive(Serialize)]
pub struct BalanceMutationOut<'a> {
    #[serde(rename = "_links")]
    pub links: MutationLinksOut,
    #[serde(rename = "amountOfMinutes")]
    pub amount_of_minutes: i64,
    #[serde(rename = "modificationDate")]
    pub modification_date: WireTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<ExternalResourceOut<'a>>,
}

impl<'a> BalanceMutationOut<'a> {
    /// The DTO of `m`, whose own URL is `self_href`, whose customer's is `for_href` and
    /// whose account's is `account_href`.
    pub fn new(
        m: &'a Mutation,
        self_href: String,
        for_href: String,
        account_href: String,
        compact: bool,
    ) -> Self {
        Self {
            links: MutationLinksOut {
                self_: HalLink::new(self_href),
                for_: HalLink::new(for_href),
                account: HalLink::new(account_href),
            },
            amount_of_minutes: m.amount,
            modification_date: WireTime(m.occurred_at),
            on: (!compact).then(|| ExternalResourceOut {
                kind: ResourceType::of_reference_kind(m.reference.parts().0).as_str(),
                reference: m.reference.parts().1,
                reference_link: m.reference.parts().2,
            }),
        }
    }
}

#[derive(Serialize)]
pub struct CollectionLinksOut {
    #[serde(rename = "self")]
    pub self_: HalLink,
    pub first: HalLink,
    pub last: HalLink,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<HalLink>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<HalLink>,
    pub item: Vec<HalLink>,
}

#[derive(Serialize)]
pub struct EmbeddedOut<'a> {
    pub item: Vec<BalanceMutationOut<'a>>,
}

/// `HALCollectionBalanceMutationDto`.
#[derive(Serialize)]
pub struct CollectionOut<'a> {
    #[serde(rename = "_links")]
    pub links: CollectionLinksOut,
    #[serde(rename = "_embedded")]
    pub embedded: EmbeddedOut<'a>,
    pub page: u64,
    pub total: u64,
    #[serde(rename = "maxPageSize")]
    pub max_page_size: u64,
}

#[derive(Serialize)]
pub struct AccountLinksOut {
    #[serde(rename = "latestTopUp")]
    pub latest_top_up: HalLink,
    pub of: HalLink,
    #[serde(rename = "self")]
    pub self_: HalLink,
}

/// `PrepaidServicesAccountDto`.
#[derive(Serialize)]
pub struct AccountOut {
    #[serde(rename = "_links")]
    pub links: AccountLinksOut,
    /// Minutes.
    pub balance: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CUSTOMER: &str = "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    const MUTATION: &str = "0b7c1d2e-3f40-4152-8637-48596a7b8c9d";

    fn dto() -> serde_json::Value {
        json!({
            "_links": {
                "for": {"href": format!("https://acme.topdesk.net/tas/api/branches/id/{CUSTOMER}")},
                "self": {"href": format!("https://acme.topdesk.net/balance-mutations/{MUTATION}")}
            },
            "amountOfMinutes": 600,
            "modificationDate": "2026-11-25T11:00:00.000+0100",
            "on": {"type": "EXTERNAL_SYSTEM", "reference": "invoice 2026-17"}
        })
    }

    fn parse(v: serde_json::Value) -> Result<NewMutation, Error> {
        let raw: BalanceMutationIn = prepaid_edge::body::from_value("", &v).map_err(Error::from)?;
        NewMutation::parse(raw)
    }

    #[test]
    fn a_documented_dto_parses() {
        let m = parse(dto()).unwrap();
        assert_eq!(m.customer.id.to_string(), CUSTOMER);
        assert_eq!(m.id.unwrap().to_string(), MUTATION);
        assert_eq!(m.minutes, 600);
        assert_eq!(
            m.occurred_at,
            Timestamp::from_micros(
                prepaid_query::iso8601::parse_micros("2026-11-25T10:00:00Z").unwrap()
            )
        );
        assert_eq!(m.reference, "invoice 2026-17");
    }

    #[test]
    fn bad_fields_are_named() {
        type Change = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "_links.for.href",
                Box::new(|v| v["_links"]["for"]["href"] = json!("https://x/branches/12")),
            ),
            (
                "_links.for.href",
                Box::new(|v| v["_links"]["for"]["href"] = json!("")),
            ),
            (
                "missing field `for`",
                Box::new(|v| {
                    v["_links"].as_object_mut().unwrap().remove("for");
                }),
            ),
            (
                "_links.self.href",
                Box::new(|v| v["_links"]["self"]["href"] = json!("https://x/balance-mutations/1")),
            ),
            (
                "amountOfMinutes",
                Box::new(|v| v["amountOfMinutes"] = json!(MINUTES_ABS_MAX + 1)),
            ),
            (
                "amountOfMinutes",
                Box::new(|v| v["amountOfMinutes"] = json!(-MINUTES_ABS_MAX - 1)),
            ),
            (
                "amountOfMinutes",
                Box::new(|v| v["amountOfMinutes"] = json!(1.5)),
            ),
            (
                "amountOfMinutes",
                Box::new(|v| v["amountOfMinutes"] = json!("60")),
            ),
            (
                "modificationDate",
                Box::new(|v| v["modificationDate"] = json!("yesterday")),
            ),
            (
                "modificationDate",
                Box::new(|v| v["modificationDate"] = json!("2026-02-30T10:00:00Z")),
            ),
            ("on.type", Box::new(|v| v["on"]["type"] = json!("INCIDENT"))),
            ("on.type", Box::new(|v| v["on"]["type"] = json!("EXTERNAL"))),
            (
                "on.referenceLink",
                Box::new(|v| v["on"]["referenceLink"] = json!("https://x/incidents/1")),
            ),
            (
                "on.reference",
                Box::new(|v| v["on"]["reference"] = json!("r".repeat(REFERENCE_CHARS_MAX + 1))),
            ),
            (
                "on.reference",
                Box::new(|v| v["on"]["reference"] = json!("a\nb")),
            ),
            (
                "on.colour: unknown field `colour`",
                Box::new(|v| v["on"]["colour"] = json!("red")),
            ),
        ];
        for (field, change) in cases {
            let mut v = dto();
            change(&mut v);
            let e = parse(v.clone()).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{v}");
            assert!(
                e.message.contains(field),
                "{field} not named in {:?} for {v}",
                e.message
            );
        }
    }

    #[test]
    fn limits_are_inclusive() {
        for minutes in [MINUTES_ABS_MAX, -MINUTES_ABS_MAX, 0] {
            let mut v = dto();
            v["amountOfMinutes"] = json!(minutes);
            assert_eq!(parse(v).unwrap().minutes, minutes);
        }
        let mut v = dto();
        // Characters, not bytes: 255 two-byte characters are within the limit.
        v["on"]["reference"] = json!("é".repeat(REFERENCE_CHARS_MAX));
        assert!(parse(v).is_ok());
        let mut v = dto();
        v["on"]["referenceLink"] = json!("");
        v["_links"].as_object_mut().unwrap().remove("self");
        assert_eq!(parse(v).unwrap().id, None);
    }

    #[test]
    fn hrefs_name_a_uuid() {
        let id = uuid_of_href(&format!(
            "https://a.topdesk.net/tas/api/branches/id/{CUSTOMER}?x=1#f"
        ));
        assert_eq!(id.unwrap().to_string(), CUSTOMER);
        assert!(uuid_of_href(&format!("urn:uuid:{CUSTOMER}")).is_ok());
        assert!(uuid_of_href(&format!("/branches/{}", CUSTOMER.to_uppercase())).is_ok());
        assert!(uuid_of_href(&format!("https://a/{CUSTOMER}/")).is_err());
        assert!(uuid_of_href(&format!("https://a b/{CUSTOMER}")).is_err());
        let long = format!("https://a/{}/{CUSTOMER}", "p".repeat(HREF_LEN_MAX));
        assert!(uuid_of_href(&long).unwrap_err().contains("at most"));
    }

    #[test]
    fn fingerprints_follow_meaning_not_spelling() {
        let a = parse(dto()).unwrap();
        let mut v = dto();
        v["modificationDate"] = json!("2026-11-25T10:00:00Z");
        v["_links"]["for"]["href"] = json!(format!("urn:uuid:{CUSTOMER}"));
        let b = parse(v).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut v = dto();
        v["amountOfMinutes"] = json!(601);
        assert_ne!(a.fingerprint(), parse(v).unwrap().fingerprint());
        let mut v = dto();
        v["on"]["reference"] = json!("invoice 2026-18");
        assert_ne!(a.fingerprint(), parse(v).unwrap().fingerprint());
    }

    #[test]
    fn types_show_ticket_kinds_and_default_to_external() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::of_reference_kind(t.as_str()), t);
        }
        assert_eq!(
            ResourceType::of_reference_kind("payment"),
            ResourceType::ExternalSystem
        );
        assert_eq!(
            ResourceType::of_reference_kind(""),
            ResourceType::ExternalSystem
        );
    }
}
