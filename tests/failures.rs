//! Failures an operator can see and clear (issue 11, items 5 and 6), on five real `mosha
//! run` daemons: a restart policy that runs out relocates the group and leaves a cooldown
//! that every node's status explains (cause, first stderr line, time left); a test that
//! fails everywhere leaves the group down with a status that says why, and `mosha cleanup`
//! places it again once the cause is fixed. The witness lock each service takes shows no
//! moment with two copies.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, Timer};
use common::verbs::{mosha, start, text, SETTLE};
use common::witness::{lock_held, server, srv};

/// The server of `web`, which exits at once with a line on stderr while
/// `SHARED/crash-<node>` exists.
fn crashing_server() -> String {
    format!(
        "web:{}:start:respawn:test -e {{SHARED}}/crash-$MOSHA_NODE && {{ echo \"boom on $MOSHA_NODE\" >&2; exit 1; }}; \
         flock -n {{SHARED}}/web.lock -c 'exec sleep 100000' || echo \"web $MOSHA_NODE\" >> {{SHARED}}/collisions\n",
        srv("web")
    )
}

/// Kills the process group of `web`'s server on node `x`.
fn kill_server(c: &Cluster, x: usize) {
    let cl = c.clstat(x).expect("clstat");
    let pid = cl["groups"]["web"]["entries"][srv("web")]["pid"]
        .as_u64()
        .expect("web's server runs") as u32;
    let host = c.host_pid(x, pid).expect("its host pid");
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(host as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// `max_restarts=2`: the server on its node starts crashing; after two restarts the third
/// exit fails the group there, it runs on another node, and every node's status shows the
/// cooldown with its cause, the first line of the entry's stderr and the time left.
#[test]
fn restarts_past_the_limit_relocate_and_status_says_why() {
    let _t = Timer::start("restarts_past_the_limit_relocate_and_status_says_why");
    let c = start(
        5,
        crashing_server(),
        "web start max_restarts=2 restart_window=60 cooldown=5m\n".to_string(),
    );
    let all: Vec<usize> = c.indices().collect();
    let x = c.wait_placed(&all, &["web"], "start")["web"];
    let xn = c.node_name(x);
    std::fs::write(c.shared().join(format!("crash-{xn}")), "").unwrap();
    kill_server(&c, x);
    c.wait_for("web runs on another node", SETTLE, |c| {
        c.placement(&all, &["web"], "start")
            .is_some_and(|p| p["web"] != x)
    });
    c.wait_for("web's lock is held again", SETTLE, |c| lock_held(c, "web"));
    c.wait_for("every node shows the cooldown and its cause", SETTLE, |c| {
        all.iter().all(|&i| {
            c.status(i).is_some_and(|h| {
                (h.groups["web"].failures.get(&xn))
                    .is_some_and(|f| f.cooldown_until_ms.is_some() && f.cause.contains("boom on"))
            })
        })
    });
    let h = c.status(1).unwrap();
    let f = &h.groups["web"].failures[&xn];
    assert!(
        f.cause.starts_with(&format!(
            "respawn {}: exit status 1; restarted 2 time(s) within 60 s",
            srv("web")
        )),
        "{f:?}"
    );
    let left = f.cooldown_until_ms.unwrap().saturating_sub(h.written_at_ms);
    assert!(
        (240_000..=300_000).contains(&left),
        "cooldown=5m: {left} ms left"
    );
    let shown = text(&mosha(c.dir(2), &["status"]));
    assert!(
        shown.contains(&format!("web on {xn}: in cooldown, 4 min left"))
            || shown.contains(&format!("web on {xn}: in cooldown, 5 min left")),
        "{shown}"
    );
    assert!(shown.contains(&format!("boom on {xn}")), "{shown}");
    c.assert_no_collisions();
}

/// A test that fails on every node: the group runs nowhere, and status says why (every node
/// in cooldown, with the test's exit status and stderr). Fixing the cause changes nothing
/// by itself (the cooldowns hold); `mosha cleanup web --wait` places it again and clears
/// every cooldown.
#[test]
fn cleanup_after_a_fixed_test_places_the_group_again() {
    let _t = Timer::start("cleanup_after_a_fixed_test_places_the_group_again");
    let cltab =
        "web:web-t:test:test:test ! -e {SHARED}/broken || { echo 'config broken' >&2; exit 3; }\n"
            .to_string()
            + &server("web");
    let c = start(5, cltab, String::new());
    let all: Vec<usize> = c.indices().collect();
    std::fs::write(c.shared().join("broken"), "").unwrap();
    c.write_file(1, "hactl", "web start\n");
    c.wait_for("every node is in cooldown for web", SETTLE, |c| {
        c.status(3)
            .is_some_and(|h| h.groups["web"].cooldown_on.len() == 5)
    });
    let h = c.status(3).unwrap();
    let why = h.groups["web"].why.clone().unwrap_or_default();
    assert!(
        why.starts_with("wanted start; every node that may run it is in cooldown: "),
        "{why}"
    );
    assert!(
        why.contains("test web-t: exit status 3: config broken"),
        "{why}"
    );
    assert!(
        why.contains("10 min left") || why.contains("9 min left"),
        "{why}"
    );
    let shown = text(&mosha(c.dir(3), &["status"]));
    assert!(shown.contains("web: wanted start; every node"), "{shown}");

    std::fs::remove_file(c.shared().join("broken")).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(!lock_held(&c, "web"), "the cooldowns hold until cleared");
    let o = mosha(c.dir(2), &["cleanup", "web", "--wait"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}\n{}", c.report());
    assert!(
        out.contains("clearing the failures of web on every node"),
        "{out}"
    );
    assert!(out.contains("web runs on"), "{out}");
    assert!(lock_held(&c, "web"));
    c.wait_for("no node is in cooldown any more", SETTLE, |c| {
        all.iter().all(|&i| {
            c.status(i).is_some_and(|h| {
                h.groups["web"].cooldown_on.is_empty() && h.groups["web"].why.is_none()
            })
        })
    });
    // Requests that make no sense are refused with the reason.
    for (args, why) in [
        (vec!["cleanup", "nosuch"], "no group \"nosuch\" in cltab"),
        (vec!["cleanup", "web", "n9"], "no node \"n9\" is known"),
        (vec!["cleanup", "we/b"], "invalid character"),
    ] {
        let o = mosha(c.dir(1), &args);
        let out = text(&o);
        assert!(!o.status.success(), "{out}");
        assert!(out.contains(why), "{args:?}: {out}");
    }
    c.assert_no_collisions();
}
