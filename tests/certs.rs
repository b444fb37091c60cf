//! The certificate lifecycle end to end (security review H6, H7): revocation enforced by the
//! real coordinator service over QUIC, SIGHUP on the real binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestFed, policy, totals_spec, transactions};
use fedprof_protocol::{JobOutcome, PartyId, PartyName, Role};

const T: Duration = Duration::from_secs(60);

fn node(name: &str) -> PartyId {
    PartyId {
        role: Role::Node,
        name: PartyName::new(name).unwrap(),
    }
}

fn contributors(outcome: &JobOutcome) -> Vec<String> {
    let JobOutcome::Completed { result, .. } = outcome else {
        panic!("aborted: {outcome:?}")
    };
    result.contributors.iter().map(|n| n.to_string()).collect()
}

/// H6: after `fedprof federation revoke` and the reload SIGHUP triggers, a revoked node's live
/// connection is closed, its reconnections are refused (it never registers again, so it is
/// in no roster), the others go on releasing, and its earlier ledger entries still verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h6_a_revoked_node_is_cut_off_at_the_reload_and_cannot_register_again() {
    let mut fed = TestFed::start(policy(2, 30), |_| transactions(20, 40, 1000)).await;
    let _nodes: Vec<_> = common::NODES.iter().map(|n| fed.start_node(n)).collect();
    fed.wait_for(3).await;
    let before = tokio::time::timeout(T, fed.handle.run_job(totals_spec("1/4")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contributors(&before), ["a", "b", "c"]);

    let now = time::OffsetDateTime::now_utc();
    fedprof::certs::revoke(&fed.fed.dir, &node("c"), "key leaked", now).unwrap();
    let list = fed.handle.reload_revocations().await.unwrap();
    assert_eq!(list.sequence(), 1);
    let registered = tokio::time::timeout(
        Duration::from_secs(10),
        fed.handle.wait_for_nodes(|l| l.len() == 2),
    )
    .await
    .expect("the revoked node was not cut off")
    .unwrap();
    assert_eq!(registered, ["a", "b"].map(|n| PartyName::new(n).unwrap()));
    // Node c keeps reconnecting (50 ms backoff at first): each new handshake is refused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fed.handle.nodes().len(), 2);
    let after = tokio::time::timeout(T, fed.handle.run_job(totals_spec("1/4")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contributors(&after), ["a", "b"]);
    // The next list (b revoked too) replaces it; the older one, put back, is refused and
    // re-admits nobody.
    let path = fed.fed.dir.join("revoked.json");
    let one = std::fs::read(&path).unwrap();
    fedprof::certs::revoke(&fed.fed.dir, &node("b"), "", now).unwrap();
    assert_eq!(fed.handle.reload_revocations().await.unwrap().sequence(), 2);
    tokio::time::timeout(
        Duration::from_secs(10),
        fed.handle.wait_for_nodes(|l| l.len() == 1),
    )
    .await
    .expect("b was not cut off")
    .unwrap();
    std::fs::write(&path, &one).unwrap();
    let err = fed.handle.reload_revocations().await.unwrap_err();
    assert!(err.to_string().contains("older"), "{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fed.handle.nodes(), [PartyName::new("a").unwrap()]);

    let (dir, _keep) = (fed.fed.dir.clone(), fed.stop_keeping_files().await);
    for n in common::NODES {
        let from = dir.join(format!("state/node-{n}/ledger.jsonl"));
        std::fs::copy(&from, dir.join(format!("ledgers/node-{n}.jsonl"))).unwrap();
    }
    let report = fedprof::audit::verify_dir(&dir, now).unwrap();
    assert_eq!(report.releases, 2);
}

/// A running `fedprof` service (its log captured).
struct Service(std::process::Child);

impl Service {
    fn start(args: &[&std::ffi::OsStr]) -> Service {
        let child = Command::new(env!("CARGO_BIN_EXE_fedprof"))
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Service(child)
    }

    fn signal(&self, sig: &str) {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    /// Stops it with SIGTERM; its log, after checking it exited 0.
    fn stop(mut self) -> String {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the service did not stop");
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut log = String::new();
        std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut log).unwrap();
        let log = without_colours(&log);
        assert_eq!(status.code(), Some(0), "{log}");
        log
    }
}

fn fedprof_ok(args: &[&std::ffi::OsStr]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_fedprof"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A SIGHUP reloads the revocation list of a running `fedprof coordinator` and `fedprof node`
/// and never stops them, also when the new file is refused; a certificate about to expire is
/// warned about at start.
#[test]
fn sighup_reloads_the_list_and_the_services_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        fedprof::demo::prepare(dir.path(), 2, 50, 3, &fedprof::progress::Progress::new()).unwrap();
    let fed = p.fed_dir.as_os_str();
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    // A coordinator certificate valid for one more day: the start is warned about.
    let party = [
        os("--party"),
        os("coordinator-coordinator"),
        os("--days"),
        os("1"),
    ];
    fedprof_ok(
        &[
            &[os("federation"), os("renew"), os("--dir"), fed][..],
            &party,
        ]
        .concat(),
    );
    let mut coordinator =
        Service::start(&[os("coordinator"), os("--config"), p.coordinator.as_os_str()]);
    let mut node = Service::start(&[os("node"), os("--config"), p.node_paths[0].as_os_str()]);
    std::thread::sleep(Duration::from_millis(1500));
    let party = [
        os("--party"),
        os("node-branch-2"),
        os("--reason"),
        os("test"),
    ];
    let out = fedprof_ok(
        &[
            &[os("federation"), os("revoke"), os("--dir"), fed][..],
            &party,
        ]
        .concat(),
    );
    assert!(out.contains("sequence 1"), "{out}");
    for service in [&coordinator, &node] {
        service.signal("-HUP");
    }
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(p.fed_dir.join("revoked.json"), "not a list").unwrap();
    for service in [&coordinator, &node] {
        service.signal("-HUP");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(coordinator.running(), "the coordinator stopped on SIGHUP");
    assert!(node.running(), "the node stopped on SIGHUP");
    let (node_log, coordinator_log) = (node.stop(), coordinator.stop());
    for log in [&node_log, &coordinator_log] {
        assert!(log.contains("revocation list in force sequence=1"), "{log}");
        assert!(log.contains("not reloaded"), "{log}");
    }
    let log = coordinator_log;
    assert!(log.contains("certificate expires soon"), "{log}");
    assert!(log.contains("within_days=1"), "{log}");
}

/// The log text without ANSI colour sequences (`ESC [ ... m`).
fn without_colours(log: &str) -> String {
    let mut out = String::new();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}
