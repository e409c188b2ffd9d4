//! The conformance case of linked requests: the steps of one operation commit together
//! or not at all.

use super::{Env, as_mutation, as_wallet, cid, done, eur, keyed, refusal, request, tid, wid};
use prepaid_ledger::{
    Command, Floor, JobQueue, MutationKind, Outcome, RecordKey, RecordKind, Refusal, Request, Step,
    WalletStatus,
};

const KIND: RecordKind = RecordKind::new("linked");
const QUEUE: JobQueue = JobQueue::new("linked");

fn key(text: &str) -> RecordKey {
    RecordKey::parse(text).expect("a valid record key")
}

fn put(kind: &'static str, id: &str, value: &str, expected_version: Option<i64>) -> Step {
    Step::PutRecord {
        kind: RecordKind::new(kind),
        key: key(id),
        value: value.into(),
        expected_version,
    }
}

fn job(id: &str) -> Step {
    Step::EnqueueJob {
        queue: QUEUE,
        id: key(id),
        payload: format!("payload of {id}"),
        due_at: None,
    }
}

/// Every job of the test queue, by id.
async fn jobs(env: &Env) -> Vec<(String, String)> {
    let far = env.now.plus_micros(3_600_000_000);
    let mut all: Vec<(String, String)> = env
        .store()
        .claim_jobs(QUEUE, far, far, prepaid_store::JOB_CLAIM_MAX)
        .await
        .expect("claim")
        .into_iter()
        .map(|j| (j.id.into_string(), j.payload))
        .collect();
    all.sort();
    all
}

/// A linked request (a customer made on first use, a wallet, its first top-up, a
/// record and a job) commits whole; one refused at any step leaves no trace of its
/// other steps, records no idempotency key and leaves its batch-mates alone; a
/// replay carries out no step again.
pub async fn linked_requests_are_all_or_nothing(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    env.top_up("t1", "w1", 100).await;
    env.wallet("t1", "c1", "paused").await;
    as_wallet(
        env.done(
            "t1",
            Command::SetWalletStatus {
                wallet: wid("paused"),
                status: WalletStatus::Suspended,
            },
        )
        .await,
    );
    let ensure = |id: &str| Command::EnsureCustomer {
        id: cid(id),
        name: format!("customer {id}"),
        link: String::new(),
    };
    let open = |id: &str, customer: &str| Command::CreateWallet {
        wallet: env.new_wallet(id, customer, eur(), Floor::ZERO),
    };

    // A whole unit: customer, wallet, top-up, record, job.
    let mut made = keyed(request("t1", open("new", "c2")), "made", 1);
    made.before = vec![Step::Command(ensure("c2"))];
    made.after = vec![
        Step::Command(env.post("new", MutationKind::TopUp, 50)),
        put("linked", "k1", "one", None),
        job("j1"),
    ];
    // Refused at its last step (a top-up of a suspended wallet): the wallet it opened
    // first must not stay.
    let mut stuck = keyed(request("t1", open("stuck", "c1")), "stuck", 2);
    stuck.after = vec![
        Step::Command(env.post("paused", MutationKind::TopUp, 7)),
        job("j-stuck"),
    ];
    // Refused at a record step after a customer, a hold and a debit.
    let hold = env.place_hold("w1", 30, None);
    let mut conflict = request("t1", hold.1.clone());
    conflict.before = vec![Step::Command(ensure("c3"))];
    conflict.after = vec![
        Step::Command(env.post("w1", MutationKind::Debit, 20)),
        put("linked", "k1", "two", None),
    ];
    // A plain request after them sees the first unit's wallet and none of the others.
    let after = request("t1", env.post("new", MutationKind::TopUp, 5));
    let outcomes = env
        .apply(vec![made.clone(), stuck.clone(), conflict, after])
        .await;
    assert_eq!(outcomes.len(), 4);
    let created = as_wallet(done(outcomes[0].clone()));
    assert_eq!((created.id.as_str(), created.balance), ("new", 0));
    assert_eq!(
        refusal(outcomes[1].clone()),
        Refusal::WalletNotActive {
            status: WalletStatus::Suspended
        }
    );
    assert_eq!(refusal(outcomes[2].clone()), Refusal::RecordConflict);
    assert_eq!(as_mutation(done(outcomes[3].clone())).balance_after, 55);

    let store = env.store();
    let t1 = tid("t1");
    assert!(store.customer(&t1, &cid("c2")).await.unwrap().is_some());
    assert!(store.customer(&t1, &cid("c3")).await.unwrap().is_none());
    assert!(store.wallet(&t1, &wid("stuck")).await.unwrap().is_none());
    assert!(store.hold(&t1, hold.0).await.unwrap().is_none());
    let w1 = env.read_wallet("t1", "w1").await;
    assert_eq!((w1.balance, w1.held), (100, 0));
    assert_eq!(env.read_wallet("t1", "new").await.balance, 55);
    let record = store.record(&t1, KIND, &key("k1")).await.unwrap().unwrap();
    assert_eq!((record.value.as_str(), record.version), ("one", 1));
    assert_eq!(
        jobs(env).await,
        vec![("j1".to_owned(), "payload of j1".to_owned())]
    );

    // The replay carries out nothing again.
    match env.one(made).await {
        Outcome::Done { replayed: true, .. } => {}
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_eq!(env.read_wallet("t1", "new").await.balance, 55);

    // The refused unit recorded no key: once it can succeed, the same request with
    // the same key is carried out whole.
    as_wallet(
        env.done(
            "t1",
            Command::SetWalletStatus {
                wallet: wid("paused"),
                status: WalletStatus::Active,
            },
        )
        .await,
    );
    match env.one(stuck).await {
        Outcome::Done {
            replayed: false, ..
        } => {}
        other => panic!("expected a fresh outcome, got {other:?}"),
    }
    assert!(store.wallet(&t1, &wid("stuck")).await.unwrap().is_some());
    assert_eq!(env.read_wallet("t1", "paused").await.balance, 7);

    // Compare-and-set on the version, delete, and a job id queued twice in one batch.
    let mut update = request("t1", env.post("w1", MutationKind::Debit, 1));
    update.after = vec![put("linked", "k1", "three", Some(1)), job("j2")];
    let mut stale = request("t1", env.post("w1", MutationKind::Debit, 1));
    stale.after = vec![put("linked", "k1", "four", Some(1))];
    let mut delete = request("t1", env.post("w1", MutationKind::Debit, 1));
    delete.after = vec![
        Step::DeleteRecord {
            kind: KIND,
            key: key("k1"),
        },
        job("j2"),
    ];
    let outcomes = env.apply(vec![update, stale, delete]).await;
    as_mutation(done(outcomes[0].clone()));
    assert_eq!(refusal(outcomes[1].clone()), Refusal::RecordConflict);
    as_mutation(done(outcomes[2].clone()));
    assert!(store.record(&t1, KIND, &key("k1")).await.unwrap().is_none());
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 98);
    let ids: Vec<String> = jobs(env).await.into_iter().map(|(id, _)| id).collect();
    // The retried unit queued its job; the id queued twice is there once.
    assert_eq!(ids, ["j-stuck", "j1", "j2"]);
}

/// A linked request may not carry commands that manage tenants, keys or settings: it
/// is answered as an internal failure and changes nothing.
pub async fn linked_requests_refuse_management_commands(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    let mut bad: Request = request("t1", env.post("w1", MutationKind::TopUp, 5));
    bad.after = vec![Step::Command(Command::PutSetting {
        key: prepaid_ledger::SettingKey::parse("linked.setting").unwrap(),
        value: "x".into(),
    })];
    assert_eq!(refusal(env.one(bad).await), Refusal::Internal);
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 0);
}
