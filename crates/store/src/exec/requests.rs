//! Requests: idempotency, replay, and each command asking the ledger's rules.

use super::*;

impl Exec<'_> {
    // -----------------------------------------------------------------------------
    // Requests.

    /// One request: its answer, or why it has none in this run.
    pub(super) fn request(&mut self, request: &Request) -> Result<Answer, Gap> {
        if self.rows.may_miss() {
            let missing_before = self.missing.len();
            self.prefetch(request)?;
            if self.missing.len() > missing_before {
                return Err(Gap::Miss);
            }
        }
        let refused = |refusal| Ok(Answer::Outcome(Outcome::Refused(refusal)));
        if self.tenant(&request.tenant)?.is_none() {
            return refused(Refusal::TenantNotFound);
        }
        if let Some((key, fingerprint)) = &request.idempotency
            && let Some(recorded) = self.recorded(&request.tenant, key)?
        {
            if recorded.fingerprint != *fingerprint {
                return refused(Refusal::IdempotencyConflict);
            }
            let result = recorded.result.clone();
            let done = self.replay(&request.tenant, &result)?;
            // A key of another customer of the tenant must not reveal what it did.
            if !visible(&done, request.customer_only.as_ref()) {
                return refused(Refusal::IdempotencyConflict);
            }
            return Ok(Answer::Outcome(Outcome::Done {
                done,
                replayed: true,
            }));
        }
        if request.customer_only.is_some() && !request.command.allowed_for_customer_key() {
            return refused(Refusal::Forbidden);
        }
        let mark = self.mutations.len();
        let made = if request.is_linked() {
            self.linked(request)
        } else {
            self.execute(
                &request.tenant,
                request.customer_only.as_ref(),
                &request.command,
            )
        };
        // What the unit took from a wallet may start its automatic top-up, in the
        // unit; nothing here refuses (a miss runs the batch again).
        let made = made.and_then(|made| {
            self.start_auto_topups_after(&request.tenant, mark, &made)?;
            Ok(made)
        });
        let made = match made {
            Ok(made) => made,
            Err(Stop::Refused(refusal)) => return refused(refusal),
            Err(Stop::Gap(gap)) => return Err(gap),
            Err(Stop::Bug(what)) => {
                return Err(Gap::Broken(format!("a malformed request: {what}")));
            }
        };
        if let Some((key, fingerprint)) = &request.idempotency {
            let recorded = Recorded {
                fingerprint: *fingerprint,
                result: self.recorded_result(&made),
            };
            self.keys.push(KeyRecord {
                tenant: request.tenant.clone(),
                key: key.clone(),
                recorded: recorded.clone(),
                created_at: self.now,
            });
            remember(&mut self.idempotency, &request.tenant, key, Some(recorded));
        }
        Ok(Answer::Made(made))
    }

    /// What an idempotency key records of what a command made.
    pub(super) fn recorded_result(&self, made: &Made) -> RecordedResult {
        let id = |ix: usize| self.mutations[ix].id;
        match made {
            Made::Done(done) => RecordedResult::of(done),
            &Made::Mutation(ix) => RecordedResult::Mutation(id(ix)),
            &Made::Transfer { debit, credit, .. } => RecordedResult::Transfer {
                debit: id(debit),
                credit: id(credit),
            },
            Made::Hold { hold, mutation } => RecordedResult::Hold {
                hold: hold.id,
                mutation: Some(id(*mutation)),
            },
        }
    }

    pub(super) fn execute(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        command: &Command,
    ) -> Result<Made, Stop> {
        match command {
            Command::CreateTenant {
                tenant: new,
                name,
                admin_key,
            } => self
                .create_tenant(tenant, new, name, admin_key)
                .map(Made::Done),
            Command::CreateApiKey { key } => self.create_api_key(tenant, key).map(Made::Done),
            Command::CreateCustomer { id, name, link } => self
                .create_customer(tenant, only, id, name, link, false)
                .map(Made::Done),
            Command::EnsureCustomer { id, name, link } => self
                .create_customer(tenant, only, id, name, link, true)
                .map(Made::Done),
            Command::SetCustomerLink { id, link } => self
                .set_customer_link(tenant, only, id, link, false)
                .map(Made::Done),
            Command::CreateWallet { wallet } => self
                .create_wallet(tenant, only, wallet, false)
                .map(Made::Done),
            Command::EnsureWallet { wallet } => self
                .create_wallet(tenant, only, wallet, true)
                .map(Made::Done),
            Command::SetWalletStatus { wallet, status } => {
                let ix = self.visible_wallet(tenant, wallet, only)?;
                self.save_wallet(ix);
                let w = &mut self.wallets[ix];
                if w.wallet.status != *status {
                    w.wallet.status = *status;
                    w.touch(self.now);
                }
                Ok(Made::Done(Done::Wallet(w.wallet.clone())))
            }
            Command::PatchWalletMetadata { wallet, patch } => {
                let ix = self.visible_wallet(tenant, wallet, only)?;
                let metadata =
                    self.wallets[ix]
                        .wallet
                        .metadata
                        .patched(patch)
                        .map_err(|pairs| Refusal::MetadataExceeded {
                            pairs,
                            pairs_max: METADATA_PAIRS_MAX,
                        })?;
                self.save_wallet(ix);
                let w = &mut self.wallets[ix];
                if w.wallet.metadata != metadata {
                    w.wallet.metadata = metadata;
                    w.relabelled = true;
                    w.touch(self.now);
                }
                Ok(Made::Done(Done::Wallet(w.wallet.clone())))
            }
            Command::Post {
                id,
                wallet,
                kind,
                amount,
                reference,
                occurred_at,
                terms,
                metadata,
            } => self
                .post(
                    tenant,
                    only,
                    (*id, terms, metadata),
                    wallet,
                    *kind,
                    *amount,
                    reference,
                    *occurred_at,
                )
                .map(Made::Mutation),
            Command::Transfer {
                id,
                debit_id,
                credit_id,
                from,
                to,
                amount,
                reference,
                occurred_at,
                terms,
                metadata,
            } => self.transfer(
                tenant,
                only,
                TransferIds {
                    transfer: *id,
                    debit: *debit_id,
                    credit: *credit_id,
                },
                (from, to),
                (*amount, terms, metadata),
                reference,
                *occurred_at,
            ),
            Command::PlaceHold {
                id,
                wallet,
                amount,
                reference,
                expires_at,
                metadata,
            }
            | Command::PlaceCreditHold {
                id,
                wallet,
                amount,
                reference,
                expires_at,
                metadata,
            } => {
                let direction = match command {
                    Command::PlaceCreditHold { .. } => HoldDirection::Credit,
                    _ => HoldDirection::Debit,
                };
                self.place_hold(
                    tenant,
                    only,
                    (*id, direction),
                    wallet,
                    *amount,
                    (reference, metadata),
                    *expires_at,
                )
                .map(Made::Done)
            }
            Command::CommitHold {
                hold,
                amount,
                mutation_id,
                reference,
            } => self.settle_hold(
                tenant,
                only,
                *hold,
                Settle::Commit(*amount),
                *mutation_id,
                reference.as_ref(),
            ),
            Command::ReleaseHold { hold, mutation_id } => {
                self.settle_hold(tenant, only, *hold, Settle::Release, *mutation_id, None)
            }
            Command::Reverse {
                id,
                mutation,
                allow_negative,
                reference,
            } => self.reverse(tenant, only, (*id, *mutation), *allow_negative, reference),
            Command::PutSetting { key, value } => {
                self.put_setting(tenant, key, value).map(Made::Done)
            }
            Command::Records => Ok(Made::Done(Done::Records)),
            Command::SetAutoTopUp { wallet, rule } => {
                self.set_auto_topup(tenant, only, wallet, rule.as_ref())
            }
            Command::SetLowBalanceAlert { wallet, alert } => {
                self.set_low_balance_alert(tenant, only, wallet, alert.as_ref())
            }
            Command::SettleAutoTopUp {
                wallet,
                n,
                id,
                amount,
                outcome,
            } => self.settle_auto_topup(tenant, only, (wallet, *n, *id), *amount, outcome),
        }
    }

    /// Creates a customer; one that exists is refused, or answered as it is when
    /// `existing_ok`.
    pub(super) fn create_customer(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        id: &CustomerId,
        name: &str,
        link: &str,
        existing_ok: bool,
    ) -> Result<Done, Stop> {
        if only.is_some_and(|only| only != id) {
            return Err(Refusal::Forbidden.into());
        }
        check_link(link)?;
        if self.customer(tenant, id)?.is_some() {
            return match existing_ok {
                true => self.set_customer_link(tenant, only, id, link, true),
                false => Err(Refusal::CustomerExists.into()),
            };
        }
        let customer = Customer {
            tenant: tenant.clone(),
            id: id.clone(),
            name: name.to_owned(),
            link: link.to_owned(),
            created_at: self.now,
        };
        self.new_customers.push(customer.clone());
        remember(&mut self.customers, tenant, id, Some(customer.clone()));
        self.journal(|_| linked::Undo::NewCustomer(tenant.clone(), id.clone()));
        Ok(Done::Customer(customer))
    }

    /// Sets the link of customer `id`; `only_if_absent` leaves a link it has alone (and
    /// an empty `link` changes nothing then).
    pub(super) fn set_customer_link(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        id: &CustomerId,
        link: &str,
        only_if_absent: bool,
    ) -> Result<Done, Stop> {
        if only.is_some_and(|only| only != id) {
            return Err(Refusal::CustomerNotFound.into());
        }
        check_link(link)?;
        let existing = self
            .customer(tenant, id)?
            .ok_or(Refusal::CustomerNotFound)?
            .clone();
        if existing.link == link
            || (only_if_absent && (!existing.link.is_empty() || link.is_empty()))
        {
            return Ok(Done::Customer(existing));
        }
        let mut changed = existing.clone();
        changed.link = link.to_owned();
        self.customer_links.push(CustomerLink {
            tenant: tenant.clone(),
            id: id.clone(),
            link: link.to_owned(),
        });
        remember(&mut self.customers, tenant, id, Some(changed.clone()));
        self.journal(|_| {
            linked::Undo::CustomerLink(tenant.clone(), id.clone(), Box::new(existing))
        });
        Ok(Done::Customer(changed))
    }

    pub(super) fn put_setting(
        &mut self,
        tenant: &TenantId,
        key: &SettingKey,
        value: &str,
    ) -> Result<Done, Stop> {
        if value.len() > SETTING_VALUE_LEN_MAX {
            return Err(Stop::Bug(format!(
                "a setting value of {} bytes, over {SETTING_VALUE_LEN_MAX}",
                value.len()
            )));
        }
        let created = self.setting(tenant, key)?.is_none();
        remember(&mut self.settings, tenant, key, Some(value.to_owned()));
        match self
            .new_settings
            .iter_mut()
            .find(|s| s.tenant == *tenant && s.key == *key)
        {
            // Put earlier in this batch: the batch writes the last value, and the
            // setting counts as created when it was before the batch.
            Some(earlier) => earlier.value = value.to_owned(),
            None => self.new_settings.push(SettingChange {
                tenant: tenant.clone(),
                key: key.clone(),
                value: value.to_owned(),
                created,
                updated_at: self.now,
            }),
        }
        Ok(Done::Setting { created })
    }

    pub(super) fn create_tenant(
        &mut self,
        operator: &TenantId,
        new: &TenantId,
        name: &str,
        admin_key: &NewApiKey,
    ) -> Result<Done, Stop> {
        if self.tenant(operator)? != Some(true) {
            return Err(Refusal::Forbidden.into());
        }
        // A new tenant has no customers yet.
        if admin_key.customer.is_some() {
            return Err(Refusal::CustomerNotFound.into());
        }
        if self.secret_taken(&admin_key.secret_sha256)? {
            return Err(Refusal::ApiKeyExists.into());
        }
        if self.tenant(new)?.is_some() {
            return Err(Refusal::TenantExists.into());
        }
        self.new_tenants.push(NewTenant {
            id: new.clone(),
            name: name.to_owned(),
            operator: false,
            created_at: self.now,
        });
        self.tenants.insert(new.clone(), Some(false));
        let key = self.add_api_key(new, admin_key);
        Ok(Done::Tenant {
            tenant: new.clone(),
            admin_key: key,
        })
    }

    pub(super) fn create_api_key(
        &mut self,
        tenant: &TenantId,
        key: &NewApiKey,
    ) -> Result<Done, Stop> {
        if let Some(customer) = &key.customer
            && self.customer(tenant, customer)?.is_none()
        {
            return Err(Refusal::CustomerNotFound.into());
        }
        if self.api_key(tenant, &key.name)?.is_some() || self.secret_taken(&key.secret_sha256)? {
            return Err(Refusal::ApiKeyExists.into());
        }
        Ok(Done::ApiKey(self.add_api_key(tenant, key)))
    }

    pub(super) fn add_api_key(&mut self, tenant: &TenantId, key: &NewApiKey) -> ApiKey {
        let made = ApiKey {
            tenant: tenant.clone(),
            name: key.name.clone(),
            secret_sha256: key.secret_sha256,
            scopes: key.scopes,
            customer: key.customer.clone(),
            created_at: self.now,
        };
        self.new_api_keys.push(made.clone());
        self.secrets.insert(key.secret_sha256, true);
        self.api_keys
            .entry(tenant.clone())
            .or_default()
            .insert(key.name.clone(), Some(made.clone()));
        made
    }

    pub(super) fn create_wallet(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        new: &NewWallet,
        existing_ok: bool,
    ) -> Result<Done, Stop> {
        if only.is_some_and(|only| *only != new.customer)
            || self.customer(tenant, &new.customer)?.is_none()
        {
            return Err(Refusal::CustomerNotFound.into());
        }
        if let Some(ix) = self.wallet_ix(tenant, &new.id)? {
            let existing = &self.wallets[ix].wallet;
            return match existing_ok && existing.customer == new.customer {
                true => Ok(Done::Wallet(existing.clone())),
                false => Err(Refusal::WalletExists.into()),
            };
        }
        // The edge checks the ceiling as it checks the floor.
        if new.ceiling.is_some_and(|c| !NewWallet::ceiling_is_valid(c)) {
            return Err(Stop::Bug(format!(
                "a wallet with the ceiling {:?}",
                new.ceiling
            )));
        }
        let wallet = Wallet::open(tenant.clone(), new.clone(), self.now);
        let ix = self.add_wallet(wallet.clone(), true);
        remember(&mut self.wallet_ix, tenant, &wallet.id, Some(ix));
        self.journal(|_| linked::Undo::NewWallet(tenant.clone(), wallet.id.clone(), ix));
        Ok(Done::Wallet(wallet))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn post(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        (id, terms, metadata): (MutationId, &GrantTerms, &Metadata),
        wallet: &WalletId,
        kind: MutationKind,
        amount: Amount,
        reference: &Reference,
        occurred_at: Option<Timestamp>,
    ) -> Result<usize, Stop> {
        // The other kinds have rules of their own, and top-ups and debits move a
        // positive amount; the edge never builds anything else, and the rules assert it.
        match kind {
            MutationKind::TopUp | MutationKind::Debit if amount.get() <= 0 => {
                return Err(Stop::Bug(
                    "a top-up or debit of a non-positive amount".to_owned(),
                ));
            }
            MutationKind::TopUp | MutationKind::Debit | MutationKind::Adjustment => {}
            _ => {
                return Err(Stop::Bug(
                    "a post of a kind with rules of its own".to_owned(),
                ));
            }
        }
        let counter = counter_account(kind)?;
        let now = self.now;
        let wi = self.visible_wallet(tenant, wallet, only)?;
        let unspendable = match kind {
            MutationKind::Debit => self.unspendable(tenant, wallet)?,
            _ => 0,
        };
        let w = &self.wallets[wi].wallet;
        let posting = post(w, kind, amount, now, unspendable)?;
        let balance = w.balance;
        let (drawn, grant) = match posting.amount {
            ..0 => (
                self.plan_debit(tenant, wallet, -posting.amount)?.draws,
                None,
            ),
            _ => {
                let terms = match kind {
                    MutationKind::TopUp => self.top_up_terms(tenant, terms)?,
                    _ => terms.clone(),
                };
                let grant =
                    self.plan_credit(tenant, wallet, balance, (id, &terms), posting.amount)?;
                (Vec::new(), grant)
            }
        };
        let w = &self.wallets[wi].wallet;
        let mutation = Mutation {
            tenant: tenant.clone(),
            id,
            wallet: w.id.clone(),
            customer: w.customer.clone(),
            unit: w.unit.clone(),
            kind,
            amount: posting.amount,
            balance_after: posting.balance_after,
            reference: reference.clone(),
            hold: None,
            transfer: None,
            counter_wallet: None,
            occurred_at: occurred_at.unwrap_or(now),
            recorded_at: now,
            drawn,
            reverses: None,
            metadata: metadata.clone(),
        };
        let ai = self.account_ix(tenant, &mutation.unit, counter)?;
        let account_after = add_to_balance(self.accounts[ai].balance, -posting.amount)?;
        if self.mutation_taken(tenant, id)? {
            return Err(Refusal::MutationExists.into());
        }
        self.save_account(ai);
        self.save_wallet(wi);
        self.apply_draws(tenant, wallet, &mutation.drawn, &[]);
        if let Some(grant) = grant {
            self.add_grant(tenant, wallet, grant);
        }
        self.accounts[ai].balance = account_after;
        let w = &mut self.wallets[wi];
        w.wallet.balance = posting.balance_after;
        w.touch(now);
        Ok(self.add_mutation(mutation))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn transfer(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        ids: TransferIds,
        (from, to): (&WalletId, &WalletId),
        (amount, terms, metadata): (Amount, &GrantTerms, &Metadata),
        reference: &Reference,
        occurred_at: Option<Timestamp>,
    ) -> Result<Made, Stop> {
        if amount.get() <= 0 {
            return Err(Stop::Bug("a transfer of a non-positive amount".to_owned()));
        }
        let now = self.now;
        let si = self.visible_wallet(tenant, from, only)?;
        let ti = self.visible_wallet(tenant, to, only)?;
        let unspendable = self.unspendable(tenant, from)?;
        let (source, target) = (&self.wallets[si].wallet, &self.wallets[ti].wallet);
        let plan = transfer(source, target, amount, now, unspendable)?;
        let target_balance = target.balance;
        let drawn = self.plan_debit(tenant, from, amount.get())?.draws;
        let grant = self.plan_credit(
            tenant,
            to,
            target_balance,
            (ids.credit, terms),
            amount.get(),
        )?;
        if ids.debit == ids.credit
            || self.mutation_taken(tenant, ids.debit)?
            || self.mutation_taken(tenant, ids.credit)?
        {
            return Err(Refusal::MutationExists.into());
        }
        let leg = |w: &Wallet, id, kind, amount, balance_after, other: &Wallet, drawn| Mutation {
            tenant: tenant.clone(),
            id,
            wallet: w.id.clone(),
            customer: w.customer.clone(),
            unit: w.unit.clone(),
            kind,
            amount,
            balance_after,
            reference: reference.clone(),
            hold: None,
            transfer: Some(ids.transfer),
            counter_wallet: Some(other.id.clone()),
            occurred_at: occurred_at.unwrap_or(now),
            recorded_at: now,
            drawn,
            reverses: None,
            metadata: metadata.clone(),
        };
        let (source, target) = (&self.wallets[si].wallet, &self.wallets[ti].wallet);
        let debit = leg(
            source,
            ids.debit,
            MutationKind::TransferOut,
            -amount.get(),
            plan.from_after,
            target,
            drawn,
        );
        let credit = leg(
            target,
            ids.credit,
            MutationKind::TransferIn,
            amount.get(),
            plan.to_after,
            source,
            Vec::new(),
        );
        self.apply_draws(tenant, from, &debit.drawn, &[]);
        if let Some(grant) = grant {
            self.add_grant(tenant, to, grant);
        }
        for (ix, balance) in [(si, plan.from_after), (ti, plan.to_after)] {
            self.save_wallet(ix);
            let w = &mut self.wallets[ix];
            w.wallet.balance = balance;
            w.touch(now);
        }
        Ok(Made::Transfer {
            id: ids.transfer,
            debit: self.add_mutation(debit),
            credit: self.add_mutation(credit),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn place_hold(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        (id, direction): (HoldId, HoldDirection),
        wallet: &WalletId,
        amount: Amount,
        (reference, metadata): (&Reference, &Metadata),
        expires_at: Option<Timestamp>,
    ) -> Result<Done, Stop> {
        if amount.get() <= 0 {
            return Err(Stop::Bug("a hold of a non-positive amount".to_owned()));
        }
        let now = self.now;
        let wi = self.visible_wallet(tenant, wallet, only)?;
        let unspendable = match direction {
            HoldDirection::Debit => self.unspendable(tenant, wallet)?,
            HoldDirection::Credit => 0,
        };
        let w = &self.wallets[wi].wallet;
        let reserved = match direction {
            HoldDirection::Debit => Reserved {
                held: place_hold(w, amount, now, unspendable)?,
                incoming: w.incoming,
            },
            HoldDirection::Credit => Reserved {
                held: w.held,
                incoming: place_credit_hold(w, amount, now)?,
            },
        };
        let hold = Hold {
            tenant: tenant.clone(),
            id,
            wallet: w.id.clone(),
            customer: w.customer.clone(),
            direction,
            amount: amount.get(),
            committed_amount: None,
            status: HoldStatus::Pending,
            reference: reference.clone(),
            expires_at,
            created_at: now,
            settled_at: None,
            reserved: Vec::new(),
            metadata: metadata.clone(),
        };
        let hold = Hold {
            reserved: match direction {
                HoldDirection::Debit => self.plan_debit(tenant, wallet, amount.get())?.draws,
                HoldDirection::Credit => Vec::new(),
            },
            ..hold
        };
        if self.hold_ix(id)?.is_some() {
            return Err(Refusal::HoldExists.into());
        }
        self.save_wallet(wi);
        self.reserve(tenant, wallet, &hold.reserved);
        let w = &mut self.wallets[wi];
        w.wallet.held = reserved.held;
        w.wallet.incoming = reserved.incoming;
        w.touch(now);
        let ix = self.add_hold(hold.clone(), true);
        self.hold_ix.insert(id, Some(ix));
        self.hold_placed.push((self.mutations.len(), ix));
        self.journal(|_| linked::Undo::NewHold(id, ix));
        Ok(Done::Hold {
            hold,
            mutation: None,
        })
    }

    /// Commits or releases a pending hold on request.
    pub(super) fn settle_hold(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        id: HoldId,
        settle: Settle,
        mutation_id: MutationId,
        reference: Option<&Reference>,
    ) -> Result<Made, Stop> {
        let hi = match self.hold_ix(id)? {
            Some(hi)
                if self.holds[hi].hold.tenant == *tenant
                    && only.is_none_or(|only| *only == self.holds[hi].hold.customer) =>
            {
                hi
            }
            _ => return Err(Refusal::HoldNotFound.into()),
        };
        // The settling mutation carries the hold's reference, so it reads as the
        // payment the hold was made for, unless the commit names its own.
        let reference = reference.unwrap_or(&self.holds[hi].hold.reference).clone();
        let (hold, mutation) = self.settle(hi, settle, mutation_id, reference)?;
        Ok(Made::Hold { hold, mutation })
    }

    /// Settles the hold at `hi` in [`Exec::holds`]: asks the rules, then posts the
    /// mutation and updates the hold, its wallet and the system account. Nothing
    /// changes when a rule refuses.
    pub(super) fn settle(
        &mut self,
        hi: usize,
        settle: Settle,
        mutation_id: MutationId,
        reference: Reference,
    ) -> Result<(Hold, usize), Stop> {
        let now = self.now;
        let (tenant, wallet) = {
            let h = &self.holds[hi].hold;
            (h.tenant.clone(), h.wallet.clone())
        };
        let Some(wi) = self.wallet_ix(&tenant, &wallet)? else {
            let id = self.holds[hi].hold.id;
            return Err(Gap::Broken(format!("hold {id} has no wallet")).into());
        };
        let (w, hold) = (&self.wallets[wi].wallet, &self.holds[hi].hold);
        // The rules assert this; on corrupt data the store reports it instead.
        let reserved = match hold.direction {
            HoldDirection::Debit => w.held,
            HoldDirection::Credit => w.incoming,
        };
        if hold.status == HoldStatus::Pending && reserved < hold.amount {
            return Err(Gap::Broken(format!(
                "wallet {} sets aside {reserved} ({}) but its pending hold {} is {}",
                w.id,
                hold.direction.as_str(),
                hold.id,
                hold.amount
            ))
            .into());
        }
        let (kind, amount, balance_after, reserved_after, status, committed) = match settle {
            Settle::Commit(amount) => {
                let plan = commit_hold(w, hold, amount, now)?;
                (
                    plan.kind,
                    plan.posting.amount,
                    plan.posting.balance_after,
                    plan.reserved,
                    HoldStatus::Committed,
                    Some(plan.committed),
                )
            }
            Settle::Release | Settle::Expire => {
                let reserved_after = release_hold(w, hold)?;
                let status = match settle {
                    Settle::Expire => HoldStatus::Expired,
                    _ => HoldStatus::Released,
                };
                let kind = MutationKind::HoldRelease;
                (kind, 0, w.balance, reserved_after, status, None)
            }
        };
        let (balance, reserved, direction, hold_id) =
            (w.balance, hold.reserved.clone(), hold.direction, hold.id);
        // Like its reference, the settling mutation carries the hold's metadata, so a
        // list filtered by the client's labels finds the money the hold moved.
        let metadata = hold.metadata.clone();
        // What the settlement does to the wallet's grants: a debit hold gives back its
        // reservation and draws what it commits; a credit hold's commit makes a grant.
        let (drawn, unheld, grant) = match (direction, committed) {
            (HoldDirection::Debit, Some(committed)) => {
                let (drawn, unheld) = self.plan_commit(&tenant, &wallet, &reserved, committed)?;
                (drawn, unheld, None)
            }
            (HoldDirection::Debit, None) => (Vec::new(), reserved, None),
            (HoldDirection::Credit, Some(committed)) => {
                let terms = self.top_up_terms(&tenant, &GrantTerms::default())?;
                let grant =
                    self.plan_credit(&tenant, &wallet, balance, (mutation_id, &terms), committed)?;
                (Vec::new(), Vec::new(), grant)
            }
            (HoldDirection::Credit, None) => (Vec::new(), Vec::new(), None),
        };
        let w = &self.wallets[wi].wallet;
        let mutation = Mutation {
            tenant: tenant.clone(),
            id: mutation_id,
            wallet: w.id.clone(),
            customer: w.customer.clone(),
            unit: w.unit.clone(),
            kind,
            amount,
            balance_after,
            reference,
            hold: Some(hold_id),
            transfer: None,
            counter_wallet: None,
            occurred_at: now,
            recorded_at: now,
            drawn,
            reverses: None,
            metadata,
        };
        let account = match amount {
            0 => None,
            _ => {
                let counter = counter_account(kind)?;
                let ai = self.account_ix(&tenant, &mutation.unit, counter)?;
                Some((ai, add_to_balance(self.accounts[ai].balance, -amount)?))
            }
        };
        if self.mutation_taken(&tenant, mutation_id)? {
            return Err(Refusal::MutationExists.into());
        }
        if let Some((ai, after)) = account {
            self.save_account(ai);
            self.accounts[ai].balance = after;
        }
        self.save_wallet(wi);
        self.save_hold(hi);
        self.apply_draws(&tenant, &wallet, &mutation.drawn, &unheld);
        if let Some(grant) = grant {
            self.add_grant(&tenant, &wallet, grant);
        }
        let w = &mut self.wallets[wi];
        w.wallet.balance = balance_after;
        w.wallet.held = reserved_after.held;
        w.wallet.incoming = reserved_after.incoming;
        w.touch(now);
        let slot = &mut self.holds[hi];
        slot.hold.status = status;
        slot.hold.committed_amount = committed;
        slot.hold.settled_at = Some(now);
        slot.dirty = true;
        let hold = slot.hold.clone();
        Ok((hold, self.add_mutation(mutation)))
    }

    /// Reverses mutation `original` once (see `prepaid_ledger::plan_reversal`): a
    /// reversal that exists is answered as it is.
    pub(super) fn reverse(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        (id, original_id): (MutationId, MutationId),
        allow_negative: bool,
        reference: &Reference,
    ) -> Result<Made, Stop> {
        if id != reversal_id(original_id) {
            return Err(Stop::Bug(format!(
                "a reversal of {original_id} with the id {id}"
            )));
        }
        let visible = |m: &Mutation| only.is_none_or(|only| *only == m.customer);
        let original = match self.mutation(tenant, original_id)? {
            Some(m) if visible(&m) => m,
            _ => return Err(Refusal::MutationNotFound.into()),
        };
        if let Some(done) = self.mutation(tenant, id)? {
            return Ok(Made::Done(Done::Mutation(done)));
        }
        let wallet = original.wallet.clone();
        let Some(wi) = self.wallet_ix(tenant, &wallet)? else {
            return Err(Gap::Broken(format!("mutation {original_id} has no wallet")).into());
        };
        let given_back: Vec<MutationId> = original.drawn.iter().map(|d| d.grant).collect();
        self.load_grants_by_id(tenant, &wallet, &given_back)?;
        let unspendable = self.unspendable(tenant, &wallet)?;
        let grant = self
            .grants(tenant, &wallet)?
            .iter()
            .find(|s| s.grant.id == original.id)
            .map(|s| s.grant.clone());
        let plan = plan_reversal(
            &original,
            &self.wallets[wi].wallet,
            grant.as_ref(),
            allow_negative,
            unspendable,
        )?;
        // What a debit took beyond its grants (into debt) comes back as a credit: it
        // repays the debt the wallet has now, and the rest is a grant of its own.
        let undrawn = match original.amount {
            ..0 => -original.amount - original.drawn.iter().map(|d| d.amount).sum::<i64>(),
            _ => 0,
        };
        let balance = self.wallets[wi].wallet.balance;
        let grant_new = match undrawn {
            1.. => self.plan_credit(
                tenant,
                &wallet,
                balance,
                (id, &GrantTerms::default()),
                undrawn,
            )?,
            _ => None,
        };
        let counter = counter_account(original.kind)?;
        let now = self.now;
        let w = &self.wallets[wi].wallet;
        let mutation = Mutation {
            tenant: tenant.clone(),
            id,
            wallet: wallet.clone(),
            customer: w.customer.clone(),
            unit: w.unit.clone(),
            kind: MutationKind::Reversal,
            amount: plan.amount,
            balance_after: plan.balance_after,
            reference: reference.clone(),
            hold: None,
            transfer: None,
            counter_wallet: None,
            occurred_at: now,
            recorded_at: now,
            drawn: plan.drawn,
            reverses: Some(original_id),
            // The reversal carries its original's labels, so a list filtered by them
            // shows the correction beside what it corrects.
            metadata: original.metadata.clone(),
        };
        let ai = self.account_ix(tenant, &mutation.unit, counter)?;
        let account_after = add_to_balance(self.accounts[ai].balance, -plan.amount)?;
        if self.mutation_taken(tenant, id)? {
            return Err(Refusal::MutationExists.into());
        }
        self.save_account(ai);
        self.save_wallet(wi);
        self.apply_draws(tenant, &wallet, &mutation.drawn, &[]);
        if let Some(grant) = grant_new {
            self.add_grant(tenant, &wallet, grant);
        }
        self.accounts[ai].balance = account_after;
        let w = &mut self.wallets[wi];
        w.wallet.balance = plan.balance_after;
        w.touch(now);
        Ok(Made::Mutation(self.add_mutation(mutation)))
    }

    /// Rebuilds the answer an idempotency key recorded, as it was first given.
    pub(super) fn replay(&mut self, tenant: &TenantId, result: &RecordedResult) -> Lookup<Done> {
        let missing = |what: &dyn std::fmt::Display| {
            Gap::Broken(format!("an idempotency key points at a missing {what}"))
        };
        let mutation = |exec: &mut Self, id: MutationId| match exec.mutation(tenant, id)? {
            Some(m) if m.tenant == *tenant => Ok(m),
            _ => Err(missing(&format_args!("mutation {id}"))),
        };
        Ok(match result {
            RecordedResult::Tenant {
                tenant: new,
                admin_key,
            } => Done::Tenant {
                tenant: new.clone(),
                admin_key: self
                    .api_key(new, admin_key)?
                    .cloned()
                    .ok_or_else(|| missing(&format_args!("key {new}/{admin_key}")))?,
            },
            RecordedResult::ApiKey(name) => Done::ApiKey(
                self.api_key(tenant, name)?
                    .cloned()
                    .ok_or_else(|| missing(&format_args!("key {name}")))?,
            ),
            RecordedResult::Customer(id) => Done::Customer(
                self.customer(tenant, id)?
                    .cloned()
                    .ok_or_else(|| missing(&format_args!("customer {id}")))?,
            ),
            RecordedResult::Wallet {
                id,
                status,
                balance,
                held,
                updated_at,
            } => {
                let ix = self
                    .wallet_ix(tenant, id)?
                    .ok_or_else(|| missing(&format_args!("wallet {id}")))?;
                let w = &self.wallets[ix];
                Done::Wallet(Wallet {
                    status: *status,
                    balance: *balance,
                    held: *held,
                    updated_at: *updated_at,
                    ..w.wallet.clone()
                })
            }
            RecordedResult::Mutation(id) => Done::Mutation(mutation(self, *id)?),
            RecordedResult::Transfer { debit, credit } => {
                let debit = mutation(self, *debit)?;
                let credit = mutation(self, *credit)?;
                let id = debit
                    .transfer
                    .ok_or_else(|| missing(&format_args!("transfer of {}", debit.id)))?;
                Done::Transfer(Transfer { id, debit, credit })
            }
            RecordedResult::Hold {
                hold,
                mutation: settled,
            } => {
                let mut h = match self.hold_ix(*hold)?.map(|ix| &self.holds[ix].hold) {
                    Some(h) if h.tenant == *tenant => h.clone(),
                    _ => return Err(missing(&format_args!("hold {hold}"))),
                };
                let settled = settled.map(|id| mutation(self, id)).transpose()?;
                // A commit or release answer shows the hold as it stays; a placement
                // answer showed it pending, whatever became of it since.
                if settled.is_none() {
                    h.status = HoldStatus::Pending;
                    h.committed_amount = None;
                    h.settled_at = None;
                }
                Done::Hold {
                    hold: h,
                    mutation: settled,
                }
            }
            RecordedResult::Setting { created } => Done::Setting { created: *created },
            RecordedResult::Records => Done::Records,
        })
    }
}

/// A link over its bound is a request the edge never builds.
fn check_link(link: &str) -> Result<(), Stop> {
    if link.len() > LINK_LEN_MAX {
        return Err(Stop::Bug(format!(
            "a customer link of {} bytes, over {LINK_LEN_MAX}",
            link.len()
        )));
    }
    Ok(())
}
