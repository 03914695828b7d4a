//! The tests' power switch: a fence agent, `SHARED/fence_switch`, that asks the test process to
//! cut a node's power, and the test side that does it ([`PowerSwitch`]). Fence agents run
//! inside the fencer's PID namespace and cannot reach the victim's, so the test process does
//! the killing: it SIGKILLs the node's whole PID namespace (everything the node ran, its mount
//! namespace with its mounts) and, with netns, removes the virtual addresses the node had
//! added to its `eth0` (the namespace itself outlives the node, but a powered-off machine's
//! addresses vanish with it).
//!
//! It does not decide who is fenced or when: the daemons do, and the test only serves their
//! requests ([`PowerSwitch::serve`]) or cuts a node itself ([`PowerSwitch::power_off`]).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cluster::{index_of, node_ip, Cluster};

/// The fencetab line that fences every node through the power switch.
pub const SWITCH_FENCETAB: &str = "* {SHARED}/fence_switch action=off timeout=15\n";

/// Seconds since the epoch.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The start of a test fence agent (a shell script): reads the fence agents' stdin
/// protocol into `$action` (`reboot` unless given) and `$node`, and fails without a node.
pub const READ_STDIN: &str = r#"action=reboot
node=
while IFS= read -r line; do
    case $line in
        action=*) action=${line#action=} ;;
        nodename=*) node=${line#nodename=} ;;
    esac
done
[ -n "$node" ] || { echo "no nodename on stdin" >&2; exit 1; }
"#;

/// Installs `script` as the executable `SHARED/fence_switch` (written aside, then renamed).
pub fn install_agent(c: &Cluster, script: &str) {
    let path = c.shared().join("fence_switch");
    let tmp = c.shared().join(".fence_switch.tmp");
    std::fs::write(&tmp, script).expect("writing the fence agent");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .expect("chmod of the fence agent");
    std::fs::rename(&tmp, &path).expect("installing the fence agent");
}

/// The test's power switch. Its agent, `SHARED/fence_switch`, is an executable shell script
/// that speaks the fence agents' stdin protocol: for `off` (or `reboot`) it writes the request
/// `SHARED/power/off-<nodename>` and waits up to 10 s for `SHARED/power/done-<nodename>`
/// (exit 0, else 1); for `status` it answers 2 (off) once `done-<nodename>` exists, else 0
/// (on). [`PowerSwitch::serve`] carries the requests out; [`PowerSwitch::power_off`] cuts a
/// node the same way without being asked.
pub struct PowerSwitch {
    /// `SHARED/power`, where requests and answers are exchanged.
    dir: PathBuf,
    /// Node name → when its namespace was found dead (after `kill_node` returned).
    pub killed: BTreeMap<String, SystemTime>,
}

impl PowerSwitch {
    /// Writes the agent into the shared directory (before anything needs fencing).
    pub fn install(c: &Cluster) -> PowerSwitch {
        let dir = c.shared().join("power");
        std::fs::create_dir_all(&dir).expect("creating SHARED/power");
        let script = format!(
            r#"#!/bin/sh
# Test fence agent: the test process is the power switch.
power='{power}'
{READ_STDIN}case $action in
    status|monitor)
        if [ -e "$power/done-$node" ]; then exit 2; fi
        exit 0 ;;
    off|reboot)
        date +%s.%N > "$power/.off-$node.$$" && mv "$power/.off-$node.$$" "$power/off-$node"
        i=0
        while [ $i -lt 100 ]; do
            if [ -e "$power/done-$node" ]; then echo "power of $node is off"; exit 0; fi
            sleep 0.1
            i=$((i + 1))
        done
        echo "the power switch did not cut $node within 10 s" >&2
        exit 1 ;;
esac
echo "unknown action $action" >&2
exit 1
"#,
            power = dir.display()
        );
        install_agent(c, &script);
        PowerSwitch {
            dir,
            killed: BTreeMap::new(),
        }
    }

    /// Every node a power-off was requested for, with the request's time (from the agent).
    pub fn requests(&self) -> BTreeMap<String, f64> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return BTreeMap::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let node = name.strip_prefix("off-")?.to_string();
                let t = std::fs::read_to_string(e.path())
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0.0);
                Some((node, t))
            })
            .collect()
    }

    /// Carries out every new request as [`PowerSwitch::power_off`] does. Returns the nodes
    /// powered off now.
    pub fn serve(&mut self, c: &mut Cluster) -> Vec<String> {
        let mut done = Vec::new();
        for node in self.requests().into_keys() {
            if self.killed.contains_key(&node) {
                continue;
            }
            let Some(i) = index_of(c, &node) else {
                c.fail(&format!("power-off requested for an unknown node {node:?}"));
            };
            self.power_off(c, i);
            done.push(node);
        }
        done
    }

    /// Cuts node `i`'s power, as for a fence request: SIGKILLs its PID namespace (waiting until
    /// all of it is gone), removes every address of its `eth0` but its own `198.18.0.<i>/24`
    /// (netns only), then writes `done-<node>` so that the agent reports it off. Returns when
    /// the node was found dead. Cutting a node already off does nothing more.
    pub fn power_off(&mut self, c: &mut Cluster, i: usize) -> SystemTime {
        let node = c.node_name(i);
        if let Some(&dead) = self.killed.get(&node) {
            return dead;
        }
        if c.is_running(i) {
            c.kill_node(i);
        }
        let dead = SystemTime::now();
        let removed = remove_virtual_addresses(c, i);
        eprintln!(
            "power switch: {node}'s namespace killed at unix {:.3}{}",
            unix(dead),
            if removed.is_empty() {
                String::new()
            } else {
                format!("; removed {} from its eth0", removed.join(", "))
            }
        );
        self.killed.insert(node.clone(), dead);
        std::fs::write(self.dir.join(format!("done-{node}")), "").expect("writing done-");
        dead
    }

    /// Like [`Cluster::wait_for`], serving power requests meanwhile.
    pub fn wait_for(
        &mut self,
        c: &mut Cluster,
        desc: &str,
        timeout: Duration,
        mut f: impl FnMut(&Cluster, &PowerSwitch) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.serve(c);
            if f(c, self) {
                return;
            }
            if Instant::now() >= deadline {
                c.fail(&format!("timed out after {timeout:?} waiting for: {desc}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The addresses of node `i`'s `eth0` (`198.18.0.1/24`, `fe80::1/64`...), from `ip -o addr`,
/// with their family (`inet` or `inet6`). Panics without netns or when `ip` fails.
pub fn eth0_addresses(c: &Cluster, i: usize) -> Vec<(String, String)> {
    let ns = c
        .ns_name(i)
        .unwrap_or_else(|| panic!("n{i} has no network namespace (netns: false)"));
    // "2: eth0    inet 198.18.0.1/24 brd 198.18.0.255 scope global eth0\       valid_lft ..."
    ip(&["-n", ns, "-o", "addr", "show", "dev", "eth0"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(2)?.to_string(), f.get(3)?.to_string()))
        })
        .collect()
}

/// Removes from node `i`'s `eth0` every IPv4 address but `198.18.0.<i>/24` and every IPv6
/// address but the link-local ones (those belong to the interface, as its MAC address does,
/// and no agent adds them); returns what it removed. Does nothing without netns.
fn remove_virtual_addresses(c: &Cluster, i: usize) -> Vec<String> {
    let Some(ns) = c.ns_name(i).map(str::to_string) else {
        return Vec::new();
    };
    let own = format!("{}/24", node_ip(i));
    let extra = |c: &Cluster| -> Vec<String> {
        eth0_addresses(c, i)
            .into_iter()
            .filter(|(family, addr)| match family.as_str() {
                "inet" => *addr != own,
                "inet6" => !addr.starts_with("fe80:"),
                _ => false,
            })
            .map(|(_, addr)| addr)
            .collect()
    };
    let removed = extra(c);
    for addr in &removed {
        ip(&["-n", &ns, "addr", "del", addr, "dev", "eth0"]);
    }
    let left = extra(c);
    assert!(
        left.is_empty(),
        "n{i}'s eth0 still has {left:?} after the power-off"
    );
    removed
}

/// Runs `ip args`; panics with its stderr when it fails.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running ip {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "ip {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
