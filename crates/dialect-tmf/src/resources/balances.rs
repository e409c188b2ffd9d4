//! Accumulated balances and the history of balance actions.

use super::*;

/// The id of the accumulated balance of `customer` in `unit`: `<customer>:<unit>`
/// (unit codes hold no `:`, so the last one splits it).
pub(super) fn accumulated_id(customer: &CustomerId, unit: &Unit) -> String {
    format!("{customer}:{}", unit.code())
}

pub(super) fn render_accumulated(
    ctx: &Ctx,
    customer: &CustomerId,
    customer_name: &str,
    unit: &Unit,
    wallets: &[&Wallet],
) -> Value {
    let id = accumulated_id(customer, unit);
    let total: i128 = wallets
        .iter()
        .map(|w| i128::from(w.balance) - i128::from(w.held))
        .sum();
    let mut ours = json!({
        "id": id,
        "href": ctx.href("accumulatedBalance", &id),
        "@type": "AccumulatedBalance",
        "name": format!("{} of {customer}", unit.code()),
        "bucket": wallets.iter().map(|w| bucket_ref(ctx, w.id.as_str())).collect::<Vec<_>>(),
        "partyAccount": party_ref(ctx, customer.as_str(), customer_name),
        "totalBalance": {"amount": decimal(amount::format_minor(total, unit.scale())), "units": unit.code()},
    });
    if ctx.is_brm() {
        ours["@baseType"] = json!("AccumulatedBalance");
        brm_nulls(&mut ours, &["@schemaLocation", "description"]);
    }
    finish(ctx, ours)
}

/// Every wallet the caller sees (of `customer` when given), at most [`SCAN_MAX`].
pub(super) async fn all_wallets(
    state: &SharedState,
    caller: &Principal,
    customer: Option<CustomerId>,
) -> Result<Vec<Wallet>, TmfError> {
    let mut all = Vec::new();
    loop {
        let page = state
            .store
            .search_wallets(
                &caller.tenant,
                &WalletSearch {
                    customer: customer.clone(),
                    filter: None,
                    order: Order::Ascending,
                    offset: all.len() as u64,
                    limit: PAGE_SIZE_MAX,
                },
            )
            .await
            .map_err(|e| store_err(&e, "listing buckets"))?;
        let n = page.items.len();
        all.extend(page.items);
        if n == 0 || all.len() as u64 >= page.total {
            return Ok(all);
        }
        if all.len() >= SCAN_MAX {
            return Err(TmfError::query(format!(
                "more than {SCAN_MAX} buckets to sum; narrow the list with partyAccount.id"
            )));
        }
    }
}

pub(super) async fn accumulated(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    wallets: &[Wallet],
) -> Vec<Value> {
    let mut groups: BTreeMap<(CustomerId, String), (Unit, Vec<&Wallet>)> = BTreeMap::new();
    for w in wallets {
        groups
            .entry((w.customer.clone(), w.unit.code().to_owned()))
            .or_insert_with(|| (w.unit.clone(), Vec::new()))
            .1
            .push(w);
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((customer, _), (unit, ws)) in groups {
        let name = customer_name(state, caller, &customer).await;
        out.push(render_accumulated(ctx, &customer, &name, &unit, &ws));
    }
    out
}

pub async fn list_accumulated(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let Ok(customer) = list_customer(&caller, &params) else {
        return Ok(answer(Vec::new(), 0));
    };
    let wallets = all_wallets(&state, &caller, customer).await?;
    let all: Vec<Value> = accumulated(&state, &caller, &ctx, &wallets)
        .await
        .into_iter()
        .filter(|v| params.matches(v))
        .collect();
    Ok(params.answer_page(all))
}

pub async fn get_accumulated(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let not_found = || TmfError::not_found("accumulated_balance_not_found", "accumulatedBalance");
    let (customer, code) = seg.0.rsplit_once(':').ok_or_else(not_found)?;
    let customer = CustomerId::parse(customer)
        .ok()
        .filter(|c| caller.sees(c))
        .ok_or_else(not_found)?;
    let wallets: Vec<Wallet> = all_wallets(&state, &caller, Some(customer))
        .await?
        .into_iter()
        .filter(|w| w.unit.code() == code)
        .collect();
    let v = accumulated(&state, &caller, &ctx, &wallets)
        .await
        .into_iter()
        .next()
        .ok_or_else(not_found)?;
    Ok(json_answer(StatusCode::OK, &params.select(v)))
}

pub(super) fn render_history(ctx: &Ctx, m: &Mutation, customer_name: &str) -> Value {
    let id = m.id.to_string();
    let receiver = match m.kind {
        MutationKind::TransferOut => m.counter_wallet.clone().unwrap_or_else(|| m.wallet.clone()),
        _ => m.wallet.clone(),
    };
    let mut ours = json!({
        "id": id,
        "href": ctx.href("balanceActionHistory", &id),
        "@type": "BalanceActionHistory",
        "status": action_status(ctx, ActionStatus::Completed),
        "description": m.kind.as_str(),
        "amount": quantity(ctx, m.amount, &m.unit),
        "bucket": bucket_ref(ctx, m.wallet.as_str()),
        "partyAccount": party_ref(ctx, m.customer.as_str(), customer_name),
        "usageType": units::usage_type(m.unit.code()),
        "receiverLogicalResource": {"id": receiver.as_str(), "@referredType": "Bucket"},
        "requestedDate": when(m.occurred_at),
        "confirmationDate": when(m.recorded_at),
    });
    if let Some(text) = m.reference.text() {
        ours["reason"] = json!(text);
    }
    if m.kind == MutationKind::Adjustment {
        ours["adjustType"] = json!("oneTime");
    }
    if let Some(other) = &m.counter_wallet {
        let (from, to) = match m.kind {
            MutationKind::TransferIn => (other.clone(), m.wallet.clone()),
            _ => (m.wallet.clone(), other.clone()),
        };
        ours["bucket"] = bucket_ref(ctx, from.as_str());
        ours["receiverBucket"] = bucket_ref(ctx, to.as_str());
        ours["receiverLogicalResource"] = json!({"id": to.as_str(), "@referredType": "Bucket"});
    }
    if ctx.is_brm() {
        ours["@baseType"] = json!("BalanceActionHistory");
        brm_nulls(&mut ours, &["@schemaLocation", "reason", "channel"]);
    }
    finish(ctx, ours)
}

pub async fn list_history(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    list_mutations(&state, &caller, &ctx, &params, &MutationKind::ALL, None).await
}

pub async fn get_history(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let not_found =
        || TmfError::not_found("balance_action_history_not_found", "balanceActionHistory");
    let id = uuid::Uuid::try_parse(&seg.0).map_err(|_| not_found())?;
    let m = state
        .store
        .mutation(&caller.tenant, MutationId(id))
        .await
        .map_err(|e| store_err(&e, "reading a mutation"))?
        .filter(|m| caller.sees(&m.customer))
        .ok_or_else(not_found)?;
    let name = customer_name(&state, &caller, &m.customer).await;
    Ok(json_answer(
        StatusCode::OK,
        &params.select(render_history(&ctx, &m, &name)),
    ))
}
