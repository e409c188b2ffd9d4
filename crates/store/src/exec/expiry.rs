//! The sweep: holds whose time ran out, wallets past their validity, and grants whose
//! expiry has come.

use super::*;

impl Exec<'_> {
    // -----------------------------------------------------------------------------
    // The sweep.

    /// Expires one due hold; `false` when it is no longer pending or not due.
    pub(super) fn expire_hold(
        &mut self,
        id: HoldId,
        new_id: &mut dyn FnMut() -> MutationId,
    ) -> Result<bool, Stop> {
        let Some(hi) = self.hold_ix(id)? else {
            return Ok(false);
        };
        let hold = &self.holds[hi].hold;
        let due = hold.expires_at.is_some_and(|t| t <= self.now);
        if hold.status != HoldStatus::Pending || !due {
            return Ok(false);
        }
        let tenant = hold.tenant.clone();
        let id = self.fresh_id(&tenant, new_id);
        self.settle(hi, Settle::Expire, id, system_reference("hold expired"))?;
        Ok(true)
    }

    /// Expires one wallet: releases its pending holds, moves a positive balance to the
    /// expiry account and marks it expired. Returns whether it did.
    pub(super) fn expire_wallet(
        &mut self,
        tenant: &TenantId,
        id: &WalletId,
        new_id: &mut dyn FnMut() -> MutationId,
    ) -> Result<bool, Stop> {
        let now = self.now;
        let pending = noted(
            self.rows.pending_holds(tenant, id),
            &mut self.missing.pending_holds,
            || (tenant.clone(), id.clone()),
        );
        let Some(wi) = self.wallet_ix(tenant, id)? else {
            return Ok(false);
        };
        let Some(expiry) = expire_wallet(&self.wallets[wi].wallet, now) else {
            return Ok(false);
        };
        let unit = self.wallets[wi].wallet.unit.clone();
        // Every hold first, so that a miss is found before anything changes.
        let mut holds = Vec::new();
        for hold_id in pending? {
            if let Some(hi) = self.hold_ix(hold_id)? {
                holds.push(hi);
            }
        }
        // Holds this run placed are pending too (a sweep places none, but the rule
        // is the rule).
        for (hi, slot) in self.holds.iter().enumerate() {
            if slot.new && slot.hold.tenant == *tenant && slot.hold.wallet == *id {
                holds.push(hi);
            }
        }
        holds.sort_unstable();
        holds.dedup();
        holds.retain(|&hi| self.holds[hi].hold.status == HoldStatus::Pending);
        // Check the expiry account first, so that a refusal leaves the wallet untouched.
        let account = match expiry.posting {
            Some(posting) => {
                let ai = self.account_ix(tenant, &unit, SystemAccount::Expiry)?;
                match add_to_balance(self.accounts[ai].balance, -posting.amount) {
                    Ok(after) => Some((posting, ai, after)),
                    Err(refusal) => {
                        tracing::error!(
                            %tenant,
                            wallet = %id,
                            refusal = refusal.code(),
                            "cannot expire the wallet: its expiry account is full"
                        );
                        return Ok(false);
                    }
                }
            }
            None => None,
        };
        for hi in holds {
            let id = self.fresh_id(tenant, new_id);
            self.settle(hi, Settle::Release, id, system_reference("wallet expired"))?;
        }
        // What the grants have left leaves with the balance; a debt the wallet had is
        // written off with it.
        let drawn = self.drain_grants(tenant, id);
        if let Some((posting, ai, account_after)) = account {
            let mutation_id = self.fresh_id(tenant, new_id);
            let w = &mut self.wallets[wi].wallet;
            let mutation = Mutation {
                tenant: tenant.clone(),
                id: mutation_id,
                wallet: id.clone(),
                customer: w.customer.clone(),
                unit,
                kind: MutationKind::Expiry,
                amount: posting.amount,
                balance_after: posting.balance_after,
                reference: system_reference("wallet expired"),
                hold: None,
                transfer: None,
                counter_wallet: None,
                occurred_at: now,
                recorded_at: now,
                drawn,
                reverses: None,
                metadata: Metadata::default(),
            };
            w.balance = posting.balance_after;
            self.add_mutation(mutation);
            self.accounts[ai].balance = account_after;
        }
        let w = &mut self.wallets[wi];
        w.wallet.status = WalletStatus::Expired;
        w.touch(now);
        Ok(true)
    }

    /// Expires one grant: its remainder, less what pending holds reserve of it, leaves
    /// the wallet with an `expiry` mutation that draws from it. Returns whether it did.
    /// The mutation occurred when the grant expired, whenever the sweep gets to it.
    pub(super) fn expire_grant(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        grant: MutationId,
        new_id: &mut dyn FnMut() -> MutationId,
    ) -> Result<bool, Stop> {
        let now = self.now;
        let Some(wi) = self.wallet_ix(tenant, wallet)? else {
            return Ok(false);
        };
        let Some((amount, expired_at)) = self
            .grants(tenant, wallet)?
            .iter()
            .find(|s| s.grant.id == grant)
            .and_then(|s| Some((s.grant.expiring(now)?, s.grant.terms.expires_at?)))
        else {
            return Ok(false);
        };
        let w = &self.wallets[wi].wallet;
        let unit = w.unit.clone();
        let ai = self.account_ix(tenant, &unit, SystemAccount::Expiry)?;
        let (Ok(balance_after), Ok(account_after)) = (
            add_to_balance(self.wallets[wi].wallet.balance, -amount),
            add_to_balance(self.accounts[ai].balance, amount),
        ) else {
            tracing::error!(%tenant, %wallet, %grant, "cannot expire the grant: a balance is at its bound");
            return Ok(false);
        };
        let mutation_id = self.fresh_id(tenant, new_id);
        let w = &self.wallets[wi].wallet;
        let drawn = vec![Draw { grant, amount }];
        let mutation = Mutation {
            tenant: tenant.clone(),
            id: mutation_id,
            wallet: wallet.clone(),
            customer: w.customer.clone(),
            unit,
            kind: MutationKind::Expiry,
            amount: -amount,
            balance_after,
            reference: system_reference("grant expired"),
            hold: None,
            transfer: None,
            counter_wallet: None,
            occurred_at: expired_at,
            recorded_at: now,
            drawn,
            reverses: None,
            metadata: Metadata::default(),
        };
        self.apply_draws(tenant, wallet, &mutation.drawn, &[]);
        let ix = self.add_mutation(mutation);
        self.grant_expiries.push(ix);
        self.accounts[ai].balance = account_after;
        let w = &mut self.wallets[wi];
        w.wallet.balance = balance_after;
        w.touch(now);
        Ok(true)
    }
}
