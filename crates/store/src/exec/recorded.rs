//! What an idempotency key records, and its columns in every backend.

use super::*;

/// What an idempotency key recorded: the fingerprint of the request, and which
/// entities its answer showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub fingerprint: Fingerprint,
    pub result: RecordedResult,
}

/// The entities a recorded answer showed. A wallet answer keeps the status, balance,
/// held and update time it first showed; everything else is read again on a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedResult {
    Tenant {
        tenant: TenantId,
        admin_key: ApiKeyName,
    },
    ApiKey(ApiKeyName),
    Customer(CustomerId),
    Wallet {
        id: WalletId,
        status: WalletStatus,
        balance: i64,
        held: i64,
        updated_at: Timestamp,
    },
    Mutation(MutationId),
    Transfer {
        debit: MutationId,
        credit: MutationId,
    },
    Hold {
        hold: HoldId,
        /// The commit or release mutation; `None` for a placement.
        mutation: Option<MutationId>,
    },
    /// A setting put; whether it was created (the value is read again, if ever).
    Setting {
        created: bool,
    },
    /// Records written and jobs queued, no ledger change.
    Records,
}

/// A [`RecordedResult`] as the columns of an idempotency record, the same in every
/// backend: a kind, one or two ids as text, and a wallet answer's status, balance,
/// held and update time (in microseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedColumns {
    pub kind: &'static str,
    pub id: String,
    pub id2: Option<String>,
    pub wallet: Option<(&'static str, i64, i64, i64)>,
}

impl RecordedResult {
    /// What the answer `done` showed.
    pub fn of(done: &Done) -> Self {
        match done {
            Done::Tenant { tenant, admin_key } => Self::Tenant {
                tenant: tenant.clone(),
                admin_key: admin_key.name.clone(),
            },
            Done::ApiKey(k) => Self::ApiKey(k.name.clone()),
            Done::Customer(c) => Self::Customer(c.id.clone()),
            Done::Wallet(w) => Self::Wallet {
                id: w.id.clone(),
                status: w.status,
                balance: w.balance,
                held: w.held,
                updated_at: w.updated_at,
            },
            Done::Mutation(m) => Self::Mutation(m.id),
            Done::Transfer(t) => Self::Transfer {
                debit: t.debit.id,
                credit: t.credit.id,
            },
            Done::Hold { hold, mutation } => Self::Hold {
                hold: hold.id,
                mutation: mutation.as_ref().map(|m| m.id),
            },
            Done::Setting { created } => Self::Setting { created: *created },
            Done::Records => Self::Records,
        }
    }

    pub fn to_columns(&self) -> RecordedColumns {
        let plain = |kind, id: String, id2: Option<String>| RecordedColumns {
            kind,
            id,
            id2,
            wallet: None,
        };
        match self {
            Self::Tenant { tenant, admin_key } => {
                plain("tenant", tenant.to_string(), Some(admin_key.to_string()))
            }
            Self::ApiKey(name) => plain("api_key", name.to_string(), None),
            Self::Customer(id) => plain("customer", id.to_string(), None),
            Self::Wallet {
                id,
                status,
                balance,
                held,
                updated_at,
            } => RecordedColumns {
                kind: "wallet",
                id: id.to_string(),
                id2: None,
                wallet: Some((status.as_str(), *balance, *held, updated_at.as_micros())),
            },
            Self::Mutation(id) => plain("mutation", id.to_string(), None),
            Self::Transfer { debit, credit } => {
                plain("transfer", debit.to_string(), Some(credit.to_string()))
            }
            Self::Hold { hold, mutation } => plain(
                "hold",
                hold.to_string(),
                mutation.as_ref().map(ToString::to_string),
            ),
            Self::Setting { created } => plain(
                "setting",
                if *created { "created" } else { "updated" }.to_owned(),
                None,
            ),
            Self::Records => plain("records", String::new(), None),
        }
    }

    /// Decodes [`RecordedResult::to_columns`]; the error says what does not decode.
    pub fn from_columns(
        kind: &str,
        id: &str,
        id2: Option<&str>,
        wallet: Option<(&str, i64, i64, i64)>,
    ) -> Result<Self, String> {
        let uuid = |s: &str| Uuid::parse_str(s).map_err(|e| format!("recorded id {s:?}: {e}"));
        let second = || id2.ok_or_else(|| format!("recorded {kind} lacks its second id"));
        let text = |what: &str, e: &dyn std::fmt::Display| format!("recorded {what}: {e}");
        Ok(match kind {
            "tenant" => Self::Tenant {
                tenant: TenantId::parse(id).map_err(|e| text("tenant", &e))?,
                admin_key: ApiKeyName::parse(second()?).map_err(|e| text("key name", &e))?,
            },
            "api_key" => Self::ApiKey(ApiKeyName::parse(id).map_err(|e| text("key name", &e))?),
            "customer" => Self::Customer(CustomerId::parse(id).map_err(|e| text("customer", &e))?),
            "wallet" => {
                let (status, balance, held, updated_at) =
                    wallet.ok_or_else(|| "recorded wallet lacks its state".to_owned())?;
                Self::Wallet {
                    id: WalletId::parse(id).map_err(|e| text("wallet", &e))?,
                    status: WalletStatus::parse(status)
                        .ok_or_else(|| format!("recorded wallet status {status:?}"))?,
                    balance,
                    held,
                    updated_at: Timestamp::from_micros(updated_at),
                }
            }
            "mutation" => Self::Mutation(MutationId(uuid(id)?)),
            "transfer" => Self::Transfer {
                debit: MutationId(uuid(id)?),
                credit: MutationId(uuid(second()?)?),
            },
            "hold" => Self::Hold {
                hold: HoldId(uuid(id)?),
                mutation: id2.map(uuid).transpose()?.map(MutationId),
            },
            "setting" => Self::Setting {
                created: match id {
                    "created" => true,
                    "updated" => false,
                    other => return Err(format!("recorded setting outcome {other:?}")),
                },
            },
            "records" => Self::Records,
            other => return Err(format!("recorded result kind {other:?}")),
        })
    }
}
