//! What TouchTopUp keeps beside the ledger, as records of the tenant, and how its
//! numbers map onto ledger ids.
//!
//! | kind | key | value |
//! |---|---|---|
//! | `icrtouch.company` | coid (10 digits) | [`Company`]: name, db, currency and its scale |
//! | `icrtouch.customer` | coid.custid | [`CustomerInfo`]: title, names, account number |
//! | `icrtouch.key` | API key name | [`KeyScope`]: the one company the key may reach |
//! | `icrtouch.user` | uid | [`User`]: profile, argon2id hash, reset code digest, links |
//! | `icrtouch.email` | lower-cased email | [`EmailIndex`]: the uid |
//! | `icrtouch.counter` | name | [`Counter`]: the next number of a sequence |
//! | `icrtouch.sale` | mutation id | [`Sale`]: the till's sale behind a debit, with items |
//! | `icrtouch.header` | mutation id | [`Header`]: the transaction's `HEADERID` |
//! | `icrtouch.tid` | HEADERID | [`Tid`]: the mutation of a `HEADERID` |
//! | `icrtouch.payment` | provider token | [`Payment`]: what `make_payment` started, its hold |
//! | `icrtouch.wallet` | coid.walletid | [`WalletInfo`]: a company wallet |
//! | `icrtouch.assign` | coid.walletid.custid | [`Assigned`]: a customer assigned to it |
//! | `icrtouch.charge` | coid.chargeid | [`Charge`]: a charge and who was charged |
//!
//! Numbers in keys are zero-padded to ten digits so that keys sort as numbers do.
//! Money is never in a record: balances, payments and charges are ledger mutations.
//!
//! Ledger ids: customer `custid` of company `coid` is the ledger customer `<coid>.<custid>`
//! whose main wallet (in the company currency) has the same id; its wallet of company
//! wallet `w` is `<coid>.<custid>.w<w>`.

use super::errors::{Fail, refusal, store_fail};
use prepaid_edge::SharedState;
use prepaid_edge::auth::Principal;
use prepaid_edge::submit::Operation;
use prepaid_ledger::{
    Command, CustomerId, Done, Fingerprint, IdempotencyKey, Reference, TenantId, Timestamp,
    WalletId,
};
use prepaid_ledger::{RecordKey, RecordKind};
use prepaid_store::records::value_is_valid;
use prepaid_store::{PAGE_SIZE_MAX, Record};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const COMPANY_KIND: RecordKind = RecordKind::new("icrtouch.company");
pub const CUSTOMER_KIND: RecordKind = RecordKind::new("icrtouch.customer");
pub const KEY_KIND: RecordKind = RecordKind::new("icrtouch.key");
pub const USER_KIND: RecordKind = RecordKind::new("icrtouch.user");
pub const EMAIL_KIND: RecordKind = RecordKind::new("icrtouch.email");
pub const COUNTER_KIND: RecordKind = RecordKind::new("icrtouch.counter");
pub const SALE_KIND: RecordKind = RecordKind::new("icrtouch.sale");
pub const HEADER_KIND: RecordKind = RecordKind::new("icrtouch.header");
pub const TID_KIND: RecordKind = RecordKind::new("icrtouch.tid");
pub const PAYMENT_KIND: RecordKind = RecordKind::new("icrtouch.payment");
pub const WALLET_KIND: RecordKind = RecordKind::new("icrtouch.wallet");
pub const ASSIGN_KIND: RecordKind = RecordKind::new("icrtouch.assign");
pub const CHARGE_KIND: RecordKind = RecordKind::new("icrtouch.charge");

/// How often a compare-and-set that lost a race is tried again before giving up.
pub const CAS_RETRIES_MAX: usize = 64;
/// The most records one prefix listing reads (customers of a wallet, say); more is an
/// error, never a silently shortened list.
pub const LIST_RECORDS_MAX: usize = 10_000;

/// Whether a list of `count` entries bounded by `max` has room for one more.
pub fn has_room(count: usize, max: usize) -> bool {
    count < max
}

/// A number in a record key, padded so that keys sort as numbers.
pub fn pad(n: u64) -> String {
    format!("{n:010}")
}

pub fn company_key(coid: u32) -> String {
    pad(coid.into())
}
pub fn customer_key(coid: u32, custid: u32) -> String {
    format!("{}.{}", pad(coid.into()), pad(custid.into()))
}
pub fn wallet_key(coid: u32, wallet: u32) -> String {
    format!("{}.{}", pad(coid.into()), pad(wallet.into()))
}
pub fn assign_prefix(coid: u32, wallet: u32) -> String {
    format!("{}.", wallet_key(coid, wallet))
}
pub fn assign_key(coid: u32, wallet: u32, custid: u32) -> String {
    format!("{}{}", assign_prefix(coid, wallet), pad(custid.into()))
}
pub fn charge_key(coid: u32, charge: u32) -> String {
    format!("{}.{}", pad(coid.into()), pad(charge.into()))
}

/// The ledger customer of `custid` in company `coid`.
pub fn ledger_customer(coid: u32, custid: u32) -> CustomerId {
    CustomerId::parse(&format!("{coid}.{custid}")).expect("digits and a dot form a valid id")
}
/// The main wallet of `custid` in company `coid`.
pub fn main_wallet(coid: u32, custid: u32) -> WalletId {
    WalletId::parse(&format!("{coid}.{custid}")).expect("digits and a dot form a valid id")
}
/// The ledger wallet of `custid` in company wallet `wallet`.
pub fn wallet_wallet(coid: u32, custid: u32, wallet: u32) -> WalletId {
    WalletId::parse(&format!("{coid}.{custid}.w{wallet}"))
        .expect("digits, dots and a letter form a valid id")
}
/// The company wallet number of a ledger wallet id of `custid` in `coid`, if it is one.
pub fn wallet_number(coid: u32, custid: u32, id: &WalletId) -> Option<u32> {
    let rest = id.as_str().strip_prefix(&format!("{coid}.{custid}.w"))?;
    rest.parse().ok().filter(|n: &u32| n.to_string() == rest)
}

/// A company.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Company {
    pub coid: u32,
    pub name: String,
    pub db: String,
    /// The ISO 4217 code of its money, `GBP`.
    pub currency: String,
    /// Decimals of the currency's minor unit, 2 for `GBP`.
    pub scale: u8,
}

/// A customer's details.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomerInfo {
    pub coid: u32,
    pub custid: u32,
    pub title: String,
    pub firstname: String,
    pub lastname: String,
    pub accountnumber: String,
}

/// The company an API key is limited to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyScope {
    pub coid: u32,
}

/// A pending password reset: only the SHA-256 of the code is kept.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reset {
    pub digest: String,
    pub expires_at_micros: i64,
}

/// A customer account linked to a user.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Link {
    pub coid: u32,
    pub custid: u32,
}

/// A portal user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub title: String,
    pub firstname: String,
    pub surname: String,
    pub address_1: String,
    pub address_2: String,
    pub address_3: String,
    pub address_4: String,
    pub postcode: String,
    pub tel: String,
    pub email: String,
    /// The argon2id PHC string of the password.
    pub password_phc: String,
    pub reset: Option<Reset>,
    pub links: Vec<Link>,
    /// The company whose key created the user; `None` when a tenant-wide key did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EmailIndex {
    pub uid: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counter {
    pub next: u64,
}

/// One line of a till sale.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Item {
    pub itemrecord: u64,
    pub qty: i64,
    pub text: String,
}

/// The till's sale behind a debit of a main wallet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sale {
    pub site: u32,
    pub sale_total_minor: i64,
    pub consec_number: u64,
    pub sale_id: u64,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub headerid: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tid {
    /// The mutation's id (a UUID).
    pub mutation: String,
}

/// A payment `make_payment` started.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Payment {
    pub payment_id: u64,
    pub coid: u32,
    pub custid: u32,
    /// The company wallet paid into; `None` for the main balance.
    pub wallet: Option<u32>,
    /// The charge the payment is for, if the client named one.
    pub charge: Option<u32>,
    pub amount_minor: i64,
    pub currency: String,
    /// TouchTopUp's `PAYMENTSOURCE` of the payment.
    pub source: u8,
    /// The credit hold (a UUID) that sets aside the payment's room in the wallet until
    /// it is credited, declined or expired; `None` for payments started before payments
    /// held their room.
    #[serde(default)]
    pub hold: Option<String>,
    /// Set once the customer was credited.
    pub credited: Option<Credited>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credited {
    /// The credit's mutation id (a UUID).
    pub mutation: String,
    pub transaction_id: String,
}

/// `TYPE` of an event wallet.
pub const WALLET_TYPE_EVENT: u8 = 0;
/// `TYPE` of a recurring or open wallet.
pub const WALLET_TYPE_RECURRING: u8 = 1;

/// A company wallet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WalletInfo {
    pub walletid: u32,
    pub coid: u32,
    pub name: String,
    pub description: String,
    /// [`WALLET_TYPE_EVENT`] or [`WALLET_TYPE_RECURRING`].
    pub wallet_type: u8,
    /// 1 open for payments and charges, 0 closed.
    pub status: u8,
    pub paybydate: String,
    pub purposedate: String,
    pub allowoverpay: u8,
}

impl WalletInfo {
    /// The ledger ceiling of an assigned customer's wallet: an event wallet without
    /// overpay takes payments only up to what its charges owe.
    pub fn ceiling(&self) -> Option<i64> {
        (self.wallet_type == WALLET_TYPE_EVENT && self.allowoverpay == 0).then_some(0)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Assigned {
    pub custid: u32,
}

/// A charge of a company wallet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Charge {
    pub id: u32,
    pub coid: u32,
    pub wallet: u32,
    pub charge_minor: i64,
    pub duedate: String,
    /// The customers charged.
    pub customers: Vec<u32>,
    /// The customers whose charge was revoked.
    pub revoked: Vec<u32>,
}

/// The reference kind of a payment's credit.
pub const PAYMENT_REFERENCE_KIND: &str = "touchtopup-payment";
/// The reference kind of a charge's debit.
pub const CHARGE_REFERENCE_KIND: &str = "touchtopup-charge";
/// The reference kind of a revoked charge's credit.
pub const REVOKE_REFERENCE_KIND: &str = "touchtopup-revoke";
/// The reference kind of a till sale's debit.
pub const SALE_REFERENCE_KIND: &str = "touchtopup-sale";

/// `PAYMENTSOURCE` of a payment at the till (and of any credit not made by a provider).
pub const SOURCE_TILL: u8 = 0;
/// `PAYMENTSOURCE` of a payment through the payment provider (PayPal by default).
pub const SOURCE_PROVIDER: u8 = 1;

/// The reference of a payment's credit: the provider's transaction id as text, and the
/// source and charge in the link (`1` or `1:47`).
pub fn payment_reference(source: u8, transaction_id: &str, charge: Option<u32>) -> Reference {
    let link = match charge {
        Some(c) => format!("{source}:{c}"),
        None => source.to_string(),
    };
    // A provider's transaction id is short (PayPal's are 17 characters); one that is
    // no reference text is kept out rather than refusing a payment already taken.
    Reference::new(PAYMENT_REFERENCE_KIND, transaction_id, &link)
        .unwrap_or_else(|_| Reference::known(PAYMENT_REFERENCE_KIND, "", &link))
}

/// `PAYMENTSOURCE`, `TRANSACTIONID` and `CHARGEID` (0 for none) of a credit.
pub fn payment_of(reference: &Reference) -> (u8, String, u32) {
    let (kind, text, link) = reference.parts();
    if kind != PAYMENT_REFERENCE_KIND {
        return (SOURCE_TILL, String::new(), 0);
    }
    let (source, charge) = link.split_once(':').unwrap_or((link, "0"));
    (
        source.parse().unwrap_or(SOURCE_TILL),
        text.to_owned(),
        charge.parse().unwrap_or(0),
    )
}

/// The company and customer numbers of a ledger customer id `<coid>.<custid>`.
pub fn split_customer(id: &CustomerId) -> Option<(u32, u32)> {
    let (coid, custid) = id.as_str().split_once('.')?;
    Some((coid.parse().ok()?, custid.parse().ok()?))
}

/// Records of one tenant, read and written as typed values.
/// The step that takes a number of a sequence (see [`Recs::number_to_take`]).
pub struct TakeNumber {
    name: RecordKey,
    value: String,
    expected: Option<i64>,
}

impl TakeNumber {
    /// Takes the one number.
    pub fn link(self, op: Operation) -> Operation {
        op.put_record(COUNTER_KIND, &self.name, self.value, self.expected)
    }

    /// Takes every number below `next` (from the one it was made for).
    pub fn link_to(self, op: Operation, next: u64) -> Result<Operation, Fail> {
        let value = encode(COUNTER_KIND, &Counter { next })?;
        Ok(op.put_record(COUNTER_KIND, &self.name, value, self.expected))
    }
}

pub struct Recs<'a> {
    pub state: &'a SharedState,
    /// The dialect's own state.
    pub own: &'a super::DialectState,
    pub tenant: &'a TenantId,
    pub now: Timestamp,
}

fn decode<T: DeserializeOwned>(r: &Record) -> Result<T, Fail> {
    serde_json::from_str(&r.value).map_err(|e| {
        tracing::error!(kind = %r.kind, key = %r.key, error = %e, "a corrupt TouchTopUp record");
        Fail::internal()
    })
}

pub fn encode<T: Serialize>(kind: RecordKind, value: &T) -> Result<String, Fail> {
    let text = serde_json::to_string(value).map_err(|e| {
        tracing::error!(kind = %kind, error = %e, "a TouchTopUp record does not serialise");
        Fail::internal()
    })?;
    if !value_is_valid(&text) {
        return Err(Fail::bad("The record would be too large"));
    }
    Ok(text)
}

/// The record key `key`, refused when it is too long or holds control characters
/// (an email address or a token a client sent, say).
pub fn record_key(key: &str) -> Result<RecordKey, Fail> {
    RecordKey::parse(key).map_err(|_| Fail::bad("A key is too long or holds control characters"))
}

impl Recs<'_> {
    /// The record and its version.
    pub async fn get<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        key: &str,
    ) -> Result<Option<(T, i64)>, Fail> {
        let key = record_key(key)?;
        let record = self
            .state
            .store
            .record(self.tenant, kind, &key)
            .await
            .map_err(|e| store_fail(&e, "reading a TouchTopUp record"))?;
        record
            .map(|r| decode(&r).map(|v| (v, r.version)))
            .transpose()
    }

    /// Compare-and-set (see `Store::put_record`); `false` when the condition failed.
    pub async fn put<T: Serialize>(
        &self,
        kind: RecordKind,
        key: &str,
        value: &T,
        expected: Option<i64>,
    ) -> Result<bool, Fail> {
        let key = record_key(key)?;
        let text = encode(kind, value)?;
        let put = self
            .state
            .store
            .put_record(self.tenant, kind, &key, &text, expected, self.now)
            .await
            .map_err(|e| store_fail(&e, "writing a TouchTopUp record"))?;
        Ok(put.is_some())
    }

    pub async fn delete(&self, kind: RecordKind, key: &str) -> Result<bool, Fail> {
        let key = record_key(key)?;
        self.state
            .store
            .delete_record(self.tenant, kind, &key)
            .await
            .map_err(|e| store_fail(&e, "deleting a TouchTopUp record"))
    }

    /// Every record of `kind` whose key starts with `prefix`, in key order, at most
    /// [`LIST_RECORDS_MAX`].
    pub async fn list<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, Fail> {
        let mut out = Vec::new();
        // Every key with the prefix sorts after it; an empty prefix lists from the start.
        let mut after = RecordKey::parse(prefix).ok();
        loop {
            let page = self
                .state
                .store
                .records(self.tenant, kind, after.as_ref(), PAGE_SIZE_MAX)
                .await
                .map_err(|e| store_fail(&e, "listing TouchTopUp records"))?;
            let full = page.len() == PAGE_SIZE_MAX;
            for r in &page {
                if !r.key.as_str().starts_with(prefix) {
                    return Ok(out);
                }
                if out.len() == LIST_RECORDS_MAX {
                    // Callers bound what they add, so this is never reached; answering
                    // with part of a list could charge some customers and not others.
                    tracing::error!(kind = %kind, prefix, "a TouchTopUp listing passed its limit");
                    return Err(Fail::conflict(format!(
                        "More than {LIST_RECORDS_MAX} records to list"
                    )));
                }
                out.push((r.key.as_str().to_owned(), decode(r)?));
            }
            match page.last() {
                Some(last) if full => after = Some(last.key.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// The next number of sequence `name` and the step that takes it, to be linked to
    /// the unit of what it numbers: the number is taken exactly when that commits.
    /// Another request taking one meanwhile refuses the unit with
    /// [`prepaid_ledger::Refusal::RecordConflict`]; the caller sends it again with a
    /// fresh number.
    pub async fn number_to_take(&self, name: &str) -> Result<(u64, TakeNumber), Fail> {
        let key = record_key(name)?;
        let (n, expected) = match self.get::<Counter>(COUNTER_KIND, name).await? {
            Some((c, v)) => (c.next, Some(v)),
            None => (1, None),
        };
        let value = encode(COUNTER_KIND, &Counter { next: n + 1 })?;
        Ok((
            n,
            TakeNumber {
                name: key,
                value,
                expected,
            },
        ))
    }

    /// The next number of sequence `name`, from 1; numbers are never given twice, even
    /// by several instances at once (a number may be skipped when a request fails).
    pub async fn next_number(&self, name: &str) -> Result<u64, Fail> {
        for _ in 0..CAS_RETRIES_MAX {
            let current = self.get::<Counter>(COUNTER_KIND, name).await?;
            let (n, expected) = match current {
                Some((c, v)) => (c.next, Some(v)),
                None => (1, None),
            };
            if self
                .put(COUNTER_KIND, name, &Counter { next: n + 1 }, expected)
                .await?
            {
                return Ok(n);
            }
        }
        tracing::warn!(name, "a TouchTopUp counter stayed contended");
        Err(Fail::unavailable("The service is busy; try again"))
    }

    pub async fn company(&self, coid: u32) -> Result<Company, Fail> {
        self.get::<Company>(COMPANY_KIND, &company_key(coid))
            .await?
            .map(|(c, _)| c)
            .ok_or_else(Fail::no_data)
    }

    pub async fn customer(&self, coid: u32, custid: u32) -> Result<CustomerInfo, Fail> {
        self.get::<CustomerInfo>(CUSTOMER_KIND, &customer_key(coid, custid))
            .await?
            .map(|(c, _)| c)
            .ok_or_else(Fail::no_data)
    }

    pub async fn wallet(&self, coid: u32, wallet: u32) -> Result<(WalletInfo, i64), Fail> {
        self.get::<WalletInfo>(WALLET_KIND, &wallet_key(coid, wallet))
            .await?
            .ok_or_else(Fail::no_data)
    }
}

/// Sends one command as `principal`; a refusal becomes its TouchTopUp answer.
pub async fn submit(
    state: &SharedState,
    principal: &Principal,
    idempotency: Option<(IdempotencyKey, Fingerprint)>,
    command: Command,
) -> Result<(Done, bool), Fail> {
    submit_op(
        state,
        Operation::new(principal, command).idempotency(idempotency),
    )
    .await
}

/// Sends an operation; a refusal becomes its TouchTopUp answer.
pub async fn submit_op(state: &SharedState, op: Operation) -> Result<(Done, bool), Fail> {
    op.submit(state, "submitting a TouchTopUp command")
        .await
        .map_err(Fail::from)?
        .map_err(|r| refusal(&r))
}

/// The engine answered with another kind of result: a bug.
pub fn unexpected(wanted: &str) -> Fail {
    tracing::error!(wanted, "the engine answered with another kind of result");
    Fail::internal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_numbers_and_ids_round_trip() {
        assert!(customer_key(1, 10) > customer_key(1, 9));
        assert!(assign_key(1, 2, 5).starts_with(&assign_prefix(1, 2)));
        assert!(!assign_key(1, 20, 5).starts_with(&assign_prefix(1, 2)));
        assert_eq!(main_wallet(1, 5).as_str(), "1.5");
        let w = wallet_wallet(1, 5, 3);
        assert_eq!(w.as_str(), "1.5.w3");
        assert_eq!(wallet_number(1, 5, &w), Some(3));
        assert_eq!(wallet_number(1, 5, &main_wallet(1, 5)), None);
        assert_eq!(wallet_number(1, 55, &w), None);
        assert_eq!(
            wallet_number(1, 5, &WalletId::parse("1.5.w03").unwrap()),
            None
        );
        let longest = wallet_wallet(999_999, 999_999, 999_999_999);
        assert!(longest.as_str().len() <= prepaid_ledger::ID_LEN_MAX);
    }

    #[test]
    fn lists_have_room_up_to_their_limit() {
        assert!(has_room(0, 1));
        assert!(has_room(LIST_RECORDS_MAX - 1, LIST_RECORDS_MAX));
        assert!(!has_room(LIST_RECORDS_MAX, LIST_RECORDS_MAX));
    }

    #[test]
    fn payment_references_round_trip() {
        let r = payment_reference(SOURCE_PROVIDER, "1G653499EP2221416", Some(47));
        assert_eq!(payment_of(&r), (1, "1G653499EP2221416".into(), 47));
        let r = payment_reference(SOURCE_PROVIDER, "7D3", None);
        assert_eq!(payment_of(&r), (1, "7D3".into(), 0));
        assert_eq!(payment_of(&Reference::default()), (0, String::new(), 0));
        assert_eq!(split_customer(&ledger_customer(12, 345)), Some((12, 345)));
    }

    #[test]
    fn only_event_wallets_without_overpay_have_a_ceiling() {
        let mut w = WalletInfo {
            walletid: 1,
            coid: 1,
            name: String::new(),
            description: String::new(),
            wallet_type: WALLET_TYPE_EVENT,
            status: 1,
            paybydate: String::new(),
            purposedate: String::new(),
            allowoverpay: 0,
        };
        assert_eq!(w.ceiling(), Some(0));
        w.allowoverpay = 1;
        assert_eq!(w.ceiling(), None);
        w.allowoverpay = 0;
        w.wallet_type = WALLET_TYPE_RECURRING;
        assert_eq!(w.ceiling(), None);
    }
}
