//! The binary form of profile states (`ProfileState::encode` / `decode`): every state reads
//! back as written, and no bytes, however corrupt, make decoding panic.

mod strategies;

use proptest::prelude::*;
use strategies::state;
use tributary_lang::ProfileState;

fn profile() -> impl Strategy<Value = ProfileState> {
    prop::collection::btree_map(any::<String>(), state(), 0..6)
        .prop_map(|fields| ProfileState { fields })
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
