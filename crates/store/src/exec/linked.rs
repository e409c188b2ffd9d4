//! Linked requests: the steps of one client operation carried out as one unit, and the
//! records and jobs they write beside the ledger.
//!
//! A request whose command has steps linked before or after it runs them in order
//! against the batch's state. Every change a step makes to that state is journalled
//! (the old value of a wallet, hold or system account it changes; the rows it adds),
//! so that a refusal of a later step rolls the unit back to exactly the state before
//! its first step, and the batch goes on as if the request had never been made. A
//! request with no linked step keeps no journal: a single command asks every rule
//! before it changes anything, so it needs none.
//!
//! Record steps compare and set against the record as the batch sees it (the stored
//! version, then the batch's own writes); job steps queue a job unless its id is
//! queued already (by the store or by the batch).

use super::{Exec, Stop};
use crate::records::value_is_valid;
use prepaid_ledger::{
    Command, Customer, CustomerId, HoldId, JobQueue, RecordKey, RecordKind, Refusal, Step,
    TenantId, Timestamp, Wallet, WalletId,
};
use std::collections::HashSet;

/// A record's place: tenant, kind and key.
pub type RecordPlace = (TenantId, RecordKind, RecordKey);

/// A record as the batch sees it.
#[derive(Clone, Debug)]
pub(super) struct RecordSlot {
    /// Its version as stored before the batch; `None` when there was none.
    pub read: Option<i64>,
    /// Its version now; `None` when there is none.
    pub version: Option<i64>,
    /// Its value as the batch sees it (`None` when there is none).
    pub value: Option<String>,
    /// Whether the batch wrote or deleted it.
    pub written: bool,
}

/// A record a batch changed: what the backend must write, given what it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordChange {
    pub tenant: TenantId,
    pub kind: RecordKind,
    pub key: RecordKey,
    /// The version the batch read; `None` when there was no record. A backend that
    /// does not hold the row locked writes only where the version is still this one,
    /// and treats a miss as a lost race.
    pub read: Option<i64>,
    /// The version and value to leave; `None` deletes it.
    pub write: Option<(i64, String)>,
    /// The time of the batch (its `created_at` when new, `updated_at` always).
    pub at: Timestamp,
}

/// A job a batch queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    pub tenant: TenantId,
    pub queue: JobQueue,
    pub id: RecordKey,
    pub payload: String,
    pub due_at: Timestamp,
}

/// One change to undo when a unit is refused, in the reverse order of the journal.
pub(super) enum Undo {
    Wallet(usize, Box<Wallet>, bool, bool),
    Hold(usize, Box<prepaid_ledger::Hold>, bool),
    Account(usize, i64),
    NewWallet(TenantId, WalletId, usize),
    NewHold(HoldId, usize),
    NewCustomer(TenantId, CustomerId),
    CustomerLink(TenantId, CustomerId, Box<Customer>),
    Record(RecordPlace, Option<RecordSlot>),
    Grants(TenantId, WalletId, Option<Vec<super::grants::GrantSlot>>),
}

/// The lengths of the batch's append-only lists when a unit began.
struct Marks {
    mutations: usize,
    customers: usize,
    customer_links: usize,
    jobs: usize,
    topups_settled: usize,
}

impl Exec<'_> {
    /// Notes a change while a unit is journalled.
    pub(super) fn journal(&mut self, undo: impl FnOnce(&Self) -> Undo) {
        if self.journal.is_some() {
            let entry = undo(self);
            if let Some(journal) = &mut self.journal {
                journal.push(entry);
            }
        }
    }

    /// Journals the wallet at `ix` before it changes.
    pub(super) fn save_wallet(&mut self, ix: usize) {
        self.journal(|e| {
            let slot = &e.wallets[ix];
            Undo::Wallet(
                ix,
                Box::new(slot.wallet.clone()),
                slot.dirty,
                slot.relabelled,
            )
        });
    }

    /// Journals the hold at `ix` before it changes.
    pub(super) fn save_hold(&mut self, ix: usize) {
        self.journal(|e| {
            let slot = &e.holds[ix];
            Undo::Hold(ix, Box::new(slot.hold.clone()), slot.dirty)
        });
    }

    /// Journals the system account at `ix` before it changes.
    pub(super) fn save_account(&mut self, ix: usize) {
        self.journal(|e| Undo::Account(ix, e.accounts[ix].balance));
    }

    /// Carries out `before`, the command and `after` as one unit; on a refusal (or a
    /// row that cannot be used) of any step, undoes every step before it.
    pub(super) fn linked(
        &mut self,
        request: &prepaid_ledger::Request,
    ) -> Result<super::Made, Stop> {
        debug_assert!(self.journal.is_none(), "units do not nest");
        self.journal = Some(Vec::new());
        let marks = Marks {
            mutations: self.mutations.len(),
            customers: self.new_customers.len(),
            customer_links: self.customer_links.len(),
            jobs: self.jobs.len(),
            topups_settled: self.topups_settled.len(),
        };
        let result = self.unit_steps(request);
        let journal = self.journal.take().unwrap_or_default();
        if result.is_err() {
            self.roll_back(journal, &marks);
        }
        result
    }

    fn unit_steps(&mut self, request: &prepaid_ledger::Request) -> Result<super::Made, Stop> {
        for step in &request.before {
            self.step(request, step)?;
        }
        let made = self.command(request, &request.command)?;
        for step in &request.after {
            self.step(request, step)?;
        }
        Ok(made)
    }

    fn step(&mut self, request: &prepaid_ledger::Request, step: &Step) -> Result<(), Stop> {
        let tenant = &request.tenant;
        match step {
            Step::Command(command) => self.command(request, command).map(drop),
            Step::PutRecord {
                kind,
                key,
                value,
                expected_version,
            } => {
                check_value(value)?;
                let current = self.record(tenant, *kind, key)?.version;
                let version = match (*expected_version, current) {
                    (None, None) => 1,
                    (Some(expected), Some(current)) if expected == current => {
                        // No record reaches the largest version, so none matches it.
                        expected.checked_add(1).ok_or(Refusal::RecordConflict)?
                    }
                    _ => return Err(Refusal::RecordConflict.into()),
                };
                self.set_record(tenant, *kind, key, Some((version, value.clone())));
                Ok(())
            }
            Step::DeleteRecord { kind, key } => {
                if self.record(tenant, *kind, key)?.version.is_some() {
                    self.set_record(tenant, *kind, key, None);
                }
                Ok(())
            }
            Step::EnqueueJob {
                queue,
                id,
                payload,
                due_at,
            } => {
                check_value(payload)?;
                self.jobs.push(super::NewJob {
                    tenant: tenant.clone(),
                    queue: *queue,
                    id: id.clone(),
                    payload: payload.clone(),
                    due_at: due_at.unwrap_or(self.now),
                });
                Ok(())
            }
        }
    }

    /// A linked ledger command. Commands that manage tenants, keys and settings stand
    /// alone: no operation links them, and their changes are not journalled.
    fn command(
        &mut self,
        request: &prepaid_ledger::Request,
        command: &Command,
    ) -> Result<super::Made, Stop> {
        if matches!(
            command,
            Command::CreateTenant { .. }
                | Command::CreateApiKey { .. }
                | Command::PutSetting { .. }
        ) {
            return Err(Stop::Bug(format!("{command:?} linked with other steps")));
        }
        if request.customer_only.is_some() && !command.allowed_for_customer_key() {
            return Err(Refusal::Forbidden.into());
        }
        self.execute(&request.tenant, request.customer_only.as_ref(), command)
    }

    /// The record as the batch sees it.
    pub(super) fn record(
        &mut self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Result<RecordSlot, Stop> {
        let id = (tenant.clone(), kind, key.clone());
        if let Some(slot) = self.records.get(&id) {
            return Ok(slot.clone());
        }
        let found = match self.rows.record(tenant, kind, key) {
            Err(super::Gap::Miss) => {
                self.missing.records.insert(id);
                return Err(super::Gap::Miss.into());
            }
            other => other?,
        };
        let read = found.as_ref().map(|(version, _)| *version);
        let slot = RecordSlot {
            read,
            version: read,
            value: found.map(|(_, value)| value),
            written: false,
        };
        self.records.insert(id, slot.clone());
        Ok(slot)
    }

    pub(super) fn set_record(
        &mut self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
        now: Option<(i64, String)>,
    ) {
        let id = (tenant.clone(), kind, key.clone());
        let old = self.records.get(&id).cloned();
        self.journal(|_| Undo::Record(id.clone(), old));
        let read = self.records.get(&id).and_then(|s| s.read);
        let (version, value) = match now {
            Some((version, value)) => (Some(version), Some(value)),
            None => (None, None),
        };
        self.records.insert(
            id,
            RecordSlot {
                read,
                version,
                value,
                written: true,
            },
        );
    }

    /// Undoes a refused unit: the journal backwards, then the rows it added.
    fn roll_back(&mut self, journal: Vec<Undo>, marks: &Marks) {
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Wallet(ix, wallet, dirty, relabelled) => {
                    let slot = &mut self.wallets[ix];
                    slot.wallet = *wallet;
                    slot.dirty = dirty;
                    slot.relabelled = relabelled;
                }
                Undo::Hold(ix, hold, dirty) => {
                    let slot = &mut self.holds[ix];
                    slot.hold = *hold;
                    slot.dirty = dirty;
                }
                Undo::Account(ix, balance) => self.accounts[ix].balance = balance,
                Undo::NewWallet(tenant, id, ix) => {
                    // The slot stays (indices into the list stay valid) but writes
                    // nothing, and the wallet is absent again.
                    let slot = &mut self.wallets[ix];
                    slot.new = false;
                    slot.dirty = false;
                    super::remember(&mut self.wallet_ix, &tenant, &id, None);
                }
                Undo::NewHold(id, ix) => {
                    let slot = &mut self.holds[ix];
                    slot.new = false;
                    slot.dirty = false;
                    self.hold_ix.insert(id, None);
                }
                Undo::NewCustomer(tenant, id) => {
                    super::remember(&mut self.customers, &tenant, &id, None::<Customer>);
                }
                Undo::CustomerLink(tenant, id, old) => {
                    super::remember(&mut self.customers, &tenant, &id, Some(*old));
                }
                Undo::Grants(tenant, wallet, slots) => match slots {
                    Some(slots) => super::remember(&mut self.grants, &tenant, &wallet, slots),
                    None => {
                        if let Some(m) = self.grants.get_mut(&tenant) {
                            m.remove(&wallet);
                        }
                    }
                },
                Undo::Record(id, old) => match old {
                    Some(slot) => {
                        self.records.insert(id, slot);
                    }
                    None => {
                        self.records.remove(&id);
                    }
                },
            }
        }
        for mutation in self.mutations.drain(marks.mutations..) {
            self.mutation_ids
                .insert((mutation.tenant, mutation.id), super::MutationSlot::Untaken);
        }
        self.new_customers.truncate(marks.customers);
        self.customer_links.truncate(marks.customer_links);
        self.jobs.truncate(marks.jobs);
        self.topups_settled.truncate(marks.topups_settled);
    }

    /// The records and jobs to write: records in key order, jobs in the order they
    /// were queued, each id once (the first).
    pub(super) fn take_records_and_jobs(&mut self) -> (Vec<RecordChange>, Vec<NewJob>) {
        let at = self.now;
        let mut records: Vec<RecordChange> = std::mem::take(&mut self.records)
            .into_iter()
            .filter(|(_, slot)| slot.written && (slot.read.is_some() || slot.version.is_some()))
            .map(|((tenant, kind, key), slot)| RecordChange {
                tenant,
                kind,
                key,
                read: slot.read,
                write: slot.version.zip(slot.value),
                at,
            })
            .collect();
        records.sort_by(|a, b| (&a.tenant, &a.kind, &a.key).cmp(&(&b.tenant, &b.kind, &b.key)));
        let mut seen = HashSet::new();
        let jobs = std::mem::take(&mut self.jobs)
            .into_iter()
            .filter(|j| seen.insert((j.tenant.clone(), j.queue, j.id.clone())))
            .collect();
        (records, jobs)
    }
}

/// A record value or job payload over its limit is a bug: the edge checks them.
fn check_value(value: &str) -> Result<(), Stop> {
    if value_is_valid(value) {
        Ok(())
    } else {
        Err(Stop::Bug(format!(
            "a record value or job payload of {} bytes",
            value.len()
        )))
    }
}
