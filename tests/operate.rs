//! Operator verbs on a real cluster (issue 11): `mosha move` on five `mosha run` daemons,
//! checked through what an operator sees (the command's answer and exit status, every node's
//! hastat) and the witness lock each service takes (`tests/common/witness.rs`): no moment
//! with two copies.

mod common;

use common::cluster::{Cluster, Timer};
use common::verbs::{mosha, start, text, SETTLE};
use common::witness::{cltab_of, hactl_of, lock_held, server};

/// Tells whether some node's hastat still shows a move of `group`.
fn moving(c: &Cluster, group: &str) -> bool {
    c.indices().any(|i| {
        c.status(i)
            .is_none_or(|h| h.groups.get(group).is_some_and(|g| g.moving.is_some()))
    })
}

/// A move to a named node, asked on a third node: the group stops where it ran and starts on
/// the target (the other group stays put), the command says how long it took, and nothing of
/// the move remains. Then a move without a node goes to another node, and moves that make
/// no sense are refused with the reason.
#[test]
fn move_hands_a_group_to_the_named_node_and_leaves_nothing_behind() {
    let _t = Timer::start("move_hands_a_group_to_the_named_node_and_leaves_nothing_behind");
    let groups = ["web", "db"];
    let c = start(5, cltab_of(&groups), hactl_of(&groups, "start"));
    let all: Vec<usize> = c.indices().collect();
    let placed = c.wait_placed(&all, &groups, "start");
    let (from, db) = (placed["web"], placed["db"]);
    let to = all.iter().copied().find(|&i| i != from).unwrap();
    let asker = all.iter().copied().find(|&i| i != from && i != to).unwrap();
    let o = mosha(c.dir(asker), &["move", "web", &c.node_name(to), "--wait"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let said = format!(
        "web moved from {} to {} in",
        c.node_name(from),
        c.node_name(to)
    );
    assert!(out.contains(&said), "{out}");
    let now = c.wait_placed(&all, &groups, "start");
    assert_eq!((now["web"], now["db"]), (to, db), "{}", c.report());
    assert!(lock_held(&c, "web"));
    c.wait_for("no node shows the move any more", SETTLE, |c| {
        !moving(c, "web")
    });

    // Without a node: the best-ranked other node.
    let o = mosha(c.dir(to), &["move", "web", "--wait"]);
    assert!(o.status.success(), "{}", text(&o));
    let now = c.wait_placed(&all, &groups, "start");
    assert_ne!(now["web"], to, "{}", c.report());
    assert_eq!(now["db"], db);

    // Refused, with the reason, and nothing changes.
    let here = c.node_name(now["web"]);
    for (args, why) in [
        (
            vec!["move", "web", here.as_str()],
            format!("web already runs on {here}"),
        ),
        (
            vec!["move", "nosuch"],
            "no group \"nosuch\" in cltab".to_string(),
        ),
        (
            vec!["move", "web", "n9"],
            "no node \"n9\" is known".to_string(),
        ),
    ] {
        let o = mosha(c.dir(1), &args);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(out.contains(&why), "{args:?}: {out}");
    }
    assert_eq!(c.wait_placed(&all, &groups, "start"), now);
    c.assert_no_collisions();
}

/// A move to a node whose test fails there: the command says so and exits 1, the target is in
/// cooldown for the group (status shows it), and the group runs on another node.
#[test]
fn a_move_to_a_node_whose_test_fails_comes_back() {
    let _t = Timer::start("a_move_to_a_node_whose_test_fails_comes_back");
    let cltab =
        "web:web-t:test:test:test ! -e {SHARED}/fail-$MOSHA_NODE\n".to_string() + &server("web");
    let c = start(5, cltab, hactl_of(&["web"], "start"));
    let all: Vec<usize> = c.indices().collect();
    let from = c.wait_placed(&all, &["web"], "start")["web"];
    let to = all.iter().copied().find(|&i| i != from).unwrap();
    let bad = c.shared().join(format!("fail-{}", c.node_name(to)));
    std::fs::write(&bad, "").unwrap();
    let o = mosha(c.dir(from), &["move", "web", &c.node_name(to), "--wait"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("its test failed there"), "{out}");
    let now = c.wait_placed(&all, &["web"], "start")["web"];
    assert_ne!(now, to);
    let h = c.status(from).unwrap();
    assert!(
        h.groups["web"].cooldown_on.contains(&c.node_name(to)),
        "{:?}",
        h.groups["web"]
    );
    let shown = mosha(c.dir(from), &["status"]);
    assert!(
        text(&shown).contains(&format!("web on {}: in cooldown", c.node_name(to))),
        "{}",
        text(&shown)
    );
    c.wait_for("no node shows the move any more", SETTLE, |c| {
        !moving(c, "web")
    });
    c.assert_no_collisions();
}
