//! Top-ups, adjustments and transfers: the actions that are one mutation.

use super::*;

/// The answer about a mutation-backed action. `receiver` is a transfer's receiving
/// wallet.
pub(super) fn render_mutation(
    ctx: &Ctx,
    action: Action,
    m: &Mutation,
    customer_name: &str,
    client: &Value,
) -> Value {
    let amount = match action {
        Action::Adjust => m.amount,
        _ => m.amount.saturating_abs(),
    };
    let usage = client
        .text("/usageType")
        .ok()
        .flatten()
        .unwrap_or_else(|| units::usage_type(m.unit.code()).to_owned());
    let id = m.transfer.map_or(m.id.0, |t| t.0).to_string();
    let mut ours = json!({
        "id": id,
        "href": ctx.href(action.collection(), &id),
        "@type": action.type_name(),
        "status": action_status(ctx, ActionStatus::Completed),
        "amount": quantity(ctx, amount, &m.unit),
        "bucket": bucket_ref(ctx, m.wallet.as_str()),
        "partyAccount": party_ref(ctx, m.customer.as_str(), customer_name),
        "usageType": usage,
        "requestedDate": when(m.occurred_at),
        "confirmationDate": when(m.recorded_at),
    });
    match action {
        Action::Topup => {
            let auto = client.flag("/isAutoTopup").ok().flatten().unwrap_or(false);
            ours["isAutoTopup"] = json!(auto);
            if let Some(n) = client.integer("/numberOfPeriods").ok().flatten() {
                ours["numberOfPeriods"] = json!(n);
            }
            if let Some(p) = client
                .text("/recurringPeriod")
                .ok()
                .flatten()
                .and_then(|p| recurring::Period::parse(&p))
            {
                ours["recurringPeriod"] = json!(match ctx.flavour {
                    Flavour::Tmf => p.as_str(),
                    Flavour::Brm => p.brm_str(),
                });
            }
        }
        Action::Adjust => {
            let kind = client
                .text("/adjustType")
                .ok()
                .flatten()
                .unwrap_or_else(|| "oneTime".to_owned());
            ours["adjustType"] = json!(kind);
        }
        Action::Transfer => {
            let receiver = m
                .counter_wallet
                .as_ref()
                .map_or("", |w| w.as_str())
                .to_owned();
            ours["receiverBucket"] = bucket_ref(ctx, &receiver);
            ours["receiverBucketUsageType"] = json!(usage);
            // The spec requires these of every transfer; one made through another
            // API gets the ledger's own view of them.
            ours["reason"] = json!(m.reference.parts().1);
            ours["channel"] = json!({"id": "prepaid", "name": "prepaid"});
            ours["logicalResource"] = json!([{"id": m.wallet.as_str(), "@referredType": "Bucket"}]);
            ours["receiverLogicalResource"] = json!({"id": receiver, "@referredType": "Bucket"});
            for key in [
                "reason",
                "channel",
                "logicalResource",
                "receiverLogicalResource",
            ] {
                if client.at(&format!("/{key}")).is_some() {
                    ours[key] = client[key].clone();
                }
            }
        }
        Action::Reserve => {}
    }
    if ctx.is_brm() {
        ours["@baseType"] = json!(action.type_name());
        let after = m.balance_after;
        let before = after.saturating_sub(m.amount);
        // Oracle BRM counts a prepaid balance as a debt: credit is negative, so a
        // top-up takes the balance down (as in Oracle's examples).
        let item = json!({
            "@baseType": "ImpactedBucketItem", "@schemaLocation": null,
            "@type": "ImpactedBucketItem", "amount": quantity(ctx, m.amount.saturating_abs(), &m.unit),
            "description": null, "itemType": null, "name": null, "reason": null,
        });
        ours["impactedBucket"] = json!([{
            "@baseType": "ImpactedBucket", "@schemaLocation": null, "@type": "ImpactedBucket",
            "amountAfter": quantity(ctx, after.saturating_neg(), &m.unit),
            "amountBefore": quantity(ctx, before.saturating_neg(), &m.unit),
            "bucket": bucket_ref(ctx, m.wallet.as_str()),
            "confirmationDate": null, "description": null, "item": [item],
            "name": null, "requestedDate": null,
        }]);
        if action == Action::Topup {
            ours["payment"] = json!({
                "id": m.id.to_string(), "href": null, "name": "Billing Event Log",
                "amount": {"unit": m.unit.code(),
                    "value": decimal(amount::format_minor(m.amount.saturating_abs(), m.unit.scale()))},
                "paymentDate": when(m.recorded_at),
                "@baseType": "Payment", "@schemaLocation": null, "@type": "Payment",
                "@referredType": null,
            });
            ours["voucher"] = json!("");
            ours["logicalResource"] = json!({
                "@baseType": null, "@referredType": null, "@schemaLocation": null,
                "@type": null, "href": null, "id": null, "name": null, "value": "",
            });
        }
        brm_nulls(
            &mut ours,
            &[
                "@schemaLocation",
                "channel",
                "description",
                "logicalResource",
                "numberOfPeriods",
                "paymentMethod",
                "product",
                "reason",
                "recurringPeriod",
                "relatedParty",
                "relatedTopupBalance",
                "requestor",
            ],
        );
    }
    finish(ctx, merge(client, ours))
}

/// The mutation of action `id`, if the caller may see it and it is of the action's
/// kind.
pub(super) async fn action_mutation(
    state: &SharedState,
    caller: &Principal,
    action: Action,
    id: uuid::Uuid,
) -> Result<Mutation, TmfError> {
    state
        .store
        .mutation(&caller.tenant, MutationId(id))
        .await
        .map_err(|e| store_err(&e, "reading a mutation"))?
        .filter(|m| caller.sees(&m.customer) && m.kind == action.mutation_kind())
        .filter(|m| action != Action::Transfer || m.transfer == Some(TransferId(id)))
        .ok_or_else(|| action.not_found())
}

pub(super) async fn mutation_answer(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    action: Action,
    m: &Mutation,
) -> Result<Value, TmfError> {
    let id = m.transfer.map_or(m.id.0, |t| t.0).to_string();
    let (client, _) = record_body(state, caller, action.record_kind(), &id).await?;
    let name = customer_name(state, caller, &m.customer).await;
    let mut v = render_mutation(ctx, action, m, &name, &client);
    if action == Action::Topup
        && is_recurring(&client)
        && plan_cancelled(state, caller, &id).await?
    {
        v["status"] = json!(action_status(ctx, ActionStatus::Cancelled));
    }
    Ok(v)
}

/// Whether a top-up's record asked for a recurring plan.
pub(super) fn is_recurring(client: &Value) -> bool {
    client.get("isAutoTopup") == Some(&Value::Bool(true))
}

/// Whether the recurring plan `plan` (its first top-up's id) was cancelled.
pub(super) async fn plan_cancelled(
    state: &SharedState,
    caller: &Principal,
    plan: &str,
) -> Result<bool, TmfError> {
    // A plan is its first top-up's id: one that is no key was never a plan.
    let Ok(plan) = RecordKey::parse(plan) else {
        return Ok(false);
    };
    let cancelled = state
        .store
        .record(&caller.tenant, recurring::CANCELLED_KIND, &plan)
        .await
        .map_err(|e| store_err(&e, "reading a recurring plan"))?;
    Ok(cancelled.is_some())
}

/// A recurring top-up's plan as the body asks for it: `None` for a one-time top-up.
pub(super) fn recurring_plan(body: &Value) -> Result<Option<(recurring::Period, u32)>, TmfError> {
    let auto = body.flag("/isAutoTopup")?.unwrap_or(false);
    let period = body.text("/recurringPeriod")?;
    let periods = body.integer("/numberOfPeriods")?;
    if !auto {
        return Ok(None);
    }
    let period = period.ok_or_else(|| {
        TmfError::invalid("recurringPeriod: is required when isAutoTopup is true")
    })?;
    let period = recurring::Period::parse(&period).ok_or_else(|| {
        TmfError::field(
            "recurringPeriod",
            "must be daily, weekly, fortnightly or monthly",
        )
    })?;
    let max = i64::from(recurring::PERIODS_MAX);
    // Without `numberOfPeriods` the plan recurs until it is cancelled (a PATCH with
    // `status: cancelled`), bounded like any plan by `PERIODS_MAX`.
    let periods = match periods {
        None => recurring::PERIODS_MAX,
        Some(n) if (1..=max).contains(&n) => n as u32,
        Some(_) => {
            return Err(TmfError::field(
                "numberOfPeriods",
                format!("must be from 1 to {max}"),
            ));
        }
    };
    Ok(Some((period, periods)))
}

/// `POST` of a top-up or an adjustment.
pub(super) async fn create_posting(
    state: SharedState,
    caller: Writer,
    ctx: Ctx,
    body: Body,
    action: Action,
) -> Answer {
    let b = &body.value;
    check_references(&ctx, b)?;
    let wallet = resolve_bucket(&state, &caller, b, "/bucket/id", Some("/partyAccount/id")).await?;
    let minor = parse_amount(b, "/amount", &wallet.unit)?;
    let (kind, amount) = match action {
        Action::Topup => (MutationKind::TopUp, positive("amount", minor)?),
        _ => (
            MutationKind::Adjustment,
            Amount::nonzero(minor).map_err(|e| TmfError::amount("amount", e))?,
        ),
    };
    usage_type(b, &wallet.unit)?;
    let plan = match action {
        Action::Topup => recurring_plan(b)?,
        _ => None,
    };
    if action == Action::Adjust
        && let Some(t) = b.text("/adjustType")?
        && t != "oneTime"
        && t != "recurring"
    {
        return Err(TmfError::field(
            "adjustType",
            "must be oneTime or recurring",
        ));
    }
    // A credit's `validFor.endDateTime` is when the credit it grants expires (a debit
    // makes no grant, so an adjustment down ignores it, as it always did).
    let expires_at = match time_at(b, "/validFor/endDateTime")? {
        Some(t) if kind == MutationKind::TopUp || amount.get() > 0 => {
            if t <= state.clock.now() {
                return Err(TmfError::field(
                    "validFor.endDateTime",
                    "must be in the future: the credit expires then",
                ));
            }
            Some(t)
        }
        _ => None,
    };
    let text = record_text(b)?;
    let id = new_uuid();
    let reference = reference(action, b);
    let command = Command::Post {
        id: MutationId(id),
        wallet: wallet.id.clone(),
        kind,
        amount,
        reference: reference.clone(),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms {
            expires_at,
            ..prepaid_ledger::GrantTerms::default()
        },
        metadata: prepaid_ledger::Metadata::default(),
    };
    let pending = Pending {
        action,
        id,
        bucket: Some(&wallet.id),
        text,
    };
    // The plan's later periods are scheduled in the unit of its first top-up, so a
    // plan exists exactly when its first period does.
    let next = match plan {
        Some((period, periods_total)) => recurring::first_job(&recurring::Plan {
            id: id.to_string(),
            wallet: wallet.id.clone(),
            amount,
            period,
            periods_total,
            first_at: state.clock.now(),
            reference,
        })
        .map_err(|e| store_err(&e, "scheduling a recurring top-up"))?,
        None => None,
    };
    let schedule = |op: Operation| match next {
        Some(job) => op.enqueue(
            recurring::RECURRING_QUEUE,
            &job.id,
            job.payload,
            Some(job.due_at),
        ),
        None => op,
    };
    let (m, replayed) = submit_action(
        &state,
        &caller,
        &ctx,
        body,
        pending,
        command,
        schedule,
        PICK_MUTATION,
    )
    .await?;
    let v = mutation_answer(&state, &caller, &ctx, action, &m).await?;
    Ok(created(&v, replayed))
}

pub async fn create_topup(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    create_posting(state, caller, ctx, body, Action::Topup).await
}

pub async fn create_adjust(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    create_posting(state, caller, ctx, body, Action::Adjust).await
}

pub async fn create_transfer(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    let action = Action::Transfer;
    let b = &body.value;
    check_references(&ctx, b)?;
    let from = resolve_bucket(&state, &caller, b, "/bucket/id", None).await?;
    let to_id = b.required_text("/receiverBucket/id")?;
    let to = WalletId::parse(&to_id)
        .map_err(|_| TmfError::not_found("bucket_not_found", "receiver bucket"))?;
    let minor = parse_amount(b, "/amount", &from.unit)?;
    let amount = positive("amount", minor)?;
    usage_type(b, &from.unit)?;
    let text = record_text(b)?;
    let id = new_uuid();
    let command = Command::Transfer {
        id: TransferId(id),
        debit_id: MutationId(id),
        credit_id: MutationId(new_uuid()),
        from: from.id.clone(),
        to,
        amount,
        reference: reference(action, b),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    };
    let pending = Pending {
        action,
        id,
        bucket: None,
        text,
    };
    let (t, replayed) = submit_action(
        &state,
        &caller,
        &ctx,
        body,
        pending,
        command,
        |op| op,
        PICK_TRANSFER,
    )
    .await?;
    let v = mutation_answer(&state, &caller, &ctx, action, &t.debit).await?;
    Ok(created(&v, replayed))
}

pub(super) async fn get_posting(
    state: SharedState,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    uri: axum::http::Uri,
    action: Action,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let id = path_uuid(&seg, action)?;
    let m = action_mutation(&state, &caller, action, id).await?;
    let v = mutation_answer(&state, &caller, &ctx, action, &m).await?;
    Ok(json_answer(StatusCode::OK, &params.select(v)))
}

/// `PATCH` of a completed action: its members may change (they are kept beside the
/// ledger), its money may not; a status other than completed is a conflict (a
/// completed move of money is corrected by a new action, never undone).
pub(super) async fn patch_posting(
    state: SharedState,
    caller: Writer,
    ctx: Ctx,
    seg: PathSegment,
    body: Body,
    action: Action,
) -> Answer {
    let id = path_uuid(&seg, action)?;
    let m = action_mutation(&state, &caller, action, id).await?;
    let b = &body.value;
    let mut cancel = false;
    if let Some(status) = b.text("/status")? {
        match ActionStatus::parse(&status) {
            Some(ActionStatus::Completed) => {}
            Some(ActionStatus::Cancelled) if action == Action::Topup => {
                let (client, _) =
                    record_body(&state, &caller, action.record_kind(), &id.to_string()).await?;
                if !is_recurring(&client) {
                    return Err(TmfError::conflict(
                        "action_completed",
                        "only a recurring topupBalance can be cancelled; \
                         correct this one with an adjustBalance instead",
                    ));
                }
                cancel = true;
            }
            Some(_) => {
                return Err(TmfError::conflict(
                    "action_completed",
                    format!(
                        "the {} is completed; correct it with an adjustBalance instead",
                        action.collection()
                    ),
                ));
            }
            None => return Err(TmfError::field("status", "is not an ActionStatusType")),
        }
    }
    if b.at("/amount").is_some() {
        let minor = parse_amount(b, "/amount", &m.unit)?;
        let current = match action {
            Action::Adjust => m.amount,
            _ => m.amount.saturating_abs(),
        };
        if minor != current {
            return Err(TmfError::conflict(
                "action_completed",
                "the amount of a completed action cannot change",
            ));
        }
    }
    if let Some(bucket) = b.text("/bucket/id")?
        && bucket != m.wallet.as_str()
    {
        return Err(TmfError::conflict(
            "action_completed",
            "the bucket of a completed action cannot change",
        ));
    }
    if cancel {
        // The members and the plan's cancellation are one unit. Later periods stop;
        // one already running may still post.
        let key = id.to_string();
        let mut rounds = 0;
        loop {
            let (current, version) =
                record_body(&state, &caller, action.record_kind(), &key).await?;
            let text = record_text(&merge(&current, record_patch(b)))?;
            let op = recurring::cancelling(
                &key,
                Operation::records(&caller).put_record(
                    action.record_kind(),
                    &record_key(&key)?,
                    text,
                    version,
                ),
            );
            match submit_op(&state, op).await? {
                Ok(_) => break,
                Err(Refusal::RecordConflict) if rounds < UPDATE_ROUNDS_MAX => rounds += 1,
                Err(r) => return Err(refusal(&r)),
            }
        }
    } else {
        update_record(&state, &caller, action.record_kind(), &id.to_string(), b).await?;
    }
    let v = mutation_answer(&state, &caller, &ctx, action, &m).await?;
    Ok(json_answer(StatusCode::OK, &v))
}

/// Rounds of compare-and-set before a writer of a record gives up with a conflict.
pub(super) const UPDATE_ROUNDS_MAX: usize = 8;

/// What a PATCH lays over a record: its members but the status (which is the ledger's).
pub(super) fn record_patch(patch: &Value) -> Value {
    let mut patch = patch.clone();
    if let Value::Object(map) = &mut patch {
        map.remove("status");
    }
    patch
}

/// Lays `patch` over the record `key` (merging objects), retrying lost races.
pub(super) async fn update_record(
    state: &SharedState,
    caller: &Principal,
    kind: RecordKind,
    key: &str,
    patch: &Value,
) -> Result<(), TmfError> {
    let patch = record_patch(patch);
    for _ in 0..UPDATE_ROUNDS_MAX {
        let (current, version) = record_body(state, caller, kind, key).await?;
        let next = merge(&current, patch.clone());
        let text = record_text(&next)?;
        if put_record(state, caller, kind, key, &text, version).await? {
            return Ok(());
        }
    }
    Err(TmfError::conflict(
        "conflict",
        "the resource changed meanwhile; try again",
    ))
}

pub(super) async fn delete_posting(
    state: SharedState,
    caller: Writer,
    seg: PathSegment,
    action: Action,
) -> Answer {
    let id = path_uuid(&seg, action)?;
    action_mutation(&state, &caller, action, id).await?;
    Err(TmfError::conflict(
        "action_completed",
        format!(
            "a completed {} cannot be deleted; correct it with an adjustBalance",
            action.collection()
        ),
    ))
}

pub(super) fn kind_filter(kinds: &[MutationKind]) -> Filter {
    Filter::Test(Test {
        path: "kind".into(),
        column: columns::mutation::KIND,
        pred: Pred::In(
            kinds
                .iter()
                .map(|k| prepaid_query::Value::Text(k.as_str().to_owned()))
                .collect(),
        ),
    })
}

/// Lists mutations of `kinds`, rendered as `action` (as history when `None`).
pub(super) async fn list_mutations(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    params: &ListParams,
    kinds: &[MutationKind],
    action: Option<Action>,
) -> Answer {
    let Ok(customer) = list_customer(caller, params) else {
        return Ok(answer(Vec::new(), 0));
    };
    let wallet = match params.only("bucket.id") {
        Some(id) => match WalletId::parse(id) {
            Ok(w) => Some(w),
            Err(_) => return Ok(answer(Vec::new(), 0)),
        },
        None => None,
    };
    let rows = Rows::Mutations {
        customer,
        wallet,
        kinds: kinds.to_vec(),
        action,
    };
    list_with(
        state,
        caller,
        ctx,
        params,
        &["partyAccount.id", "bucket.id"],
        &rows,
    )
    .await
}

pub(super) async fn list_postings(
    state: SharedState,
    caller: Reader,
    ctx: Ctx,
    uri: axum::http::Uri,
    action: Action,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let kinds = [action.mutation_kind()];
    list_mutations(&state, &caller, &ctx, &params, &kinds, Some(action)).await
}

macro_rules! posting_handlers {
    ($action:expr, $get:ident, $patch:ident, $delete:ident, $list:ident) => {
        pub async fn $get(
            State(state): State<SharedState>,
            caller: Reader,
            ctx: Ctx,
            seg: PathSegment,
            OriginalUri(uri): OriginalUri,
        ) -> Answer {
            get_posting(state, caller, ctx, seg, uri, $action).await
        }
        pub async fn $patch(
            State(state): State<SharedState>,
            caller: Writer,
            ctx: Ctx,
            seg: PathSegment,
            body: Body,
        ) -> Answer {
            patch_posting(state, caller, ctx, seg, body, $action).await
        }
        pub async fn $delete(
            State(state): State<SharedState>,
            caller: Writer,
            seg: PathSegment,
        ) -> Answer {
            delete_posting(state, caller, seg, $action).await
        }
        pub async fn $list(
            State(state): State<SharedState>,
            caller: Reader,
            ctx: Ctx,
            OriginalUri(uri): OriginalUri,
        ) -> Answer {
            list_postings(state, caller, ctx, uri, $action).await
        }
    };
}

posting_handlers!(
    Action::Topup,
    get_topup,
    patch_topup,
    delete_topup,
    list_topups
);
posting_handlers!(
    Action::Adjust,
    get_adjust,
    patch_adjust,
    delete_adjust,
    list_adjusts
);
posting_handlers!(
    Action::Transfer,
    get_transfer,
    patch_transfer,
    delete_transfer,
    list_transfers
);
