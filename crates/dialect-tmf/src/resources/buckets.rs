//! Buckets: a party account's wallets, made whole with their first top-up.

use super::*;

pub(super) fn render_bucket(ctx: &Ctx, w: &Wallet, customer_name: &str, client: &Value) -> Value {
    let usage = client
        .text("/usageType")
        .ok()
        .flatten()
        .unwrap_or_else(|| units::usage_type(w.unit.code()).to_owned());
    let mut ours = json!({
        "id": w.id.as_str(),
        "href": ctx.href("bucket", w.id.as_str()),
        "@type": "Bucket",
        "partyAccount": party_ref(ctx, w.customer.as_str(), customer_name),
        "remainingValue": quantity(ctx, i64::saturating_sub(w.balance, w.held), &w.unit),
        "reservedValue": quantity(ctx, w.held, &w.unit),
        "status": w.status.as_str(),
        "usageType": usage,
        "isShared": false,
        "requestedDate": when(w.created_at),
        "confirmationDate": when(w.created_at),
    });
    if !w.name.is_empty() {
        ours["name"] = json!(w.name);
    }
    if w.valid_from.is_some() || w.valid_until.is_some() {
        let mut valid = json!({});
        if let Some(t) = w.valid_from {
            valid["startDateTime"] = when(t);
        }
        if let Some(t) = w.valid_until {
            valid["endDateTime"] = when(t);
        }
        ours["validFor"] = valid;
    }
    if ctx.is_brm() {
        ours["@baseType"] = json!("Bucket");
        brm_nulls(
            &mut ours,
            &[
                "@schemaLocation",
                "description",
                "name",
                "logicalResource",
                "product",
                "relatedParty",
                "remainingValueName",
                "validFor",
            ],
        );
    }
    finish(ctx, merge(client, ours))
}

pub(super) async fn bucket_answer(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    w: &Wallet,
) -> Result<Value, TmfError> {
    let (client, _) = record_body(state, caller, KIND_BUCKET, w.id.as_str()).await?;
    let name = customer_name(state, caller, &w.customer).await;
    Ok(render_bucket(ctx, w, &name, &client))
}

/// The largest `unitScale` of `POST /bucket` (the ledger's largest unit scale).
pub const UNIT_SCALE_MAX: u8 = 18;

/// `POST /bucket`: opens a bucket for a party account (made when new). The spec has no
/// such operation; operators need it. `remainingValue.units` names the unit,
/// `remainingValue.amount` (optional) is topped up at once.
pub async fn create_bucket(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    let b = &body.value;
    let party = b.required_text("/partyAccount/id")?;
    let customer = CustomerId::parse(&party).map_err(|e| TmfError::field("partyAccount.id", e))?;
    if !caller.sees(&customer) {
        return Err(TmfError::not_found(
            "party_account_not_found",
            "party account",
        ));
    }
    let code = b.required_text("/remainingValue/units")?;
    let scale = match b.integer("/unitScale")? {
        None => units::default_scale(&code),
        Some(s) => u8::try_from(s)
            .ok()
            .filter(|s| *s <= UNIT_SCALE_MAX)
            .ok_or_else(|| {
                TmfError::field("unitScale", format!("must be from 0 to {UNIT_SCALE_MAX}"))
            })?,
    };
    let unit = Unit::new(&code, scale).map_err(|e| match e {
        UnitError::BadScale => TmfError::field("unitScale", e),
        _ => TmfError::field("remainingValue.units", e),
    })?;
    let id = match b.text("/id")? {
        Some(id) => WalletId::parse(&id).map_err(|e| TmfError::field("id", e))?,
        None => WalletId::from_uuid(new_uuid()),
    };
    usage_type(b, &unit)?;
    if let Some(status) = b.text("/status")?
        && status != "active"
    {
        return Err(TmfError::field("status", "a new bucket is active"));
    }
    let name = b.text("/name")?.unwrap_or_default();
    let name = bounded_text(&name, NAME_LEN_MAX).map_err(|e| TmfError::field("name", e))?;
    let party_name = b.text("/partyAccount/name")?.unwrap_or_default();
    let party_name = bounded_text(&party_name, NAME_LEN_MAX)
        .map_err(|e| TmfError::field("partyAccount.name", e))?;
    let valid_from = time_at(b, "/validFor/startDateTime")?;
    let valid_until = time_at(b, "/validFor/endDateTime")?;
    if let (Some(from), Some(until)) = (valid_from, valid_until)
        && until <= from
    {
        return Err(TmfError::field(
            "validFor.endDateTime",
            "must be after validFor.startDateTime",
        ));
    }
    let initial = match b.amount_text("/remainingValue/amount")? {
        None => 0,
        Some(text) => amount::parse_minor(&text, unit.scale())
            .map_err(|e| TmfError::amount("remainingValue.amount", e))?,
    };
    if initial < 0 {
        return Err(TmfError::amount(
            "remainingValue.amount",
            "must not be negative",
        ));
    }
    let initial = (initial > 0)
        .then(|| positive("remainingValue.amount", initial))
        .transpose()?;
    let text = record_text(b)?;

    // One unit: the party account on first use, the bucket, the members the client
    // sent and the bucket's first top-up. A refusal of any of them (a top-up outside
    // the bucket's validity, say) leaves no bucket and records no idempotency key.
    let command = Command::CreateWallet {
        wallet: NewWallet {
            id: id.clone(),
            customer: customer.clone(),
            unit,
            name,
            product: String::new(),
            floor: Floor::ZERO,
            ceiling: None,
            valid_from,
            valid_until,
            metadata: prepaid_ledger::Metadata::default(),
        },
    };
    let mut op = Operation::new(&caller, command)
        .idempotency(body.idempotency.clone())
        .before(Command::EnsureCustomer {
            id: customer,
            name: party_name,
            link: String::new(),
        })
        .put_record(KIND_BUCKET, &record_key(id.as_str())?, text, None);
    if let Some(amount) = initial {
        op = op.then(Command::Post {
            id: MutationId(new_uuid()),
            wallet: id.clone(),
            kind: MutationKind::TopUp,
            amount,
            reference: Reference::known("bucket", "remainingValue of the new bucket", ""),
            occurred_at: None,
            // The bucket's first credit lasts as long as the bucket.
            terms: prepaid_ledger::GrantTerms {
                expires_at: valid_until,
                ..prepaid_ledger::GrantTerms::default()
            },
            metadata: prepaid_ledger::Metadata::default(),
        });
    }
    let (wallet, replayed) = match submit_op(&state, op).await? {
        Ok((Done::Wallet(w), replayed)) => (w, replayed),
        Ok(_) => return Err(unexpected("wallet")),
        Err(r) => return Err(refusal(&r)),
    };
    // The answer shows the bucket as it is now, its first top-up included.
    let wallet = visible_wallet(&state, &caller, id.as_str())
        .await
        .unwrap_or(wallet);
    let v = bucket_answer(&state, &caller, &ctx, &wallet).await?;
    Ok(created(&v, replayed))
}

pub async fn get_bucket(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let w = visible_wallet(&state, &caller, &seg.0).await?;
    let v = bucket_answer(&state, &caller, &ctx, &w).await?;
    Ok(json_answer(StatusCode::OK, &params.select(v)))
}

/// The customer a list is confined to: the key's own, or the `partyAccount.id` filter.
/// `Err(())` when the two disagree (the list is empty).
pub(super) fn list_customer(
    caller: &Principal,
    params: &ListParams,
) -> Result<Option<CustomerId>, ()> {
    let asked = params
        .only("partyAccount.id")
        .map(|c| CustomerId::parse(c).map_err(|_| ()))
        .transpose()?;
    match (&caller.customer, asked) {
        (Some(only), Some(asked)) if *only != asked => Err(()),
        (Some(only), _) => Ok(Some(only.clone())),
        (None, asked) => Ok(asked),
    }
}

/// Where the rows of a list come from.
pub(super) enum Rows {
    Buckets {
        customer: Option<CustomerId>,
        bucket: Option<String>,
    },
    Mutations {
        customer: Option<CustomerId>,
        wallet: Option<WalletId>,
        kinds: Vec<MutationKind>,
        /// `None` renders each as a balanceActionHistory.
        action: Option<Action>,
    },
}

/// One page of `rows`, rendered, and how many rows there are in all.
pub(super) async fn fetch(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    rows: &Rows,
    offset: u64,
    limit: usize,
) -> Result<(Vec<Value>, u64), TmfError> {
    match rows {
        Rows::Buckets { customer, bucket } => {
            let page = state
                .store
                .search_wallets(
                    &caller.tenant,
                    &WalletSearch {
                        customer: customer.clone(),
                        filter: bucket.as_ref().map(|id| {
                            Filter::Test(Test {
                                path: "id".into(),
                                column: columns::wallet::ID,
                                pred: Pred::Eq(prepaid_query::Value::Text(id.clone())),
                            })
                        }),
                        order: Order::Ascending,
                        offset,
                        limit,
                    },
                )
                .await
                .map_err(|e| store_err(&e, "listing buckets"))?;
            let mut items = Vec::with_capacity(page.items.len());
            for w in &page.items {
                items.push(bucket_answer(state, caller, ctx, w).await?);
            }
            Ok((items, page.total))
        }
        Rows::Mutations {
            customer,
            wallet,
            kinds,
            action,
        } => {
            let page = state
                .store
                .search_mutations(
                    &caller.tenant,
                    &MutationSearch {
                        customer: customer.clone(),
                        wallet: wallet.clone(),
                        filter: Some(kind_filter(kinds)),
                        order: Order::Ascending,
                        sort: prepaid_store::MutationSort::Recorded,
                        offset,
                        limit,
                    },
                )
                .await
                .map_err(|e| store_err(&e, "listing mutations"))?;
            let mut items = Vec::with_capacity(page.items.len());
            for m in &page.items {
                items.push(match action {
                    Some(action) => mutation_answer(state, caller, ctx, *action, m).await?,
                    None => {
                        let name = customer_name(state, caller, &m.customer).await;
                        render_history(ctx, m, &name)
                    }
                });
            }
            Ok((items, page.total))
        }
    }
}

/// Answers a list of `rows`: straight from the store when every filter is one the
/// store ran (`handled`), else by looking through at most [`SCAN_MAX`] rows and
/// filtering here.
pub(super) async fn list_with(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    params: &ListParams,
    handled: &[&str],
    rows: &Rows,
) -> Answer {
    if !params.filters_beyond(handled) {
        let (items, total) = fetch(state, caller, ctx, rows, params.offset, params.limit).await?;
        let items = items.into_iter().map(|v| params.select(v)).collect();
        return Ok(answer(items, total));
    }
    let mut matched = Vec::new();
    let mut offset = 0u64;
    loop {
        let (items, total) = fetch(state, caller, ctx, rows, offset, PAGE_SIZE_MAX).await?;
        let n = items.len() as u64;
        matched.extend(items.into_iter().filter(|v| params.matches(v)));
        offset += n;
        if n == 0 || offset >= total {
            break;
        }
        if offset >= SCAN_MAX as u64 {
            return Err(TmfError::query(format!(
                "these filters would look through more than {SCAN_MAX} resources; \
                 narrow the list with partyAccount.id or bucket.id"
            )));
        }
    }
    Ok(params.answer_page(matched))
}

pub async fn list_buckets(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let Ok(customer) = list_customer(&caller, &params) else {
        return Ok(answer(Vec::new(), 0));
    };
    let rows = Rows::Buckets {
        customer,
        bucket: params.only("id").map(str::to_owned),
    };
    list_with(
        &state,
        &caller,
        &ctx,
        &params,
        &["partyAccount.id", "id"],
        &rows,
    )
    .await
}
