//! Reservations: holds, settled by PATCH and DELETE.

use super::*;

pub(super) fn hold_status(h: &Hold) -> ActionStatus {
    match h.status {
        HoldStatus::Pending => ActionStatus::Created,
        HoldStatus::Committed => ActionStatus::Completed,
        HoldStatus::Released | HoldStatus::Expired => ActionStatus::Cancelled,
    }
}

pub(super) fn render_hold(
    ctx: &Ctx,
    h: &Hold,
    unit: &Unit,
    customer_name: &str,
    client: &Value,
) -> Value {
    let id = h.id.to_string();
    let usage = client
        .text("/usageType")
        .ok()
        .flatten()
        .unwrap_or_else(|| units::usage_type(unit.code()).to_owned());
    let mut ours = json!({
        "id": id,
        "href": ctx.href("reserveBalance", &id),
        "@type": "ReserveBalance",
        "status": action_status(ctx, hold_status(h)),
        "amount": quantity(ctx, h.amount, unit),
        "bucket": bucket_ref(ctx, h.wallet.as_str()),
        "partyAccount": party_ref(ctx, h.customer.as_str(), customer_name),
        "usageType": usage,
        "requestedDate": when(h.created_at),
    });
    if let Some(t) = h.settled_at {
        ours["confirmationDate"] = when(t);
    }
    if let Some(t) = h.expires_at {
        ours["validFor"] = json!({"startDateTime": when(h.created_at), "endDateTime": when(t)});
    }
    if let Some(c) = h.committed_amount {
        // prepaid's own member: how much of the reservation was spent.
        ours["committedAmount"] = quantity(ctx, c, unit);
    }
    if h.status == HoldStatus::Expired {
        ours["reason"] = json!("expired");
    }
    if ctx.is_brm() {
        ours["@baseType"] = json!("ReserveBalance");
        brm_nulls(
            &mut ours,
            &[
                "@schemaLocation",
                "channel",
                "confirmationDate",
                "description",
                "logicalResource",
                "product",
                "reason",
                "relatedParty",
                "requestor",
                "validFor",
            ],
        );
    }
    finish(ctx, merge(client, ours))
}

pub(super) async fn visible_hold(
    state: &SharedState,
    caller: &Principal,
    id: uuid::Uuid,
) -> Result<Hold, TmfError> {
    state
        .store
        .hold(&caller.tenant, HoldId(id))
        .await
        .map_err(|e| store_err(&e, "reading a reservation"))?
        .filter(|h| caller.sees(&h.customer))
        .ok_or_else(|| Action::Reserve.not_found())
}

pub(super) async fn hold_answer(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    h: &Hold,
) -> Result<Value, TmfError> {
    let (client, _) = record_body(
        state,
        caller,
        Action::Reserve.record_kind(),
        &h.id.to_string(),
    )
    .await?;
    let wallet = state
        .store
        .wallet(&caller.tenant, &h.wallet)
        .await
        .map_err(|e| store_err(&e, "reading a reservation's bucket"))?
        .ok_or_else(|| {
            tracing::error!(hold = %h.id, "a hold's wallet is missing");
            TmfError::internal()
        })?;
    let name = customer_name(state, caller, &h.customer).await;
    Ok(render_hold(ctx, h, &wallet.unit, &name, &client))
}

pub async fn create_reserve(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    body: Body,
) -> Answer {
    let action = Action::Reserve;
    let b = &body.value;
    check_references(&ctx, b)?;
    let wallet = resolve_bucket(&state, &caller, b, "/bucket/id", Some("/partyAccount/id")).await?;
    let minor = parse_amount(b, "/amount", &wallet.unit)?;
    let amount = positive("amount", minor)?;
    usage_type(b, &wallet.unit)?;
    let expires_at = time_at(b, "/validFor/endDateTime")?;
    if let Some(t) = expires_at
        && t <= state.clock.now()
    {
        return Err(TmfError::field(
            "validFor.endDateTime",
            "must be in the future",
        ));
    }
    let text = record_text(b)?;
    let id = new_uuid();
    let command = Command::PlaceHold {
        id: HoldId(id),
        wallet: wallet.id.clone(),
        amount,
        reference: reference(action, b),
        expires_at,
        metadata: prepaid_ledger::Metadata::default(),
    };
    let pending = Pending {
        action,
        id,
        bucket: Some(&wallet.id),
        text,
    };
    let (hold, replayed) = submit_action(
        &state,
        &caller,
        &ctx,
        body,
        pending,
        command,
        |op| op,
        PICK_HOLD,
    )
    .await?;
    let v = hold_answer(&state, &caller, &ctx, &hold).await?;
    Ok(created(&v, replayed))
}

pub async fn get_reserve(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    seg: PathSegment,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let id = path_uuid(&seg, Action::Reserve)?;
    let h = visible_hold(&state, &caller, id).await?;
    let v = hold_answer(&state, &caller, &ctx, &h).await?;
    Ok(json_answer(StatusCode::OK, &params.select(v)))
}

/// Settles a pending reservation: `Completed` commits it (all of it, or `amount`, the
/// rest released), `Cancelled` releases it. One unit with its `Cancel` event and, when
/// given, the reservation's record as `(value, version read)`; a record changed
/// meanwhile refuses it with [`Refusal::RecordConflict`].
#[allow(clippy::too_many_arguments)]
pub(super) async fn settle(
    state: &SharedState,
    caller: &Principal,
    ctx: &Ctx,
    h: &Hold,
    to: ActionStatus,
    commit_amount: Option<Amount>,
    idempotency: Option<(IdempotencyKey, Fingerprint)>,
    record: Option<(String, Option<i64>)>,
) -> Result<Result<Hold, Refusal>, TmfError> {
    let command = match to {
        ActionStatus::Completed => Command::CommitHold {
            hold: h.id,
            amount: commit_amount,
            mutation_id: MutationId(new_uuid()),
            reference: None,
        },
        _ => Command::ReleaseHold {
            hold: h.id,
            mutation_id: MutationId(new_uuid()),
        },
    };
    let mut op = Operation::new(caller, command).idempotency(idempotency);
    if let Some((value, version)) = record {
        op = op.put_record(
            Action::Reserve.record_kind(),
            &RecordKey::from_uuid(h.id.0),
            value,
            version,
        );
    }
    if to == ActionStatus::Cancelled {
        let id = h.id.to_string();
        op = with_event(state, caller, ctx, op, Action::Reserve, "Cancel", &id).await?;
    }
    match submit_op(state, op).await? {
        Ok((Done::Hold { hold, .. }, _)) => Ok(Ok(hold)),
        Ok(_) => Err(unexpected("hold")),
        Err(r) => Ok(Err(r)),
    }
}

/// `PATCH /reserveBalance/{id}`: `status` completed commits the reservation (an
/// `amount` less than reserved commits that much and releases the rest), cancelled
/// releases it; other members are kept.
pub async fn patch_reserve(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    seg: PathSegment,
    body: Body,
) -> Answer {
    let id = path_uuid(&seg, Action::Reserve)?;
    let h = visible_hold(&state, &caller, id).await?;
    let b = &body.value;
    let to = match b.text("/status")? {
        None => None,
        Some(s) => Some(
            ActionStatus::parse(&s)
                .ok_or_else(|| TmfError::field("status", "is not an ActionStatusType"))?,
        ),
    };
    let current = hold_status(&h);
    let mut commit_amount = None;
    if b.at("/amount").is_some() {
        let wallet = visible_wallet(&state, &caller, h.wallet.as_str()).await?;
        let minor = parse_amount(b, "/amount", &wallet.unit)?;
        if minor != h.amount {
            if to != Some(ActionStatus::Completed) {
                return Err(TmfError::conflict(
                    "conflict",
                    "the amount of a reservation changes only as it is completed",
                ));
            }
            commit_amount = Some(positive("amount", minor)?);
        }
    }
    let hold = match to {
        Some(to) if to == current && h.status != HoldStatus::Expired => h,
        Some(ActionStatus::Failed) | Some(ActionStatus::Created) => {
            return Err(TmfError::conflict(
                "not_pending",
                format!(
                    "the reservation is {}; it can only be completed or cancelled",
                    h.status.as_str()
                ),
            ));
        }
        Some(to) => {
            // The settlement and the members the client sent go in one unit; a record
            // changed meanwhile sends it round again with the newer record.
            let key = h.id.to_string();
            let mut rounds = 0;
            loop {
                let (current, version) =
                    record_body(&state, &caller, Action::Reserve.record_kind(), &key).await?;
                let text = record_text(&merge(&current, record_patch(b)))?;
                let settled = settle(
                    &state,
                    &caller,
                    &ctx,
                    &h,
                    to,
                    commit_amount,
                    body.idempotency.clone(),
                    Some((text, version)),
                )
                .await?;
                match settled {
                    Ok(hold) => break hold,
                    Err(Refusal::RecordConflict) if rounds < UPDATE_ROUNDS_MAX => rounds += 1,
                    Err(r) => return Err(refusal(&r)),
                }
            }
        }
        None => {
            update_record(
                &state,
                &caller,
                Action::Reserve.record_kind(),
                &h.id.to_string(),
                b,
            )
            .await?;
            h
        }
    };
    let v = hold_answer(&state, &caller, &ctx, &hold).await?;
    Ok(json_answer(StatusCode::OK, &v))
}

/// `DELETE /reserveBalance/{id}` releases a pending reservation.
pub async fn delete_reserve(
    State(state): State<SharedState>,
    caller: Writer,
    ctx: Ctx,
    seg: PathSegment,
) -> Answer {
    let id = path_uuid(&seg, Action::Reserve)?;
    let h = visible_hold(&state, &caller, id).await?;
    settle(
        &state,
        &caller,
        &ctx,
        &h,
        ActionStatus::Cancelled,
        None,
        None,
        None,
    )
    .await?
    .map_err(|r| refusal(&r))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reservations made through this API (their records), oldest first.
pub async fn list_reserves(
    State(state): State<SharedState>,
    caller: Reader,
    ctx: Ctx,
    OriginalUri(uri): OriginalUri,
) -> Answer {
    let params = ListParams::parse(&uri)?;
    let mut all = Vec::new();
    let mut after: Option<RecordKey> = None;
    loop {
        let records = state
            .store
            .records(
                &caller.tenant,
                Action::Reserve.record_kind(),
                after.as_ref(),
                PAGE_SIZE_MAX,
            )
            .await
            .map_err(|e| store_err(&e, "listing reservations"))?;
        let n = records.len();
        for r in &records {
            let Ok(id) = uuid::Uuid::try_parse(r.key.as_str()) else {
                continue;
            };
            let Some(h) = state
                .store
                .hold(&caller.tenant, HoldId(id))
                .await
                .map_err(|e| store_err(&e, "reading a reservation"))?
                .filter(|h| caller.sees(&h.customer))
            else {
                continue;
            };
            let v = hold_answer(&state, &caller, &ctx, &h).await?;
            if params.matches(&v) {
                all.push(v);
            }
        }
        after = records.last().map(|r| r.key.clone());
        if n < PAGE_SIZE_MAX {
            break;
        }
        if all.len() > SCAN_MAX {
            return Err(TmfError::query(format!(
                "more than {SCAN_MAX} reservations match; narrow the list with partyAccount.id or bucket.id"
            )));
        }
    }
    Ok(params.answer_page(all))
}
