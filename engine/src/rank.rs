//! Deterministic ranking of nodes for a group (rendezvous hashing) and the priority that
//! settles a conflict between two claims. Every node computes the same numbers from the same
//! names, so no message is needed to agree on who goes first.

/// Returns the rendezvous weight of `node` for `group`: a 64-bit hash of both names. The node
/// with the highest weight among the candidates is ranked first.
pub fn weight(group: &str, node: &str) -> u64 {
    Weigher::new(group).weight(node)
}

/// The rendezvous weights of many nodes for one group: the group's half of the hash is
/// computed once, as ranking a group among a thousand nodes would otherwise hash its name a
/// thousand times. Gives exactly [`weight`]'s numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weigher(u64);

impl Weigher {
    /// Returns the weigher of `group`.
    pub fn new(group: &str) -> Weigher {
        // FNV-1a over "group\0node", then the splitmix64 finalizer to spread the bits; FNV
        // goes byte by byte, so the state after "group\0" can be kept.
        Weigher(fnv(0xcbf2_9ce4_8422_2325, group.bytes().chain([0u8])))
    }

    /// Returns the weight of `node` for the group.
    pub fn weight(self, node: &str) -> u64 {
        let mut h = fnv(self.0, node.bytes());
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}

/// Returns the FNV-1a state `h` carried on over `bytes`.
fn fnv(mut h: u64, bytes: impl Iterator<Item = u8>) -> u64 {
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Returns `nodes` ordered best first for `group` (highest weight; names break ties).
pub fn order<'a>(group: &str, nodes: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let w = Weigher::new(group);
    let mut v: Vec<&str> = nodes.into_iter().collect();
    v.sort_by(|a, b| w.weight(b).cmp(&w.weight(a)).then(a.cmp(b)));
    v
}

/// Returns the priority of `node`'s claim on `group` at lifecycle `phase`: a later phase wins,
/// then the higher weight. Priorities of distinct nodes never tie.
pub fn priority(group: &str, node: &str, phase: u8) -> (u8, u64, String) {
    (phase, weight(group, node), node.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: u64 = 1_230_184_066_536_452_340;

    #[test]
    fn weights_are_stable_across_builds_and_platforms() {
        // Pinned values: a change here would move groups around after an upgrade.
        assert_ne!(weight("web", "n1"), weight("web", "n2"));
        assert_ne!(weight("web", "n1"), weight("n1", "web"));
        assert_eq!(weight("web", "n1"), PINNED);
    }

    #[test]
    fn groups_spread_over_nodes() {
        let nodes = ["n1", "n2", "n3", "n4", "n5"];
        let mut firsts = std::collections::BTreeMap::new();
        for g in 0..1000 {
            let group = format!("g{g}");
            *firsts.entry(order(&group, nodes)[0]).or_insert(0) += 1;
        }
        for n in nodes {
            let c = firsts.get(n).copied().unwrap_or(0);
            assert!((120..=280).contains(&c), "{n} first for {c} of 1000 groups");
        }
    }

    #[test]
    fn removing_a_node_keeps_the_order_of_the_others() {
        let all = order("db", ["a", "b", "c", "d", "e"]);
        let without: Vec<&str> = all.iter().copied().filter(|n| *n != all[0]).collect();
        assert_eq!(order("db", without.clone()), without);
    }

    #[test]
    fn a_later_phase_beats_a_higher_weight() {
        let (hi, lo) = {
            let o = order("g", ["x", "y"]);
            (o[0], o[1])
        };
        assert!(priority("g", hi, 0) > priority("g", lo, 0));
        assert!(priority("g", lo, 1) > priority("g", hi, 0));
    }
}
