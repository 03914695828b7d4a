//! The chaos run's faults: their kinds, the seeded draw of each iteration's fault (or two
//! overlapping), and how each is injected and healed on the real cluster.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use crate::common::cluster::Cluster;
use crate::common::power::unix;
use crate::rig::{self, Switch};
use crate::{FENCING_KINDS, NODES};

/// A fault kind (a row of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// SIGKILL of a node's whole PID namespace (power loss); restarted once its groups run
    /// elsewhere.
    Kill,
    /// A kill while the fence agent fails, or hangs until its timeout, for a while.
    Agent,
    /// SIGSTOP of the daemon for 0.3 to 6 s (its services keep running).
    Hang,
    /// SIGKILL of the daemon alone (its services left behind), started again 0.2 to 4 s later.
    DaemonKill,
    /// A 3|2 split (nftables drops between the sides) for 4 to 12 s.
    Partition,
    /// One node's packets to its peers dropped (it still hears them) for 4 to 12 s.
    OneWay,
    /// 20 % of every node's packets dropped, one node's link slowed to 300 kbit/s (its
    /// datagrams queue: delay and jitter), for 5 to 15 s.
    Loss,
    /// A node's DIR (a tmpfs) full for 5 to 15 s.
    Disk,
    /// A node held to 10 % of a CPU (cgroup) for 5 to 15 s.
    Cpu,
    /// An operator's change: an hactl edit, a move, or a standby (ended at the heal).
    Edit,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Agent => "kill, agent broken",
            Kind::Hang => "daemon hang",
            Kind::DaemonKill => "daemon kill",
            Kind::Partition => "partition 3|2",
            Kind::OneWay => "one-way partition",
            Kind::Loss => "loss 20 %, slow link",
            Kind::Disk => "DIR full",
            Kind::Cpu => "CPU starved",
            Kind::Edit => "operator edit",
        }
    }
}

/// One fault of an iteration.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: Kind,
    /// The node it hits.
    pub node: usize,
    /// Partition: the other node of the minority side.
    pub other: usize,
    /// Agent: hang (true) or fail. Edit: 0 hactl toggle, 1 move, 2 standby. Loss: unused.
    pub variant: u8,
    /// Edit: the group it touches.
    pub group: String,
    /// After the iteration's start.
    pub offset: Duration,
    /// How long it lasts before the heal (zero: a kill, healed by the restart).
    pub hold: Duration,
}

impl Fault {
    /// Tells whether this fault may rightly get node `n`, alive, fenced.
    pub fn fences(&self, n: usize) -> bool {
        FENCING_KINDS.contains(&self.kind)
            && (self.node == n || (self.kind == Kind::Partition && self.other == n))
    }

    pub fn describe(&self, c: &Cluster) -> String {
        let node = c.node_name(self.node);
        let hold = self.hold.as_secs_f64();
        let at = if self.offset.is_zero() {
            String::new()
        } else {
            format!(" at +{:.1} s", self.offset.as_secs_f64())
        };
        let what = match self.kind {
            Kind::Kill => format!("kill {node}"),
            Kind::Agent => format!(
                "kill {node}, agent {} for {hold:.1} s",
                if self.variant == 1 { "hangs" } else { "fails" }
            ),
            Kind::Hang => format!("SIGSTOP {node}'s daemon for {hold:.1} s"),
            Kind::DaemonKill => format!("SIGKILL {node}'s daemon, restart after {hold:.1} s"),
            Kind::Partition => format!(
                "partition {node},{} | rest for {hold:.1} s",
                c.node_name(self.other)
            ),
            Kind::OneWay => format!("{node} cannot send for {hold:.1} s"),
            Kind::Loss => format!("20 % loss, {node}'s link slowed, for {hold:.1} s"),
            Kind::Disk => format!("{node}'s DIR full for {hold:.1} s"),
            Kind::Cpu => format!("{node} at 10 % CPU for {hold:.1} s"),
            Kind::Edit => match self.variant {
                0 => format!("hactl: toggle {} (on {node})", self.group),
                1 => format!("move {} to {node}", self.group),
                _ => format!("standby {node} for {hold:.1} s"),
            },
        };
        what + &at
    }
}

/// splitmix64: the chaos run's seeded randomness.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A duration from `lo` to `hi` seconds, in 100 ms steps.
    pub fn secs(&mut self, lo: f64, hi: f64) -> Duration {
        let steps = ((hi - lo) * 10.0) as u64;
        Duration::from_millis((lo * 1000.0) as u64 + self.below(steps + 1) * 100)
    }
}

/// The run's state between iterations.
pub struct Run {
    pub switch: Switch,
    /// (node name, unix time) of every restart of a node's namespace or daemon.
    pub restarts: Vec<(String, f64)>,
    /// Where each wanted group ran at the last settle.
    pub placed: BTreeMap<String, usize>,
    /// Every group, `g1`..
    pub groups: Vec<String>,
    /// Whether hactl wants each group at start.
    want: BTreeMap<String, bool>,
    pub exits_seen: BTreeMap<String, usize>,
    /// SIGKILLs sent to a node's daemon alone, not yet matched with its exit.
    pub kills_asked: BTreeMap<String, usize>,
    /// Verbs running (`mosha move`, `standby`).
    verbs: Vec<Child>,
    /// Nodes in standby, to end at the heal.
    standby: Vec<usize>,
    /// The wanted groups' outages in this iteration.
    pub outage: crate::check::Outage,
    /// Nodes the run killed itself (not the switch), with when.
    pub killed_at: BTreeMap<usize, f64>,
}

impl Run {
    pub fn new(c: &Cluster, groups: usize) -> Run {
        let names: Vec<String> = (1..=groups).map(|g| format!("g{g}")).collect();
        Run {
            switch: Switch::install(c),
            restarts: Vec::new(),
            placed: BTreeMap::new(),
            want: names.iter().map(|g| (g.clone(), true)).collect(),
            groups: names,
            exits_seen: BTreeMap::new(),
            kills_asked: BTreeMap::new(),
            verbs: Vec::new(),
            standby: Vec::new(),
            outage: Default::default(),
            killed_at: BTreeMap::new(),
        }
    }

    /// The groups hactl wants at start.
    pub fn wanted(&self) -> Vec<String> {
        self.want
            .iter()
            .filter(|(_, &w)| w)
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Takes the hactl the nodes agree on as the wanted set (an edit made on a node killed
    /// before it spread is lost, as it would be on a machine that died).
    pub fn adopt_hactl(&mut self, text: &str) {
        for line in text.lines() {
            let mut f = line.split_whitespace();
            if let (Some(g), Some(level)) = (f.next(), f.next()) {
                if let Some(w) = self.want.get_mut(g) {
                    *w = level == "start";
                }
            }
        }
    }

    fn hactl(&self) -> String {
        self.want
            .iter()
            .map(|(g, &w)| format!("{g} {}\n", if w { "start" } else { "stop" }))
            .collect()
    }

    pub fn inject(&mut self, c: &mut Cluster, f: &Fault) {
        let i = f.node;
        match f.kind {
            Kind::Kill => {
                self.switch.power_off(c, i);
                self.killed_at.insert(i, unix(SystemTime::now()));
            }
            Kind::Agent => {
                self.switch.break_agent(Some(f.variant == 1));
                self.switch.power_off(c, i);
                self.killed_at.insert(i, unix(SystemTime::now()));
            }
            Kind::Hang => {
                rig::signal_daemon(c, i, Signal::SIGSTOP);
            }
            Kind::DaemonKill => {
                if rig::signal_daemon(c, i, Signal::SIGKILL) {
                    *self.kills_asked.entry(c.node_name(i)).or_insert(0) += 1;
                }
            }
            Kind::Partition => {
                let minority = [i, f.other];
                let majority: Vec<usize> = c.indices().filter(|n| !minority.contains(n)).collect();
                for &m in &minority {
                    rig::filter(c, m, &majority, 0);
                }
                for &m in &majority {
                    rig::filter(c, m, &minority, 0);
                }
            }
            Kind::OneWay => {
                let others: Vec<usize> = c.indices().filter(|&n| n != i).collect();
                rig::filter(c, i, &others, 0);
            }
            Kind::Loss => {
                for n in c.indices() {
                    rig::filter(c, n, &[], 20);
                }
                rig::throttle(c, i);
            }
            Kind::Disk => rig::fill_dir(c, i),
            Kind::Cpu => rig::starve(c, i),
            Kind::Edit => self.edit(c, f),
        }
    }

    fn edit(&mut self, c: &mut Cluster, f: &Fault) {
        let dir = c.dir(f.node).to_path_buf();
        let verb = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_mosha"))
                .args(args)
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        };
        match f.variant {
            0 => {
                let w = self.want[&f.group];
                self.want.insert(f.group.clone(), !w);
                let text = self.hactl();
                let tmp = dir.join(".hactl.chaos");
                let ok = std::fs::write(&tmp, &text).is_ok()
                    && std::fs::rename(&tmp, dir.join("hactl")).is_ok();
                if !ok {
                    self.want.insert(f.group.clone(), w); // DIR full: the edit did not happen
                }
            }
            1 => {
                let node = c.node_name(f.node);
                self.verbs.extend(verb(&["move", &f.group, &node]));
            }
            _ => {
                let node = c.node_name(f.node);
                self.verbs.extend(verb(&["standby", &node]));
                self.standby.push(f.node);
            }
        }
    }

    /// Undoes fault `f` (a kill is undone by the restart, after the recovery).
    pub fn heal_one(&mut self, c: &mut Cluster, f: &Fault) {
        let i = f.node;
        match f.kind {
            Kind::Kill | Kind::Edit => {}
            Kind::Agent => self.switch.break_agent(None),
            Kind::Hang => {
                rig::signal_daemon(c, i, Signal::SIGCONT);
            }
            Kind::DaemonKill => {
                let flag = c.shared().join(format!("restart-{}", c.node_name(i)));
                if rig::init_waiting(c, i) && !flag.exists() {
                    rig::restart_daemon(c, i);
                    self.restarts
                        .push((c.node_name(i), unix(SystemTime::now())));
                }
            }
            Kind::Partition | Kind::OneWay => {
                for n in c.indices() {
                    rig::unfilter(c, n);
                }
            }
            Kind::Loss => {
                for n in c.indices() {
                    rig::unfilter(c, n);
                }
                rig::unthrottle(c, i);
            }
            Kind::Disk => rig::unfill_dir(c, i),
            Kind::Cpu => rig::unstarve(c, i),
        }
    }

    /// Undoes every fault: SIGCONT, no packet filter, no throttle, DIR freed, CPU back, the
    /// agent working, standbys ended, killed daemons started again.
    pub fn heal(&mut self, c: &mut Cluster) {
        self.switch.break_agent(None);
        for i in c.indices().collect::<Vec<_>>() {
            rig::signal_daemon(c, i, Signal::SIGCONT);
            rig::unfilter(c, i);
            rig::unthrottle(c, i);
            rig::unfill_dir(c, i);
            rig::unstarve(c, i);
        }
        self.heal_soft(c);
    }

    /// Reaps the verbs and ends the standbys (through a node that runs a daemon).
    pub fn heal_soft(&mut self, c: &mut Cluster) {
        let deadline = Instant::now() + Duration::from_secs(15);
        for mut v in std::mem::take(&mut self.verbs) {
            while v.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                self.pause(c, Duration::from_millis(20));
            }
            let _ = v.kill();
            let _ = v.wait();
        }
        for n in std::mem::take(&mut self.standby) {
            let node = c.node_name(n);
            let mut done = false;
            for _ in 0..10 {
                let Some(via) = c.indices().find(|&i| rig::daemon_pid(c, i).is_some()) else {
                    break;
                };
                let out = Command::new(env!("CARGO_BIN_EXE_mosha"))
                    .args(["unstandby", &node, "--dir"])
                    .arg(c.dir(via))
                    .output();
                if out.is_ok_and(|o| o.status.success()) {
                    done = true;
                    break;
                }
                self.pause(c, Duration::from_millis(500));
            }
            if !done {
                println!("      could not end {node}'s standby");
            }
        }
    }
}

/// Draws iteration's faults: one, or (three times in ten) a second one on another node that
/// starts up to 2 s into the first.
pub fn draw(rng: &mut Rng, run: &Run, c: &Cluster) -> Vec<Fault> {
    const PRIMARY: [Kind; 10] = [
        Kind::Kill,
        Kind::Agent,
        Kind::Hang,
        Kind::DaemonKill,
        Kind::Partition,
        Kind::OneWay,
        Kind::Loss,
        Kind::Disk,
        Kind::Cpu,
        Kind::Edit,
    ];
    const SECOND: [Kind; 6] = [
        Kind::Kill,
        Kind::Hang,
        Kind::DaemonKill,
        Kind::Disk,
        Kind::Cpu,
        Kind::Edit,
    ];
    let kind = PRIMARY[rng.below(PRIMARY.len() as u64) as usize];
    let first = one(rng, run, c, kind, &[]);
    let mut plan = vec![first];
    if rng.below(10) < 3 {
        let kind = SECOND[rng.below(SECOND.len() as u64) as usize];
        let taken: Vec<usize> = vec![plan[0].node, plan[0].other];
        let mut second = one(rng, run, c, kind, &taken);
        second.offset = rng.secs(0.0, 2.0);
        plan.push(second);
    }
    plan
}

/// Draws one fault of `kind` on a node not in `taken` (when it can).
fn one(rng: &mut Rng, run: &Run, c: &Cluster, kind: Kind, taken: &[usize]) -> Fault {
    let group = run.groups[rng.below(run.groups.len() as u64) as usize].clone();
    let by_owner = rng.below(10) < 7;
    let any = 1 + rng.below(NODES as u64) as usize;
    let mut node = match run.placed.get(&group) {
        Some(&owner) if by_owner => owner,
        _ => any,
    };
    for _ in 0..NODES {
        if !taken.contains(&node) {
            break;
        }
        node = node % NODES + 1;
    }
    let other = (node + rng.below(NODES as u64 - 1) as usize) % NODES + 1;
    let (variant, hold) = match kind {
        Kind::Kill => (0, Duration::ZERO),
        Kind::Agent => (rng.below(2) as u8, rng.secs(5.0, 15.0)),
        Kind::Hang => (0, rng.secs(0.3, 6.0)),
        Kind::DaemonKill => (0, rng.secs(0.2, 4.0)),
        Kind::Partition | Kind::OneWay => (0, rng.secs(4.0, 12.0)),
        Kind::Loss | Kind::Disk | Kind::Cpu => (0, rng.secs(5.0, 15.0)),
        Kind::Edit => (rng.below(3) as u8, rng.secs(3.0, 8.0)),
    };
    let _ = c;
    Fault {
        kind,
        node,
        other,
        variant,
        group,
        offset: Duration::ZERO,
        hold,
    }
}
