//! Unit tests of the agent module: parsing, invocations, outcome tables, meta-data.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::*;

/// Debian bookworm's `Dummy meta-data` output (resource-agents 1:4.12.0-2), verbatim.
const DUMMY_META_DATA: &str = include_str!("testdata/Dummy.meta-data.xml");

fn agent(command: &str) -> Agent {
    match Agent::parse(command) {
        Some(Ok(a)) => a,
        other => panic!("{command:?} should parse, got {other:?}"),
    }
}

fn error(command: &str) -> String {
    match Agent::parse(command) {
        Some(Err(e)) => e,
        other => panic!("{command:?} should be refused, got {other:?}"),
    }
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ctx() -> Context<'static> {
    Context {
        ocf_root: Path::new("/usr/lib/ocf"),
        lsb_dir: Path::new("/etc/init.d"),
        rsc_tmp: Path::new("/run/resource-agents"),
        instance: "vip",
        node: "n1",
        timeout: Duration::from_secs(20),
        interval: Duration::from_secs(10),
    }
}

#[test]
fn ordinary_commands_name_no_agent() {
    for c in [
        "/usr/sbin/apache2 -DFOREGROUND",
        "ocfs2_hb_ctl -S",
        "echo ocf:heartbeat:Dummy",
        "OCF:heartbeat:Dummy",
        "lsb",
        "systemd-notify --ready",
        "",
    ] {
        assert_eq!(Agent::parse(c), None, "{c:?}");
    }
}

#[test]
fn parses_ocf_agents_with_parameters() {
    let a = agent("ocf:heartbeat:IPaddr2 ip=10.0.0.5 cidr_netmask=24\tnic=eth0");
    assert_eq!(
        a.class,
        Class::Ocf {
            provider: "heartbeat".into(),
            kind: "IPaddr2".into()
        }
    );
    assert_eq!(
        a.params,
        params(&[("ip", "10.0.0.5"), ("cidr_netmask", "24"), ("nic", "eth0")])
    );
    assert_eq!(a.name(), "ocf:heartbeat:IPaddr2");
    assert_eq!(agent("  ocf:pacemaker:Dummy  ").params, params(&[]));
    assert_eq!(
        agent("ocf:my-corp.v2:big_app").name(),
        "ocf:my-corp.v2:big_app"
    );
}

#[test]
fn a_quoted_value_holds_spaces_and_no_other_quoting_exists() {
    let a = agent(r#"ocf:heartbeat:Filesystem options="noatime, ro" fstype=ext4 x="a=b""#);
    assert_eq!(
        a.params,
        params(&[("options", "noatime, ro"), ("fstype", "ext4"), ("x", "a=b")])
    );
    // A backslash or a single quote is an ordinary character.
    assert_eq!(
        agent(r"ocf:a:b v='x' w=a\b").params,
        params(&[("v", "'x'"), ("w", r"a\b")])
    );
}

#[test]
fn refuses_malformed_ocf_agents_with_the_reason() {
    let cases = [
        (
            "ocf:heartbeat:",
            "ocf agent 'ocf:heartbeat:' has no type (expected ocf:PROVIDER:TYPE)",
        ),
        (
            "ocf:heartbeat",
            "ocf agent 'ocf:heartbeat' has no type (expected ocf:PROVIDER:TYPE)",
        ),
        (
            "ocf::Dummy",
            "ocf agent 'ocf::Dummy' has no provider (expected ocf:PROVIDER:TYPE)",
        ),
        (
            "ocf:",
            "ocf agent 'ocf:' has no provider (expected ocf:PROVIDER:TYPE)",
        ),
        (
            "ocf:a:b:c",
            "ocf agent 'ocf:a:b:c' has too many ':' (expected ocf:PROVIDER:TYPE)",
        ),
        (
            "ocf:heart/beat:Dummy",
            "invalid character '/' in ocf provider \"heart/beat\" (allowed: letters, digits, '_', '.', '-')",
        ),
        (
            "ocf:heartbeat:..",
            "ocf type \"..\" must not start with '-' or '.'",
        ),
        (
            "ocf:-x:Dummy",
            "ocf provider \"-x\" must not start with '-' or '.'",
        ),
    ];
    for (command, message) in cases {
        assert_eq!(error(command), message, "{command:?}");
    }
}

#[test]
fn refuses_malformed_parameters_with_the_reason() {
    let cases = [
        ("ip", "parameter 'ip' is not name=value"),
        ("ip=1 ip=2", "parameter 'ip' is given twice"),
        ("ip=", "parameter 'ip' has an empty value"),
        ("ip=\"\"", "parameter 'ip' has an empty value"),
        ("=1", "a parameter has no name before '='"),
        (
            "2ip=1",
            "parameter name '2ip' is not a letter or '_' followed by letters, digits and '_' (it becomes OCF_RESKEY_2ip)",
        ),
        (
            "my-ip=1",
            "parameter name 'my-ip' is not a letter or '_' followed by letters, digits and '_' (it becomes OCF_RESKEY_my-ip)",
        ),
        (
            "CRM_meta_timeout=5",
            "parameter 'CRM_meta_timeout' is reserved: mosha sets OCF_RESKEY_CRM_meta_* itself",
        ),
        (
            "options=\"a b",
            "parameter 'options' opens a double quote and does not close it",
        ),
        (
            "options=\"a b\"c",
            "parameter 'options': the closing double quote must end the value",
        ),
        (
            "options=a\"b c\"",
            "parameter 'options': a double quote may only enclose the whole value (options=\"a b\")",
        ),
    ];
    for (text, message) in cases {
        let command = format!("ocf:heartbeat:Dummy {text}");
        assert_eq!(error(&command), message, "{command:?}");
    }
}

#[test]
fn at_most_64_parameters() {
    let names = |n: usize| {
        (0..n)
            .map(|i| format!("p{i}=v"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let a = agent(&format!("ocf:heartbeat:Dummy {}", names(64)));
    assert_eq!(a.params.len(), 64);
    assert_eq!(
        error(&format!("ocf:heartbeat:Dummy {}", names(65))),
        "more than 64 parameters"
    );
}

#[test]
fn parses_lsb_scripts() {
    let a = agent("lsb:nginx");
    assert_eq!(
        a.class,
        Class::Lsb {
            script: "nginx".into()
        }
    );
    assert_eq!(a.name(), "lsb:nginx");
    assert_eq!(a.unit(), None);
    assert_eq!(error("lsb:"), "lsb agent 'lsb:' has no script name");
    assert_eq!(
        error("lsb:../../bin/sh"),
        "invalid character '/' in lsb script \"../../bin/sh\" (allowed: letters, digits, '_', '.', '-')"
    );
    assert_eq!(
        error("lsb:nginx x=1"),
        "lsb:nginx takes no parameters (only OCF agents do): 'x=1'"
    );
}

#[test]
fn parses_systemd_units_with_service_implied() {
    let a = agent("systemd:nginx");
    assert_eq!(
        a.class,
        Class::Systemd {
            unit: "nginx".into()
        }
    );
    assert_eq!(a.name(), "systemd:nginx");
    assert_eq!(a.unit().as_deref(), Some("nginx.service"));
    for (written, unit) in [
        ("nginx.service", "nginx.service"),
        ("php7.4-fpm", "php7.4-fpm.service"),
        ("getty@tty1", "getty@tty1.service"),
        ("mnt-data.mount", "mnt-data.mount"),
        ("backup.timer", "backup.timer"),
        (
            r"dev-disk-by\x2dlabel-x.device",
            r"dev-disk-by\x2dlabel-x.device",
        ),
    ] {
        let a = agent(&format!("systemd:{written}"));
        assert_eq!(a.name(), format!("systemd:{written}"));
        assert_eq!(a.unit().as_deref(), Some(unit), "{written}");
    }
    assert_eq!(
        error("systemd:"),
        "systemd agent 'systemd:' has no unit name"
    );
    assert_eq!(
        error("systemd:--now"),
        "systemd unit \"--now\" must not start with '-' or '.'"
    );
    assert_eq!(
        error("systemd:a/b"),
        "invalid character '/' in systemd unit \"a/b\" (allowed: letters, digits, ':', '-', '_', '.', '\\', '@')"
    );
    assert_eq!(
        error("systemd:nginx.service x=1"),
        "systemd:nginx.service takes no parameters (only OCF agents do): 'x=1'"
    );
    assert!(error(&format!("systemd:{}", "a".repeat(256))).contains("256 bytes"));
}

/// The whole environment of an OCF monitor, in order.
#[test]
fn ocf_monitor_invocation_has_the_ocf_environment() {
    let a = agent("ocf:heartbeat:IPaddr2 ip=10.0.0.5 options=\"a b\"");
    let inv = a.invocation(Action::Monitor, &ctx());
    assert_eq!(
        inv.program,
        Path::new("/usr/lib/ocf/resource.d/heartbeat/IPaddr2")
    );
    assert_eq!(inv.args, ["monitor"]);
    let expected = params(&[
        ("OCF_ROOT", "/usr/lib/ocf"),
        ("OCF_RA_VERSION_MAJOR", "1"),
        ("OCF_RA_VERSION_MINOR", "1"),
        ("OCF_RESOURCE_INSTANCE", "vip"),
        ("OCF_RESOURCE_TYPE", "IPaddr2"),
        ("OCF_RESOURCE_PROVIDER", "heartbeat"),
        ("OCF_RESKEY_ip", "10.0.0.5"),
        ("OCF_RESKEY_options", "a b"),
        ("OCF_RESKEY_CRM_meta_timeout", "20000"),
        ("OCF_RESKEY_CRM_meta_interval", "10000"),
        ("OCF_RESKEY_CRM_meta_on_node", "n1"),
        ("OCF_RESKEY_CRM_meta_name", "monitor"),
        ("OCF_CHECK_LEVEL", "0"),
        ("HA_RSCTMP", "/run/resource-agents"),
    ]);
    assert_eq!(inv.env, expected);
}

fn env_of(inv: &Invocation) -> BTreeMap<&str, &str> {
    inv.env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn ocf_actions_set_their_name_interval_and_check_level() {
    let a = agent("ocf:heartbeat:Dummy");
    let c = Context {
        timeout: Duration::from_millis(1500),
        ..ctx()
    };
    let table = [
        (Action::Start, "start", None),
        (Action::Stop, "stop", None),
        (Action::Monitor, "monitor", Some("0")),
        (Action::Probe, "monitor", Some("0")),
        (Action::MetaData, "meta-data", None),
        (Action::ValidateAll, "validate-all", Some("0")),
    ];
    for (action, name, level) in table {
        let inv = a.invocation(action, &c);
        let env = env_of(&inv);
        assert_eq!(inv.args, [name], "{action:?}");
        assert_eq!(env["OCF_RESKEY_CRM_meta_name"], name, "{action:?}");
        assert_eq!(env["OCF_RESKEY_CRM_meta_timeout"], "1500", "{action:?}");
        let interval = if action == Action::Monitor {
            "10000"
        } else {
            "0"
        };
        assert_eq!(env["OCF_RESKEY_CRM_meta_interval"], interval, "{action:?}");
        assert_eq!(env.get("OCF_CHECK_LEVEL").copied(), level, "{action:?}");
    }
}

#[test]
fn lsb_invocations_run_the_script_or_true() {
    let a = agent("lsb:nginx");
    let c = Context {
        lsb_dir: Path::new("/tmp/init.d"),
        ..ctx()
    };
    for (action, verb) in [
        (Action::Start, "start"),
        (Action::Stop, "stop"),
        (Action::Monitor, "status"),
        (Action::Probe, "status"),
    ] {
        let inv = a.invocation(action, &c);
        assert_eq!(inv.program, Path::new("/tmp/init.d/nginx"));
        assert_eq!(inv.args, [verb]);
        assert!(inv.env.is_empty());
    }
    for action in [Action::MetaData, Action::ValidateAll] {
        let inv = a.invocation(action, &c);
        assert_eq!(inv.program, Path::new("/bin/true"));
        assert!(inv.args.is_empty() && inv.env.is_empty());
    }
}

#[test]
fn systemd_invocations_use_systemctl() {
    let a = agent("systemd:nginx");
    let table: [(Action, &str, &[&str]); 6] = [
        (Action::Start, "systemctl", &["start", "nginx.service"]),
        (Action::Stop, "systemctl", &["stop", "nginx.service"]),
        (
            Action::Monitor,
            "systemctl",
            &["is-active", "--quiet", "nginx.service"],
        ),
        (
            Action::Probe,
            "systemctl",
            &["is-active", "--quiet", "nginx.service"],
        ),
        (Action::MetaData, "/bin/true", &[]),
        (Action::ValidateAll, "/bin/true", &[]),
    ];
    for (action, program, args) in table {
        let inv = a.invocation(action, &ctx());
        assert_eq!(inv.program, Path::new(program), "{action:?}");
        assert_eq!(inv.args, args, "{action:?}");
        assert!(inv.env.is_empty());
    }
}

/// Checks each `(action, exit code, outcome)` of `table` for agent `a`.
fn assert_outcomes<const N: usize>(a: &Agent, table: [(Action, i32, Outcome); N]) {
    for (action, code, outcome) in table {
        assert_eq!(
            a.outcome(action, Exit::Code(code)),
            outcome,
            "{} {action:?} {code}",
            a.name()
        );
    }
}

fn soft(s: &str) -> Outcome {
    Outcome::Soft(s.to_string())
}

fn hard(s: &str) -> Outcome {
    Outcome::Hard(s.to_string())
}

#[test]
fn ocf_outcomes_follow_the_spec_and_pacemaker() {
    use Action::*;
    let a = agent("ocf:heartbeat:Dummy");
    let table = [
        (Start, 0, Outcome::Ok),
        (Stop, 0, Outcome::Ok),
        (Monitor, 0, Outcome::Ok),
        (Probe, 7, Outcome::NotRunning),
        (Monitor, 7, Outcome::NotRunning),
        (Stop, 7, Outcome::Ok),
        (Start, 7, soft("not running (7)")),
        (ValidateAll, 7, soft("not running (7)")),
        (Monitor, 190, Outcome::Degraded),
        (Monitor, 191, Outcome::Degraded),
        (Monitor, 8, Outcome::Ok),
        (Monitor, 1, soft("generic error (1)")),
        (Start, 1, soft("generic error (1)")),
        (Start, 2, hard("invalid arguments (2)")),
        (Start, 3, hard("unimplemented (3)")),
        (Monitor, 4, hard("insufficient privileges (4)")),
        (Probe, 5, hard("not installed (5)")),
        (
            ValidateAll,
            6,
            Outcome::Fatal("not configured (6)".to_string()),
        ),
        (Monitor, 9, soft("failed promoted (9)")),
        (Start, 42, soft("exit status 42")),
        (Stop, 255, soft("exit status 255")),
        (Stop, 127, soft("exit status 127")),
    ];
    assert_outcomes(&a, table);
    assert_eq!(
        a.outcome(Stop, Exit::Signal(9)),
        soft("killed by signal 9 (SIGKILL)")
    );
}

#[test]
fn lsb_outcomes_map_status_codes_as_pacemaker() {
    use Action::*;
    let a = agent("lsb:nginx");
    let table = [
        (Monitor, 0, Outcome::Ok),
        (Probe, 1, Outcome::NotRunning),
        (Monitor, 2, Outcome::NotRunning),
        (Monitor, 3, Outcome::NotRunning),
        (Monitor, 4, soft("status unknown (4)")),
        (Monitor, 150, hard("not installed (150)")),
        (Monitor, 151, hard("insufficient privileges (151)")),
        (Monitor, 5, hard("not installed (5)")),
        (Monitor, 7, Outcome::NotRunning),
        (Monitor, 8, soft("exit status 8")),
        (Start, 0, Outcome::Ok),
        (Start, 1, soft("generic error (1)")),
        (Start, 3, hard("unimplemented (3)")),
        (Start, 6, Outcome::Fatal("not configured (6)".to_string())),
        (Stop, 7, Outcome::Ok),
        (Start, 190, soft("exit status 190")),
        (ValidateAll, 0, Outcome::Ok),
        (MetaData, 1, soft("exit status 1")),
    ];
    assert_outcomes(&a, table);
    assert_eq!(
        a.outcome(Start, Exit::Signal(15)),
        soft("killed by signal 15 (SIGTERM)")
    );
}

#[test]
fn systemd_outcomes() {
    use Action::*;
    let a = agent("systemd:nginx");
    let table = [
        (Monitor, 0, Outcome::Ok),
        (Probe, 3, Outcome::NotRunning),
        (Monitor, 4, Outcome::NotRunning),
        (Start, 0, Outcome::Ok),
        (Stop, 0, Outcome::Ok),
        (Start, 1, soft("systemctl exited 1")),
        (Stop, 5, soft("systemctl exited 5")),
        (ValidateAll, 0, Outcome::Ok),
    ];
    assert_outcomes(&a, table);
    assert_eq!(
        a.outcome(Monitor, Exit::Signal(9)),
        soft("killed by signal 9 (SIGKILL)")
    );
}

#[test]
fn installed_needs_an_executable_file() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("resource.d/acme");
    std::fs::create_dir_all(&dir).unwrap();
    let c = Context {
        ocf_root: root.path(),
        lsb_dir: &dir,
        ..ctx()
    };
    let a = agent("ocf:acme:App");
    let l = agent("lsb:App");
    assert!(!a.installed(&c) && !l.installed(&c));
    std::fs::write(dir.join("App"), "#!/bin/sh\n").unwrap();
    let set = |mode| {
        std::fs::set_permissions(dir.join("App"), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set(0o644);
    assert!(!a.installed(&c));
    set(0o700);
    assert!(a.installed(&c) && l.installed(&c));
    set(0o641);
    assert!(a.installed(&c));
    // A directory is no agent.
    std::fs::create_dir(dir.join("Dir")).unwrap();
    assert!(!agent("ocf:acme:Dir").installed(&c));
    // systemd: systemctl and a running systemd, as this host has them.
    let running = Path::new("/run/systemd/system").is_dir()
        && (Path::new("/usr/bin/systemctl").exists() || Path::new("/bin/systemctl").exists());
    assert_eq!(agent("systemd:nginx").installed(&c), running);
}

#[test]
fn reads_the_timeouts_of_debians_dummy() {
    assert!(DUMMY_META_DATA.contains("<resource-agent name=\"Dummy\""));
    let t = meta_timeouts(DUMMY_META_DATA);
    let s = Duration::from_secs;
    let expected: BTreeMap<String, Duration> = [
        ("start", s(20)),
        ("stop", s(20)),
        ("monitor", s(20)),
        ("reload", s(20)),
        ("migrate_to", s(20)),
        ("migrate_from", s(20)),
        ("meta-data", s(5)),
        ("validate-all", s(20)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(t, expected);
}

#[test]
fn meta_data_scanner_is_tolerant_and_bounded() {
    let xml = r#"<?xml version="1.0"?>
        <resource-agent name="x"><actions>
        <!-- <action name="start" timeout="999s"/> -->
        <action name='start' timeout='2m'/>
        <action
            timeout = "500ms" name="stop" >
        <action name="monitor" timeout="10s" interval="10s" role="Promoted"/>
        <action name="monitor" timeout="30s" interval="11s" role="Unpromoted"/>
        <action name="promote"/>
        <action name="demote" timeout="soon"/>
        <action name="notify" timeout="0"/>
        <actionsfoo name="reload" timeout="5s"/>
        <![CDATA[ <action name="recover" timeout="1s"/> ]]>
        <action name="meta-data" timeout="1min"
    "#;
    let t = meta_timeouts(xml);
    let expected: BTreeMap<String, Duration> = [
        ("start", Duration::from_secs(120)),
        ("stop", Duration::from_millis(500)),
        ("monitor", Duration::from_secs(30)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(t, expected);
    assert!(meta_timeouts("").is_empty());
    assert!(meta_timeouts("<<<>>><action name=\"x\" timeout=").is_empty());
    assert!(meta_timeouts("<!-- never closed <action name=\"a\" timeout=\"1\"/>").is_empty());

    // At most 64 action elements are read.
    let many: String = (0..100)
        .map(|i| format!("<action name=\"a{i}\" timeout=\"{}s\"/>", i + 1))
        .collect();
    let t = meta_timeouts(&many);
    assert_eq!(t.len(), MAX_META_ACTIONS);
    assert_eq!(t["a63"], Duration::from_secs(64));
    assert!(!t.contains_key("a64"));

    // Nothing past the first MiB is read (the cut falls inside a multi-byte character).
    let mut big = "é".repeat(MAX_META_BYTES / 2 - 1);
    big.push('x');
    big.push_str("<action name=\"late\" timeout=\"1s\"/>");
    assert!(meta_timeouts(&big).is_empty());
    let early = format!("<action name=\"early\" timeout=\"1s\"/>{big}");
    assert_eq!(meta_timeouts(&early).len(), 1);
}

#[test]
fn parses_pacemaker_timeouts() {
    let ms = Duration::from_millis;
    let table = [
        ("20s", Some(ms(20_000))),
        ("20", Some(ms(20_000))),
        (" 20 s ", Some(ms(20_000))),
        ("20sec", Some(ms(20_000))),
        ("2m", Some(ms(120_000))),
        ("1min", Some(ms(60_000))),
        ("500ms", Some(ms(500))),
        ("500msec", Some(ms(500))),
        ("1500us", Some(Duration::from_micros(1500))),
        ("1h", Some(ms(3_600_000))),
        ("24hr", Some(ms(86_400_000))),
        ("20S", Some(ms(20_000))),
        ("25h", None),
        ("0", None),
        ("0s", None),
        ("", None),
        ("s", None),
        ("-5s", None),
        ("1.5s", None),
        ("20 seconds", None),
        ("99999999999999999999999s", None),
        ("307445734561825861m", None),
    ];
    for (text, expected) in table {
        assert_eq!(parse_timeout(text), expected, "{text:?}");
    }
}

#[test]
fn takes_the_last_exit_reason_cut_at_128_characters() {
    assert_eq!(
        exit_reason("ocf-exit-reason:[findif] failed"),
        Some("[findif] failed")
    );
    assert_eq!(exit_reason("ERROR: x"), None);
    let stderr = "Dec 06 ERROR: IP address [x] not valid.\n\
                  ocf-exit-reason:first\n\
                  ocf-exit-reason:  \n\
                  ocf-exit-reason:[findif] failed\n\
                  trailing noise\n";
    assert_eq!(last_exit_reason(stderr).as_deref(), Some("[findif] failed"));
    assert_eq!(last_exit_reason("nothing here\n"), None);
    let long = format!("ocf-exit-reason:{}", "é".repeat(300));
    assert_eq!(last_exit_reason(&long).unwrap().chars().count(), 128);
}
