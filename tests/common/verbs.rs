//! What the operator-verb tests share (`tests/operate.rs`, `tests/admin.rs`): a cluster
//! without fencing, joined, and `mosha VERB ... --dir DIR` run as an operator runs it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use super::cluster::{wait_joined, Cluster, ClusterOpts};

/// How long a change may take to settle (generous: the tests run in parallel).
pub const SETTLE: Duration = Duration::from_secs(30);

/// Starts `nodes` daemons on `cltab` and `hactl`, fencing `none`, and waits until they
/// joined.
pub fn start(nodes: usize, cltab: String, hactl: String) -> Cluster {
    let c = Cluster::start(ClusterOpts {
        nodes,
        cltab,
        hactl,
        fencetab: "* none\n".to_string(),
        extra_args: Vec::new(),
        netns: false,
    });
    let all: Vec<usize> = c.indices().collect();
    wait_joined(&c, &all);
    c
}

/// Runs `mosha ARGS --dir DIR`.
pub fn mosha(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mosha"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("running mosha")
}

/// Returns a command's exit status and output, for messages and checks.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
