//! The grants of the wallets a batch touches: loaded once per wallet, changed by the
//! plans of the ledger's `grants` rules, journalled like every other row.
//!
//! Every change of money that credits a wallet makes a grant (after repaying the
//! wallet's debt); every one that debits it draws from its grants in the ledger's
//! spend order. Each operation plans first (which may refuse) and applies after, so a
//! refusal leaves the grants as they were.

use super::*;
use prepaid_ledger::{
    DEFAULT_VALIDITY_SETTING, Draw, DrawPlan, Grant, GrantTerms, LIVE_GRANTS_MAX, commit_draws,
    debt, default_validity_seconds, plan_draws, split_credit,
};

/// A grant as the batch sees it.
#[derive(Clone, Debug)]
pub(super) struct GrantSlot {
    pub(super) grant: Grant,
    /// Made by this batch.
    pub(super) new: bool,
    /// Its remainder or what holds reserve of it changed.
    pub(super) dirty: bool,
}

/// A grant to write: a new one, or one whose `remaining` or `held` changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantChange {
    pub tenant: TenantId,
    pub wallet: WalletId,
    pub grant: Grant,
    /// Insert it; otherwise update its `remaining` and `held`.
    pub new: bool,
}

impl Exec<'_> {
    /// The wallet's live grants, as the batch sees them. A wallet that does not exist
    /// has none.
    pub(super) fn grants(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
    ) -> Lookup<&mut Vec<GrantSlot>> {
        let rows = &mut *self.rows;
        let result = nested(&mut self.grants, tenant, wallet, || {
            rows.grants(tenant, wallet).map(|grants| {
                grants
                    .into_iter()
                    .map(|grant| GrantSlot {
                        grant,
                        new: false,
                        dirty: false,
                    })
                    .collect()
            })
        });
        noted(result, &mut self.missing.grants, || {
            (tenant.clone(), wallet.clone())
        })
    }

    /// Makes sure the wallet's grants `ids` (live or spent) are among its slots, so
    /// that a reversal can give a spent one back what it gave.
    pub(super) fn load_grants_by_id(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        ids: &[MutationId],
    ) -> Result<(), Stop> {
        for &id in ids {
            if self
                .grants(tenant, wallet)?
                .iter()
                .any(|s| s.grant.id == id)
            {
                continue;
            }
            let found = noted(
                self.rows.grant(tenant, wallet, id),
                &mut self.missing.grant_ids,
                || (tenant.clone(), wallet.clone(), id),
            );
            let found = match found {
                Ok(found) => found,
                // Every missing id of the run is noted before the run ends.
                Err(Gap::Miss) => continue,
                Err(gap) => return Err(gap.into()),
            };
            let Some(grant) = found else {
                return Err(Gap::Broken(format!("mutation drew from a missing grant {id}")).into());
            };
            self.grants(tenant, wallet)?.push(GrantSlot {
                grant,
                new: false,
                dirty: false,
            });
        }
        if self
            .missing
            .grant_ids
            .iter()
            .any(|(t, w, _)| t == tenant && w == wallet)
        {
            return Err(Gap::Miss.into());
        }
        Ok(())
    }

    /// Journals the wallet's grants before they change.
    fn save_grants(&mut self, tenant: &TenantId, wallet: &WalletId) {
        self.journal(|e| {
            let slots = e.grants.get(tenant).and_then(|m| m.get(wallet)).cloned();
            linked::Undo::Grants(tenant.clone(), wallet.clone(), slots)
        });
    }

    /// What the wallet's balance counts that may not be spent: the free remainder of
    /// its grants whose expiry has come.
    pub(super) fn unspendable(&mut self, tenant: &TenantId, wallet: &WalletId) -> Lookup<i64> {
        let now = self.now;
        Ok(self
            .grants(tenant, wallet)?
            .iter()
            .filter_map(|s| s.grant.expiring(now))
            .sum())
    }

    /// Plans taking `amount` from the wallet's grants now.
    pub(super) fn plan_debit(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        amount: i64,
    ) -> Result<DrawPlan, Stop> {
        let now = self.now;
        let slots = self.grants(tenant, wallet)?;
        Ok(plan_draws(slots.iter().map(|s| &s.grant), amount, now)?)
    }

    /// Plans a credit of `amount` to a wallet whose balance is `balance`: what repays
    /// its debt, and the grant the rest makes (`None` when the debt takes it all).
    pub(super) fn plan_credit(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        balance: i64,
        (id, terms): (MutationId, &GrantTerms),
        amount: i64,
    ) -> Result<Option<Grant>, Stop> {
        let now = self.now;
        let slots = self.grants(tenant, wallet)?;
        let remaining: i64 = slots.iter().map(|s| s.grant.remaining).sum();
        let (_, granted) = split_credit(debt(balance, remaining), amount);
        if granted == 0 {
            return Ok(None);
        }
        if slots.iter().filter(|s| s.grant.remaining > 0).count() >= LIVE_GRANTS_MAX {
            return Err(Refusal::GrantsExceeded {
                grants_max: LIVE_GRANTS_MAX,
            }
            .into());
        }
        Ok(Some(Grant::new(id, terms.clone(), granted, now)))
    }

    /// The terms of a top-up's grant: its own, or with the tenant's default validity
    /// when they name no expiry.
    pub(super) fn top_up_terms(
        &mut self,
        tenant: &TenantId,
        terms: &GrantTerms,
    ) -> Result<GrantTerms, Stop> {
        if terms.expires_at.is_some() {
            return Ok(terms.clone());
        }
        let seconds = self
            .setting(tenant, &default_validity_key())?
            .and_then(|v| default_validity_seconds(v));
        Ok(terms.with_default_validity(seconds, self.now))
    }

    /// Adds a grant planned by [`Exec::plan_credit`].
    pub(super) fn add_grant(&mut self, tenant: &TenantId, wallet: &WalletId, grant: Grant) {
        self.save_grants(tenant, wallet);
        if let Ok(slots) = self.grants(tenant, wallet) {
            slots.push(GrantSlot {
                grant,
                new: true,
                dirty: true,
            });
        }
    }

    /// Changes the wallet's grants by `draws`: `remaining` by minus each amount, and
    /// `held` by minus each of `unheld`. Every grant named was loaded by the plan.
    pub(super) fn apply_draws(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        draws: &[Draw],
        unheld: &[Draw],
    ) {
        if draws.is_empty() && unheld.is_empty() {
            return;
        }
        self.save_grants(tenant, wallet);
        let Ok(slots) = self.grants(tenant, wallet) else {
            return;
        };
        for (d, held) in draws
            .iter()
            .map(|d| (d, false))
            .chain(unheld.iter().map(|d| (d, true)))
        {
            if let Some(slot) = slots.iter_mut().find(|s| s.grant.id == d.grant) {
                match held {
                    true => slot.grant.held -= d.amount,
                    false => slot.grant.remaining -= d.amount,
                }
                slot.dirty = true;
            }
        }
    }

    /// Reserves `reserved` of the wallet's grants for a new hold.
    pub(super) fn reserve(&mut self, tenant: &TenantId, wallet: &WalletId, reserved: &[Draw]) {
        let negated: Vec<Draw> = reserved
            .iter()
            .map(|d| Draw {
                grant: d.grant,
                amount: -d.amount,
            })
            .collect();
        self.apply_draws(tenant, wallet, &[], &negated);
    }

    /// Plans committing `committed` of a hold that reserved `reserved`: the hold's
    /// reservation is given back, the committed amount is drawn from the reserved
    /// grants first (even one that expired meanwhile: what a hold reserved is the
    /// hold's), then from the grants in the spend order, the rest from the floor.
    /// Returns `(drawn, unheld)` for [`Exec::apply_draws`].
    pub(super) fn plan_commit(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        reserved: &[Draw],
        committed: i64,
    ) -> Result<(Vec<Draw>, Vec<Draw>), Stop> {
        let now = self.now;
        let split = commit_draws(reserved, committed);
        let mut drawn = split.drawn;
        if split.uncovered > 0 {
            let slots = self.grants(tenant, wallet)?;
            // The grants as they will be once the hold's own reservation is drawn and
            // given back, for the part it did not reserve.
            let mut after: Vec<Grant> = slots.iter().map(|s| s.grant.clone()).collect();
            for g in &mut after {
                for r in split.unreserved.iter().filter(|r| r.grant == g.id) {
                    g.held -= r.amount;
                }
                for d in drawn.iter().filter(|d| d.grant == g.id) {
                    g.remaining -= d.amount;
                }
            }
            let more = plan_draws(&after, split.uncovered, now)?;
            for d in more.draws {
                match drawn.iter_mut().find(|x| x.grant == d.grant) {
                    Some(x) => x.amount += d.amount,
                    None => drawn.push(d),
                }
            }
        } else {
            // Loaded all the same, so that applying finds them.
            self.grants(tenant, wallet)?;
        }
        Ok((drawn, split.unreserved))
    }

    /// Draws everything the wallet's grants have left (the wallet expires).
    pub(super) fn drain_grants(&mut self, tenant: &TenantId, wallet: &WalletId) -> Vec<Draw> {
        let Ok(slots) = self.grants(tenant, wallet) else {
            return Vec::new();
        };
        let draws: Vec<Draw> = slots
            .iter()
            .filter(|s| s.grant.remaining > 0)
            .map(|s| Draw {
                grant: s.grant.id,
                amount: s.grant.remaining,
            })
            .collect();
        self.apply_draws(tenant, wallet, &draws, &[]);
        draws
    }

    /// The grants to write, ordered by tenant, wallet and id.
    pub(super) fn take_grants(&mut self) -> Vec<GrantChange> {
        let mut changes = Vec::new();
        for (tenant, wallets) in std::mem::take(&mut self.grants) {
            for (wallet, slots) in wallets {
                for slot in slots.into_iter().filter(|s| s.dirty) {
                    changes.push(GrantChange {
                        tenant: tenant.clone(),
                        wallet: wallet.clone(),
                        grant: slot.grant,
                        new: slot.new,
                    });
                }
            }
        }
        changes.sort_by(|a, b| {
            (&a.tenant, &a.wallet, a.grant.id).cmp(&(&b.tenant, &b.wallet, b.grant.id))
        });
        changes
    }
}

/// The key of the tenant setting of the default validity of top-ups.
pub(super) fn default_validity_key() -> SettingKey {
    SettingKey::parse(DEFAULT_VALIDITY_SETTING).expect("the default validity key is valid")
}
