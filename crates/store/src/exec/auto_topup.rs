//! Automatic top-ups in the executor: a unit that debits or holds a wallet with a rule
//! starts its top-up in the same unit when the ledger's rule says one is due
//! ([`prepaid_ledger::auto_topup_start`]): it marks the top-up in flight in the
//! wallet's record and queues its job, so that a top-up exists exactly when the change
//! that crossed the threshold does, and (the wallet and its record being locked, or
//! written by one writer) at most one is in flight per wallet whichever instance
//! commits. Setting a rule and settling a top-up are commands of their own.

use super::{Exec, Made, Stop};
use crate::auto_topup::{
    AUTO_TOPUP_KIND, AUTO_TOPUP_QUEUE, AutoTopUpJob, decode, encode, job_id, record_key,
};
use crate::webhooks::{LOW_BALANCE_KIND, alert_key, encode_alert};
use prepaid_ledger::{
    Amount, AutoTopUpOutcome, AutoTopUpRule, AutoTopUpState, CustomerId, Done, GrantTerms,
    HoldDirection, LowBalanceAlert, Metadata, MutationId, MutationKind, Priority, RecordKey,
    Reference, TenantId, WalletId, auto_topup_settled, auto_topup_start,
};

/// An automatic top-up settled by the run, for its event.
pub(super) struct Settled {
    pub tenant: TenantId,
    pub wallet: WalletId,
    pub n: u64,
    pub amount: Amount,
    /// The credit's mutation (its index in the run's), or why there was none.
    pub credit: Result<usize, &'static str>,
    /// How many mutations the run had made before the settlement's own: its place
    /// among the run's events.
    pub position: usize,
}

impl Exec<'_> {
    /// The rule and state of `wallet`'s automatic top-up as the batch sees them, with
    /// the record's version. A record that does not decode is logged and taken as no
    /// rule: it must not fail the change that read it.
    fn auto_topup(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
    ) -> Result<Option<(i64, AutoTopUpRule, AutoTopUpState)>, Stop> {
        let slot = self.record(tenant, AUTO_TOPUP_KIND, &record_key(wallet))?;
        let (Some(version), Some(value)) = (slot.version, slot.value) else {
            return Ok(None);
        };
        match decode(&value) {
            Ok((rule, state)) => Ok(Some((version, rule, state))),
            Err(why) => {
                tracing::error!(%tenant, %wallet, "an automatic top-up that does not decode: {why}");
                Ok(None)
            }
        }
    }

    fn put_auto_topup(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        version: Option<i64>,
        value: Option<(&AutoTopUpRule, &AutoTopUpState)>,
    ) {
        let write = value.map(|(rule, state)| (version.map_or(1, |v| v + 1), encode(rule, state)));
        self.set_record(tenant, AUTO_TOPUP_KIND, &record_key(wallet), write);
    }

    /// Starts `wallet`'s automatic top-up if its rule says one is due now: marks it in
    /// flight and queues its job.
    pub(super) fn start_auto_topup(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
    ) -> Result<(), Stop> {
        let Some(ix) = self.wallet_ix(tenant, wallet)? else {
            return Ok(());
        };
        let Some((version, rule, state)) = self.auto_topup(tenant, wallet)? else {
            return Ok(());
        };
        let Some(start) = auto_topup_start(&rule, &state, &self.wallets[ix].wallet, self.now)
        else {
            return Ok(());
        };
        self.put_auto_topup(tenant, wallet, Some(version), Some((&rule, &start.state)));
        let job = AutoTopUpJob {
            wallet: wallet.clone(),
            n: start.n,
            amount: start.amount,
            funding: rule.funding().clone(),
        };
        self.jobs.push(super::NewJob {
            tenant: tenant.clone(),
            queue: AUTO_TOPUP_QUEUE,
            id: RecordKey::parse(job_id(wallet, start.n))
                .map_err(|e| Stop::Bug(format!("an automatic top-up's job id: {e}")))?,
            payload: job.encode(),
            due_at: self.now,
        });
        Ok(())
    }

    /// After a unit that made the mutations from `mark` on and answered `made`: starts
    /// the automatic top-up of every wallet it took from (a debit, a negative
    /// adjustment, an outgoing transfer, a debit hold; a hold's commit leaves what is
    /// available as the hold left it).
    pub(super) fn start_auto_topups_after(
        &mut self,
        tenant: &TenantId,
        mark: usize,
        made: &Made,
    ) -> Result<(), Stop> {
        let mut wallets: Vec<WalletId> = self.mutations[mark..]
            .iter()
            .filter(|m| {
                m.amount < 0
                    && m.tenant == *tenant
                    && matches!(
                        m.kind,
                        MutationKind::Debit | MutationKind::Adjustment | MutationKind::TransferOut
                    )
            })
            .map(|m| m.wallet.clone())
            .collect();
        if let Made::Done(Done::Hold { hold, .. }) = made
            && hold.direction == HoldDirection::Debit
        {
            wallets.push(hold.wallet.clone());
        }
        wallets.sort();
        wallets.dedup();
        for wallet in &wallets {
            self.start_auto_topup(tenant, wallet)?;
        }
        Ok(())
    }

    /// [`prepaid_ledger::Command::SetAutoTopUp`]; a rule set on a wallet already at or
    /// below its threshold starts a top-up at once.
    pub(super) fn set_auto_topup(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        wallet: &WalletId,
        rule: Option<&AutoTopUpRule>,
    ) -> Result<Made, Stop> {
        self.visible_wallet(tenant, wallet, only)?;
        let current = self.auto_topup(tenant, wallet)?;
        let version = current.as_ref().map(|(v, _, _)| *v);
        match rule {
            Some(rule) => {
                let state = current.map(|(_, _, s)| s).unwrap_or_default();
                self.put_auto_topup(tenant, wallet, version, Some((rule, &state)));
                self.start_auto_topup(tenant, wallet)?;
            }
            None if version.is_some() => self.put_auto_topup(tenant, wallet, version, None),
            None => {}
        }
        Ok(Made::Done(Done::Records))
    }

    /// [`prepaid_ledger::Command::SetLowBalanceAlert`].
    pub(super) fn set_low_balance_alert(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        wallet: &WalletId,
        alert: Option<&LowBalanceAlert>,
    ) -> Result<Made, Stop> {
        self.visible_wallet(tenant, wallet, only)?;
        let key = alert_key(wallet);
        let slot = self.record(tenant, LOW_BALANCE_KIND, &key)?;
        match alert {
            Some(alert) => {
                let version = slot.version.map_or(1, |v| v + 1);
                let write = Some((version, encode_alert(alert)));
                self.set_record(tenant, LOW_BALANCE_KIND, &key, write);
            }
            None if slot.version.is_some() => {
                self.set_record(tenant, LOW_BALANCE_KIND, &key, None);
            }
            None => {}
        }
        Ok(Made::Done(Done::Records))
    }

    /// [`prepaid_ledger::Command::SettleAutoTopUp`]. The settlement makes the top-up's
    /// event (`auto_topup.succeeded` or `auto_topup.failed`), so that it exists
    /// exactly when the settlement does.
    pub(super) fn settle_auto_topup(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        (wallet, n, id): (&WalletId, u64, MutationId),
        amount: Amount,
        outcome: &AutoTopUpOutcome,
    ) -> Result<Made, Stop> {
        self.visible_wallet(tenant, wallet, only)?;
        let position = self.mutations.len();
        let (made, credit) = match outcome {
            AutoTopUpOutcome::Credited(category) => {
                let terms = GrantTerms {
                    expires_at: None,
                    priority: Priority::DEFAULT,
                    category: category.clone(),
                };
                let reference = Reference::known("auto_topup", &n.to_string(), "");
                let ix = self.post(
                    tenant,
                    only,
                    (id, &terms, &Metadata::default()),
                    wallet,
                    MutationKind::TopUp,
                    amount,
                    &reference,
                    None,
                )?;
                (Made::Mutation(ix), Ok(ix))
            }
            other => (
                Made::Done(Done::Records),
                Err(other.failure().unwrap_or("failed")),
            ),
        };
        let failed = credit.is_err();
        if let Some((version, rule, state)) = self.auto_topup(tenant, wallet)? {
            let settled = auto_topup_settled(&state, n, failed, self.now);
            if settled != state {
                self.put_auto_topup(tenant, wallet, Some(version), Some((&rule, &settled)));
                // A wallet still at or below its threshold after its top-up (debits went
                // on meanwhile) needs the next one; a decline waits for the next debit.
                if !failed {
                    self.start_auto_topup(tenant, wallet)?;
                }
            }
        }
        self.topups_settled.push(Settled {
            tenant: tenant.clone(),
            wallet: wallet.clone(),
            n,
            amount,
            credit,
            position,
        });
        Ok(made)
    }
}
