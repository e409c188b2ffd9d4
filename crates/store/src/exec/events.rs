//! Webhook events: what a run adds to the outbox for tenants with webhooks.
//!
//! After the last request of a batch (or the sweep's last row), the executor looks at
//! what the run made, in the order it made it, and queues one job of
//! [`crate::webhooks::EVENT_QUEUE`] per event of a tenant that has an enabled endpoint
//! ([`Rows::webhooks`]): `mutation.created` for every new mutation, `hold.created`
//! for every new hold, `hold.committed`, `hold.released` or `hold.expired` for the
//! mutation that settles a hold, `grant.expired` for the sweep's expiry of a grant,
//! `auto_topup.succeeded` or `auto_topup.failed` for an automatic top-up's settlement,
//! `wallet.low_balance` for each threshold of a wallet's alert that its available
//! amount fell past over the batch ([`prepaid_ledger::low_balance_crossings`]), and
//! `wallet.depleted` for a wallet whose available amount went from above 0 to 0 or
//! below over the batch. The jobs are written with the batch, so an event exists exactly
//! when its change does; refused requests left nothing to see here.
//!
//! Each wallet with events takes the next version of its record of
//! [`crate::webhooks::SEQUENCE_KIND`]: the batch holds the wallet (its row lock on
//! PostgreSQL, the single writer on SQLite), so versions number the wallet's batches in
//! commit order, and the event's place among the wallet's events of the batch (from 0,
//! the last one marked) orders it within, so each event knows the one before it.

use super::*;
use crate::webhooks::{
    EVENT_QUEUE, EventFacts, EventType, LOW_BALANCE_KIND, SEQUENCE_KIND, alert_key, decode_alert,
};

/// A change that makes events, in the order the run made it.
#[derive(Clone, Copy)]
enum Item {
    /// A hold placed (its slot), before the mutation made after it.
    HoldPlaced(usize),
    /// A mutation (its index).
    Mutation(usize),
    /// A wallet (its slot) depleted over the batch, after all its mutations.
    Depleted(usize),
    /// A wallet (its slot) whose available amount fell past this threshold of its
    /// alert over the batch.
    LowBalance(usize, i64),
    /// An automatic top-up settled (its place in [`Exec::topups_settled`]).
    TopUp(usize),
}

impl Exec<'_> {
    /// Whether the tenant has an enabled webhook endpoint.
    pub(super) fn webhooks(&mut self, tenant: &TenantId) -> Lookup<bool> {
        if let Some(&known) = self.webhooks.get(tenant) {
            return Ok(known);
        }
        let found = noted(
            self.rows.webhooks(tenant),
            &mut self.missing.webhooks,
            || tenant.clone(),
        )?;
        self.webhooks.insert(tenant.clone(), found);
        Ok(found)
    }

    /// Queues the run's events. A lookup that misses is noted (the run is run again);
    /// only a failed database is an error.
    pub(super) fn emit_events(&mut self) -> Result<(), StoreError> {
        let mut items: Vec<(usize, u8, Item)> = Vec::new();
        for &(position, hi) in &self.hold_placed {
            if self.holds[hi].new {
                items.push((position, 0, Item::HoldPlaced(hi)));
            }
        }
        items.extend((0..self.mutations.len()).map(|ix| (ix, 1, Item::Mutation(ix))));
        // A failed top-up comes before the mutations made after it, a credit right
        // after its own mutation (the sort below keeps the order of equal places).
        for (si, settled) in self.topups_settled.iter().enumerate() {
            let (position, sub) = match settled.credit {
                Ok(ix) => (ix, 1),
                Err(_) => (settled.position, 0),
            };
            items.push((position, sub, Item::TopUp(si)));
        }
        for wi in 0..self.wallets.len() {
            let slot = &self.wallets[wi];
            if !slot.dirty {
                continue;
            }
            let (before, level_before) = (slot.before, slot.level_before);
            let after = prepaid_ledger::available(&slot.wallet);
            let level_after = prepaid_ledger::alert_level(&slot.wallet);
            if let Some(level_before) = level_before
                && level_after < level_before
            {
                for threshold in self.crossings(wi, level_before, level_after)? {
                    items.push((self.mutations.len(), 2, Item::LowBalance(wi, threshold)));
                }
            }
            if before.unwrap_or(0) > 0 && after.is_some_and(|a| a <= 0) {
                items.push((self.mutations.len(), 2, Item::Depleted(wi)));
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        items.sort_by_key(|&(position, sub, _)| (position, sub));
        // Each wallet's sequence, and the place of its next event in the batch.
        let mut sequences: HashMap<(TenantId, WalletId), (i64, u32)> = HashMap::new();
        let mut made: Vec<(TenantId, WalletId, RecordKey, EventFacts)> = Vec::new();
        for (_, _, item) in items {
            let (tenant, wallet) = match item {
                Item::HoldPlaced(hi) => {
                    let h = &self.holds[hi].hold;
                    (h.tenant.clone(), h.wallet.clone())
                }
                Item::Mutation(ix) => {
                    let m = &self.mutations[ix];
                    (m.tenant.clone(), m.wallet.clone())
                }
                Item::Depleted(wi) | Item::LowBalance(wi, _) => {
                    let w = &self.wallets[wi].wallet;
                    (w.tenant.clone(), w.id.clone())
                }
                Item::TopUp(si) => {
                    let t = &self.topups_settled[si];
                    (t.tenant.clone(), t.wallet.clone())
                }
            };
            match self.webhooks(&tenant) {
                Ok(true) => {}
                Ok(false) | Err(Gap::Miss) => continue,
                Err(Gap::Failed(e)) => return Err(e),
                Err(Gap::Broken(why)) => {
                    tracing::error!(%tenant, "not queueing webhook events: {why}");
                    continue;
                }
            }
            let key = (tenant.clone(), wallet.clone());
            if !sequences.contains_key(&key) {
                match self.next_sequence(&tenant, &wallet)? {
                    Some(sequence) => {
                        sequences.insert(key.clone(), (sequence, 0));
                    }
                    None => continue,
                }
            }
            let (sequence, mut place) = sequences[&key];
            let events = self.facts(item, sequence, &mut place);
            sequences.insert(key, (sequence, place));
            for facts in events {
                let subject = match facts.event_type {
                    EventType::WalletDepleted => format!("{wallet}:{sequence}"),
                    EventType::WalletLowBalance => {
                        format!(
                            "{wallet}:{sequence}:{}",
                            facts.threshold.unwrap_or_default()
                        )
                    }
                    EventType::AutoTopupSucceeded | EventType::AutoTopupFailed => {
                        let n = facts.auto_topup.map(|(n, _)| n).unwrap_or_default();
                        format!("{wallet}:{n}")
                    }
                    EventType::HoldCreated
                    | EventType::HoldCommitted
                    | EventType::HoldReleased
                    | EventType::HoldExpired => facts.hold.clone().unwrap_or_default(),
                    _ => facts.mutation.clone().unwrap_or_default(),
                };
                let id = format!("{}:{subject}", facts.event_type.as_str());
                let Ok(id) = RecordKey::parse(id) else {
                    tracing::error!(%tenant, %wallet, "an event id does not fit a job id");
                    continue;
                };
                made.push((tenant.clone(), wallet.clone(), id, facts));
            }
        }
        // The last event of each wallet in the batch says so: the next one is the first
        // of the wallet's next sequence.
        let mut seen = std::collections::HashSet::new();
        for (tenant, wallet, _, facts) in made.iter_mut().rev() {
            facts.last = seen.insert((tenant.clone(), wallet.clone()));
        }
        for (tenant, _, id, facts) in made {
            self.jobs.push(NewJob {
                tenant,
                queue: EVENT_QUEUE,
                id,
                payload: facts.to_json(),
                due_at: self.now,
            });
        }
        Ok(())
    }

    /// The thresholds of the wallet's low-balance alert that its level crossed going
    /// from `before` to `after`; none for a tenant without webhooks. A miss is noted
    /// (the run is run again) and an alert that does not decode is logged.
    fn crossings(&mut self, wi: usize, before: i64, after: i64) -> Result<Vec<i64>, StoreError> {
        let (tenant, wallet) = {
            let w = &self.wallets[wi].wallet;
            (w.tenant.clone(), w.id.clone())
        };
        match self.webhooks(&tenant) {
            Ok(true) => {}
            Ok(false) | Err(Gap::Miss) | Err(Gap::Broken(_)) => return Ok(Vec::new()),
            Err(Gap::Failed(e)) => return Err(e),
        }
        let value = match self.record(&tenant, LOW_BALANCE_KIND, &alert_key(&wallet)) {
            Ok(slot) => slot.value,
            Err(Stop::Gap(Gap::Failed(e))) => return Err(e),
            Err(_) => return Ok(Vec::new()),
        };
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        match decode_alert(&value) {
            Ok(alert) => Ok(prepaid_ledger::low_balance_crossings(&alert, before, after)),
            Err(why) => {
                tracing::error!(%tenant, %wallet, "a low-balance alert that does not decode: {why}");
                Ok(Vec::new())
            }
        }
    }

    /// The wallet's next sequence, written as its record's next version; `None` when
    /// the record is not loaded yet (noted) or cannot be read (logged).
    fn next_sequence(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
    ) -> Result<Option<i64>, StoreError> {
        let Ok(key) = RecordKey::parse(wallet.as_str()) else {
            return Ok(None);
        };
        let version = match self.record(tenant, SEQUENCE_KIND, &key) {
            Ok(slot) => slot.version.unwrap_or(0),
            Err(Stop::Gap(Gap::Failed(e))) => return Err(e),
            Err(Stop::Gap(Gap::Miss)) => return Ok(None),
            Err(other) => {
                tracing::error!(%tenant, %wallet, "not queueing webhook events: {other:?}");
                return Ok(None);
            }
        };
        let next = version.saturating_add(1);
        self.set_record(tenant, SEQUENCE_KIND, &key, Some((next, String::new())));
        Ok(Some(next))
    }

    /// The events of one item.
    fn facts(&self, item: Item, sequence: i64, place: &mut u32) -> Vec<EventFacts> {
        let mut next = |event_type, mutation: Option<&Mutation>, hold: Option<HoldId>| {
            let (wallet, customer, balance_after, available_after) = match item {
                Item::Depleted(wi) | Item::LowBalance(wi, _) => {
                    let w = &self.wallets[wi].wallet;
                    (
                        w.id.to_string(),
                        w.customer.to_string(),
                        w.balance,
                        prepaid_ledger::available(w),
                    )
                }
                Item::HoldPlaced(hi) => {
                    let h = &self.holds[hi].hold;
                    let balance = self
                        .wallets
                        .iter()
                        .find(|s| s.wallet.tenant == h.tenant && s.wallet.id == h.wallet)
                        .map(|s| s.wallet.balance)
                        .unwrap_or_default();
                    (h.wallet.to_string(), h.customer.to_string(), balance, None)
                }
                Item::Mutation(_) => {
                    let m = mutation.expect("a mutation item has its mutation");
                    (
                        m.wallet.to_string(),
                        m.customer.to_string(),
                        m.balance_after,
                        None,
                    )
                }
                Item::TopUp(si) => {
                    let t = &self.topups_settled[si];
                    let slot = self
                        .wallets
                        .iter()
                        .find(|s| s.wallet.tenant == t.tenant && s.wallet.id == t.wallet);
                    let customer = slot.map(|s| s.wallet.customer.to_string());
                    let balance = match mutation {
                        Some(m) => m.balance_after,
                        None => slot.map(|s| s.wallet.balance).unwrap_or_default(),
                    };
                    (
                        t.wallet.to_string(),
                        customer.unwrap_or_default(),
                        balance,
                        None,
                    )
                }
            };
            let grant = match (event_type, mutation) {
                (EventType::GrantExpired, Some(m)) => m.drawn.first().map(|d| d.grant.to_string()),
                _ => None,
            };
            let (threshold, auto_topup, reason) = match item {
                Item::LowBalance(_, threshold) => (Some(threshold), None, None),
                Item::TopUp(si) => {
                    let t = &self.topups_settled[si];
                    let reason = t.credit.err().map(str::to_owned);
                    (None, Some((t.n, t.amount.get())), reason)
                }
                _ => (None, None, None),
            };
            let facts = EventFacts {
                event_type,
                wallet,
                customer,
                sequence: (sequence, *place),
                at_micros: self.now.as_micros(),
                mutation: mutation.map(|m| m.id.to_string()),
                hold: hold.map(|h| h.to_string()),
                grant,
                balance_after,
                available_after,
                threshold,
                auto_topup,
                reason,
                last: false,
            };
            *place = place.saturating_add(1);
            facts
        };
        match item {
            Item::HoldPlaced(hi) => {
                vec![next(
                    EventType::HoldCreated,
                    None,
                    Some(self.holds[hi].hold.id),
                )]
            }
            Item::Depleted(_) => vec![next(EventType::WalletDepleted, None, None)],
            Item::LowBalance(..) => vec![next(EventType::WalletLowBalance, None, None)],
            Item::TopUp(si) => match self.topups_settled[si].credit {
                Ok(ix) => vec![next(
                    EventType::AutoTopupSucceeded,
                    Some(&self.mutations[ix]),
                    None,
                )],
                Err(_) => vec![next(EventType::AutoTopupFailed, None, None)],
            },
            Item::Mutation(ix) => {
                let m = &self.mutations[ix];
                let mut events = vec![next(EventType::MutationCreated, Some(m), None)];
                if let Some(hold) = m.hold {
                    let expired = self
                        .hold_ix
                        .get(&hold)
                        .copied()
                        .flatten()
                        .is_some_and(|hi| self.holds[hi].hold.status == HoldStatus::Expired);
                    let event_type = match m.kind {
                        MutationKind::HoldRelease if expired => EventType::HoldExpired,
                        MutationKind::HoldRelease => EventType::HoldReleased,
                        _ => EventType::HoldCommitted,
                    };
                    events.push(next(event_type, Some(m), Some(hold)));
                }
                if self.grant_expiries.contains(&ix) {
                    events.push(next(EventType::GrantExpired, Some(m), None));
                }
                events
            }
        }
    }
}
