//! Scenario tests of the node core: gossip key-values in, one `Ready` out. Among them the two
//! log lines a newcomer saw at every start and every clean stop, which came from glue that
//! was not simulated: "quorum lost" at a normal start, and "one-way link" (no news) for a
//! node that said goodbye.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use super::*;
use crate::claim::State;
use crate::fencing::Policy;

fn cfg() -> Config {
    Config {
        startup_wait: 1000,
        ..Config::with_slot(200)
    }
}

fn node(me: &str, expected: &[&str]) -> Node {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    Node::new(me, 1, cfg(), expected, ChaCha12Rng::seed_from_u64(3))
}

fn member(name: &str, generation: u64, keys: &[(&str, &str)]) -> Input {
    Input::Member {
        name: name.to_string(),
        generation,
        alive: true,
        keys: Some(
            keys.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    }
}

fn keys(name: &str, changes: &[(&str, Option<&str>)]) -> Input {
    Input::Keys {
        name: name.to_string(),
        generation: 1,
        changes: changes
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect(),
    }
}

fn want(groups: &[(&str, &str)]) -> Input {
    Input::Wanted(
        groups
            .iter()
            .map(|(g, l)| (g.to_string(), l.to_string()))
            .collect(),
    )
}

/// Runs `n` with every peer beating, every 50 ms from `from` to `to`; returns every event.
fn run(n: &mut Node, peers: &[&str], from: Millis, to: Millis) -> Vec<Event> {
    let mut events = Vec::new();
    let mut t = from;
    while t <= to {
        for p in peers {
            n.observe(keys(p, &[(keys::BEAT, Some(&t.to_string()))]));
        }
        events.extend(n.ready(t).events);
        t += 50;
    }
    events
}

fn is_quorum_lost(e: &Event) -> bool {
    matches!(e, Event::QuorumLost { .. })
}

#[test]
fn a_normal_start_waits_for_quorum_and_never_says_it_was_lost() {
    let mut n = node("a", &["a", "b", "c"]);
    n.observe(want(&[("web", "start")]));
    // Alone for a while, as every start begins, then the peers are heard.
    let mut events = run(&mut n, &[], 0, 1000);
    n.observe(member("b", 1, &[(keys::BEAT, "1")]));
    n.observe(member("c", 1, &[(keys::BEAT, "1")]));
    events.extend(run(&mut n, &["b", "c"], 1050, 3000));
    assert!(!events.iter().any(is_quorum_lost), "{events:?}");
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::QuorumWaiting { .. })));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::QuorumReached { .. })));
    assert!(n.engine().quorate());
}

#[test]
fn a_peer_that_said_goodbye_is_no_one_way_link_and_no_loss() {
    let mut n = node("a", &["a", "b", "c"]);
    n.observe(member("b", 1, &[(keys::BEAT, "1")]));
    n.observe(member("c", 1, &[(keys::BEAT, "1")]));
    run(&mut n, &["b", "c"], 0, 2000);
    // b stops cleanly: it says bye, its beats stop, then the detector drops it.
    n.observe(keys("b", &[(keys::BYE, Some("1"))]));
    let mut events = run(&mut n, &["c"], 2050, 4000);
    n.observe(Input::Member {
        name: "b".into(),
        generation: 1,
        alive: false,
        keys: None,
    });
    events.extend(run(&mut n, &["c"], 4050, 5000));
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::NoNews { .. } | Event::NodeLost { .. } | Event::QuorumLost { .. }
        )),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e, Event::NodeLeft { .. })));
}

#[test]
fn a_peer_whose_news_stops_while_alive_is_a_one_way_link() {
    let mut n = node("a", &["a", "b", "c"]);
    n.observe(member("b", 1, &[(keys::BEAT, "1")]));
    n.observe(member("c", 1, &[(keys::BEAT, "1")]));
    run(&mut n, &["b", "c"], 0, 2000);
    // b's heartbeats still come (alive), but no new beat: none of our gossip gets to it.
    let events = run(&mut n, &["c"], 2050, 4000);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::NoNews { node, .. } if node == "b")));
}

#[test]
fn a_gap_in_the_loop_is_a_freeze_and_the_silence_is_forgiven() {
    let mut n = node("a", &["a", "b", "c"]);
    n.observe(member("b", 1, &[(keys::BEAT, "1")]));
    n.observe(member("c", 1, &[(keys::BEAT, "1")]));
    run(&mut n, &["b", "c"], 0, 2000);
    // Five seconds without a step (SIGSTOP); peers' beats did not arrive meanwhile.
    let r = n.ready(7000);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, Event::Frozen { ms: 5000 })));
    assert!(!r.events.iter().any(|e| matches!(e, Event::NoNews { .. })));
    // A driver that skips idle ticks says it was awake: no freeze.
    n.observe(Input::Awake { now: 9950 });
    let r = n.ready(10_000);
    assert!(!r.events.iter().any(|e| matches!(e, Event::Frozen { .. })));
}

#[test]
fn a_long_loop_turn_at_the_fast_beat_is_no_freeze() {
    // Found by the groups bench: with the 100 ms beat of small clusters, a freeze limit of
    // half the news timeout (0.19 s) took 0.2-0.4 s turns of 2,000 groups for freezes, each
    // holding every group for a second (and logging a warning).
    let c = Config {
        startup_wait: 1000,
        ..Config::with_timing(175, crate::FAST_BEAT)
    };
    assert_eq!(c.beat, crate::FAST_BEAT);
    let expected: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let mut n = Node::new("a", 1, c, expected, ChaCha12Rng::seed_from_u64(3));
    n.observe(member("b", 1, &[(keys::BEAT, "1")]));
    n.observe(member("c", 1, &[(keys::BEAT, "1")]));
    run(&mut n, &["b", "c"], 0, 2000);
    let r = n.ready(2300);
    assert!(!r.events.iter().any(|e| matches!(e, Event::Frozen { .. })));
    // A real freeze still is one.
    let r = n.ready(3300);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, Event::Frozen { ms: 1000 })));
}

#[test]
fn the_expected_membership_is_offered_until_it_is_durable() {
    let mut n = node("a", &["a"]);
    n.ready(0);
    n.observe(member("b", 1, &[(keys::BEAT, "1")]));
    let r = n.ready(50);
    let want: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    assert_eq!(r.persist.as_ref(), Some(&want));
    n.advance(Durable::Members, Err("disk full".into()));
    let r = n.ready(100);
    assert_eq!(r.persist.as_ref(), Some(&want), "offered again");
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, Event::MembersNotSaved { error } if error == "disk full")));
    n.advance(Durable::Members, Err("disk full".into()));
    let r = n.ready(150);
    assert!(r.events.is_empty(), "said once: {:?}", r.events);
    n.advance(Durable::Members, Ok(()));
    assert_eq!(n.ready(200).persist, None);
}

#[test]
fn claims_are_published_when_they_change_and_only_while_they_hold() {
    let mut n = node("a", &["a"]);
    let c = |level: &str, state| Claim {
        level: level.into(),
        target: level.into(),
        state,
    };
    n.observe(Input::Claims(vec![(
        "web".into(),
        Some(c("start", State::Done)),
    )]));
    let r = n.flush();
    assert_eq!(
        r.publish,
        vec![(keys::claim("web"), Some("start start DONE".into()))]
    );
    assert!(matches!(&r.events[..], [Event::GroupStarted { group, .. }] if group == "web"));
    assert!(n.flush().is_empty(), "nothing changed");
    n.observe(Input::Claims(vec![(
        "web".into(),
        Some(c(STOP, State::Done)),
    )]));
    let r = n.flush();
    assert_eq!(r.publish, vec![(keys::claim("web"), None)]);
    assert!(matches!(&r.events[..], [Event::GroupStopped { .. }]));
}

#[test]
fn a_peer_view_is_decoded_from_its_keys_and_a_new_generation_starts_blank() {
    let mut n = node("a", &["a"]);
    let r = crate::Record {
        generation: 4,
        outcome: Outcome::Acked,
        by: "b".into(),
        detail: "d".into(),
    };
    n.observe(member(
        "b",
        1,
        &[
            (keys::BEAT, "9"),
            ("g/web", "start start DONE"),
            ("c/db", "test"),
            ("f/cltab/v", "ignored"),
            ("f/cltab/0", "a chunk"),
        ],
    ));
    assert!(n.observe(keys("b", &[("x/z", Some(&r.encode()))])));
    let b = &n.view().members["b"];
    assert!(b.alive && !b.blank && b.claims["web"].holds() && b.cooldown.contains("db"));
    assert_eq!(n.view().records["z"], r);
    assert_eq!(
        n.observed().keys_of("b").unwrap().1.len(),
        5,
        "version keys, no chunks"
    );
    // A state change alone decides nothing; a new beat neither.
    assert!(!n.observe(keys("b", &[("g/web", Some("start start FAILED"))])));
    assert!(!n.observe(keys("b", &[(keys::BEAT, Some("10"))])));
    // A restart: what the old generation published is gone, records included.
    n.observe(Input::Member {
        name: "b".into(),
        generation: 2,
        alive: true,
        keys: None,
    });
    let b = &n.view().members["b"];
    assert!(b.blank && b.claims.is_empty() && b.cooldown.is_empty());
    assert!(n.view().records.is_empty());
    // Keys for the old generation are ignored.
    assert!(!n.observe(keys("b", &[("g/web", Some("start start DONE"))])));
    n.observe(Input::Gone { name: "b".into() });
    assert!(!n.view().members.contains_key("b"));
}

#[test]
fn fencing_policies_follow_members_and_the_default() {
    let mut n = node("a", &["a"]);
    let p = Policy::Configured { timeout: 5000 };
    n.observe(Input::Fencing(Fencing {
        default: Some(p),
        nodes: BTreeMap::from([("c".to_string(), Policy::Disabled)]),
    }));
    n.observe(member("b", 1, &[]));
    n.observe(member("c", 1, &[]));
    let policy = &n.view().policy;
    assert_eq!(policy["a"], p);
    assert_eq!(policy["b"], p);
    assert_eq!(policy["c"], Policy::Disabled);
}

#[test]
fn a_fence_result_is_recorded_at_the_next_step_and_published() {
    let mut n = node("a", &["a"]);
    n.ready(0);
    n.observe(Input::FenceDone {
        node: "b".into(),
        generation: 3,
        ok: true,
        detail: "agent ok".into(),
    });
    let r = n.ready(50);
    let rec = r
        .publish
        .iter()
        .find(|(k, _)| k == &keys::record("b"))
        .and_then(|(_, v)| v.as_deref())
        .and_then(crate::Record::decode)
        .expect("record published");
    assert_eq!((rec.generation, rec.outcome), (3, Outcome::Fenced));
    // This node's own publication is part of its own picture.
    assert_eq!(n.view().records["b"], rec);
}

#[test]
fn a_peer_known_from_heartbeats_only_does_not_count_for_quorum() {
    let mut n = node("a", &["a", "b", "c"]);
    n.observe(member("b", 1, &[(keys::BEAT, "1")]));
    n.observe(member("c", 1, &[(keys::BEAT, "1")]));
    run(&mut n, &["b", "c"], 0, 2000);
    assert!(n.engine().quorate());
    // Our gossip no longer gets out: c's beats stop; b restarts, and only its heartbeats
    // reach us (a new generation without any state).
    run(&mut n, &[], 2050, 3000);
    n.observe(Input::Member {
        name: "b".into(),
        generation: 2,
        alive: true,
        keys: None,
    });
    let events = run(&mut n, &[], 3050, 3500);
    assert!(!n.engine().quorate(), "{events:?}");
}

fn load(file: &str, text: Option<&str>) -> Input {
    Input::FileLoaded {
        file: file.to_string(),
        text: text.map(str::to_string),
        recorded: None,
        mtime_ms: 1,
    }
}

/// A file edited on one node reaches another through gossip keys alone: the second core
/// offers to adopt it, is told it was written, publishes it in turn, and wants it made
/// durable; an older announcement is never offered, a refused one not twice.
#[test]
fn a_file_edit_spreads_through_the_cores_and_only_forward() {
    let mut a = node("a", &["a", "b"]);
    let mut b = node("b", &["a", "b"]);
    for n in [&mut a, &mut b] {
        n.observe(load("hactl", Some("web stop\n")));
    }
    a.observe(Input::FileEdited {
        file: "hactl".into(),
        text: "web start\n".into(),
        wall_ms: 5000,
    });
    let ra = a.ready(0);
    assert!(ra
        .events
        .iter()
        .any(|e| matches!(e, Event::FileChanged { file, from: None, .. } if file == "hactl")));
    let published: BTreeMap<String, String> = (ra.publish.iter())
        .filter(|(k, _)| k.starts_with("f/hactl/"))
        .map(|(k, v)| (k.clone(), v.clone().unwrap()))
        .collect();
    assert_eq!(published.len(), 2, "one chunk and the version key");
    assert!(ra.versions.is_some());
    a.advance(Durable::Versions, Ok(()));
    assert!(a.ready(50).versions.is_none(), "durable now");

    b.observe(member("a", 1, &[]));
    let changes: Vec<(&str, Option<&str>)> = (published.iter())
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect();
    assert!(b.observe(keys("a", &changes)), "a new version matters");
    let rb = b.ready(0);
    let (version, _) = a.file("hactl").unwrap();
    assert_eq!(rb.adopt.len(), 1);
    assert_eq!(&rb.adopt[0].version, version);
    assert_eq!(rb.adopt[0].from, ["a"]);
    // The driver read, validated and wrote it.
    let (text, _) = crate::replica::read_published("hactl", &published)
        .map(|p| (p.content.unwrap(), p.version))
        .unwrap();
    b.observe(Input::FileAdopted {
        file: "hactl".into(),
        version: version.clone(),
        text,
        from: "a".into(),
    });
    let rb = b.ready(50);
    assert!(rb.adopt.is_empty(), "nothing newer");
    assert!(
        rb.publish.iter().any(|(k, _)| k == "f/hactl/v"),
        "b publishes it too"
    );
    assert!(rb.versions.is_some());
    assert_eq!(b.file("hactl"), a.file("hactl"));
    // b's next edit outranks a's although b's wall clock is behind.
    b.observe(Input::FileEdited {
        file: "hactl".into(),
        text: "web 2\n".into(),
        wall_ms: 10,
    });
    assert!(b.file("hactl").unwrap().0 > a.file("hactl").unwrap().0);

    // A version that fails validation here is not offered again.
    let bad = crate::replica::Version {
        ms: u64::MAX / 2,
        seq: 0,
        node: "a".into(),
    };
    let line = crate::replica::publish_keys("hactl", &bad, "junk").unwrap();
    let v = &line.last().unwrap().1;
    b.observe(keys("a", &[("f/hactl/v", Some(v))]));
    assert_eq!(b.ready(100).adopt.len(), 1);
    b.observe(Input::FileRefused {
        file: "hactl".into(),
        version: bad,
    });
    assert!(b.ready(150).adopt.is_empty());
}

#[test]
fn placement_options_reach_the_engine_and_a_node_left_out_plans_nothing() {
    let mut n = node("a", &["a"]);
    n.observe(want(&[("web", "start")]));
    let only_b = Placement {
        prefer: Vec::new(),
        only: Some(["b".to_string()].into()),
        ..Placement::default()
    };
    let options = BTreeMap::from([("web".to_string(), only_b)]);
    assert!(n.observe(Input::Placement(options.clone())));
    assert!(!n.observe(Input::Placement(options.clone())), "no change");
    assert_eq!(n.view().placement, options);
    let planned = |r: &Ready| r.tell.iter().any(|(g, l)| g == "web" && l == PLAN);
    for t in (0..=3000).step_by(50) {
        assert!(!planned(&n.ready(t)), "a is not among web's nodes");
    }
    // The options are withdrawn: a is the only candidate and plans at once.
    assert!(n.observe(Input::Placement(BTreeMap::new())));
    assert!((3050..=3300).step_by(50).any(|t| planned(&n.ready(t))));
}
