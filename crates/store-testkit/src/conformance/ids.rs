//! The conformance case of mutation ids: each tenant has its own.

use super::{Env, as_mutation, refusal, request, tid};
use prepaid_ledger::{Command, MutationKind, Refusal};

/// One mutation id may be used by two tenants, in one batch or in two, and each reads
/// its own mutation under it; within one tenant it is taken.
pub async fn mutation_ids_are_per_tenant(env: &mut Env) {
    for t in ["t1", "t2"] {
        env.tenant(t).await;
        env.customer(t, "c1").await;
        env.wallet(t, "c1", "w1").await;
    }
    let with_id = |cmd: Command, id| match cmd {
        Command::Post {
            wallet,
            kind,
            amount,
            reference,
            occurred_at,
            ..
        } => Command::Post {
            id,
            wallet,
            kind,
            amount,
            reference,
            occurred_at,
            terms: prepaid_ledger::GrantTerms::default(),
            metadata: prepaid_ledger::Metadata::default(),
        },
        other => other,
    };
    let shared = env.mutation_id();
    let outcomes = env
        .apply(vec![
            request(
                "t1",
                with_id(env.post("w1", MutationKind::TopUp, 10), shared),
            ),
            request(
                "t2",
                with_id(env.post("w1", MutationKind::TopUp, 20), shared),
            ),
            request(
                "t2",
                with_id(env.post("w1", MutationKind::TopUp, 30), shared),
            ),
        ])
        .await;
    assert_eq!(as_mutation(super::done(outcomes[0].clone())).amount, 10);
    assert_eq!(as_mutation(super::done(outcomes[1].clone())).amount, 20);
    assert_eq!(refusal(outcomes[2].clone()), Refusal::MutationExists);
    // In a later batch too, for either tenant.
    let again = env
        .one(request(
            "t1",
            with_id(env.post("w1", MutationKind::TopUp, 40), shared),
        ))
        .await;
    assert_eq!(refusal(again), Refusal::MutationExists);
    let other = env.mutation_id();
    as_mutation(super::done(
        env.one(request(
            "t1",
            with_id(env.post("w1", MutationKind::TopUp, 5), other),
        ))
        .await,
    ));
    as_mutation(super::done(
        env.one(request(
            "t2",
            with_id(env.post("w1", MutationKind::TopUp, 5), other),
        ))
        .await,
    ));
    let store = env.store();
    for (t, amount) in [("t1", 10), ("t2", 20)] {
        let m = store.mutation(&tid(t), shared).await.unwrap().unwrap();
        assert_eq!((m.tenant.as_str(), m.amount), (t, amount));
    }
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 15);
    assert_eq!(env.read_wallet("t2", "w1").await.balance, 25);
}
