//! The conformance case of the wallet ceiling.

use super::{Env, as_wallet, cid, done, eur, keyed, refusal, request, wid};
use prepaid_ledger::{BALANCE_ABS_MAX, Command, Floor, MutationKind, Outcome, Refusal};
use prepaid_store::WalletQuery;

/// A wallet's ceiling is kept (across a restart and in replays) and stops every
/// credit that would pass it, within a batch too; debits pass it; a ceiling the edge
/// should have refused is answered as an internal failure.
pub async fn wallet_ceiling_is_kept_and_enforced(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    let mut new = env.new_wallet("capped", "c1", eur(), Floor::ZERO);
    new.ceiling = Some(100);
    let create = keyed(
        request(
            "t1",
            Command::CreateWallet {
                wallet: new.clone(),
            },
        ),
        "create-capped",
        1,
    );
    let created = as_wallet(done(env.one(create.clone()).await));
    assert_eq!(created.ceiling, Some(100));
    env.wallet("t1", "c1", "free").await;
    let mut top = env.new_wallet("top", "c1", eur(), Floor::ZERO);
    top.ceiling = Some(BALANCE_ABS_MAX);
    as_wallet(env.done("t1", Command::CreateWallet { wallet: top }).await);

    let outcomes = env
        .apply(vec![
            request("t1", env.post("capped", MutationKind::TopUp, 60)),
            request("t1", env.post("capped", MutationKind::TopUp, 41)),
            request("t1", env.post("capped", MutationKind::TopUp, 40)),
            request("t1", env.post("capped", MutationKind::Adjustment, 1)),
            request("t1", env.post("free", MutationKind::TopUp, 500)),
            request("t1", env.transfer("free", "capped", 1)),
        ])
        .await;
    let mut outcomes = outcomes.into_iter();
    let mut next = || outcomes.next().expect("an outcome");
    done(next());
    assert_eq!(
        refusal(next()),
        Refusal::CeilingExceeded {
            room: 40,
            requested: 41
        },
        "the batch-mate before counts"
    );
    done(next());
    assert_eq!(
        refusal(next()),
        Refusal::CeilingExceeded {
            room: 0,
            requested: 1
        }
    );
    done(next());
    assert_eq!(
        refusal(next()),
        Refusal::CeilingExceeded {
            room: 0,
            requested: 1
        }
    );
    // Spending makes room, which a transfer in may fill.
    done(
        env.one(request("t1", env.post("capped", MutationKind::Debit, 30)))
            .await,
    );
    done(
        env.one(request("t1", env.transfer("free", "capped", 30)))
            .await,
    );
    done(
        env.one(request(
            "t1",
            env.post("capped", MutationKind::Adjustment, -1),
        ))
        .await,
    );
    let wallet = env.read_wallet("t1", "capped").await;
    assert_eq!((wallet.balance, wallet.ceiling), (99, Some(100)));
    assert_eq!(env.read_wallet("t1", "free").await.ceiling, None);

    env.reopen().await;
    assert_eq!(env.read_wallet("t1", "capped").await, wallet);
    assert_eq!(
        env.read_wallet("t1", "top").await.ceiling,
        Some(BALANCE_ABS_MAX)
    );
    let listed = env
        .store()
        .wallets(
            &super::tid("t1"),
            &WalletQuery {
                customer: Some(cid("c1")),
                after: None,
                limit: 10,
                metadata: prepaid_store::MetadataFilter::default(),
            },
        )
        .await
        .expect("wallets");
    let ceilings: Vec<_> = listed
        .items
        .iter()
        .map(|w| (w.id.as_str(), w.ceiling))
        .collect();
    assert_eq!(
        ceilings,
        [
            ("capped", Some(100)),
            ("free", None),
            ("top", Some(BALANCE_ABS_MAX))
        ]
    );
    match env.one(create).await {
        Outcome::Done {
            done,
            replayed: true,
        } => assert_eq!(as_wallet(done).ceiling, Some(100)),
        other => panic!("expected a replay, got {other:?}"),
    }

    for bad in [-1, BALANCE_ABS_MAX + 1] {
        let mut new = env.new_wallet("bad", "c1", eur(), Floor::ZERO);
        new.ceiling = Some(bad);
        assert_eq!(
            env.refused("t1", Command::CreateWallet { wallet: new })
                .await,
            Refusal::Internal,
            "ceiling {bad}"
        );
    }
    assert!(
        env.store()
            .wallet(&super::tid("t1"), &wid("bad"))
            .await
            .expect("wallet")
            .is_none()
    );
}
