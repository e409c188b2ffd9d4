//! The conformance case of metadata: the client's labels kept on wallets, mutations,
//! holds and (through the credit that made each) grants, read back after a restart,
//! and lists of mutations and wallets filtered by them.

use super::{Env, as_hold, as_mutation, as_transfer, as_wallet, cid, eur, tid, wid};
use prepaid_ledger::{
    Amount, Command, Floor, HoldStatus, Metadata, Mutation, MutationKind, Reference, TransferId,
};
use prepaid_store::{MetadataFilter, MutationQuery, WalletQuery};

fn labels(pairs: &[(&str, &str)]) -> Metadata {
    Metadata::new(pairs.iter().copied()).expect("test metadata")
}

fn filter(pairs: &[(&str, &str)]) -> MetadataFilter {
    MetadataFilter::new(labels(pairs)).expect("test filter")
}

/// A post of `value` to `wallet` carrying `metadata`.
fn post(env: &Env, wallet: &str, kind: MutationKind, value: i64, metadata: Metadata) -> Command {
    let mut command = env.post(wallet, kind, value);
    if let Command::Post { metadata: m, .. } = &mut command {
        *m = metadata;
    }
    command
}

/// The mutations of `wallet` (any, when `None`) carrying every pair of `pairs`, in
/// list order, read a page of `limit` at a time.
async fn filtered(
    env: &Env,
    wallet: Option<&str>,
    pairs: &[(&str, &str)],
    limit: usize,
) -> Vec<Mutation> {
    let query = MutationQuery {
        wallet: wallet.map(wid),
        customer: None,
        metadata: filter(pairs),
        after: None,
        limit,
        ..MutationQuery::default()
    };
    env.all_mutations_of("t1", query).await
}

/// The ids of the wallets (of `customer`, when given) carrying every pair of `pairs`.
async fn wallets(env: &Env, customer: Option<&str>, pairs: &[(&str, &str)]) -> Vec<String> {
    let query = WalletQuery {
        customer: customer.map(cid),
        metadata: filter(pairs),
        after: None,
        limit: 10,
    };
    let page = env
        .store()
        .wallets(&tid("t1"), &query)
        .await
        .expect("wallets");
    page.items
        .iter()
        .map(|w| w.id.as_str().to_owned())
        .collect()
}

pub async fn metadata_is_kept_and_filters_lists(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.customer("t1", "c2").await;
    // Text JSON and SQL treat specially comes back as it went in.
    let tricky = "say \"hi\" \\ é ' %_ {}";
    let team_a = labels(&[("team", "a"), ("region", "eu"), ("note", tricky)]);
    let mut new = env.new_wallet("w1", "c1", eur(), Floor::ZERO);
    new.metadata = team_a.clone();
    let w1 = as_wallet(env.done("t1", Command::CreateWallet { wallet: new }).await);
    assert_eq!(w1.metadata, team_a);
    let mut new = env.new_wallet("w2", "c1", eur(), Floor::ZERO);
    new.metadata = labels(&[("team", "b")]);
    env.done("t1", Command::CreateWallet { wallet: new }).await;
    let mut new = env.new_wallet("w3", "c2", eur(), Floor::ZERO);
    new.metadata = labels(&[("team", "a")]);
    env.done("t1", Command::CreateWallet { wallet: new }).await;
    env.wallet("t1", "c2", "w4").await;

    let order = |id: &str| labels(&[("order", id)]);
    let web = labels(&[("order", "A-17"), ("channel", "web")]);
    let top_up = as_mutation(
        env.done("t1", post(env, "w1", MutationKind::TopUp, 100, web.clone()))
            .await,
    );
    assert_eq!(top_up.metadata, web);
    let other = as_mutation(
        env.done(
            "t1",
            post(env, "w1", MutationKind::TopUp, 50, order("A-18")),
        )
        .await,
    );
    let debit = as_mutation(
        env.done(
            "t1",
            post(env, "w1", MutationKind::Debit, 30, order("A-17")),
        )
        .await,
    );
    let plain = env.top_up("t1", "w1", 5).await;
    assert!(plain.metadata.is_empty());
    let transfer = as_transfer(
        env.done(
            "t1",
            Command::Transfer {
                id: TransferId(env.uuid()),
                debit_id: env.mutation_id(),
                credit_id: env.mutation_id(),
                from: wid("w1"),
                to: wid("w2"),
                amount: Amount::new(10).expect("amount"),
                reference: Reference::default(),
                occurred_at: None,
                terms: prepaid_ledger::GrantTerms::default(),
                metadata: order("T-1"),
            },
        )
        .await,
    );
    assert_eq!(transfer.debit.metadata, order("T-1"));
    assert_eq!(transfer.credit.metadata, order("T-1"));
    let hold_id = env.hold_id();
    let (hold, _) = as_hold(
        env.done(
            "t1",
            Command::PlaceHold {
                id: hold_id,
                wallet: wid("w1"),
                amount: Amount::new(20).expect("amount"),
                reference: Reference::default(),
                expires_at: None,
                metadata: order("H-1"),
            },
        )
        .await,
    );
    assert_eq!(hold.metadata, order("H-1"));
    let (hold, commit) = as_hold(
        env.done(
            "t1",
            Command::CommitHold {
                hold: hold_id,
                amount: None,
                mutation_id: env.mutation_id(),
                reference: None,
            },
        )
        .await,
    );
    assert_eq!(hold.status, HoldStatus::Committed);
    let commit = commit.expect("a commit posts a mutation");
    assert_eq!(commit.metadata, order("H-1"));

    // Everything reads back as it was written, after a restart too.
    env.reopen().await;
    let store = env.store();
    let t1 = tid("t1");
    let read = store.wallet(&t1, &wid("w1")).await.expect("wallet");
    assert_eq!(read.expect("w1").metadata, team_a);
    for m in [
        &top_up,
        &other,
        &debit,
        &plain,
        &transfer.debit,
        &transfer.credit,
        &commit,
    ] {
        let read = store.mutation(&t1, m.id).await.expect("mutation");
        assert_eq!(
            read.expect("the mutation").metadata,
            m.metadata,
            "{:?}",
            m.kind
        );
    }
    let read = store.hold(&t1, hold_id).await.expect("hold");
    assert_eq!(read.expect("the hold").metadata, order("H-1"));
    let grants = store
        .grants(&t1, &wid("w1"), None, 10)
        .await
        .expect("grants");
    let of = |id| {
        grants
            .items
            .iter()
            .find(|g| g.grant.id == id)
            .map(|g| g.metadata.clone())
    };
    assert_eq!(
        of(top_up.id),
        Some(web.clone()),
        "a grant has its credit's labels"
    );
    assert_eq!(of(other.id), Some(order("A-18")));
    assert_eq!(of(plain.id), Some(Metadata::default()));
    let grants = store
        .grants(&t1, &wid("w2"), None, 10)
        .await
        .expect("grants");
    assert_eq!(grants.items.len(), 1);
    assert_eq!(grants.items[0].metadata, order("T-1"));

    // Lists of mutations keep to the pairs asked for, in commit order, page by page.
    let ids = |ms: Vec<Mutation>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let a17 = [("order", "A-17")];
    assert_eq!(
        ids(filtered(env, Some("w1"), &a17, 10).await),
        [top_up.id, debit.id]
    );
    assert_eq!(
        ids(filtered(env, Some("w1"), &a17, 1).await),
        [top_up.id, debit.id]
    );
    assert_eq!(
        ids(filtered(env, None, &a17, 10).await),
        [top_up.id, debit.id]
    );
    let both = [("order", "A-17"), ("channel", "web")];
    assert_eq!(ids(filtered(env, Some("w1"), &both, 10).await), [top_up.id]);
    assert!(
        filtered(env, Some("w1"), &[("order", "A-19")], 10)
            .await
            .is_empty()
    );
    assert!(
        filtered(env, Some("w1"), &[("channel", "A-17")], 10)
            .await
            .is_empty()
    );
    assert!(filtered(env, Some("w2"), &a17, 10).await.is_empty());
    let t = [("order", "T-1")];
    assert_eq!(
        ids(filtered(env, Some("w2"), &t, 10).await),
        [transfer.credit.id]
    );
    assert_eq!(
        ids(filtered(env, None, &t, 10).await),
        [transfer.debit.id, transfer.credit.id]
    );
    assert_eq!(
        ids(filtered(env, Some("w1"), &[("order", "H-1")], 10).await),
        [commit.id]
    );
    assert_eq!(filtered(env, Some("w1"), &[], 10).await.len(), 6);

    // Lists of wallets likewise, of the tenant or of one customer.
    assert_eq!(wallets(env, None, &[("team", "a")]).await, ["w1", "w3"]);
    assert_eq!(wallets(env, Some("c1"), &[("team", "a")]).await, ["w1"]);
    assert_eq!(wallets(env, Some("c1"), &[("team", "b")]).await, ["w2"]);
    assert_eq!(
        wallets(env, None, &[("team", "a"), ("region", "eu")]).await,
        ["w1"]
    );
    assert_eq!(wallets(env, None, &[("note", tricky)]).await, ["w1"]);
    assert!(wallets(env, None, &[("region", "us")]).await.is_empty());
    assert_eq!(wallets(env, None, &[]).await, ["w1", "w2", "w3", "w4"]);
    // Another tenant's labels are not this one's.
    env.tenant("t2").await;
    env.customer("t2", "c1").await;
    let mut new = env.new_wallet("w9", "c1", eur(), Floor::ZERO);
    new.metadata = labels(&[("team", "a")]);
    env.done("t2", Command::CreateWallet { wallet: new }).await;
    assert_eq!(wallets(env, None, &[("team", "a")]).await, ["w1", "w3"]);
}

/// A patch of `changes`: a value sets a key, `None` removes it.
fn patch(changes: &[(&str, Option<&str>)]) -> prepaid_ledger::MetadataPatch {
    prepaid_ledger::MetadataPatch::new(
        changes
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned))),
    )
    .expect("test patch")
}

pub async fn wallet_metadata_is_patched_within_its_bound(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    let mut new = env.new_wallet("w1", "c1", eur(), Floor::ZERO);
    new.metadata = labels(&[("team", "a"), ("region", "eu")]);
    env.done("t1", Command::CreateWallet { wallet: new }).await;
    env.top_up("t1", "w1", 100).await;
    let patched = as_wallet(
        env.done(
            "t1",
            Command::PatchWalletMetadata {
                wallet: wid("w1"),
                patch: patch(&[("team", Some("b")), ("region", None), ("cost", Some("42"))]),
            },
        )
        .await,
    );
    let expected = labels(&[("team", "b"), ("cost", "42")]);
    assert_eq!(patched.metadata, expected);
    assert_eq!(patched.balance, 100, "a patch leaves the money alone");

    // Filled to the bound, one more key is refused and changes nothing.
    let fill: Vec<(String, Option<String>)> = (0..prepaid_ledger::METADATA_PAIRS_MAX - 2)
        .map(|i| (format!("k{i}"), Some("v".to_owned())))
        .collect();
    let full = as_wallet(
        env.done(
            "t1",
            Command::PatchWalletMetadata {
                wallet: wid("w1"),
                patch: prepaid_ledger::MetadataPatch::new(fill).expect("patch"),
            },
        )
        .await,
    );
    assert_eq!(full.metadata.len(), prepaid_ledger::METADATA_PAIRS_MAX);
    let refusal = env
        .refused(
            "t1",
            Command::PatchWalletMetadata {
                wallet: wid("w1"),
                patch: patch(&[("one-more", Some("v"))]),
            },
        )
        .await;
    assert_eq!(
        refusal,
        prepaid_ledger::Refusal::MetadataExceeded {
            pairs: prepaid_ledger::METADATA_PAIRS_MAX + 1,
            pairs_max: prepaid_ledger::METADATA_PAIRS_MAX
        }
    );
    // Replacing a key at the bound is no growth.
    env.done(
        "t1",
        Command::PatchWalletMetadata {
            wallet: wid("w1"),
            patch: patch(&[("k0", None), ("one-more", Some("v"))]),
        },
    )
    .await;
    let refusal = env
        .refused(
            "t1",
            Command::PatchWalletMetadata {
                wallet: wid("w9"),
                patch: patch(&[("team", None)]),
            },
        )
        .await;
    assert_eq!(refusal, prepaid_ledger::Refusal::WalletNotFound);

    // It reads back after a restart, the list filters by the new labels, and a later
    // change of the wallet's money keeps them.
    env.top_up("t1", "w1", 1).await;
    env.reopen().await;
    let read = env
        .store()
        .wallet(&tid("t1"), &wid("w1"))
        .await
        .expect("wallet")
        .expect("w1");
    assert_eq!(read.metadata.get("team"), Some("b"));
    assert_eq!(read.metadata.get("one-more"), Some("v"));
    assert_eq!(read.metadata.get("k0"), None);
    assert_eq!(read.metadata.len(), prepaid_ledger::METADATA_PAIRS_MAX);
    assert_eq!(read.balance, 101);
    assert_eq!(wallets(env, None, &[("team", "b")]).await, ["w1"]);
    assert!(wallets(env, None, &[("team", "a")]).await.is_empty());
}
