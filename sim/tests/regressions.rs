//! One test per engine bug the simulator found, pinned to the seed that showed it, with a
//! doc comment saying what it guards. Every bug is fixed in the engine (the simulator must
//! not work around engine bugs). Replay any of them with a readable trace with the command in
//! its doc comment.

use sim::faults::Profile;
use sim::node::Kind;
use sim::run::run_one;

fn assert_clean(seed: u64, profile: &str) {
    assert_clean_at(5, 120_000, seed, profile);
}

fn assert_clean_at(nodes: usize, duration: u64, seed: u64, profile: &str) {
    let p = Profile::named(profile).unwrap();
    let o = run_one(nodes, 10, duration, seed, &p, Kind::Ours, false);
    let v: Vec<&String> = o.stats.violations.iter().map(|(_, l)| l).collect();
    assert!(
        v.is_empty(),
        "seed {seed} ({profile}, {nodes} nodes): {v:#?}"
    );
}

/// Bug 1 — quorum from one-way liveness. Under one-way (swizzle) clogging, nodes that nobody
/// hears still hear a majority (heartbeats arrive in peers' digests), so each counts itself
/// quorate and keeps planning; several such nodes place the same group: (a) and (b)
/// violations. Fixed: a member counts for quorum only while news from it (its beat key)
/// arrives, which needs our own gossip to get out. Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --seeds 6..7 --faults default --only-ours --trace`
#[test]
fn bug1_a_node_nobody_hears_is_not_quorate() {
    assert_clean(6, "default");
    // The case the sweep showed first: a clogged node fenced a peer and took the groups of
    // the nodes that had lost quorum.
    assert_clean_at(5, 60_000, 997, "default");
}

/// Bug 2 — a daemon that starts while a member is silent never counts that member as lost
/// (lost nodes come only from alive→dead transitions it saw), so it recovers the silent
/// member's groups without fencing it; the member was hung and its processes still run.
/// Replay: `cargo run -p sim --release -- --nodes 5 --groups 10 --seeds 18..19 --faults symmetric --only-ours --trace`
#[test]
fn bug2_a_restarted_node_fences_silent_holders_before_recovery() {
    assert_clean(18, "symmetric");
    // Re-pinned when the simulator's nodes came to replicate hactl through the core and
    // bugs 10 and 11 were fixed (trajectories changed): this seed fails with the fix
    // reverted, and passes with it.
    assert_clean(4, "symmetric");
}

/// Bug 3 — the plan window (2 slots = 350 ms at N=5) is shorter than failure detection
/// (0.5 s): a node cut off right after it planned reaches `start` before it notices it lost
/// quorum, while the majority side plans and starts the same group. Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --seeds 72..73 --faults symmetric --only-ours --trace`
#[test]
fn bug3_a_node_partitioned_in_its_plan_window_does_not_start() {
    assert_clean(72, "symmetric");
    // Re-pinned when the simulator came to run the node core (its trajectories changed):
    // this seed fails with the fix reverted (PLAN_MARGIN 0), and passes with it.
    assert_clean(1256, "symmetric");
    // Re-pinned when the simulator's nodes came to replicate hactl through the core and
    // bugs 10 and 11 were fixed (trajectories changed): this seed fails with the fix
    // reverted, and passes with it.
    assert_clean(289, "symmetric");
}

/// Bug 4 — after a partition heals, a former minority node regains quorum before it sees
/// every majority node back, and fences those it still counts as lost: healthy nodes are
/// powered off, cascading until groups stay down past the liveness bound (e). Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --seeds 113..114 --faults symmetric --only-ours --trace`
#[test]
fn bug4_healing_a_partition_fences_nobody_healthy() {
    assert_clean(113, "symmetric");
    // Re-pinned when the simulator came to run the node core (its trajectories changed):
    // this seed fails with the fix reverted (no fencing in the quiet period, settle restart
    // and quiet period on regaining quorum, cancel when the node comes back), and passes
    // with it.
    assert_clean(122, "symmetric");
}

/// Bug 5 — a failed test is forgotten when the same step stops the group for another
/// reason (here quorum is lost just as the test fails): no cooldown is recorded or
/// published, and the node plans the group again later, inside what should be its cooldown.
/// Replay: `cargo run -p sim --release -- --nodes 5 --groups 10 --seeds 879..880 --faults default --only-ours --trace`
///
/// Not reproduced by any seed today: with the fixes of bugs 10 and 11 and the corrected
/// beats, its pins and a sweep (3000 default seeds at 120 s) pass with this fix reverted. Kept as the seeds that
/// showed it.
#[test]
fn bug5_a_test_failure_is_remembered_when_quorum_is_lost() {
    let p = Profile::named("default").unwrap();
    let o = run_one(5, 10, 120_000, 879, &p, Kind::Ours, false);
    let c: Vec<&String> = o
        .stats
        .violations
        .iter()
        .filter(|(k, _)| *k == 'c')
        .map(|(_, l)| l)
        .collect();
    assert!(c.is_empty(), "{c:#?}");
    // Re-pinned when the simulator came to run the node core (its trajectories changed):
    // this seed fails with the fix reverted, and passes with it.
    assert_clean(466, "default");
}

/// Bug 6 — a hung daemon that resumes acts on its stale view: it had planned a group just
/// before the hang (nobody saw the claim), and on resuming took it to `start` at once,
/// next to the copy the others had started meanwhile: (a). Fixed: the daemon notices the gap
/// and calls `Engine::resumed`, which holds every move (and restarts plan windows) for the
/// start-up wait while fresh state arrives. Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --duration 60 --seeds 6887..6888 --faults symmetric --only-ours --trace`
#[test]
fn bug6_a_resumed_daemon_looks_before_it_moves() {
    assert_clean_at(5, 60_000, 6887, "symmetric");
    // Re-pinned when the simulator came to run the node core (its trajectories changed):
    // this seed fails with the fix reverted, and passes with it.
    assert_clean_at(5, 60_000, 1449, "default");
    // Re-pinned when the simulator's nodes came to replicate hactl through the core and
    // bugs 10 and 11 were fixed (trajectories changed): this seed fails with the fix
    // reverted, and passes with it.
    assert_clean_at(5, 60_000, 8913, "symmetric");
}

/// Bug 7 — two daemons restarted while the third was hung: neither had ever heard it and no
/// peer could tell them what it held, so they counted 2 of 3 as quorate and started its
/// groups next to its still-running copies: (a). Fixed: an expected member of which nothing
/// is known is lost holding anything; no unplaced group is recovered before it is fenced
/// (Pacemaker's startup-fencing). Replay:
/// `cargo run -p sim --release -- --nodes 3 --groups 10 --duration 60 --seeds 1113..1114 --faults default --only-ours --trace`
#[test]
fn bug7_a_member_nobody_knows_is_fenced_before_recovery() {
    assert_clean_at(3, 60_000, 1113, "default");
    // Its generation is unknown too: a fencing record of an earlier life (in force when it
    // was found unknown) must not open the gate. Replay with `--seeds 6820..6821`.
    assert_clean_at(3, 60_000, 6820, "default");
    // Re-pinned when the simulator's nodes came to replicate hactl through the core and
    // bugs 10 and 11 were fixed (trajectories changed): this seed fails with the fix
    // reverted, and passes with it.
    assert_clean_at(3, 60_000, 445, "default");
    assert_clean_at(3, 60_000, 386, "default");
}

/// Bug 8 — a member known only from heartbeats (this node's gossip was clogged, so none of
/// the member's state had reached it) died; nothing it held was known, and two fresh daemons
/// started its groups while it was not fenced: (b). Fixed: a member lost while its news was
/// stale, or known only from heartbeats (`Member::blank`), is lost holding anything. Replay:
/// `cargo run -p sim --release -- --nodes 3 --groups 10 --duration 60 --seeds 9187..9188 --faults default --only-ours --trace`
///
/// Not reproduced by any seed today: with the fixes of bugs 10 and 11 and the corrected
/// beats, its pins and a sweep (10,000 default seeds at N=3) pass with this fix reverted. Kept as the seeds that
/// showed it.
#[test]
fn bug8_a_member_lost_with_a_stale_view_is_fenced_before_recovery() {
    assert_clean_at(3, 60_000, 9187, "default");
    // Re-pinned when the simulator came to run the node core (its trajectories changed):
    // this seed fails with the fix reverted, and passes with it.
    assert_clean_at(3, 60_000, 3086, "default");
}

/// Bug 9 — found once the simulator ran the node core instead of its model of the glue: a
/// node whose outgoing gossip was clogged heard a peer that had just restarted (a new
/// generation, known from heartbeats only: none of its state could reach the clogged node)
/// and counted it for quorum, since the new generation was fresh news to it. It stayed
/// quorate for a news timeout more, took the groups it had planned just before the clog
/// (claims nobody ever saw) to `start`, while the others planned and started them too: (a),
/// (b). Fixed: a member known from heartbeats only (`Member::blank`) does not count for
/// quorum. Replay:
/// `cargo run -p sim --release -- --nodes 3 --groups 10 --duration 60 --seeds 6261..6262 --faults default --only-ours --trace`
#[test]
fn bug9_a_peer_known_from_heartbeats_only_does_not_count_for_quorum() {
    assert_clean_at(3, 60_000, 6261, "default");
}

/// Model correction (not an engine bug), pinned likewise: a clogged node that is unclogged
/// gets everyone's state anew, relayed beats of members it no longer hears included, which
/// its core rightly takes as news (the daemon's would too); invariant (d) counts the
/// failure timeout from the unclog, as from a peer heard anew. Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --duration 60 --seeds 4715..4716 --faults default --only-ours --trace`
///
/// Not reproduced by any seed today: with the fixes of bugs 10 and 11 and the corrected
/// beats, its pins pass with this fix reverted. Kept as the seeds that
/// showed it.
#[test]
fn model_an_unclogged_node_hears_everyone_anew() {
    assert_clean_at(5, 60_000, 4715, "default");
}

/// Bug 10 — found by a sweep past the first 10,000 seeds: a node partitioned into the
/// minority lost a member that lived on in the majority and started groups there; the
/// partition healed and the member crashed before its new state reached the healed node,
/// which regained quorum still believing the member held only what it held at the
/// partition, and recovered the groups the member had started meanwhile, unfenced: (b).
/// Fixed: on regaining quorum (and on resuming from a freeze, and for a member found lost
/// just after one), every member still lost may hold anything (`Lost::unknown`) until it is
/// fenced. Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --duration 60 --seeds 13085..13086 --faults default --only-ours --trace`
#[test]
fn bug10_a_node_back_from_the_minority_fences_before_recovery() {
    assert_clean_at(5, 60_000, 13085, "default");
    // With the simulator's beats corrected (below), that seed no longer shows it; this one
    // fails with the fix reverted (no `unknown` on regaining quorum, on resuming, or for a
    // member found lost just after a freeze), and passes with it.
    assert_clean_at(5, 60_000, 3273, "heavy");
}

/// Bug 11 — found with bug 10's fix: a node planned groups, hung before anyone saw the
/// claims, and resumed 12 s later with a stale view; a member had started those groups
/// meanwhile and was lost (hung) by then. The resumed node kept its plans and, its plan
/// windows over, took them to `test` next to the running copies: (b). The recovery gate
/// held only candidates, not a holder moving on. Fixed: a plan or a test goes no further
/// while the group is gated by an unfenced lost member. Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --duration 60 --seeds 3520..3521 --faults heavy --only-ours --trace`
///
/// Not reproduced by any seed today: with bug 10's fix and the corrected beats, this seed
/// and sweeps of 10,000 heavy seeds pass with this fix reverted (bug 10's fix holds the
/// same cases earlier). Kept as the seed that showed it.
#[test]
fn bug11_a_held_plan_waits_for_the_fencing_of_a_lost_member() {
    assert_clean_at(5, 60_000, 3520, "heavy");
}

/// Model correction: a node's beats reach an observer still missing some of its updates as
/// the last beat before the first missing one (they travel in version order), and an
/// observer that catches up is stepped at once; before, such an observer got no beat at
/// all until it caught up *and* stepped, and a node whose peers had all fallen quiet had no
/// wake-up to step at: it stayed out of quorum for no reason, groups stayed down at the end
/// of the run: (e). Replay:
/// `cargo run -p sim --release -- --nodes 3 --groups 10 --duration 60 --seeds 8464..8465 --faults default --only-ours --trace`
#[test]
fn model_beats_reach_an_observer_that_is_catching_up() {
    assert_clean_at(3, 60_000, 8464, "default");
}

/// Bug 12 — found by the `operator` profile (planned moves at random moments): a node
/// handed a group by a planned move takes it without a plan window, and one started it and
/// hung (or died) before its claim got out; the old holder saw the target lost, dropped its
/// hand-off and started the group again: (a) and (b). Fixed: a hand-off to a lost node that
/// nobody saw take the group counts as that node holding it (the group waits for its
/// fencing), and the hand-off stays until then. Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --duration 60 --seeds 7549..7550 --faults operator --only-ours --trace`
#[test]
fn bug12_a_group_handed_to_a_node_that_is_lost_waits_for_its_fencing() {
    assert_clean_at(5, 60_000, 7549, "operator");
    assert_clean_at(5, 60_000, 3372, "operator");
    assert_clean_at(3, 60_000, 8558, "operator");
}

/// Bug 13 — found by the `operator` profile: the only node that had seen a member take a
/// group (handed to it) crashed and restarted, the member died, and the one other node had
/// been clogged meanwhile: what it relayed of the member was stale, and the restarted node
/// trusted it and started the group unfenced: (b). Fixed: a member that a node never saw
/// alive (it died before this daemon started) and that did not say goodbye may hold
/// anything until it is fenced (Pacemaker's startup-fencing). Replay:
/// `cargo run -p sim --release -- --nodes 3 --groups 10 --duration 60 --seeds 6356..6357 --faults operator --only-ours --trace`
#[test]
fn bug13_a_restarted_node_takes_a_member_it_never_saw_alive_for_unknown() {
    assert_clean_at(3, 60_000, 6356, "operator");
}

/// Model correction: gossip never applies a version older than one it has. A resync (an
/// unclogged node gets everyone's state anew) could overtake an update still in flight, and
/// the stale update then brought back a claim its node had dropped: the group stayed at
/// `plan` on a node that saw another still leaving it, past the end of the run: (e). Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --duration 60 --seeds 9439..9440 --faults heavy --only-ours --trace`
#[test]
fn model_gossip_applies_no_older_version() {
    assert_clean_at(5, 60_000, 9439, "heavy");
}

/// Bug 14 — found by the `admin` profile: a node whose test of a group had just failed was
/// put in standby; the standby's hand-off path stopped the failed claim before the holder's
/// step recorded the failure, so the node forgot its cooldown and planned the group again
/// later, inside the cooldown: (c). Fixed: `Engine::step` records a failed claim's cooldown
/// first, whatever stops the group next. Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --duration 60 --seeds 4345..4346 --faults admin --only-ours --trace`
#[test]
fn bug14_a_failed_test_is_remembered_when_standby_stops_the_group() {
    assert_clean_at(5, 60_000, 4345, "admin");
    assert_clean_at(5, 60_000, 9527, "admin");
}

/// Bug 15 — found by the `placement` profile: a node took a group by a hand-off and at
/// once handed it on (failback) before the first hand-off was withdrawn; each of the two
/// hand-offs in sight let its target skip the plan window, and both started the group
/// while one was clogged: (a). Fixed: hand-offs of one group to two nodes name no one, and
/// the group is placed as usual, with the plan window. Replay:
/// `cargo run -p sim --release -- --nodes 3 --groups 10 --duration 60 --seeds 9610..9611 --faults placement --only-ours --trace`
#[test]
fn bug15_two_hand_offs_of_one_group_let_no_one_skip_the_plan_window() {
    assert_clean_at(3, 60_000, 9610, "placement");
    assert_clean_at(5, 60_000, 9430, "placement");
}

/// Model correction: a daemon that hung reads the replicated files it missed once it runs
/// again; the simulator handed a hung node no orders and no options, so a node that hung
/// through its own unstandby stayed in standby for ever and every failback to it lapsed:
/// (e). Replay:
/// `cargo run -p sim --release -- --nodes 3 --groups 10 --duration 60 --seeds 780..781 --faults placement --only-ours --trace`
#[test]
fn model_a_resumed_node_reads_the_orders_it_missed() {
    assert_clean_at(3, 60_000, 780, "placement");
}

/// Bug 16 — found by the `failures` profile once failed stops existed: a node hung while a
/// member whose stop had failed was fenced and rebooted; back from the hang, it still took
/// the member's old life for blocked (it never saw it depart), its own fencing pass had
/// failed, and a plan of its own stayed gated for ever: (e). Fixed: a blocked member seen
/// with a new generation is no longer blocked (its daemon stopped what the old one left).
/// Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --duration 60 --seeds 5198..5199 --faults failures --only-ours --trace`
#[test]
fn bug16_a_blocked_member_that_restarted_is_blocked_no_more() {
    assert_clean_at(5, 60_000, 5198, "failures");
}

/// Bug 17 (found by the chaos run on real daemons, seed 2026 iteration 6; reproduced here) —
/// a fencing record lives in the gossip state of the node that fenced, and a restart of that
/// node takes it away: the others, the loss still open, fenced the victim again (on the real
/// cluster the switch powered off its new life, booted meanwhile), and the restarted fencer
/// itself fenced the same lives again at its start-up. Fixed: a safe outcome once seen for a
/// loss stays, and is published again by those who kept it. The simulator counts a fence pass
/// against a life already reported off ("fences of a life already fenced"). Replay:
/// `cargo run -p sim --release -- --nodes 5 --groups 10 --seeds 35..36 --duration 60 --faults default --only-ours --trace`
#[test]
fn bug17_a_fencers_restart_does_not_fence_its_victims_again() {
    let p = Profile::named("default").unwrap();
    let o = run_one(5, 10, 60_000, 35, &p, Kind::Ours, false);
    assert!(o.stats.violations.is_empty(), "{:?}", o.stats.violations);
    assert_eq!(o.stats.repeat_fences, 0, "lives fenced twice");
    // Over many seeds: a third as many as before the fix (318 in seeds 0..2000; those left
    // are fences run before another's record arrived).
    let mut repeats = 0;
    for seed in 0..200 {
        repeats += run_one(5, 10, 60_000, seed, &p, Kind::Ours, false)
            .stats
            .repeat_fences;
    }
    assert!(
        repeats <= 20,
        "{repeats} lives fenced twice in seeds 0..200"
    );
}
