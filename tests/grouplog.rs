//! A group's logs (`DIR/log/GROUP.log`, `mosha log GROUP`) with real daemons and real
//! children: what the ring records (the children's lines with tag and stream, the
//! supervisor's events), whatever `--log` says; that it stays bounded, and so does the
//! daemon's memory, however much a child prints; what `mosha log` prints, follows and
//! refuses.

mod common;

use std::time::Duration;

use common::Node;

/// A generous deadline for what should take a few ticks (the tests run in parallel).
const SOON: Duration = Duration::from_secs(20);

/// `DIR/log/GROUP.log`'s text so far (empty when missing).
fn ring(node: &Node, group: &str) -> String {
    node.read_file(&format!("log/{group}.log"))
        .unwrap_or_default()
}

#[test]
fn a_child_printing_without_newlines_costs_the_daemon_little_memory() {
    let node = Node::start(
        "web:blob:start:once:while [ ! -e {DIR}/go ]; do sleep 0.05; done; \
         head -c 32000000 /dev/zero | tr '\\000' x; echo; echo END\n",
        "web start\n",
        &[],
    );
    node.wait_until("the child started", SOON, || {
        ring(&node, "web").contains("[blob] started")
    });
    let pid = node.daemon_pid();
    let before = common::rss_kib(pid);
    node.write_file("go", "");
    node.wait_until("the child's last line in the ring", SOON, || {
        ring(&node, "web").contains("[blob stdout] END")
    });
    let after = common::rss_kib(pid);
    // Read whole, the 32 MB line would cost the daemon at least twice that (the buffer, and
    // the log line made of it).
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // It was logged in pieces, each cut marked.
    let log = node.log();
    let pieces = log.lines().filter(|l| l.contains(" …xxxx")).count();
    assert_eq!(
        pieces,
        32_000_000 / mosha::supervisor::process::MAX_PIECE,
        "continued pieces"
    );
    let r = node.read_file("log/web.log.1").unwrap_or_default() + &ring(&node, "web");
    let in_ring = r.lines().filter(|l| l.contains("[blob stdout] …x")).count();
    assert!(in_ring > 120, "{in_ring} pieces in the ring");
}
