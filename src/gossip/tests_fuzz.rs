//! Property tests of the receive path: random and mutated datagrams fed to the opener and to
//! the wire check never panic, never open unless untouched, and leave the opener's memory
//! bounded.

use proptest::prelude::*;

use super::seal::{aad_prefix, Keyring, Keys, Opened, Opener, Sealer};
use super::wire;

const NOW: u64 = 1_800_000_000;

fn ring() -> Keyring {
    Keyring::new(&Keys::new(vec![[7u8; 32], [8u8; 32]]).unwrap())
}

/// A genuine chitchat SYN, ACK or SYN-ACK shape to mutate.
fn genuine(kind: u8, names: &[String]) -> Vec<u8> {
    let nodes: Vec<(&str, u64, u64)> = names.iter().map(|n| (n.as_str(), 5, 9)).collect();
    let mut syn = wire::tests::syn("mosha", &nodes);
    if kind == 1 {
        // Turn the SYN into an ACK with an uncompressed delta of one key per name.
        syn.truncate(2);
        syn.extend_from_slice(&[0, 2, 2]);
        let mut ops = Vec::new();
        for n in names {
            ops.push(1);
            wire::tests::put_str(&mut ops, n);
            wire::tests::put_str(&mut ops, "value");
            ops.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        syn.extend_from_slice(&(ops.len() as u16).to_le_bytes());
        syn.extend_from_slice(&ops);
        syn.push(0);
    }
    syn
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_open_nor_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut o = Opener::new(30);
        prop_assert!(o.open(&ring(), &aad_prefix("mosha"), NOW, &bytes).is_err());
        let _ = wire::check(&bytes);
    }

    #[test]
    fn a_mutated_sealed_datagram_never_opens(
        payload in proptest::collection::vec(any::<u8>(), 0..600),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in any::<bool>(),
    ) {
        let r = ring();
        let aad = aad_prefix("mosha");
        let mut d = Sealer::new().unwrap().seal(&r, &aad, NOW, &payload).unwrap().remove(0);
        let mut o = Opener::new(30);
        let original = d.clone();
        for (at, x) in &flips {
            let i = at % d.len();
            d[i] ^= x;
        }
        if cut {
            d.truncate(d.len() / 2);
        }
        prop_assert!(o.open(&r, &aad, NOW, &d).is_err());
        // The untouched datagram still opens once (a refused one left no trace).
        prop_assert_eq!(
            o.open(&r, &aad, NOW, &original),
            Ok(Opened::Payload(payload, r.primary()))
        );
    }

    #[test]
    fn mutated_chitchat_shapes_never_panic_the_check(
        kind in 0u8..2,
        names in proptest::collection::vec("[a-z]{1,12}", 0..20),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let mut d = genuine(kind, &names);
        prop_assert!(wire::check(&d).is_ok(), "the genuine shape passes");
        for (at, x) in &flips {
            let i = at % d.len();
            d[i] = *x;
        }
        d.truncate(cut % (d.len() + 1));
        let _ = wire::check(&d);
    }
}

#[test]
fn the_opener_stays_bounded_under_a_flood_of_halves() {
    let r = ring();
    let aad = aad_prefix("mosha");
    let mut o = Opener::new(0);
    let big = vec![1u8; super::seal::MAX_DATAGRAM];
    // More first halves than it keeps (sessions are capped likewise, see seal's tests).
    for _ in 0..100 {
        let mut s = Sealer::new().unwrap();
        let halves = s.seal(&r, &aad, NOW, &big).unwrap();
        // Only first halves: every one waits for a second that never comes.
        assert_eq!(o.open(&r, &aad, NOW, &halves[0]), Ok(Opened::Half));
    }
    assert!(o.bounded(), "sessions and halves stay within their caps");
}
