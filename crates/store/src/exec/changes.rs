//! What a run leaves for the backend to write.

use super::*;

impl Exec<'_> {
    // -----------------------------------------------------------------------------
    // The result.

    pub(super) fn changes(mut self) -> Changes {
        let (records, jobs) = self.take_records_and_jobs();
        let grants = self.take_grants();
        let mut wallets_new = Vec::new();
        let mut wallets_changed = Vec::new();
        let mut wallets_relabelled = Vec::new();
        for slot in self.wallets {
            if slot.new {
                wallets_new.push(slot.wallet);
            } else if slot.dirty {
                if slot.relabelled {
                    wallets_relabelled.push(slot.wallet.clone());
                }
                wallets_changed.push(slot.wallet);
            }
        }
        let by_key = |a: &Wallet, b: &Wallet| (&a.tenant, &a.id).cmp(&(&b.tenant, &b.id));
        wallets_new.sort_by(by_key);
        wallets_changed.sort_by(by_key);
        wallets_relabelled.sort_by(by_key);
        let mut holds_new = Vec::new();
        let mut holds_changed = Vec::new();
        for slot in self.holds {
            if slot.new {
                holds_new.push(slot.hold);
            } else if slot.dirty {
                holds_changed.push(slot.hold);
            }
        }
        holds_new.sort_by_key(|h| h.id);
        holds_changed.sort_by_key(|h| h.id);
        let mut accounts: Vec<AccountChange> = self
            .accounts
            .into_iter()
            .filter(|slot| slot.balance != slot.read)
            .map(|slot| AccountChange {
                delta: slot.balance - slot.read,
                balance: slot.balance,
                tenant: slot.tenant,
                unit: slot.unit,
                account: slot.account,
            })
            .collect();
        accounts
            .sort_by(|a, b| (&a.tenant, &a.unit, a.account).cmp(&(&b.tenant, &b.unit, b.account)));
        let mut settings = self.new_settings;
        settings.sort_by(|a, b| (&a.tenant, &a.key).cmp(&(&b.tenant, &b.key)));
        Changes {
            tenants: self.new_tenants,
            customers: self.new_customers,
            customer_links: self.customer_links,
            api_keys: self.new_api_keys,
            wallets_new,
            wallets_changed,
            holds_new,
            holds_changed,
            mutations: self.mutations,
            grants,
            keys: self.keys,
            accounts,
            wallets_relabelled,
            settings,
            records,
            jobs,
        }
    }
}
