//! The conformance case of automatic top-ups: a unit that takes a wallet to or below its
//! rule's threshold starts one top-up in the same unit (its job queued, the wallet's
//! top-up marked in flight), none starts while one is in flight, a settlement credits
//! once and clears the mark, a decline holds the next off for the back-off, and the
//! burst guard allows `per_hour_max` an hour.

use super::{Env, as_mutation, done, keyed, refusal, request, restricted, wid};
use prepaid_ledger::{
    Amount, AutoTopUpFunding, AutoTopUpMethod, AutoTopUpOutcome, AutoTopUpRule, Command, Done,
    GrantCategory, MutationKind, Refusal,
};
use prepaid_store::auto_topup::{AUTO_TOPUP_KIND, AUTO_TOPUP_QUEUE, AutoTopUpJob, decode};

fn rule(per_hour_max: u32) -> AutoTopUpRule {
    AutoTopUpRule::new(
        100,
        AutoTopUpMethod::Target(Amount::positive(500).unwrap()),
        AutoTopUpFunding::Granted,
        60_000,
        per_hour_max,
        true,
    )
    .unwrap()
}

/// The jobs queued and not yet finished, claimed (and finished) now: each one's payload.
async fn take_jobs(env: &Env) -> Vec<AutoTopUpJob> {
    let far = env.now.plus_micros(3_600_000_000);
    let jobs = env
        .store()
        .claim_jobs(AUTO_TOPUP_QUEUE, env.now, far, prepaid_store::JOB_CLAIM_MAX)
        .await
        .expect("claim");
    let mut taken = Vec::new();
    for job in jobs {
        env.store()
            .finish_job(&job.tenant, AUTO_TOPUP_QUEUE, &job.id)
            .await
            .expect("finish");
        taken.push(AutoTopUpJob::decode(&job.payload).expect("a job payload"));
    }
    taken
}

async fn in_flight(env: &Env) -> Option<u64> {
    let record = env
        .store()
        .record(
            &super::tid("t1"),
            AUTO_TOPUP_KIND,
            &prepaid_store::auto_topup::record_key(&wid("w1")),
        )
        .await
        .expect("read")?;
    decode(&record.value).expect("decodes").1.in_flight
}

fn settle(env: &Env, n: u64, credit: Option<i64>) -> Command {
    Command::SettleAutoTopUp {
        wallet: wid("w1"),
        n,
        id: env.mutation_id(),
        amount: Amount::positive(credit.unwrap_or(1)).unwrap(),
        outcome: match credit {
            Some(_) => AutoTopUpOutcome::Credited(GrantCategory::Granted),
            None => AutoTopUpOutcome::Declined,
        },
    }
}

async fn debits(env: &Env, count: usize, value: i64) {
    let batch = (0..count)
        .map(|_| request("t1", env.post("w1", MutationKind::Debit, value)))
        .collect();
    for outcome in env.apply(batch).await {
        as_mutation(done(outcome));
    }
}

pub async fn auto_topups_start_once_per_crossing(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.customer("t1", "c2").await;
    env.wallet("t1", "c1", "w1").await;
    env.top_up("t1", "w1", 1000).await;
    let set = |per_hour_max| Command::SetAutoTopUp {
        wallet: wid("w1"),
        rule: Some(rule(per_hour_max)),
    };
    assert_eq!(env.done("t1", set(3)).await, Done::Records);
    // Another customer's key cannot see the wallet, nor another tenant.
    let other = restricted(request("t1", set(3)), "c2");
    assert_eq!(refusal(env.one(other).await), Refusal::WalletNotFound);
    assert!(take_jobs(env).await.is_empty(), "above the threshold");

    // Sixty debits in one batch cross the threshold once: one top-up, to the target
    // from the balance the crossing left.
    debits(env, 60, 15).await;
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 100);
    let jobs = take_jobs(env).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!((jobs[0].n, jobs[0].amount.get()), (1, 400));
    assert_eq!(in_flight(env).await, Some(1));
    // While it is in flight, more debits start none.
    debits(env, 3, 10).await;
    assert!(take_jobs(env).await.is_empty());

    // Settled once, whatever the repeats: the idempotency key is the job's.
    let key = prepaid_store::auto_topup::job_id(&wid("w1"), 1);
    let first = keyed(
        request("t1", settle(env, 1, Some(jobs[0].amount.get()))),
        &key,
        1,
    );
    let credit = as_mutation(done(env.one(first.clone()).await));
    assert_eq!((credit.kind, credit.amount), (MutationKind::TopUp, 400));
    assert_eq!(
        env.one(first).await,
        prepaid_ledger::Outcome::Done {
            done: Done::Mutation(credit.clone()),
            replayed: true
        }
    );
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 100 - 30 + 400);
    assert_eq!(in_flight(env).await, None);
    assert!(take_jobs(env).await.is_empty(), "above the threshold again");

    // A decline clears the mark and holds the next off for the back-off.
    debits(env, 1, 400).await;
    let jobs = take_jobs(env).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].n, jobs[0].amount.get()), (2, 430));
    assert_eq!(env.done("t1", settle(env, 2, None)).await, Done::Records);
    assert_eq!(in_flight(env).await, None);
    debits(env, 1, 1).await;
    assert!(take_jobs(env).await.is_empty(), "within the back-off");
    env.advance_secs(61);
    debits(env, 1, 1).await;
    let jobs = take_jobs(env).await;
    assert_eq!(jobs.len(), 1, "after the back-off");
    assert_eq!(jobs[0].n, 3);
    // A settlement of another number (a job run late) changes nothing.
    assert_eq!(env.done("t1", settle(env, 2, None)).await, Done::Records);
    assert_eq!(in_flight(env).await, Some(3));
    as_mutation(done(
        env.one(request("t1", settle(env, 3, Some(430)))).await,
    ));

    // The burst guard: three started within the hour, the fourth waits for the next.
    debits(env, 1, 400).await;
    assert!(take_jobs(env).await.is_empty(), "the hour's three are used");
    env.advance_secs(3600);
    debits(env, 1, 1).await;
    assert_eq!(take_jobs(env).await.len(), 1, "a new hour");

    // A rule set on a wallet at or below its threshold starts one at once; a removed
    // rule starts none.
    as_mutation(done(env.one(request("t1", settle(env, 4, Some(10)))).await));
    assert_eq!(
        env.done(
            "t1",
            Command::SetAutoTopUp {
                wallet: wid("w1"),
                rule: None
            }
        )
        .await,
        Done::Records
    );
    assert_eq!(in_flight(env).await, None);
    debits(env, 1, 1).await;
    assert!(take_jobs(env).await.is_empty(), "no rule");
    env.wallet("t1", "c1", "w2").await;
    let low = Command::SetAutoTopUp {
        wallet: wid("w2"),
        rule: Some(rule(1)),
    };
    assert_eq!(env.done("t1", low).await, Done::Records);
    let jobs = take_jobs(env).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].wallet.as_str(), jobs[0].amount.get()), ("w2", 500));
}
