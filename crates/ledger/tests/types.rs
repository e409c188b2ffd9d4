//! The core's parsed types at and just past their limits: text ids, amounts, units,
//! floors, free text and timestamps, plus the stable names of statuses, kinds and
//! refusals that stores and dialects persist or send.

use prepaid_ledger::{
    AMOUNT_MAX, Amount, AmountError, ApiKeyName, CustomerId, Floor, HoldStatus, ID_LEN_MAX,
    IDEMPOTENCY_KEY_LEN_MAX, IdError, IdempotencyKey, MutationKind, NAME_LEN_MAX, Refusal,
    SystemAccount, TenantId, TextError, Timestamp, Unit, UnitError, WalletId, WalletStatus,
    bounded_text,
};
use std::collections::HashSet;
use uuid::Uuid;

/// Runs one parser over the cases every client-chosen id shares, with `max` its limit.
fn check_text_id<T: std::fmt::Debug>(
    what: &str,
    max: usize,
    parse: impl Fn(&str) -> Result<T, IdError>,
    as_str: impl Fn(&T) -> String,
) {
    let at_limit = "a".repeat(max);
    let over = "a".repeat(max + 1);
    let ok: &[&str] = &[
        "a",
        &at_limit,
        "0.0.0.1+-balance_group+6336883+840+0",
        "~!\"$&'()*+,-.:;<=>@[]^_`{|}",
    ];
    for s in ok {
        let id = parse(s).unwrap_or_else(|e| panic!("{what} {s:?}: {e}"));
        assert_eq!(as_str(&id), *s, "{what} keeps the text as given");
    }
    let bad: &[(&str, IdError)] = &[
        ("", IdError::Empty),
        (&over, IdError::TooLong { len: max + 1, max }),
        ("a/b", IdError::BadChar { ch: '/', at: 1 }),
        ("a?", IdError::BadChar { ch: '?', at: 1 }),
        ("#a", IdError::BadChar { ch: '#', at: 0 }),
        ("a%20", IdError::BadChar { ch: '%', at: 1 }),
        ("a\\b", IdError::BadChar { ch: '\\', at: 1 }),
        ("a b", IdError::BadChar { ch: ' ', at: 1 }),
        ("ab\t", IdError::BadChar { ch: '\t', at: 2 }),
        (
            "a\u{7f}",
            IdError::BadChar {
                ch: '\u{7f}',
                at: 1,
            },
        ),
        (
            "caf\u{e9}",
            IdError::BadChar {
                ch: '\u{e9}',
                at: 3,
            },
        ),
        ("a\0", IdError::BadChar { ch: '\0', at: 1 }),
    ];
    for (s, want) in bad {
        assert_eq!(parse(s).err().as_ref(), Some(want), "{what} {s:?}");
    }
    // The limit counts bytes, not characters.
    let wide = "\u{e9}".repeat(max / 2 + 1);
    assert!(
        matches!(parse(&wide), Err(IdError::TooLong { .. })),
        "{what}: {} bytes of multi-byte text",
        wide.len()
    );
}

#[test]
fn text_ids_at_and_past_their_limits() {
    check_text_id("tenant", ID_LEN_MAX, TenantId::parse, |i| {
        i.as_str().to_owned()
    });
    check_text_id("customer", ID_LEN_MAX, CustomerId::parse, |i| {
        i.as_str().to_owned()
    });
    check_text_id("wallet", ID_LEN_MAX, WalletId::parse, |i| {
        i.as_str().to_owned()
    });
    check_text_id("api key name", ID_LEN_MAX, ApiKeyName::parse, |i| {
        i.as_str().to_owned()
    });
    check_text_id(
        "idempotency key",
        IDEMPOTENCY_KEY_LEN_MAX,
        IdempotencyKey::parse,
        |i| i.as_str().to_owned(),
    );
}

#[test]
fn text_ids_display_as_given_and_uuid_ids_round_trip() {
    assert_eq!(WalletId::parse("w-1").unwrap().to_string(), "w-1");
    let u = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    assert_eq!(WalletId::from_uuid(u).as_str(), u.to_string());
    assert_eq!(CustomerId::from_uuid(u).as_str(), u.to_string());
    // A UUID is itself a valid client id, so a generated id parses back.
    assert_eq!(
        WalletId::parse(&u.to_string()).unwrap(),
        WalletId::from_uuid(u)
    );
    assert_eq!(
        CustomerId::parse(&u.to_string()).unwrap(),
        CustomerId::from_uuid(u)
    );
}

#[test]
fn amounts_at_and_past_their_limits() {
    type Ctor = fn(i64) -> Result<Amount, AmountError>;
    let ctors: [(&str, Ctor); 3] = [
        ("new", Amount::new),
        ("positive", Amount::positive),
        ("nonzero", Amount::nonzero),
    ];
    // (value, new, positive, nonzero)
    use AmountError::{NotPositive, TooLarge, Zero};
    #[allow(clippy::type_complexity)]
    let cases: &[(
        i64,
        Result<(), AmountError>,
        Result<(), AmountError>,
        Result<(), AmountError>,
    )] = &[
        (0, Ok(()), Err(NotPositive), Err(Zero)),
        (1, Ok(()), Ok(()), Ok(())),
        (-1, Ok(()), Err(NotPositive), Ok(())),
        (AMOUNT_MAX, Ok(()), Ok(()), Ok(())),
        (-AMOUNT_MAX, Ok(()), Err(NotPositive), Ok(())),
        (AMOUNT_MAX + 1, Err(TooLarge), Err(TooLarge), Err(TooLarge)),
        (-AMOUNT_MAX - 1, Err(TooLarge), Err(TooLarge), Err(TooLarge)),
        (i64::MAX, Err(TooLarge), Err(TooLarge), Err(TooLarge)),
        (i64::MIN, Err(TooLarge), Err(TooLarge), Err(TooLarge)),
    ];
    for &(value, ref new, ref positive, ref nonzero) in cases {
        for ((name, ctor), want) in ctors.iter().zip([new, positive, nonzero]) {
            let got = ctor(value);
            assert_eq!(got.map(|_| ()), *want, "Amount::{name}({value})");
            if let Ok(a) = got {
                assert_eq!(a.get(), value, "Amount::{name}({value}) keeps its value");
                assert_eq!(a.to_string(), value.to_string());
            }
        }
    }
    assert_eq!(Amount::ZERO.get(), 0);
}

#[test]
fn units_at_and_past_their_limits() {
    let sixteen = "A".repeat(16);
    let seventeen = "A".repeat(17);
    let cases: &[(&str, u8, Result<(), UnitError>)] = &[
        ("EUR", 2, Ok(())),
        ("MIN", 0, Ok(())),
        ("CREDIT", 4, Ok(())),
        ("a-b_C9", 0, Ok(())),
        (&sixteen, 0, Ok(())),
        ("EUR", 18, Ok(())),
        ("", 0, Err(UnitError::BadCode)),
        (&seventeen, 0, Err(UnitError::BadCode)),
        ("E R", 0, Err(UnitError::BadCode)),
        ("EUR.", 0, Err(UnitError::BadCode)),
        ("EUR/2", 0, Err(UnitError::BadCode)),
        ("\u{20ac}", 0, Err(UnitError::BadCode)),
        ("EUR", 19, Err(UnitError::BadScale)),
        ("EUR", u8::MAX, Err(UnitError::BadScale)),
        ("", 19, Err(UnitError::BadCode)),
    ];
    for &(code, scale, ref want) in cases {
        let got = Unit::new(code, scale);
        assert_eq!(&got.clone().map(|_| ()), want, "{code:?}/{scale}");
        if let Ok(u) = got {
            assert_eq!((u.code(), u.scale()), (code, scale));
            assert_eq!(u.to_string(), format!("{code}/{scale}"));
        }
    }
    // Units are equal only when both code and scale are.
    assert_ne!(Unit::new("EUR", 2).unwrap(), Unit::new("EUR", 0).unwrap());
    assert_ne!(Unit::new("EUR", 2).unwrap(), Unit::new("eur", 2).unwrap());
}

#[test]
fn floors_are_zero_or_negative_within_the_amount_bound() {
    let cases: &[(i64, Option<Floor>)] = &[
        (0, Some(Floor::ZERO)),
        (-1, Some(Floor::Limit(-1))),
        (-AMOUNT_MAX, Some(Floor::Limit(-AMOUNT_MAX))),
        (-AMOUNT_MAX - 1, None),
        (1, None),
        (i64::MIN, None),
        (i64::MAX, None),
    ];
    for &(limit, want) in cases {
        assert_eq!(Floor::limit(limit), want, "Floor::limit({limit})");
    }
}

#[test]
fn bounded_text_counts_bytes_and_refuses_control_characters() {
    let at = "n".repeat(NAME_LEN_MAX);
    let over = "n".repeat(NAME_LEN_MAX + 1);
    // 127 two-byte characters and one byte: exactly the limit in bytes.
    let wide_at = format!("{}n", "\u{e9}".repeat(NAME_LEN_MAX / 2));
    let wide_over = "\u{e9}".repeat(NAME_LEN_MAX / 2 + 1);
    let cases: &[(&str, Result<(), TextError>)] = &[
        ("", Ok(())),
        ("Prepaid bundle \u{2014} 10 GB", Ok(())),
        (&at, Ok(())),
        (&wide_at, Ok(())),
        (
            &over,
            Err(TextError::TooLong {
                len: NAME_LEN_MAX + 1,
                max: NAME_LEN_MAX,
            }),
        ),
        (
            &wide_over,
            Err(TextError::TooLong {
                len: wide_over.len(),
                max: NAME_LEN_MAX,
            }),
        ),
        ("a\nb", Err(TextError::Control)),
        ("a\tb", Err(TextError::Control)),
        ("a\u{7f}", Err(TextError::Control)),
        ("a\u{85}", Err(TextError::Control)),
        ("\0", Err(TextError::Control)),
    ];
    for (s, want) in cases {
        let got = bounded_text(s, NAME_LEN_MAX);
        assert_eq!(&got.clone().map(|_| ()), want, "{s:?}");
        if let Ok(t) = got {
            assert_eq!(t, *s);
        }
    }
}

#[test]
fn timestamps_saturate_instead_of_wrapping() {
    assert_eq!(Timestamp::from_secs(2).as_micros(), 2_000_000);
    assert_eq!(Timestamp::from_secs(-2).as_micros(), -2_000_000);
    assert_eq!(Timestamp::from_secs(i64::MAX).as_micros(), i64::MAX);
    assert_eq!(Timestamp::from_secs(i64::MIN).as_micros(), i64::MIN);
    assert_eq!(Timestamp::from_micros(5).plus_micros(7).as_micros(), 12);
    assert_eq!(Timestamp::from_micros(5).plus_micros(-7).as_micros(), -2);
    assert_eq!(
        Timestamp::from_micros(i64::MAX - 1)
            .plus_micros(5)
            .as_micros(),
        i64::MAX
    );
    assert_eq!(
        Timestamp::from_micros(i64::MIN + 1)
            .plus_micros(-5)
            .as_micros(),
        i64::MIN
    );
    assert!(Timestamp::from_micros(1) < Timestamp::from_micros(2));
}

#[test]
fn stored_names_round_trip() {
    for s in [
        WalletStatus::Active,
        WalletStatus::Suspended,
        WalletStatus::Expired,
    ] {
        assert_eq!(WalletStatus::parse(s.as_str()), Some(s));
    }
    for s in [
        HoldStatus::Pending,
        HoldStatus::Committed,
        HoldStatus::Released,
        HoldStatus::Expired,
    ] {
        assert_eq!(HoldStatus::parse(s.as_str()), Some(s));
    }
    for k in MutationKind::ALL {
        assert_eq!(MutationKind::parse(k.as_str()), Some(k));
    }
    for a in SystemAccount::ALL {
        assert_eq!(SystemAccount::parse(a.as_str()), Some(a));
    }
    for junk in ["", "Active", "ACTIVE", " active", "pending ", "topup"] {
        assert_eq!(WalletStatus::parse(junk), None, "{junk:?}");
        assert_eq!(HoldStatus::parse(junk), None, "{junk:?}");
        assert_eq!(MutationKind::parse(junk), None, "{junk:?}");
        assert_eq!(SystemAccount::parse(junk), None, "{junk:?}");
    }
    let names: HashSet<_> = MutationKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names.len(), MutationKind::ALL.len());
}

#[test]
fn every_posted_kind_has_its_counter_account() {
    let cases: &[(MutationKind, Option<SystemAccount>)] = &[
        (MutationKind::TopUp, Some(SystemAccount::World)),
        (MutationKind::Debit, Some(SystemAccount::Revenue)),
        (MutationKind::HoldCommit, Some(SystemAccount::Revenue)),
        (MutationKind::HoldRelease, Some(SystemAccount::Revenue)),
        (MutationKind::Adjustment, Some(SystemAccount::Adjustment)),
        (MutationKind::Expiry, Some(SystemAccount::Expiry)),
        (MutationKind::TransferOut, None),
        (MutationKind::TransferIn, None),
        (MutationKind::Reversal, None),
    ];
    assert_eq!(cases.len(), MutationKind::ALL.len());
    for &(kind, want) in cases {
        assert_eq!(kind.counter_account(), want, "{kind:?}");
    }
}

#[test]
fn refusal_codes_are_distinct_and_match_the_api_document() {
    let all = [
        (
            Refusal::InsufficientFunds {
                available: 1,
                requested: 2,
            },
            "insufficient_funds",
        ),
        (Refusal::BalanceOverflow, "balance_overflow"),
        (Refusal::TenantNotFound, "tenant_not_found"),
        (Refusal::CustomerNotFound, "customer_not_found"),
        (Refusal::WalletNotFound, "wallet_not_found"),
        (Refusal::HoldNotFound, "hold_not_found"),
        (Refusal::TenantExists, "tenant_exists"),
        (Refusal::ApiKeyExists, "api_key_exists"),
        (Refusal::CustomerExists, "customer_exists"),
        (Refusal::WalletExists, "wallet_exists"),
        (Refusal::MutationExists, "mutation_exists"),
        (Refusal::HoldExists, "hold_exists"),
        (
            Refusal::WalletNotActive {
                status: WalletStatus::Suspended,
            },
            "wallet_not_active",
        ),
        (Refusal::OutsideValidity, "outside_validity"),
        (Refusal::UnitMismatch, "unit_mismatch"),
        (Refusal::SameWallet, "same_wallet"),
        (
            Refusal::HoldNotPending {
                status: HoldStatus::Released,
            },
            "hold_not_pending",
        ),
        (Refusal::HoldExpired, "hold_expired"),
        (
            Refusal::CommitExceedsHold {
                held: 1,
                requested: 2,
            },
            "commit_exceeds_hold",
        ),
        (Refusal::IdempotencyConflict, "idempotency_conflict"),
        (Refusal::Forbidden, "forbidden"),
        (Refusal::Internal, "internal"),
        (Refusal::DrawsExceeded { draws_max: 1 }, "draws_exceeded"),
        (Refusal::GrantsExceeded { grants_max: 1 }, "grants_exceeded"),
        (Refusal::MutationNotFound, "mutation_not_found"),
        (Refusal::NotReversible, "not_reversible"),
        (
            Refusal::MetadataExceeded {
                pairs: 33,
                pairs_max: 32,
            },
            "metadata_exceeded",
        ),
        (
            Refusal::ReversalExceedsRemaining { reversible: 1 },
            "reversal_exceeds_remaining",
        ),
    ];
    let mut seen = HashSet::new();
    for (refusal, code) in &all {
        assert_eq!(refusal.code(), *code);
        assert!(seen.insert(*code), "{code} is used twice");
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
    }
}
