//! The `sim` command line: runs a range of seeds for both policies and prints the
//! side-by-side table; exits non-zero when mosha's engine broke an invariant.
//!
//! `sim --nodes N --groups G --seeds A..B [--faults PROFILE] [--duration S] [--trace]
//! [--only-ours]`

use std::process::ExitCode;
use std::time::Instant;

use sim::faults::Profile;
use sim::node::Kind;
use sim::report::{table, Stats};
use sim::run::{om_fits, replay_command, run_one, OM_MAX_CLAIM_COPIES};

/// Small blocks packed without headers: at 1000 nodes most live blocks are names of a few
/// bytes (see [`sim::alloc`]).
#[global_allocator]
static ALLOC: sim::alloc::Small = sim::alloc::Small::new();

const HELP: &str = "\
usage: sim [--nodes N] [--groups G] [--seeds A..B] [--faults PROFILE] [--duration S]
           [--trace] [--only-ours]

Runs each seed of A..B (default 0..1) with mosha's engine and, unless --only-ours (or the
cluster is too large for it), the OpenMosix::HA model, and prints the side-by-side table.
Exits 1 when mosha's engine broke an invariant, 2 on a bad argument.

  --nodes N        cluster size (default 5)
  --groups G       resource groups (default 10)
  --seeds A..B     seeds A up to B, B excluded (default 0..1)
  --faults PROFILE none, default, symmetric, heavy, operator, admin, placement, failures,
                   owners, daemons (default: default)
  --duration S     simulated seconds per seed (default 120)
  --trace          print every node's events
  --only-ours      skip the OpenMosix::HA model
";

struct Args {
    nodes: usize,
    groups: usize,
    seeds: (u64, u64),
    profile: String,
    duration: u64,
    trace: bool,
    only_ours: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        nodes: 5,
        groups: 10,
        seeds: (0, 1),
        profile: "default".into(),
        duration: 120,
        trace: false,
        only_ours: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--nodes" => a.nodes = val()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--groups" => a.groups = val()?.parse().map_err(|e| format!("--groups: {e}"))?,
            "--duration" => a.duration = val()?.parse().map_err(|e| format!("--duration: {e}"))?,
            "--faults" => a.profile = val()?,
            "--help" | "-h" => return Err(String::new()),
            "--trace" => a.trace = true,
            "--only-ours" => a.only_ours = true,
            "--seeds" => {
                let v = val()?;
                let (x, y) = v.split_once("..").ok_or("--seeds wants A..B")?;
                let x: u64 = x.parse().map_err(|e| format!("--seeds: {e}"))?;
                let y: u64 = y.parse().map_err(|e| format!("--seeds: {e}"))?;
                a.seeds = (x, y.max(x + 1));
            }
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    if sim::memory::wanted() {
        sim::alloc::count();
    }
    let a = match parse() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sim: {e}\n{HELP}");
            return ExitCode::from(2);
        }
    };
    let Some(profile) = Profile::named(&a.profile) else {
        eprintln!(
            "sim: unknown fault profile {} (none, default, symmetric, heavy, operator, admin, \
             placement, failures, owners, daemons)",
            a.profile
        );
        return ExitCode::from(2);
    };
    let om_skipped = !a.only_ours && !om_fits(a.nodes, a.groups);
    if om_skipped {
        println!(
            "OpenMosix::HA side skipped: its cold start plans every group on every node, \
             {} x {} x {} claims held in the views at once (more than {OM_MAX_CLAIM_COPIES}); \
             mosha only",
            a.nodes, a.nodes, a.groups
        );
    }
    let only_ours = a.only_ours || om_skipped;
    let t0 = Instant::now();
    let dur = a.duration * 1000;
    let (mut ours, mut om) = (Stats::default(), Stats::default());
    let (mut cold_a, mut cold_b) = (Vec::new(), Vec::new());
    let mut bad = 0u64;
    for seed in a.seeds.0..a.seeds.1 {
        let o = run_one(a.nodes, a.groups, dur, seed, &profile, Kind::Ours, a.trace);
        for l in &o.trace {
            println!("[mosha] {l}");
        }
        if !o.stats.violations.is_empty() {
            bad += 1;
            for (_, v) in &o.stats.violations {
                println!("VIOLATION {v}");
            }
            println!(
                "  replay: {}",
                replay_command(a.nodes, a.groups, dur, seed, &a.profile)
            );
        }
        cold_a.extend(o.stats.cold_place);
        ours.merge(&o.stats);
        if !only_ours {
            let o = run_one(
                a.nodes,
                a.groups,
                dur,
                seed,
                &profile,
                Kind::OpenMosix,
                a.trace,
            );
            for l in &o.trace {
                println!("[openmosix] {l}");
            }
            cold_b.extend(o.stats.cold_place);
            om.merge(&o.stats);
        }
    }
    let n = a.seeds.1 - a.seeds.0;
    println!(
        "nodes {} groups {} seeds {}..{} ({n}) faults {} simulated {} s each; wall {:.1} s",
        a.nodes,
        a.groups,
        a.seeds.0,
        a.seeds.1,
        a.profile,
        a.duration,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "engine steps {} events {} (mosha runs)",
        ours.steps, ours.events
    );
    print!("{}", table(&ours, &om, (&cold_a, &cold_b)));
    if !om.violations.is_empty() {
        println!(
            "(OpenMosix::HA violations are expected: it has no fencing and no cooldown; first: {})",
            om.violations[0].1
        );
    }
    if bad > 0 {
        println!("mosha: {bad} seed(s) with invariant violations");
        return ExitCode::from(1);
    }
    println!("mosha: no invariant violation");
    ExitCode::SUCCESS
}
