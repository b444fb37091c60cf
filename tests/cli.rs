//! The real binary: help texts, error reporting, and the demo.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

use std::process::{Command, Output};

fn fedprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedprof"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_command_and_each_command_documents_its_options() {
    let (out, _) = text(&fedprof(&["--help"]));
    for cmd in [
        "demo",
        "federation",
        "coordinator",
        "node",
        "job",
        "local",
        "label",
        "features",
        "gen-data",
        "audit",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}:\n{out}");
    }
    for (args, expect) in [
        (
            &["demo", "--help"][..],
            &[
                "--out <DIR>",
                "--nodes <N>",
                "[default: 3]",
                "--customers <C>",
                "--seed",
            ][..],
        ),
        (
            &["local", "--help"],
            &[
                "--node <NODE.toml>",
                "--job <JOB.toml>",
                "--out <DIR>",
                "--coordinator",
                "--previous-model",
            ],
        ),
        (
            &["label", "--help"],
            &[
                "--config <NODE.toml>",
                "--model <MODEL.json>",
                "--out <OUT.csv>",
                "--previous-model",
                "--reveal-ids",
            ],
        ),
        (&["job", "submit", "--help"], &["[JOB.toml]", "--out <DIR>"]),
        (
            &["federation", "init", "--help"],
            &[
                "--dir <DIR>",
                "--coordinator <HOST:PORT>",
                "--nodes <NAMES>",
                "--analysts",
                "--auditors",
            ],
        ),
        (&["coordinator", "--help"], &["--config <FILE>"]),
        (&["node", "--help"], &["--config <FILE>", "reconnects"]),
        (
            &["job", "submit", "--help"],
            &[
                "--config <FILE>",
                "--kind",
                "totals",
                "--max-rows",
                "--rho <RHO>",
            ],
        ),
    ] {
        let o = fedprof(args);
        assert!(o.status.success(), "{args:?}");
        let (out, _) = text(&o);
        for e in expect {
            assert!(
                out.contains(e),
                "`fedprof {}` lacks {e:?}:\n{out}",
                args.join(" ")
            );
        }
    }
    let o = fedprof(&["--version"]);
    assert!(text(&o).0.starts_with("fedprof "));
}

#[test]
fn a_broken_config_is_reported_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let fed = dir.path().join("fed");
    let o = fedprof(&[
        "federation",
        "init",
        "--dir",
        fed.to_str().unwrap(),
        "--coordinator",
        "127.0.0.1:7300",
        "--nodes",
        "a,b",
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("node-a.toml"));
    let path = fed.join("coordinator.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replace("min_nodes = 2", "min_nodes = \"two\""),
    )
    .unwrap();
    let line = config
        .lines()
        .position(|l| l.starts_with("min_nodes"))
        .unwrap()
        + 1;
    let o = fedprof(&["coordinator", "--config", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let (_, err) = text(&o);
    let want = format!(
        "{}:{line}:13: field `rounds.min_nodes`: invalid type",
        path.display()
    );
    assert!(err.contains(&want), "expected {want:?} in:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let o = fedprof(&[
        "node",
        "--config",
        fed.join("node-a.toml").to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert!(
        err.contains("field `data.transactions`") && err.contains("transactions.csv"),
        "{err}"
    );

    // Security review M12: a TLS key others can read is refused, naming the file and the fix.
    std::fs::write(&path, &config).unwrap();
    let key = fed.join("parties/coordinator-coordinator/key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = fedprof(&["coordinator", "--config", path.to_str().unwrap()]);
        assert!(!o.status.success());
        let (_, err) = text(&o);
        assert!(
            err.contains("key.pem: mode 644") && err.contains("chmod 600"),
            "{err}"
        );
    }
}

#[test]
fn the_demo_profiles_the_bank_scenario_and_audits_the_ledgers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = fedprof(&[
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--nodes",
        "4",
        "--customers",
        "2000",
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("nodes: branch-1, branch-2, branch-3, branch-4"),
        "{stdout}"
    );
    for section in ["rfm", "lifecycle", "kmeans", "clustering: 5 iterations"] {
        assert!(stdout.contains(section), "{section}: {stdout}");
    }
    assert!(stdout.contains("verified"), "the audit passes: {stdout}");
    assert!(
        stdout.contains(out.to_str().unwrap()),
        "says where its files are"
    );
    assert!(
        stderr.contains("nodes registered"),
        "progress is shown: {stderr}"
    );
    for f in ["report.html", "report.json", "model.json", "segments.csv"] {
        assert!(out.join("profile").join(f).is_file(), "{f}");
    }
    let html = std::fs::read_to_string(out.join("profile/report.html")).unwrap();
    assert_eq!(
        fedprof_profile::html::external_references(&html),
        Vec::<String>::new()
    );
    assert!(out.join("federation/ca.pem").is_file());

    // Every next step the demo prints works on the demo's federation (restarts issue: the
    // suggested `fedprof local` used to fail at once, the coordinator unable to reopen its
    // ledger). `fedprof local` runs a second job, restarting the coordinator on its ledger
    // and journal; the audit then covers both jobs.
    let fed = out.join("federation");
    let mut local = vec!["local".to_owned()];
    for n in 1..=4 {
        local.push("--node".into());
        local.push(
            fed.join(format!("node-branch-{n}.toml"))
                .display()
                .to_string(),
        );
    }
    let second = dir.path().join("second");
    local.extend([
        "--job".into(),
        fed.join("job.toml").display().to_string(),
        "--out".into(),
        second.display().to_string(),
    ]);
    let args: Vec<&str> = local.iter().map(String::as_str).collect();
    let o = fedprof(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "fedprof local: {stdout}\n{stderr}");
    assert!(second.join("report.html").is_file());
    assert!(!second.join("run.json").exists(), "the run finished");
    let labels = dir.path().join("labels.csv");
    let o = fedprof(&[
        "label",
        "--config",
        fed.join("node-branch-1.toml").to_str().unwrap(),
        "--model",
        out.join("profile/model.json").to_str().unwrap(),
        "--out",
        labels.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "fedprof label: {stdout}\n{stderr}");
    assert!(std::fs::read_to_string(&labels).unwrap().lines().count() > 1);
    for cmd in ["report", "verify"] {
        let o = fedprof(&["audit", cmd, fed.to_str().unwrap()]);
        let (stdout, stderr) = text(&o);
        assert!(
            o.status.success(),
            "fedprof audit {cmd}: {stdout}\n{stderr}"
        );
    }
}

/// SIGTERM (what service managers send) shuts a node down like Ctrl-C: gracefully, exit 0,
/// saying so in the log, instead of the default death by signal.
#[test]
fn sigterm_stops_a_node_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        fedprof::demo::prepare(dir.path(), 2, 50, 3, &fedprof::progress::Progress::new()).unwrap();
    // No coordinator runs: the node keeps reconnecting until it is told to stop.
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedprof"))
        .args(["node", "--config"])
        .arg(&p.node_paths[0])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
}
