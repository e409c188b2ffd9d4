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

/// Gives tenant t1 an enabled endpoint, as the native API's record says; its tenant and
/// record key.
async fn enable(env: &Env) -> (prepaid_ledger::TenantId, RecordKey) {
    let tenant = super::tid("t1");
    let key = RecordKey::parse("endpoint-1").expect("key");
    env.store()
        .put_record(&tenant, ENABLED_KIND, &key, "", None, env.now)
        .await
        .expect("enable")
        .expect("inserted");
    (tenant, key)
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

    let (tenant, key) = enable(env).await;
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

/// An event's type, threshold and automatic top-up.
type Summary = (EventType, Option<i64>, Option<(u64, i64)>);

/// The types, thresholds and automatic top-ups of `events`, in order.
fn summary(events: &[(String, EventFacts)]) -> Vec<Summary> {
    events
        .iter()
        .map(|(_, f)| (f.event_type, f.threshold, f.auto_topup))
        .collect()
}

/// A wallet's low-balance alert tells each fall past one of its thresholds once, judged
/// on the batch's net change (after its mutations, before `wallet.depleted`), and only
/// again after the amount rose above it; an automatic top-up's settlement makes
/// `auto_topup.succeeded` after its credit's `mutation.created`, or `auto_topup.failed`
/// with its reason, in its unit.
pub async fn webhook_events_of_alerts_and_auto_topups(env: &mut Env) {
    use MutationKind::{Debit, TopUp};
    use prepaid_ledger::{
        Amount, AutoTopUpFunding, AutoTopUpMethod, AutoTopUpOutcome, AutoTopUpRule, Command,
        GrantCategory, LowBalanceAlert,
    };
    let created = EventType::MutationCreated;
    let low = EventType::WalletLowBalance;
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.customer("t1", "c2").await;
    env.wallet("t1", "c1", "w1").await;
    env.top_up("t1", "w1", 1000).await;
    enable(env).await;
    let alert = |thresholds: Option<Vec<i64>>| Command::SetLowBalanceAlert {
        wallet: super::wid("w1"),
        alert: thresholds.map(|t| LowBalanceAlert::new(t).expect("valid")),
    };
    // Another customer's key cannot set it.
    let other = super::restricted(request("t1", alert(Some(vec![500]))), "c2");
    assert_eq!(
        super::refusal(env.one(other).await),
        prepaid_ledger::Refusal::WalletNotFound
    );
    env.done("t1", alert(Some(vec![100, 500]))).await;
    let post = |kind, amount| request("t1", env.post("w1", kind, amount));

    env.apply(vec![post(Debit, 400)]).await;
    assert_eq!(
        summary(&events(env).await),
        [(created, None, None)],
        "600 is above"
    );
    env.apply(vec![post(Debit, 150)]).await;
    let fell = events(env).await;
    assert_eq!(
        summary(&fell),
        [(created, None, None), (low, Some(500), None)]
    );
    assert_eq!(fell[1].1.balance_after, 450);
    env.apply(vec![post(Debit, 10)]).await;
    assert_eq!(
        summary(&events(env).await),
        [(created, None, None)],
        "still below"
    );
    // Judged on the batch's net change: down past 100 and up again is no crossing.
    env.apply(vec![post(Debit, 400), post(TopUp, 400)]).await;
    assert_eq!(summary(&events(env).await).len(), 2);
    // Up above 500, then down past both in one batch: one event each, highest first,
    // then the depletion.
    env.apply(vec![post(TopUp, 200)]).await;
    events(env).await;
    env.apply(vec![post(Debit, 300), post(Debit, 340)]).await;
    assert_eq!(
        summary(&events(env).await),
        [
            (created, None, None),
            (created, None, None),
            (low, Some(500), None),
            (low, Some(100), None),
            (EventType::WalletDepleted, None, None),
        ]
    );
    // Removed, it tells nothing.
    env.done("t1", alert(None)).await;
    env.apply(vec![post(TopUp, 1000)]).await;
    env.apply(vec![post(Debit, 950)]).await;
    assert_eq!(
        summary(&events(env).await).len(),
        2,
        "top-up and debit only"
    );

    // An automatic top-up's settlement: credited, then declined.
    let rule = AutoTopUpRule::new(
        100,
        AutoTopUpMethod::Fixed(Amount::positive(500).expect("amount")),
        AutoTopUpFunding::Granted,
        60_000,
        10,
        true,
    )
    .expect("rule");
    env.done(
        "t1",
        Command::SetAutoTopUp {
            wallet: super::wid("w1"),
            rule: Some(rule),
        },
    )
    .await;
    let settle = |n, outcome| Command::SettleAutoTopUp {
        wallet: super::wid("w1"),
        n,
        id: env.mutation_id(),
        amount: Amount::positive(500).expect("amount"),
        outcome,
    };
    env.done(
        "t1",
        settle(1, AutoTopUpOutcome::Credited(GrantCategory::Granted)),
    )
    .await;
    let succeeded = events(env).await;
    assert_eq!(
        summary(&succeeded),
        [
            (created, None, None),
            (EventType::AutoTopupSucceeded, None, Some((1, 500)))
        ]
    );
    assert_eq!(succeeded[1].1.mutation, succeeded[0].1.mutation);
    assert_eq!(succeeded[1].1.balance_after, 550);
    assert_eq!(succeeded[1].1.reason, None);
    env.apply(vec![post(Debit, 500)]).await;
    events(env).await;
    env.done("t1", settle(2, AutoTopUpOutcome::Declined)).await;
    let failed = events(env).await;
    assert_eq!(
        summary(&failed),
        [(EventType::AutoTopupFailed, None, Some((2, 500)))]
    );
    assert_eq!(failed[0].1.reason.as_deref(), Some("payment_declined"));
    assert_eq!(
        (failed[0].1.mutation.as_deref(), failed[0].1.balance_after),
        (None, 50)
    );
}
