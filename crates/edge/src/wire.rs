//! The house JSON shapes of `/v1`: free text with a length limit, a mutation, a
//! reference and an RFC 9457 problem. The native API answers in them, and so do the
//! administration routes a dialect brings under `/v1` (TouchTopUp's companies and
//! sales), so they live here rather than in either.

use crate::failure::Failure;
use crate::time::WireTime;
use prepaid_ledger::{
    METADATA_KEY_LEN_MAX, METADATA_PAIRS_MAX, METADATA_VALUE_LEN_MAX, Metadata, MetadataPatch,
    Mutation, NAME_LEN_MAX, Reference, WalletId, bounded_text,
};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use utoipa::ToSchema;

/// Free text of at most `MAX` bytes without control characters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text<const MAX: usize>(pub String);

/// A name (customer, wallet, product, tenant).
pub type Name = Text<NAME_LEN_MAX>;

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<const MAX: usize>;
        impl<const MAX: usize> Visitor<'_> for V<MAX> {
            type Value = Text<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string of at most {MAX} bytes")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<MAX>, E> {
                bounded_text(s, MAX).map(Text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V::<MAX>)
    }
}

/// Serialises a value by its `Display`.
pub fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Serialises an optional value by its `Display`, `None` as null.
pub fn display_opt<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReferenceOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub text: &'a str,
    pub link: &'a str,
}

impl<'a> From<&'a Reference> for ReferenceOut<'a> {
    fn from(r: &'a Reference) -> Self {
        Self {
            kind: r.parts().0,
            text: r.parts().1,
            link: r.parts().2,
        }
    }
}

/// Metadata as clients send it: an object of strings, checked by [`metadata`] once it
/// is read, so that an error names the key at fault.
pub type MetadataIn = BTreeMap<String, String>;

/// The metadata of `pairs` (none when absent); a refusal names the field,
/// `<prefix>metadata.<key>` when one value is at fault, else `<prefix>metadata`.
pub fn metadata(prefix: &str, pairs: Option<MetadataIn>) -> Result<Metadata, Failure> {
    let Some(pairs) = pairs else {
        return Ok(Metadata::default());
    };
    Metadata::new(pairs).map_err(|e| match e.key() {
        Some(key) => Failure::invalid_field(&format!("{prefix}metadata.{key}"), &e),
        None => Failure::invalid_field(&format!("{prefix}metadata"), &e),
    })
}

/// A change of metadata as a client sends it: a key with a value sets it, a key with
/// `null` removes it (JSON merge patch, RFC 7396).
pub type MetadataPatchIn = BTreeMap<String, Option<String>>;

/// The metadata change a body gives, its field named after `prefix` when refused.
pub fn metadata_patch(prefix: &str, changes: MetadataPatchIn) -> Result<MetadataPatch, Failure> {
    MetadataPatch::new(changes).map_err(|e| match e.key() {
        Some(key) => Failure::invalid_field(&format!("{prefix}metadata.{key}"), &e),
        None => Failure::invalid_field(&format!("{prefix}metadata"), &e),
    })
}

/// Metadata in an answer: an object of its pairs, ordered by key.
#[derive(Clone, Copy)]
pub struct MetadataOut<'a>(pub &'a Metadata);

impl Serialize for MetadataOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

/// The schema of every `metadata` field of `/v1`, in and out.
impl utoipa::PartialSchema for MetadataOut<'_> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let key = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(METADATA_KEY_LEN_MAX))
            .pattern(Some(r#"^[!#-%'-<>-Z^-~]+$"#));
        let value = ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(METADATA_VALUE_LEN_MAX));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(key))
            .additional_properties(Some(value))
            .max_properties(Some(METADATA_PAIRS_MAX))
            .description(Some(
                "The client's own labels: at most 32 pairs; a key is 1 to 40 bytes of \
                 visible ASCII other than [ ] = & \" \\, a value at most 500 bytes of text \
                 without control characters.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for MetadataOut<'_> {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Metadata")
    }
}

#[derive(Serialize, ToSchema)]
pub struct MutationOut<'a> {
    #[serde(serialize_with = "display")]
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub wallet_id: &'a str,
    pub customer_id: &'a str,
    pub unit: &'a str,
    pub scale: u8,
    /// `top_up`, `debit`, `adjustment`, `transfer_out`, `transfer_in`, `hold_commit`,
    /// `hold_release`, `expiry` or `reversal`.
    pub kind: &'static str,
    /// Signed: positive adds to the wallet.
    pub amount: i64,
    pub balance_after: i64,
    pub reference: ReferenceOut<'a>,
    #[serde(serialize_with = "display_opt")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub hold_id: Option<uuid::Uuid>,
    #[serde(serialize_with = "display_opt")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub transfer_id: Option<uuid::Uuid>,
    pub counter_wallet_id: Option<&'a str>,
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: WireTime,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: WireTime,
    /// The mutation a `reversal` reverses.
    #[serde(serialize_with = "display_opt")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub reverses: Option<uuid::Uuid>,
    /// What it took from each of the wallet's grants (positive), or gave back to them
    /// (negative), in order. A credit draws nothing: it makes the grant whose id is
    /// its own.
    pub drawn: Vec<DrawOut>,
    /// The client's labels; a hold's commit or release carries the hold's, a reversal
    /// its original's.
    pub metadata: MetadataOut<'a>,
}

/// What a mutation took from one grant, or a hold reserves of it.
#[derive(Serialize, ToSchema)]
pub struct DrawOut {
    /// The grant's id: the id of the mutation that made it.
    #[serde(serialize_with = "display")]
    #[schema(value_type = String, format = Uuid)]
    pub grant_id: uuid::Uuid,
    pub amount: i64,
}

impl DrawOut {
    /// The wire form of `draws`.
    pub fn list(draws: &[prepaid_ledger::Draw]) -> Vec<Self> {
        draws
            .iter()
            .map(|d| Self {
                grant_id: d.grant.0,
                amount: d.amount,
            })
            .collect()
    }
}

impl<'a> From<&'a Mutation> for MutationOut<'a> {
    fn from(m: &'a Mutation) -> Self {
        Self {
            id: m.id.0,
            wallet_id: m.wallet.as_str(),
            customer_id: m.customer.as_str(),
            unit: m.unit.code(),
            scale: m.unit.scale(),
            kind: m.kind.as_str(),
            amount: m.amount,
            balance_after: m.balance_after,
            reference: (&m.reference).into(),
            hold_id: m.hold.map(|h| h.0),
            transfer_id: m.transfer.map(|t| t.0),
            counter_wallet_id: m.counter_wallet.as_ref().map(WalletId::as_str),
            occurred_at: WireTime(m.occurred_at),
            recorded_at: WireTime(m.recorded_at),
            reverses: m.reverses.map(|r| r.0),
            drawn: DrawOut::list(&m.drawn),
            metadata: MetadataOut(&m.metadata),
        }
    }
}

/// An RFC 9457 problem (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct ProblemOut {
    /// `urn:prepaid:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable and machine-readable.
    pub code: String,
    /// With `insufficient_funds`.
    pub available: Option<i64>,
    /// With `insufficient_funds`.
    pub requested: Option<i64>,
    /// With `wallet_not_active`.
    pub wallet_status: Option<String>,
}

/// A reference as clients may send it: a string (its text) or the native API's
/// `ReferenceObject` (`{"type", "text", "link"}`, each optional): the schema of every `reference` field
/// of `/v1`. The parts are at most `REFERENCE_LEN_MAX` bytes.
pub struct ReferenceInput;

impl utoipa::PartialSchema for ReferenceInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(prepaid_ledger::REFERENCE_LEN_MAX))
            .description(Some("The reference's text."));
        OneOfBuilder::new()
            .item(text)
            .item(utoipa::openapi::Ref::from_schema_name("ReferenceObject"))
            .description(Some(
                "Why the change happens: its text, or an object of type, text and link.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ReferenceInput {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ReferenceInput")
    }
}

/// Declares in `doc` what every operation of `/v1` has in common and the routes do
/// not each spell out: the `Idempotency-Key` header every mutating operation takes,
/// the `Idempotent-Replayed` header of a repeated answer, and the 503 problem any
/// operation may answer while the store cannot be reached.
pub fn declare_conventions(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Content, Ref, RefOr, Required, ResponseBuilder};
    let problem = ResponseBuilder::new()
        .description("The store cannot be reached or the server is shutting down; try again.")
        .content(
            "application/problem+json",
            Content::new(Some(Ref::from_schema_name("ProblemOut"))),
        )
        .build();
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let idempotency = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes the request safe to repeat: a repeat with the same key and body answers \
             what the first did, with Idempotent-Replayed: true; the same key with another \
             body is 409 idempotency_conflict. 1 to 255 visible ASCII characters.",
        ))
        .schema(Some(string().min_length(Some(1)).max_length(Some(255))))
        .build();
    let replayed = HeaderBuilder::new()
        .schema(string().enum_values(Some(["true"])))
        .description(Some("`true` on an answer that repeats an earlier one."))
        .build();
    for item in doc.paths.paths.values_mut() {
        let mutating: [&mut Option<Operation>; 4] = [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in mutating.into_iter().flatten() {
            let params = op.parameters.get_or_insert_with(Vec::new);
            if !params.iter().any(|p| {
                p.name
                    .eq_ignore_ascii_case(crate::body::IDEMPOTENCY_KEY_HEADER)
            }) {
                params.push(idempotency.clone());
            }
            for (status, response) in op.responses.responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    response
                        .headers
                        .insert("Idempotent-Replayed".to_owned(), replayed.clone());
                }
            }
        }
        let all = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in all.into_iter().flatten() {
            op.responses
                .responses
                .entry("503".to_owned())
                .or_insert_with(|| RefOr::T(problem.clone()));
        }
    }
}
