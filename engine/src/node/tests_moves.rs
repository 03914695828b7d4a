//! Scenario tests of planned moves through the node cores of a small cluster: every core's
//! publications reach the others at the next tick, in order, and each node's supervisor takes
//! a group to the level it is told at once. The witness: at no tick do two nodes hold a
//! group at its start level. The cluster ([`Cluster`]) also serves the tests of standby,
//! freeze and failback (`tests_admin.rs`).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use super::*;
use crate::claim::State;

const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];

/// A node of the cluster: its core, its supervisor's claims, whether its tests fail and
/// whether it runs.
pub(super) struct Box {
    pub name: String,
    pub core: Node,
    pub claims: BTreeMap<String, Claim>,
    pub test_fails: bool,
    /// Its failing tests fail fatally (an agent's OCF 6).
    pub fatal: bool,
    pub alive: bool,
}

/// The cluster, with what each node published at the last tick.
pub(super) struct Cluster {
    pub nodes: Vec<Box>,
    outbox: Vec<Vec<(String, Option<String>)>>,
    pub t: Millis,
    pub events: Vec<(String, Event)>,
    groups: Vec<String>,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster::with(&["web"])
    }

    /// Returns the cluster of the four nodes, every one alive, wanting `groups` started.
    pub fn with(groups: &[&str]) -> Cluster {
        let expected = NODES.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let mut nodes = Vec::new();
        for (i, n) in NODES.iter().enumerate() {
            let cfg = Config {
                startup_wait: 1000,
                ..Config::with_slot(200)
            };
            let rng = ChaCha12Rng::seed_from_u64(i as u64);
            let mut core = Node::new(n, 1, cfg, expected.clone(), rng);
            for p in NODES.iter().filter(|p| *p != n) {
                core.observe(Input::Member {
                    name: p.to_string(),
                    generation: 1,
                    alive: true,
                    keys: Some(BTreeMap::new()),
                });
            }
            let want = groups.iter().map(|g| (g.to_string(), "start".to_string()));
            core.observe(Input::Wanted(want.collect()));
            nodes.push(Box {
                name: n.to_string(),
                core,
                claims: BTreeMap::new(),
                test_fails: false,
                fatal: false,
                alive: true,
            });
        }
        Cluster {
            outbox: vec![Vec::new(); nodes.len()],
            nodes,
            t: 0,
            events: Vec::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// Hands every node `input` (a replicated file's content, as every node adopts it).
    pub fn everyone(&mut self, input: &Input) {
        for b in &mut self.nodes {
            b.core.observe(input.clone());
        }
    }

    /// Kills (`alive` false) or starts node `name`: the others see it so; a dead node
    /// neither steps nor publishes, and its processes are gone.
    pub fn set_alive(&mut self, name: &str, alive: bool) {
        let i = self.index(name);
        self.nodes[i].alive = alive;
        if !alive {
            self.nodes[i].claims.clear();
        }
        for b in self.nodes.iter_mut().filter(|b| b.name != name) {
            b.core.observe(Input::Member {
                name: name.to_string(),
                generation: 1,
                alive,
                keys: None,
            });
        }
    }

    pub fn index(&self, name: &str) -> usize {
        NODES.iter().position(|n| *n == name).unwrap()
    }

    /// One tick: delivers the last tick's publications, steps every core, carries out its
    /// tells; checks the witness.
    pub fn tick(&mut self) {
        let outbox = std::mem::take(&mut self.outbox);
        for (i, b) in self.nodes.iter_mut().enumerate() {
            if !b.alive {
                self.outbox.push(Vec::new());
                continue;
            }
            for (j, changes) in outbox.iter().enumerate().filter(|(j, _)| *j != i) {
                b.core.observe(Input::Keys {
                    name: NODES[j].to_string(),
                    generation: 1,
                    changes: changes.clone(),
                });
            }
            let claims = b.claims.iter().map(|(g, c)| (g.clone(), Some(c.clone())));
            b.core.observe(Input::Claims(claims.collect()));
            let ready = b.core.ready(self.t);
            for (g, level) in &ready.tell {
                if level == STOP {
                    b.claims.remove(g);
                    b.core.observe(Input::Claims(vec![(g.clone(), None)]));
                } else {
                    let state = if level == TEST && b.test_fails && b.fatal {
                        State::Fatal
                    } else if level == TEST && b.test_fails {
                        State::Failed
                    } else {
                        State::Done
                    };
                    b.claims.insert(g.clone(), Claim::settled(level, state));
                }
            }
            let mut publish = ready.publish;
            publish.extend(b.core.flush().publish);
            self.outbox.push(publish);
            (self.events).extend(ready.events.into_iter().map(|e| (b.name.clone(), e)));
        }
        for g in &self.groups {
            let at_start: Vec<&str> = (self.nodes.iter())
                .filter(|b| b.claims.get(g).is_some_and(|c| c.level == "start"))
                .map(|b| b.name.as_str())
                .collect();
            assert!(
                at_start.len() <= 1,
                "{g} runs on {at_start:?} at {}",
                self.t
            );
        }
        self.t += 50;
    }

    /// Ticks until `done` holds (at most `ms`); returns the time it took.
    pub fn until(&mut self, ms: Millis, done: impl Fn(&Cluster) -> bool) -> Millis {
        let from = self.t;
        while !done(self) {
            assert!(self.t < from + ms, "not done within {ms} ms");
            self.tick();
        }
        self.t - from
    }

    /// Returns the nodes running web at its start level.
    fn running(&self) -> Vec<&str> {
        self.running_of("web")
    }

    /// Returns the nodes running `group` at its start level.
    pub fn running_of(&self, group: &str) -> Vec<&str> {
        (self.nodes.iter())
            .filter(|b| {
                (b.claims.get(group)).is_some_and(|c| c.level == "start" && c.state == State::Done)
            })
            .map(|b| b.name.as_str())
            .collect()
    }

    /// Tells whether any node still publishes a move request or a hand-off.
    pub fn moves_left(&self) -> bool {
        self.nodes.iter().any(|b| {
            let m = &b.core.view().members[&b.name];
            !m.moves.is_empty() || !m.handoffs.is_empty()
        })
    }
}

/// An operator on n3 moves web from where it runs to another node: it stops there, starts
/// on the target without a plan window (well under one), and no key of the move remains.
#[test]
fn a_move_hands_the_group_to_the_target_and_leaves_nothing_behind() {
    let mut c = Cluster::new();
    c.until(5000, |c| c.running().len() == 1);
    let from = c.running()[0].to_string();
    let to = NODES.iter().find(|n| **n != from && **n != "n3").unwrap();
    let plan_window = c.nodes[0].core.engine().config().plan_window;
    let i = c.index("n3");
    c.nodes[i].core.observe(Input::Move {
        group: "web".into(),
        to: to.to_string(),
        from: from.clone(),
    });
    let took = c.until(3000, |c| c.running() == [*to]);
    assert!(took < plan_window, "moved in {took} ms");
    c.until(1000, |c| !c.moves_left());
    assert!(c.events.iter().any(|(n, e)| *n == from
        && matches!(e, Event::HandingOff { group, to: t, .. } if group == "web" && t == to)));
    assert!(
        !c.events
            .iter()
            .any(|(_, e)| matches!(e, Event::MoveAbandoned { .. } | Event::Yielding { .. })),
        "{:?}",
        c.events
    );
    // And it stays there.
    for _ in 0..40 {
        c.tick();
    }
    assert_eq!(c.running(), [*to]);
}

/// A move to a node whose test fails: the target gets a cooldown, the group is placed as
/// usual (here, back on a node that can run it), and the hand-off goes.
#[test]
fn a_move_to_a_node_whose_test_fails_comes_back() {
    let mut c = Cluster::new();
    c.until(5000, |c| c.running().len() == 1);
    let from = c.running()[0].to_string();
    let to = NODES.iter().find(|n| **n != from).unwrap();
    let t = c.index(to);
    c.nodes[t].test_fails = true;
    let f = c.index(&from);
    c.nodes[f].core.observe(Input::Move {
        group: "web".into(),
        to: to.to_string(),
        from: from.clone(),
    });
    c.until(10_000, |c| {
        let r = c.running();
        let cooled = c.nodes[t].core.engine().cooldowns().contains_key("web");
        cooled && r.len() == 1 && r[0] != *to && !c.moves_left()
    });
    assert!(c
        .events
        .iter()
        .any(|(n, e)| n == to && matches!(e, Event::TestFailed { group, .. } if group == "web")));
}

/// A request whose holder never acts (the named holder does not hold the group) is dropped
/// with an event, and the group stays where it runs.
#[test]
fn a_request_naming_the_wrong_holder_is_abandoned() {
    let mut c = Cluster::new();
    c.until(5000, |c| c.running().len() == 1);
    let from = c.running()[0].to_string();
    let other = NODES.iter().find(|n| **n != from).unwrap();
    let i = c.index(other);
    c.nodes[i].core.observe(Input::Move {
        group: "web".into(),
        to: from.clone(),
        from: other.to_string(),
    });
    c.until(2000, |c| {
        c.events
            .iter()
            .any(|(_, e)| matches!(e, Event::MoveAbandoned { .. }))
    });
    c.until(1000, |c| !c.moves_left());
    assert_eq!(c.running(), [from.as_str()]);
}
