//! The executor's memoized lookups: the backend's rows with the batch's own changes
//! laid over them, and the pass that learns every missing key of a run at once.

use super::grants::default_validity_key;
use super::*;

impl Exec<'_> {
    // -----------------------------------------------------------------------------
    // Memoized lookups, with the batch's own changes laid over the backend's rows.

    pub(super) fn tenant(&mut self, id: &TenantId) -> Lookup<Option<bool>> {
        if let Some(&known) = self.tenants.get(id) {
            return Ok(known);
        }
        let found = noted(self.rows.tenant(id), &mut self.missing.tenants, || {
            id.clone()
        })?;
        self.tenants.insert(id.clone(), found);
        Ok(found)
    }

    pub(super) fn customer(
        &mut self,
        tenant: &TenantId,
        id: &CustomerId,
    ) -> Lookup<Option<&Customer>> {
        let rows = &mut *self.rows;
        let result = nested(&mut self.customers, tenant, id, || {
            rows.customer(tenant, id)
        });
        noted(result, &mut self.missing.customers, || {
            (tenant.clone(), id.clone())
        })
        .map(|c| c.as_ref())
    }

    pub(super) fn api_key(
        &mut self,
        tenant: &TenantId,
        name: &ApiKeyName,
    ) -> Lookup<Option<&ApiKey>> {
        let rows = &mut *self.rows;
        let result = nested(&mut self.api_keys, tenant, name, || {
            rows.api_key(tenant, name)
        });
        noted(result, &mut self.missing.api_keys, || {
            (tenant.clone(), name.clone())
        })
        .map(|k| k.as_ref())
    }

    pub(super) fn secret_taken(&mut self, secret: &[u8; 32]) -> Lookup<bool> {
        if let Some(&taken) = self.secrets.get(secret) {
            return Ok(taken);
        }
        let taken = noted(
            self.rows.secret_taken(secret),
            &mut self.missing.secrets,
            || *secret,
        )?;
        self.secrets.insert(*secret, taken);
        Ok(taken)
    }

    /// The index of the wallet in [`Exec::wallets`], if it exists.
    pub(super) fn wallet_ix(&mut self, tenant: &TenantId, id: &WalletId) -> Lookup<Option<usize>> {
        if let Some(&known) = self.wallet_ix.get(tenant).and_then(|m| m.get(id)) {
            return Ok(known);
        }
        let found = noted(
            self.rows.wallet(tenant, id),
            &mut self.missing.wallets,
            || (tenant.clone(), id.clone()),
        )?;
        let ix = found.map(|wallet| self.add_wallet(wallet, false));
        remember(&mut self.wallet_ix, tenant, id, ix);
        Ok(ix)
    }

    pub(super) fn add_wallet(&mut self, wallet: Wallet, new: bool) -> usize {
        let (before, level_before) = if new {
            (None, None)
        } else {
            (
                prepaid_ledger::available(&wallet),
                Some(prepaid_ledger::alert_level(&wallet)),
            )
        };
        self.wallets.push(WalletSlot {
            wallet,
            new,
            dirty: new,
            relabelled: false,
            before,
            level_before,
        });
        self.wallets.len() - 1
    }

    /// The index of the wallet if it exists and the caller may see it.
    pub(super) fn visible_wallet(
        &mut self,
        tenant: &TenantId,
        id: &WalletId,
        only: Option<&CustomerId>,
    ) -> Result<usize, Stop> {
        match self.wallet_ix(tenant, id)? {
            Some(ix) if only.is_none_or(|only| *only == self.wallets[ix].wallet.customer) => Ok(ix),
            _ => Err(Refusal::WalletNotFound.into()),
        }
    }

    /// The index of the hold in [`Exec::holds`], if it exists.
    pub(super) fn hold_ix(&mut self, id: HoldId) -> Lookup<Option<usize>> {
        if let Some(&known) = self.hold_ix.get(&id) {
            return Ok(known);
        }
        let found = noted(self.rows.hold(id), &mut self.missing.holds, || id)?;
        let ix = found.map(|hold| self.add_hold(hold, false));
        self.hold_ix.insert(id, ix);
        Ok(ix)
    }

    pub(super) fn add_hold(&mut self, hold: Hold, new: bool) -> usize {
        self.holds.push(HoldSlot {
            hold,
            new,
            dirty: new,
        });
        self.holds.len() - 1
    }

    pub(super) fn mutation_taken(&mut self, tenant: &TenantId, id: MutationId) -> Lookup<bool> {
        let key = (tenant.clone(), id);
        if let Some(slot) = self.mutation_ids.get(&key) {
            return Ok(!matches!(
                slot,
                MutationSlot::Absent | MutationSlot::Untaken
            ));
        }
        let taken = noted(
            self.rows.mutation_taken(tenant, id),
            &mut self.missing.mutations,
            || key.clone(),
        )?;
        let slot = if taken {
            MutationSlot::Taken
        } else {
            MutationSlot::Untaken
        };
        self.mutation_ids.insert(key, slot);
        Ok(taken)
    }

    /// The mutation with this id, stored or made by this batch.
    pub(super) fn mutation(
        &mut self,
        tenant: &TenantId,
        id: MutationId,
    ) -> Lookup<Option<Mutation>> {
        let key = (tenant.clone(), id);
        match self.mutation_ids.get(&key) {
            Some(MutationSlot::Absent) => return Ok(None),
            Some(MutationSlot::Stored(m)) => return Ok(Some(Mutation::clone(m))),
            Some(&MutationSlot::New(ix)) => return Ok(self.mutations.get(ix).cloned()),
            Some(MutationSlot::Untaken | MutationSlot::Taken) | None => {}
        }
        let found = noted(
            self.rows.mutation(tenant, id),
            &mut self.missing.mutations,
            || key.clone(),
        )?;
        let slot = match &found {
            Some(m) => MutationSlot::Stored(Box::new(m.clone())),
            None => MutationSlot::Absent,
        };
        self.mutation_ids.insert(key, slot);
        Ok(found)
    }

    /// An id from the caller's generator of fresh ids, taken as free without asking the
    /// rows (a generated id that was taken after all breaks the store's unique key).
    pub(super) fn fresh_id(
        &mut self,
        tenant: &TenantId,
        new_id: &mut dyn FnMut() -> MutationId,
    ) -> MutationId {
        let id = new_id();
        self.mutation_ids
            .insert((tenant.clone(), id), MutationSlot::Untaken);
        id
    }

    /// Adds a new mutation; returns its index.
    pub(super) fn add_mutation(&mut self, mutation: Mutation) -> usize {
        let ix = self.mutations.len();
        self.mutation_ids.insert(
            (mutation.tenant.clone(), mutation.id),
            MutationSlot::New(ix),
        );
        self.mutations.push(mutation);
        ix
    }

    pub(super) fn recorded(
        &mut self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Lookup<Option<&Recorded>> {
        let rows = &mut *self.rows;
        let result = nested(&mut self.idempotency, tenant, key, || {
            rows.idempotency(tenant, key)
        });
        noted(result, &mut self.missing.idempotency, || {
            (tenant.clone(), key.clone())
        })
        .map(|r| r.as_ref())
    }

    pub(super) fn setting(
        &mut self,
        tenant: &TenantId,
        key: &SettingKey,
    ) -> Lookup<Option<&String>> {
        let rows = &mut *self.rows;
        let result = nested(&mut self.settings, tenant, key, || {
            rows.setting(tenant, key)
        });
        noted(result, &mut self.missing.settings, || {
            (tenant.clone(), key.clone())
        })
        .map(|v| v.as_ref())
    }

    /// The index of the system account in [`Exec::accounts`].
    pub(super) fn account_ix(
        &mut self,
        tenant: &TenantId,
        unit: &Unit,
        account: SystemAccount,
    ) -> Lookup<usize> {
        let k = account_index(account);
        if let Some(ix) = self
            .account_ix
            .get(tenant)
            .and_then(|m| m.get(unit))
            .and_then(|slots| slots[k])
        {
            return Ok(ix);
        }
        let read = noted(
            self.rows.account(tenant, unit, account),
            &mut self.missing.accounts,
            || (tenant.clone(), unit.clone(), account),
        )?;
        self.accounts.push(AccountSlot {
            tenant: tenant.clone(),
            unit: unit.clone(),
            account,
            read,
            balance: read,
        });
        let ix = self.accounts.len() - 1;
        match self
            .account_ix
            .get_mut(tenant)
            .and_then(|m| m.get_mut(unit))
        {
            Some(slots) => slots[k] = Some(ix),
            None => {
                let mut slots = [None; 4];
                slots[k] = Some(ix);
                remember(&mut self.account_ix, tenant, unit, slots);
            }
        }
        Ok(ix)
    }

    /// Looks up, for their misses only, the rows a request names directly, so that one
    /// run learns every such key of the batch rather than one per run.
    pub(super) fn prefetch(&mut self, request: &Request) -> Result<(), Gap> {
        fn touch<T>(result: Lookup<T>) -> Result<(), Gap> {
            match result {
                Err(Gap::Failed(e)) => Err(Gap::Failed(e)),
                _ => Ok(()),
            }
        }
        let tenant = &request.tenant;
        touch(self.tenant(tenant))?;
        touch(self.webhooks(tenant))?;
        if let Some((key, _)) = &request.idempotency {
            touch(self.recorded(tenant, key))?;
        }
        self.prefetch_command(tenant, &request.command)?;
        for step in request.before.iter().chain(&request.after) {
            match step {
                Step::Command(command) => self.prefetch_command(tenant, command)?,
                Step::PutRecord { kind, key, .. } | Step::DeleteRecord { kind, key } => {
                    self.prefetch_record(tenant, *kind, key)?;
                }
                Step::EnqueueJob { .. } => {}
            }
        }
        Ok(())
    }

    fn prefetch_record(
        &mut self,
        tenant: &TenantId,
        kind: prepaid_ledger::RecordKind,
        key: &prepaid_ledger::RecordKey,
    ) -> Result<(), Gap> {
        let id = (tenant.clone(), kind, key.clone());
        if !self.records.contains_key(&id) {
            match self.rows.record(tenant, kind, key) {
                Err(Gap::Miss) => {
                    self.missing.records.insert(id);
                }
                Err(Gap::Failed(e)) => return Err(Gap::Failed(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The automatic top-up of a wallet a command may take from, and its low-balance
    /// alert when its tenant may have webhooks, read with the wallet (a backend that
    /// loads rows in rounds loads them all in the first).
    fn prefetch_auto_topup(&mut self, tenant: &TenantId, wallet: &WalletId) -> Result<(), Gap> {
        let key = crate::auto_topup::record_key(wallet);
        self.prefetch_record(tenant, crate::auto_topup::AUTO_TOPUP_KIND, &key)?;
        match self.webhooks(tenant) {
            Ok(false) | Err(Gap::Broken(_)) => Ok(()),
            Err(Gap::Failed(e)) => Err(Gap::Failed(e)),
            Ok(true) | Err(Gap::Miss) => {
                let key = crate::webhooks::alert_key(wallet);
                self.prefetch_record(tenant, crate::webhooks::LOW_BALANCE_KIND, &key)
            }
        }
    }

    /// [`Exec::prefetch`] for one command.
    pub(super) fn prefetch_command(
        &mut self,
        tenant: &TenantId,
        command: &Command,
    ) -> Result<(), Gap> {
        fn touch<T>(result: Lookup<T>) -> Result<(), Gap> {
            match result {
                Err(Gap::Failed(e)) => Err(Gap::Failed(e)),
                _ => Ok(()),
            }
        }
        match command {
            Command::CreateTenant {
                tenant: new,
                admin_key,
                ..
            } => {
                touch(self.tenant(new))?;
                touch(self.secret_taken(&admin_key.secret_sha256))?;
            }
            Command::CreateApiKey { key } => {
                touch(self.api_key(tenant, &key.name))?;
                touch(self.secret_taken(&key.secret_sha256))?;
                if let Some(customer) = &key.customer {
                    touch(self.customer(tenant, customer))?;
                }
            }
            Command::CreateCustomer { id, .. }
            | Command::EnsureCustomer { id, .. }
            | Command::SetCustomerLink { id, .. } => touch(self.customer(tenant, id))?,
            Command::PutSetting { key, .. } => touch(self.setting(tenant, key))?,
            Command::Records => {}
            Command::CreateWallet { wallet } | Command::EnsureWallet { wallet } => {
                touch(self.customer(tenant, &wallet.customer))?;
                touch(self.wallet_ix(tenant, &wallet.id))?;
            }
            Command::SetWalletStatus { wallet, .. }
            | Command::PatchWalletMetadata { wallet, .. } => {
                touch(self.wallet_ix(tenant, wallet))?;
            }
            Command::Post {
                id, wallet, kind, ..
            } => {
                touch(self.wallet_ix(tenant, wallet))?;
                touch(self.grants(tenant, wallet))?;
                touch(self.mutation_taken(tenant, *id))?;
                if *kind == MutationKind::TopUp {
                    touch(self.setting(tenant, &default_validity_key()))?;
                } else {
                    self.prefetch_auto_topup(tenant, wallet)?;
                }
            }
            Command::SetAutoTopUp { wallet, .. } => {
                touch(self.wallet_ix(tenant, wallet))?;
                self.prefetch_auto_topup(tenant, wallet)?;
            }
            Command::SetLowBalanceAlert { wallet, .. } => {
                touch(self.wallet_ix(tenant, wallet))?;
                let key = crate::webhooks::alert_key(wallet);
                self.prefetch_record(tenant, crate::webhooks::LOW_BALANCE_KIND, &key)?;
            }
            Command::SettleAutoTopUp { wallet, id, .. } => {
                touch(self.wallet_ix(tenant, wallet))?;
                touch(self.grants(tenant, wallet))?;
                touch(self.mutation_taken(tenant, *id))?;
                touch(self.setting(tenant, &default_validity_key()))?;
                self.prefetch_auto_topup(tenant, wallet)?;
            }
            Command::Transfer {
                debit_id,
                credit_id,
                from,
                to,
                ..
            } => {
                touch(self.wallet_ix(tenant, from))?;
                touch(self.wallet_ix(tenant, to))?;
                touch(self.grants(tenant, from))?;
                touch(self.grants(tenant, to))?;
                touch(self.mutation_taken(tenant, *debit_id))?;
                touch(self.mutation_taken(tenant, *credit_id))?;
                self.prefetch_auto_topup(tenant, from)?;
            }
            Command::PlaceHold { id, wallet, .. } | Command::PlaceCreditHold { id, wallet, .. } => {
                touch(self.wallet_ix(tenant, wallet))?;
                touch(self.hold_ix(*id))?;
                touch(self.grants(tenant, wallet))?;
                if matches!(command, Command::PlaceHold { .. }) {
                    self.prefetch_auto_topup(tenant, wallet)?;
                }
            }
            Command::CommitHold {
                hold, mutation_id, ..
            }
            | Command::ReleaseHold { hold, mutation_id } => {
                touch(self.hold_ix(*hold))?;
                touch(self.mutation_taken(tenant, *mutation_id))?;
                // A credit hold's commit is a top-up; its tenant's default validity is
                // read with the rest rather than in a round of its own.
                if matches!(command, Command::CommitHold { .. }) {
                    touch(self.setting(tenant, &default_validity_key()))?;
                }
            }
            Command::Reverse { id, mutation, .. } => {
                touch(self.mutation(tenant, *mutation))?;
                touch(self.mutation(tenant, *id))?;
            }
        }
        Ok(())
    }
}
