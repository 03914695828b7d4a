//! What the chaos run checks from outside the daemons: the witness records its services write
//! (`SHARED/witness`: every start, stop and failed lock, with the time), the power switch's
//! fences, and the processes each node's PID namespace holds.
//!
//! Each group's service (`SHARED/svc GROUP`) takes `SHARED/GROUP.lock` with `flock -n` and
//! holds it for its whole life; a copy that finds it taken writes `collision`: two copies at
//! once, which the lock itself (the external witness) caught.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use crate::common::cluster::Cluster;
use crate::rig::{cmdline, Fence};

/// Writes the service script `SHARED/svc`.
pub fn install_service(c: &Cluster) {
    let shared = c.shared().display().to_string();
    let script = format!(
        r#"#!/bin/sh
# A chaos-run service: holds SHARED/$1.lock for its whole life, records start/stop/collision.
g=$1
w='{shared}/witness'
exec 9>>"{shared}/$g.lock"
if ! flock -n 9; then
    echo "$(date +%s.%N) collision $g $MOSHA_NODE $$" >> "$w"
    exit 1
fi
echo "$(date +%s.%N) start $g $MOSHA_NODE $$" >> "$w"
trap 'echo "$(date +%s.%N) stop $g $MOSHA_NODE $$" >> "$w"; exit 0' TERM INT
sleep 100000 9>&- &
wait
"#
    );
    let path = c.shared().join("svc");
    std::fs::write(&path, script).expect("writing SHARED/svc");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod svc");
}

/// The cltab of `groups` services.
pub fn cltab(groups: usize) -> String {
    (1..=groups)
        .map(|g| format!("g{g}:g{g}-svc:start:respawn:{{SHARED}}/svc g{g}\n"))
        .collect()
}

/// One witness record.
#[derive(Clone, Debug)]
pub struct Record {
    pub t: f64,
    pub what: String,
    pub group: String,
    pub node: String,
    pub pid: u32,
}

/// Every record of `SHARED/witness`, in time order.
pub fn records(c: &Cluster) -> Vec<Record> {
    let text = std::fs::read_to_string(c.shared().join("witness")).unwrap_or_default();
    let mut out: Vec<Record> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [t, what, group, node, pid] = f[..] else {
                return None;
            };
            Some(Record {
                t: t.parse().ok()?,
                what: what.to_string(),
                group: group.to_string(),
                node: node.to_string(),
                pid: pid.parse().ok()?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    out
}

/// A group started on one node while a copy started earlier on another node had neither
/// stopped (no `stop` record), nor had its node fenced, restarted, or its daemon restarted
/// (which stops what the dead one left) in between: a recovery before fencing.
#[derive(Debug)]
pub struct Early {
    pub group: String,
    pub from: String,
    pub to: String,
    pub at: f64,
}

/// Finds every [`Early`] recovery in `recs` (from index `from` on; earlier records are
/// context). `fences`: the switch's; `restarts`: (node name, unix time) of every start of a
/// node's namespace or daemon.
pub fn early_recoveries(
    recs: &[Record],
    fences: &[(String, f64)],
    restarts: &[(String, f64)],
    from: usize,
) -> Vec<Early> {
    // group → the copy that holds it: (node, pid, start time)
    let mut holder: BTreeMap<&str, (&str, u32, f64)> = BTreeMap::new();
    let mut out = Vec::new();
    for (k, r) in recs.iter().enumerate() {
        match r.what.as_str() {
            "start" => {
                if let Some(&(node, _, since)) = holder.get(r.group.as_str()) {
                    let between = |list: &[(String, f64)]| {
                        list.iter()
                            .any(|(n, t)| n == node && *t > since && *t <= r.t)
                    };
                    if node != r.node && !between(fences) && !between(restarts) && k >= from {
                        out.push(Early {
                            group: r.group.clone(),
                            from: node.to_string(),
                            to: r.node.clone(),
                            at: r.t,
                        });
                    }
                }
                holder.insert(&r.group, (&r.node, r.pid, r.t));
            }
            "stop"
                if holder
                    .get(r.group.as_str())
                    .is_some_and(|&(n, p, _)| n == r.node && p == r.pid) =>
            {
                holder.remove(r.group.as_str());
            }
            _ => {}
        }
    }
    out
}

/// The fences as (node name, unix time done).
pub fn fence_times(c: &Cluster, fences: &[Fence]) -> Vec<(String, f64)> {
    fences
        .iter()
        .map(|f| (c.node_name(f.node), f.done))
        .collect()
}

/// The groups whose service runs in node `i`'s PID namespace, with how many copies.
pub fn services_on(c: &Cluster, i: usize) -> BTreeMap<String, usize> {
    let svc = format!("{}/svc ", c.shared().display());
    let mut out = BTreeMap::new();
    for pid in c.processes(i) {
        let cmd = cmdline(pid);
        if let Some(g) = cmd.split(&svc).nth(1) {
            *out.entry(g.trim().to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// What is wrong with the processes the nodes run, given where the cluster says each group
/// runs (`placed`: group → node): a service running where it is not placed, or twice.
pub fn leftovers(c: &mut Cluster, placed: &BTreeMap<String, usize>) -> Vec<String> {
    let mut out = Vec::new();
    for i in c.indices().collect::<Vec<_>>() {
        if !c.is_running(i) {
            continue;
        }
        for (g, n) in services_on(c, i) {
            if placed.get(&g) != Some(&i) {
                out.push(format!(
                    "{g} runs on {} where it is not placed",
                    c.node_name(i)
                ));
            } else if n > 1 {
                out.push(format!("{g} runs {n} times on {}", c.node_name(i)));
            }
        }
    }
    out
}

/// The `/proc/locks` id (`MAJOR:MINOR:INODE`, hex device numbers) of the file at `path`.
fn lock_id(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    Some(format!(
        "{major:02x}:{minor:02x}:{}",
        std::fs::metadata(path).ok()?.ino()
    ))
}

/// How long each watched group ran nowhere (its lock held by nobody), sampled from
/// `/proc/locks` at every pause of the run.
#[derive(Default)]
pub struct Outage {
    /// Group → since when it is down (None: up).
    down: BTreeMap<String, Option<Instant>>,
    /// Group → its longest outage so far, in seconds.
    longest: BTreeMap<String, f64>,
}

impl Outage {
    pub fn new(groups: &[String]) -> Outage {
        Outage {
            down: groups.iter().map(|g| (g.clone(), None)).collect(),
            longest: BTreeMap::new(),
        }
    }

    pub fn sample(&mut self, c: &Cluster) {
        if self.down.is_empty() {
            return;
        }
        let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        let held: std::collections::BTreeSet<&str> = locks
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(1) == Some(&"FLOCK"))
                    .then(|| f.get(5).copied())
                    .flatten()
            })
            .collect();
        let now = Instant::now();
        for (g, since) in self.down.iter_mut() {
            let id = lock_id(&c.shared().join(format!("{g}.lock")));
            let up = id.is_some_and(|id| held.contains(id.as_str()));
            match (up, *since) {
                (false, None) => *since = Some(now),
                (true, Some(t)) => {
                    let d = now.duration_since(t).as_secs_f64();
                    let l = self.longest.entry(g.clone()).or_insert(0.0);
                    *l = l.max(d);
                    *since = None;
                }
                _ => {}
            }
        }
    }

    /// The longest outage of any group of `still` (those still wanted), ongoing ones counted
    /// until now; None when none had one.
    pub fn longest(&self, still: &[String]) -> Option<f64> {
        let now = Instant::now();
        still
            .iter()
            .filter_map(|g| {
                let ongoing = self
                    .down
                    .get(g)
                    .copied()
                    .flatten()
                    .map(|t| now.duration_since(t).as_secs_f64());
                let past = self.longest.get(g).copied();
                match (ongoing, past) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or(0.0).max(b.unwrap_or(0.0))),
                }
            })
            .max_by(|a, b| a.total_cmp(b))
    }
}
