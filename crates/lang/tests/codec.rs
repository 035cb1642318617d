//! The binary form of profile states (`ProfileState::encode` / `decode`): every state reads
//! back as written, and no bytes, however corrupt, make decoding panic.

mod strategies;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use strategies::state;
use tributary_lang::{Activity, FieldState, MergeOp, ProfileState};

/// A windowed field: buckets of ordinary states, around now and far back.
fn window() -> impl Strategy<Value = FieldState> {
    (
        prop::sample::select(vec![MergeOp::Count, MergeOp::Sum, MergeOp::Set]),
        prop::sample::select(vec![3600i64, 86_400]),
        1u32..400,
        prop::collection::btree_map(-5i64..500_000, state(), 0..4),
    )
        .prop_map(|(op, bucket_seconds, span, buckets)| FieldState::Window {
            op,
            bucket_seconds,
            span,
            buckets,
        })
}

fn activity() -> impl Strategy<Value = Option<Activity>> {
    let time = (-1_000_000_000i64..4_000_000_000, 0u32..1_000_000_000)
        .prop_map(|(s, n)| DateTime::<Utc>::from_timestamp(s, n).unwrap());
    prop::option::of(
        (
            time.clone(),
            time,
            prop::collection::btree_map(-20_000i64..50_000, any::<u32>(), 0..6),
        )
            .prop_map(|(first, last, days)| Activity { first, last, days }),
    )
}

fn profile() -> impl Strategy<Value = ProfileState> {
    let field = prop_oneof![3 => state(), 1 => window()];
    (
        prop::collection::btree_map(any::<String>(), field, 0..6),
        activity(),
    )
        .prop_map(|(fields, activity)| ProfileState { fields, activity })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_state_reads_back_as_written(state in profile()) {
        prop_assert_eq!(ProfileState::decode(&state.to_bytes()), Ok(state));
    }

    /// Stored bytes damaged in one place: an error or some state, never a panic.
    #[test]
    fn damaged_bytes_never_panic(state in profile(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = state.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = ProfileState::decode(&bytes);
        let _ = ProfileState::decode(&bytes[..i]);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = ProfileState::decode(&bytes);
        if let Some(first) = bytes.first_mut() {
            *first = tributary_lang::codec::VERSION_1;
        }
        let _ = ProfileState::decode(&bytes);
    }
}
