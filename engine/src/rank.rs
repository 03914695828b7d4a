//! Deterministic ranking of nodes for a group (rendezvous hashing, after the group's
//! [`Placement`] options) and the priority that settles a conflict between two claims. Every
//! node computes the same numbers from the same names, so no message is needed to agree on
//! who goes first.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use crate::Millis;

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

/// A group's placement options (hactl's `prefer=` and `only=`): which nodes may run it, and
/// which come first. The default, no option, ranks every node by weight alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// The preferred nodes, best first: a node listed ranks before the nodes listed after it
    /// and before every node not listed (those rank among themselves by weight).
    pub prefer: Vec<String>,
    /// The only nodes that may run the group (`None`: any node). A node left out is never a
    /// candidate for it and ranks before nobody.
    pub only: Option<BTreeSet<String>>,
    /// Failback (hactl's `failback=`): a node that runs the group moves it to a node of
    /// `prefer` listed before it once that one has been alive this long (`None`: never, the
    /// default; a running group stays where it is).
    pub failback: Option<Millis>,
    /// How long a node where the group failed (a test, or its restarts used up) is no
    /// candidate for it (hactl's `cooldown=`; `None`: [`crate::Config::test_cooldown`]).
    pub cooldown: Option<Millis>,
    /// The nodes in standby (the admin file's `standby`): they run no group, like nodes
    /// `only` leaves out. Filled in by the node core from the admin state, not by hactl.
    pub standby: BTreeSet<String>,
}

impl Placement {
    /// Tells whether `node` may run the group.
    pub fn allows(&self, node: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(node)) && !self.standby.contains(node)
    }

    /// Returns where `node` stands in the preference list: its index, or the list's length
    /// for a node not listed.
    pub fn preference(&self, node: &str) -> usize {
        (self.prefer.iter().position(|n| n == node)).unwrap_or(self.prefer.len())
    }
}

/// Returns the key that orders a node for a group, lowest first: its `preference` (see
/// [`Placement::preference`]; 0 without options), then the highest `weight`, then its name.
/// The one rule of [`order_placed`] and of the ranks the engine keeps between steps.
pub fn key(preference: usize, weight: u64, node: &str) -> (usize, Reverse<u64>, &str) {
    (preference, Reverse(weight), node)
}

/// Returns `nodes` ordered best first for `group` (highest weight; names break ties).
pub fn order<'a>(group: &str, nodes: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    order_placed(group, None, nodes)
}

/// Returns the nodes of `nodes` that `placement` allows, ordered best first for `group`:
/// preferred ones in their order, then the highest weight; names break ties. Without
/// options, [`order`].
pub fn order_placed<'a>(
    group: &str,
    placement: Option<&Placement>,
    nodes: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    let w = Weigher::new(group);
    let preference = |n: &str| placement.map_or(0, |p| p.preference(n));
    let mut v: Vec<&str> = (nodes.into_iter())
        .filter(|n| placement.is_none_or(|p| p.allows(n)))
        .collect();
    v.sort_by_key(|n| key(preference(n), w.weight(n), n));
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

    fn placement(prefer: &[&str], only: Option<&[&str]>) -> Placement {
        Placement {
            prefer: prefer.iter().map(|n| n.to_string()).collect(),
            only: only.map(|o| o.iter().map(|n| n.to_string()).collect()),
            ..Placement::default()
        }
    }

    #[test]
    fn preferred_nodes_come_first_in_their_order_then_the_rest_by_weight() {
        let nodes = ["n1", "n2", "n3", "n4", "n5"];
        let plain = order("web", nodes);
        let p = placement(&["n3", "n1"], None);
        let placed = order_placed("web", Some(&p), nodes);
        assert_eq!(placed[..2], ["n3", "n1"]);
        let rest: Vec<&str> = plain
            .iter()
            .copied()
            .filter(|n| !["n3", "n1"].contains(n))
            .collect();
        assert_eq!(placed[2..], rest[..]);
        // Without options, and with empty ones, the order is rendezvous hashing's.
        assert_eq!(order_placed("web", None, nodes), plain);
        assert_eq!(
            order_placed("web", Some(&Placement::default()), nodes),
            plain
        );
    }

    #[test]
    fn only_leaves_the_other_nodes_out() {
        let nodes = ["n1", "n2", "n3", "n4", "n5"];
        let p = placement(&["n3"], Some(&["n2", "n3"]));
        assert_eq!(order_placed("web", Some(&p), nodes), ["n3", "n2"]);
        let p = placement(&[], Some(&["n2", "n3", "n9"]));
        let both = order("web", ["n2", "n3"]);
        assert_eq!(order_placed("web", Some(&p), nodes), both);
        assert!(p.allows("n9") && !p.allows("n1"));
        assert_eq!(
            (
                p.preference("n2"),
                placement(&["a", "b"], None).preference("b")
            ),
            (0, 1)
        );
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
