//! Wallets as last made durable, kept in memory so that a balance read needs neither
//! a read connection nor a hop to the blocking pool.
//!
//! The writer publishes the wallets each batch changed once the batch is durable, and
//! before its answers go out, so a client that was told of a change reads it back.
//! Each wallet keeps the generation ([`crate::sync`]) of the batch that left it so;
//! batches may become durable together and publish in any order, and an older one
//! never overwrites a newer one.
//!
//! Whenever the writer drops its own cache (another connection wrote to the file, a
//! batch failed, the cache outgrew its bound) it empties the view too and starts a new
//! *epoch*; a batch staged in an earlier epoch publishes nothing. A wallet not in the
//! view is read from the database.

use prepaid_ledger::{TenantId, Wallet, WalletId};
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// The most wallets the view holds; past it, it starts over empty.
pub(crate) const WALLET_VIEW_MAX: usize = 131_072;

#[derive(Default)]
struct Inner {
    epoch: u64,
    len: usize,
    wallets: HashMap<TenantId, HashMap<WalletId, (u64, Wallet)>>,
}

#[derive(Default)]
pub(crate) struct View {
    inner: RwLock<Inner>,
}

impl View {
    /// The wallet as last made durable, if the view holds it.
    pub(crate) fn wallet(&self, tenant: &TenantId, id: &WalletId) -> Option<Wallet> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .wallets
            .get(tenant)
            .and_then(|t| t.get(id))
            .map(|(_, w)| w.clone())
    }

    /// Empties the view and enters `epoch`.
    pub(crate) fn invalidate(&self, epoch: u64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        *inner = Inner {
            epoch,
            ..Inner::default()
        };
    }

    /// Takes in the wallets a batch of `epoch` left, durable as of `generation`.
    pub(crate) fn publish(&self, epoch: u64, generation: u64, wallets: Vec<Wallet>) {
        if wallets.is_empty() {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.epoch != epoch {
            return;
        }
        if inner.len + wallets.len() > WALLET_VIEW_MAX {
            inner.wallets.clear();
            inner.len = 0;
        }
        let Inner {
            len, wallets: view, ..
        } = &mut *inner;
        for wallet in wallets {
            let per_tenant = match view.get_mut(&wallet.tenant) {
                Some(per_tenant) => per_tenant,
                None => view.entry(wallet.tenant.clone()).or_default(),
            };
            match per_tenant.get_mut(&wallet.id) {
                Some(slot) if slot.0 > generation => {}
                Some(slot) => *slot = (generation, wallet),
                None => {
                    *len += 1;
                    per_tenant.insert(wallet.id.clone(), (generation, wallet));
                }
            }
        }
    }
}

/// A wallet of tenant `t` with this id and balance, for tests.
#[cfg(test)]
pub(crate) fn test_wallet(id: &str, balance: i64) -> Wallet {
    use prepaid_ledger::{CustomerId, Floor, NewWallet, Timestamp, Unit};
    let new = NewWallet {
        id: WalletId::parse(id).unwrap(),
        customer: CustomerId::parse("c").unwrap(),
        unit: Unit::new("EUR", 2).unwrap(),
        name: String::new(),
        product: String::new(),
        floor: Floor::ZERO,
        ceiling: None,
        valid_from: None,
        valid_until: None,
        metadata: prepaid_ledger::Metadata::default(),
    };
    let mut wallet = Wallet::open(
        TenantId::parse("t").unwrap(),
        new,
        Timestamp::from_micros(0),
    );
    wallet.balance = balance;
    wallet
}

#[cfg(test)]
mod tests {
    use super::test_wallet as wallet;
    use super::*;

    fn balance(view: &View, id: &str) -> Option<i64> {
        view.wallet(
            &TenantId::parse("t").unwrap(),
            &WalletId::parse(id).unwrap(),
        )
        .map(|w| w.balance)
    }

    #[test]
    fn a_later_generation_wins_whatever_the_order_of_publishing() {
        let view = View::default();
        view.publish(0, 2, vec![wallet("w", 20)]);
        view.publish(0, 1, vec![wallet("w", 10)]);
        assert_eq!(balance(&view, "w"), Some(20));
        view.publish(0, 3, vec![wallet("w", 30)]);
        assert_eq!(balance(&view, "w"), Some(30));
    }

    #[test]
    fn a_batch_of_an_earlier_epoch_publishes_nothing() {
        let view = View::default();
        view.publish(0, 1, vec![wallet("w", 10)]);
        view.invalidate(1);
        assert_eq!(balance(&view, "w"), None);
        view.publish(0, 2, vec![wallet("w", 20)]);
        assert_eq!(balance(&view, "w"), None);
        view.publish(1, 3, vec![wallet("w", 30)]);
        assert_eq!(balance(&view, "w"), Some(30));
    }

    #[test]
    fn the_view_holds_up_to_its_limit_and_starts_over_past_it() {
        let view = View::default();
        let all: Vec<Wallet> = (0..WALLET_VIEW_MAX)
            .map(|i| wallet(&format!("w{i}"), 1))
            .collect();
        view.publish(0, 1, all);
        assert_eq!(balance(&view, "w0"), Some(1));
        view.publish(0, 1, vec![wallet("w0", 5)]);
        assert_eq!(balance(&view, "w0"), Some(5), "a wallet held is replaced");
        view.publish(0, 2, vec![wallet("extra", 7)]);
        assert_eq!(balance(&view, "extra"), Some(7));
        assert_eq!(balance(&view, "w1"), None, "past the limit it started over");
    }
}
