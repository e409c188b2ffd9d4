//! Builders shared by the ledger's test files: a wallet and a hold in a known state, so
//! that each table row states only what it is about.

#![allow(dead_code)] // Each test file uses its own subset of the builders.

use prepaid_ledger::{
    Amount, CustomerId, Floor, Hold, HoldDirection, HoldId, HoldStatus, Reference, TenantId,
    Timestamp, Unit, Wallet, WalletId, WalletStatus,
};
use uuid::Uuid;

pub const NOW: i64 = 1_000;

pub fn ts(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

pub fn eur() -> Unit {
    Unit::new("EUR", 2).unwrap()
}

/// An active wallet without a validity window.
pub fn wallet(id: &str, balance: i64, held: i64, floor: Floor) -> Wallet {
    Wallet {
        tenant: TenantId::parse("t").unwrap(),
        id: WalletId::parse(id).unwrap(),
        customer: CustomerId::parse("c").unwrap(),
        unit: eur(),
        name: String::new(),
        product: String::new(),
        status: WalletStatus::Active,
        floor,
        ceiling: None,
        valid_from: None,
        valid_until: None,
        balance,
        held,
        incoming: 0,
        created_at: ts(0),
        updated_at: ts(0),
        metadata: prepaid_ledger::Metadata::default(),
    }
}

/// A pending debit hold of `amount` on `w`, without expiry.
pub fn hold(w: &Wallet, amount: i64) -> Hold {
    Hold {
        tenant: w.tenant.clone(),
        id: HoldId(Uuid::from_u128(7)),
        wallet: w.id.clone(),
        customer: w.customer.clone(),
        direction: HoldDirection::Debit,
        amount,
        committed_amount: None,
        status: HoldStatus::Pending,
        reference: Reference::default(),
        expires_at: None,
        created_at: ts(0),
        settled_at: None,
        reserved: Vec::new(),
        metadata: prepaid_ledger::Metadata::default(),
    }
}

pub fn amount(v: i64) -> Amount {
    Amount::new(v).unwrap()
}
