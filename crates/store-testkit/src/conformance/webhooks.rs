//! The conformance case of webhook events: the executor queues them in the batch of the
//! change they describe, only for tenants with an enabled endpoint, numbered in each
//! wallet's commit order.

use super::{Env, request};
use prepaid_ledger::{MutationKind, Outcome, RecordKey};
use prepaid_store::webhooks::{ENABLED_KIND, EVENT_QUEUE, EventFacts, EventType};

/// Every event queued since the last call (taken off the queue), in the order of its
/// wallet's sequence.
async fn events(env: &Env) -> Vec<(String, EventFacts)> {
    let far = env.now.plus_micros(3_600_000_000);
    let jobs = env
        .store()
        .claim_jobs(EVENT_QUEUE, far, far, prepaid_store::JOB_CLAIM_MAX)
        .await
        .expect("claim");
    let mut all = Vec::new();
    for j in jobs {
        let facts = EventFacts::from_json(&j.payload).expect("an event's facts");
        env.store()
            .finish_job(&j.tenant, j.queue, &j.id)
            .await
            .expect("finish");
        all.push((j.tenant.to_string(), facts));
    }
    all.sort_by_key(|(tenant, f)| (tenant.clone(), f.wallet.clone(), f.order_key()));
    all
}

/// No event is queued while a tenant has no enabled endpoint; once it has one, every
/// mutation a batch makes has its `mutation.created` (a refused request none), the
/// wallet's batches are numbered in commit order, and a wallet whose available amount
/// reaches 0 gets `wallet.depleted` after its mutations.
pub async fn webhook_events_follow_their_changes(env: &mut Env) {
    env.tenant("t1").await;
    env.tenant("t2").await;
    env.customer("t1", "c1").await;
    env.customer("t2", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    env.wallet("t2", "c1", "w1").await;
    env.top_up("t1", "w1", 100).await;
    env.top_up("t2", "w1", 100).await;
    assert!(events(env).await.is_empty(), "no endpoint, no events");

    let tenant = super::tid("t1");
    let key = RecordKey::parse("endpoint-1").expect("key");
    env.store()
        .put_record(&tenant, ENABLED_KIND, &key, "", None, env.now)
        .await
        .expect("enable")
        .expect("inserted");
    let debit = |amount| request("t1", env.post("w1", MutationKind::Debit, amount));
    let outcomes = env
        .apply(vec![
            debit(30),
            debit(1000),
            request("t2", env.post("w1", MutationKind::Debit, 5)),
            debit(30),
        ])
        .await;
    assert!(matches!(outcomes[1], Outcome::Refused(_)), "{outcomes:?}");
    let first = events(env).await;
    assert_eq!(first.len(), 2, "{first:?}");
    for (tenant, facts) in &first {
        assert_eq!(tenant, "t1");
        assert_eq!(facts.event_type, EventType::MutationCreated);
        assert_eq!(facts.wallet, "w1");
        assert_eq!(facts.customer, "c1");
        assert_eq!(facts.sequence.0, 1);
    }
    assert_eq!(first[0].1.balance_after, 70);
    assert_eq!(first[1].1.balance_after, 40);

    env.apply(vec![debit(40)]).await;
    let second = events(env).await;
    let types: Vec<EventType> = second.iter().map(|(_, f)| f.event_type).collect();
    assert_eq!(
        types,
        [EventType::MutationCreated, EventType::WalletDepleted],
        "{second:?}"
    );
    assert!(second.iter().all(|(_, f)| f.sequence.0 == 2), "{second:?}");
    assert_eq!(second[1].1.available_after, Some(0));
    assert!(first[1].1.order_key() < second[0].1.order_key());

    // Disabled again (its record gone), the tenant's changes queue nothing.
    env.store()
        .delete_record(&tenant, ENABLED_KIND, &key)
        .await
        .expect("disable");
    env.top_up("t1", "w1", 10).await;
    assert!(events(env).await.is_empty());
}
