//! Paging the Talkdesk wallet list: walks by `next` that see every wallet once, the
//! links of each page, and `per_page` and `page` at their bounds.

use crate::common;

use common::*;
use std::collections::BTreeSet;

/// The default and largest `per_page` (documented in the dialect).
const PER_PAGE_DEFAULT: usize = 20;
const PER_PAGE_MAX: usize = 100;

/// Creates `n` credit wallets `w000`... for `customer`; every third is named `even`.
async fn wallets(admin: &Api, customer: &str, n: usize) -> Vec<String> {
    admin.create_customer(customer).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{customer}-w{i:03}");
        let name = if i % 3 == 0 { "third" } else { "other" };
        admin
            .create_product_wallet(customer, &id, "CREDIT", 4, name, "Product")
            .await;
        ids.push(id);
    }
    ids
}

/// Follows `next` from `first`; checks each page's number, size and links. Returns the
/// wallet ids in order.
async fn walk(api: &Api, params: &[(&str, &str)], per_page: usize) -> Vec<String> {
    let mut page = api.talkdesk_list(params).await;
    let total = int(&page, "total") as usize;
    let last = total.div_ceil(per_page).max(1);
    let mut seen = Vec::new();
    let mut first_href: Option<String> = None;
    let mut last_href: Option<String> = None;
    for number in 1..=last {
        let wallets = check_talkdesk_list(&page);
        assert_eq!(int(&page, "page"), number as i64);
        assert_eq!(int(&page, "per_page"), per_page as i64);
        assert_eq!(int(&page, "total"), total as i64);
        let expected = if number < last {
            per_page
        } else {
            total - per_page * (last - 1)
        };
        assert_eq!(wallets.len(), expected, "page {number}: {page}");
        seen.extend(wallets.iter().map(talkdesk_wallet_id));
        let links = &page["_links"];
        let href = |rel: &str| links[rel]["href"].as_str().map(str::to_owned);
        // first and last are the same on every page; self is this page.
        assert_eq!(
            first_href.get_or_insert_with(|| href("first").unwrap()),
            &href("first").unwrap()
        );
        assert_eq!(
            last_href.get_or_insert_with(|| href("last").unwrap()),
            &href("last").unwrap()
        );
        let this = href("self").unwrap();
        assert!(this.contains(&format!("page={number}&")), "{this}");
        assert_eq!(api.get_href(&this).await.ok(200), page, "self is this page");
        assert_eq!(href("prev").is_some(), number > 1, "prev on page {number}");
        assert_eq!(
            href("next").is_some(),
            number < last,
            "next on page {number}"
        );
        if let Some(prev) = href("prev") {
            let back = api.get_href(&prev).await.ok(200);
            assert_eq!(int(&back, "page"), number as i64 - 1);
        }
        match href("next") {
            Some(next) => page = api.get_href(&next).await.ok(200),
            None => break,
        }
    }
    let last_page = api.get_href(&last_href.unwrap()).await.ok(200);
    assert_eq!(int(&last_page, "page"), last as i64);
    let first_page = api.get_href(&first_href.unwrap()).await.ok(200);
    assert_eq!(int(&first_page, "page"), 1);
    assert_eq!(seen.len(), total, "the walk saw every wallet");
    seen
}

#[tokio::test]
async fn walking_next_sees_every_wallet_once_in_creation_order() {
    let server = Server::start().await;
    let admin = server.admin();
    let ids = wallets(&admin, "acme", 23).await;
    let (_, acme) = admin.create_key("td", &["read"], Some("acme")).await;
    for per_page in [1, 5, 7, 23, PER_PAGE_MAX] {
        let pp = per_page.to_string();
        let seen = walk(&acme, &[("per_page", &pp)], per_page).await;
        assert_eq!(seen, ids, "per_page={per_page}");
    }
    // Without per_page, pages hold the default.
    let first = acme.talkdesk_list(&[]).await;
    assert_eq!(int(&first, "per_page"), PER_PAGE_DEFAULT as i64);
    assert_eq!(int(&first, "count"), PER_PAGE_DEFAULT as i64);
    let seen = walk(&acme, &[], PER_PAGE_DEFAULT).await;
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn links_keep_the_filter_and_the_account_across_pages() {
    let server = Server::start().await;
    let admin = server.admin();
    let ids = wallets(&admin, "acme", 16).await;
    wallets(&admin, "zeta", 4).await;
    let filter = "name eq 'third' or contains(product_name, 'nothing''s here')";
    let params = [
        ("filter", filter),
        ("per_page", "2"),
        ("account_id", "acme"),
    ];
    let seen = walk(&admin, &params, 2).await;
    let thirds: Vec<String> = ids.iter().step_by(3).cloned().collect();
    assert_eq!(seen, thirds);
    let page = admin.talkdesk_list(&params).await;
    for rel in ["self", "first", "next", "last"] {
        let href = page["_links"][rel]["href"].as_str().unwrap();
        assert!(href.starts_with(server.base()), "{href}");
        assert!(
            href.contains(
                "&filter=name%20eq%20%27third%27%20or%20contains%28product_name%2C%20%27\
                 nothing%27%27s%20here%27%29"
            ),
            "{href}"
        );
        assert!(href.ends_with("&account_id=acme"), "{href}");
    }
    // The tenant's key walks the other account when it names it.
    let zeta = walk(&admin, &[("per_page", "3"), ("account_id", "zeta")], 3).await;
    assert_eq!(zeta.len(), 4);
    let unique: BTreeSet<&String> = zeta.iter().collect();
    assert_eq!(unique.len(), 4);
    assert!(zeta.iter().all(|id| id.starts_with("zeta-")), "{zeta:?}");
}

#[tokio::test]
async fn per_page_and_page_at_their_bounds() {
    let server = Server::start().await;
    let admin = server.admin();
    let ids = wallets(&admin, "acme", PER_PAGE_MAX + 1).await;
    let max = PER_PAGE_MAX.to_string();
    let full = admin
        .talkdesk_list(&[("per_page", &max), ("account_id", "acme")])
        .await;
    assert_eq!(int(&full, "count"), PER_PAGE_MAX as i64);
    assert_eq!(int(&full, "total"), ids.len() as i64);
    let rest = admin
        .talkdesk_list(&[("per_page", &max), ("page", "2"), ("account_id", "acme")])
        .await;
    assert_eq!(int(&rest, "count"), 1);
    assert_eq!(
        talkdesk_wallet_id(&rest["_embedded"]["wallets"][0]),
        ids[PER_PAGE_MAX]
    );
    assert!(rest["_links"].get("next").is_none());
    let over = (PER_PAGE_MAX + 1).to_string();
    admin
        .talkdesk_get(&[("per_page", &over), ("account_id", "acme")])
        .await
        .talkdesk_error(400, "4000002");
    // The largest page number is accepted (and empty); one more is not.
    let page_max = "100000";
    let far = admin
        .talkdesk_list(&[
            ("page", page_max),
            ("per_page", &max),
            ("account_id", "acme"),
        ])
        .await;
    assert_eq!(int(&far, "count"), 0);
    assert_eq!(int(&far, "total"), ids.len() as i64);
    assert!(far["_links"].get("next").is_none());
    let prev = far["_links"]["prev"]["href"].as_str().unwrap();
    assert!(
        prev.contains("page=2&"),
        "prev leads back to the last page: {prev}"
    );
    admin
        .talkdesk_get(&[("page", "100001"), ("account_id", "acme")])
        .await
        .talkdesk_error(400, "4000002");
}

#[tokio::test]
async fn an_empty_account_has_one_empty_page() {
    let server = Server::start().await;
    let admin = server.admin();
    admin.create_customer("acme").await;
    let v = admin.talkdesk_list(&[("account_id", "acme")]).await;
    assert_eq!((int(&v, "total"), int(&v, "count")), (0, 0));
    assert_eq!(int(&v, "page"), 1);
    let links = &v["_links"];
    assert_eq!(links["first"], links["last"]);
    assert_eq!(links["self"], links["first"]);
    assert!(links.get("prev").is_none() && links.get("next").is_none());
}

#[tokio::test]
async fn hrefs_follow_the_host_and_a_proxys_headers() {
    let server = Server::start().await;
    let admin = server.admin();
    wallets(&admin, "acme", 2).await;
    let r = admin
        .send(
            reqwest::Method::GET,
            "/account/wallets?per_page=1&account_id=acme",
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "wallets.example.com"),
            ],
            None,
        )
        .await;
    let v = r.ok(200);
    let next = v["_links"]["next"]["href"].as_str().unwrap();
    assert_eq!(
        next,
        "https://wallets.example.com/account/wallets?page=2&per_page=1&account_id=acme"
    );
    let w = &v["_embedded"]["wallets"][0];
    assert_eq!(
        w["_links"]["self"]["href"],
        "https://wallets.example.com/account/wallets/acme-w000"
    );
}
