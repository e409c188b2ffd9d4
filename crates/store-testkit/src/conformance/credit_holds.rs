//! The conformance case of credit holds: room under a wallet's ceiling set aside for a
//! credit on its way in.

use super::{Env, amount, as_hold, as_wallet, done, eur, keyed, refusal, request, wid};
use prepaid_ledger::{
    Command, Floor, HoldDirection, HoldId, HoldStatus, MutationKind, Outcome, Reference, Refusal,
    Timestamp, WalletStatus,
};
use prepaid_store::SweepReport;

fn credit_hold(
    env: &Env,
    wallet: &str,
    value: i64,
    expires_at: Option<Timestamp>,
) -> (HoldId, Command) {
    let id = env.hold_id();
    let command = Command::PlaceCreditHold {
        id,
        wallet: wid(wallet),
        amount: amount(value),
        reference: Reference::known("payment", "order 5O1", ""),
        expires_at,
        metadata: prepaid_ledger::Metadata::default(),
    };
    (id, command)
}

/// A wallet that owes `owed`: no floor, ceiling zero, debited by its charges.
async fn owing(env: &Env, id: &str, owed: i64) {
    let mut new = env.new_wallet(id, "c1", eur(), Floor::Unlimited);
    new.ceiling = Some(0);
    as_wallet(env.done("t1", Command::CreateWallet { wallet: new }).await);
    env.done("t1", env.post(id, MutationKind::Debit, owed))
        .await;
}

/// Two credit holds where only one fits: the second is refused, as is any other credit
/// into the room set aside; the holds and `incoming` survive a restart; committing
/// credits once (a top-up with the commit's reference) and frees the room; releasing
/// and expiry free it; a wallet without a ceiling has room for any; a credit hold needs
/// a wallet that takes top-ups.
pub async fn credit_holds_set_aside_room_under_the_ceiling(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    owing(env, "event", 1000).await;
    let expires = env.now.plus_micros(3_600 * 1_000_000);
    let (h1, first) = credit_hold(env, "event", 1000, Some(expires));
    let (_, second) = credit_hold(env, "event", 1000, Some(expires));
    let outcomes = env
        .apply(vec![request("t1", first), request("t1", second)])
        .await;
    let mut outcomes = outcomes.into_iter();
    let (placed, mutation) = as_hold(done(outcomes.next().expect("an outcome")));
    assert_eq!(mutation, None);
    assert_eq!(
        (placed.direction, placed.status, placed.amount),
        (HoldDirection::Credit, HoldStatus::Pending, 1000)
    );
    assert_eq!(
        refusal(outcomes.next().expect("an outcome")),
        Refusal::CeilingExceeded {
            room: 0,
            requested: 1000
        },
        "the batch-mate's hold set the room aside"
    );
    let w = env.read_wallet("t1", "event").await;
    assert_eq!((w.balance, w.held, w.incoming), (-1000, 0, 1000));
    // No other credit takes the room; spending is not affected.
    assert_eq!(
        env.refused("t1", env.post("event", MutationKind::TopUp, 1))
            .await,
        Refusal::CeilingExceeded {
            room: 0,
            requested: 1
        }
    );
    env.wallet("t1", "c1", "free").await;
    env.done("t1", env.post("free", MutationKind::TopUp, 100))
        .await;
    assert_eq!(
        env.refused("t1", env.transfer("free", "event", 1)).await,
        Refusal::CeilingExceeded {
            room: 0,
            requested: 1
        }
    );

    env.reopen().await;
    assert_eq!(env.read_hold("t1", h1).await, placed);
    assert_eq!(env.read_wallet("t1", "event").await.incoming, 1000);

    // The commit credits what was held, once, with the commit's own reference.
    env.advance_secs(1);
    let capture = Reference::known("payment", "capture 3C1", "1");
    let commit = keyed(
        request(
            "t1",
            Command::CommitHold {
                hold: h1,
                amount: None,
                mutation_id: env.mutation_id(),
                reference: Some(capture.clone()),
            },
        ),
        "payment-5O1",
        1,
    );
    let (committed, m) = as_hold(done(env.one(commit.clone()).await));
    assert_eq!(
        (committed.status, committed.committed_amount),
        (HoldStatus::Committed, Some(1000))
    );
    let m = m.expect("the credit");
    assert_eq!(
        (m.kind, m.amount, m.balance_after, m.hold),
        (MutationKind::TopUp, 1000, 0, Some(h1))
    );
    assert_eq!(m.reference, capture);
    match env.one(commit).await {
        Outcome::Done {
            done,
            replayed: true,
        } => assert_eq!(as_hold(done).1.map(|r| r.id), Some(m.id)),
        other => panic!("expected a replay, got {other:?}"),
    }
    let w = env.read_wallet("t1", "event").await;
    assert_eq!((w.balance, w.incoming), (0, 0), "credited once");

    // Releasing frees the room; so does expiry, and a part commit frees the rest.
    env.done("t1", env.post("event", MutationKind::Debit, 500))
        .await;
    let (h2, place) = credit_hold(env, "event", 500, None);
    env.done("t1", place).await;
    let (released, m) = as_hold(env.done("t1", env.release(h2)).await);
    assert_eq!(released.status, HoldStatus::Released);
    assert_eq!(m.map(|m| m.amount), Some(0));
    assert_eq!(env.read_wallet("t1", "event").await.incoming, 0);
    let (h3, place) = credit_hold(env, "event", 500, Some(env.now.plus_micros(60_000_000)));
    env.done("t1", place).await;
    env.advance_secs(60);
    assert_eq!(
        refusal(env.one(request("t1", env.commit(h3, None))).await),
        Refusal::HoldExpired,
        "an expired hold is not committed, swept or not"
    );
    assert_eq!(
        env.store().sweep(env.now).await.expect("sweep"),
        SweepReport {
            holds_expired: 1,
            wallets_expired: 0,
            grants_expired: 0,
        }
    );
    assert_eq!(env.read_hold("t1", h3).await.status, HoldStatus::Expired);
    let w = env.read_wallet("t1", "event").await;
    assert_eq!((w.balance, w.incoming), (-500, 0));
    let (h4, place) = credit_hold(env, "event", 500, None);
    env.done("t1", place).await;
    env.done("t1", env.commit(h4, Some(200))).await;
    let w = env.read_wallet("t1", "event").await;
    assert_eq!((w.balance, w.incoming), (-300, 0));
    assert_eq!(
        env.refused("t1", env.post("event", MutationKind::TopUp, 301))
            .await,
        Refusal::CeilingExceeded {
            room: 300,
            requested: 301
        }
    );

    // Without a ceiling there is room for any credit hold.
    let (h5, place) = credit_hold(env, "free", 1_000_000, None);
    env.done("t1", place).await;
    assert_eq!(env.read_wallet("t1", "free").await.incoming, 1_000_000);
    // A suspended wallet takes no new credit holds, but one placed before still
    // commits: the money was taken.
    env.done(
        "t1",
        Command::SetWalletStatus {
            wallet: wid("free"),
            status: WalletStatus::Suspended,
        },
    )
    .await;
    let (_, place) = credit_hold(env, "free", 1, None);
    assert_eq!(
        env.refused("t1", place).await,
        Refusal::WalletNotActive {
            status: WalletStatus::Suspended
        }
    );
    env.done("t1", env.commit(h5, Some(10))).await;
    let w = env.read_wallet("t1", "free").await;
    assert_eq!((w.balance, w.incoming), (110, 0));
}
