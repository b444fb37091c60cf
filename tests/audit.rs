//! `fedprof audit` end to end: a federation from `federation::init`, ledgers written by the
//! real node and coordinator stores with the parties' own certificate keys, then the binary on
//! intact and tampered copies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fedprof::federation::{FederationPlan, init};
use fedprof_ledger::{
    Clock, CoordinatorBody, CoordinatorLedger, Digest, DiscreteGaussian, Entry, KeyRing, Label,
    MechanismRecord, NodeBody, NodeLedger, Period, Policy, ReleaseId, ReleaseRecord, Sensitivity,
    SigningKey, Timestamp, signing_key_from_pem,
};
use fedprof_protocol::{JobId, PartyId, PartyName, Role, RoundId};
use fedprof_transport::pki::verify_party_cert;

const NODES: [&str; 3] = ["a", "b", "c"];

struct Setup {
    _tmp: tempfile::TempDir,
    fed: PathBuf,
    /// Intact ledger texts by file name under `ledgers/`.
    pristine: Vec<(String, String)>,
}

fn party(role: Role, name: &str) -> PartyId {
    PartyId {
        role,
        name: PartyName::new(name).unwrap(),
    }
}

fn key_of(fed: &Path, dir: &str) -> SigningKey {
    signing_key_from_pem(
        &fs::read_to_string(fed.join("parties").join(dir).join("key.pem")).unwrap(),
    )
    .unwrap()
}

fn gaussian() -> MechanismRecord {
    let g = DiscreteGaussian::new(
        Sensitivity {
            l2_sq: "1".parse().unwrap(),
            l1: "1".parse().unwrap(),
        },
        3,
        "4".parse().unwrap(),
        2,
        1,
    )
    .unwrap();
    MechanismRecord::DistributedDiscreteGaussian(g)
}

/// Releases (1,0) by a,b,c; (1,1) by a,b; (2,0) by b,c; node caps 1/2, rho 1/8 per release.
fn setup() -> Setup {
    setup_with(false)
}

/// [`setup`], and with `second_period` then a period `2026-12` (cap 1/2) at every node with
/// releases (3,0) by a,b,c and a debit of node a for (3,1) that was never published.
fn setup_with(second_period: bool) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let fed = tmp.path().join("fed");
    let names = |l: &[&str]| {
        l.iter()
            .map(|n| PartyName::new(*n).unwrap())
            .collect::<Vec<_>>()
    };
    init(&FederationPlan {
        dir: fed.clone(),
        name: "audit-test".into(),
        coordinator: "127.0.0.1:7300".into(),
        nodes: names(&NODES),
        analysts: vec![],
        auditors: names(&["dpo"]),
    })
    .unwrap();
    let ca = fs::read(fed.join("ca.pem")).unwrap();
    let mut ring = KeyRing::new();
    for n in NODES {
        let (p, k) = verify_party_cert(
            &ca,
            &fs::read(fed.join(format!("parties/node-{n}/cert.pem"))).unwrap(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        ring.insert(p, k).unwrap();
    }
    let work = tmp.path().join("work");
    // The ledgers' clock: 2026-11-15, then 2026-12-01T01:00Z for the second period (entries
    // are dated, and a period is opened and spent in its own month).
    let now = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1_794_700_800));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || Timestamp(now.load(std::sync::atomic::Ordering::SeqCst)))
    };
    let mut stores: Vec<NodeLedger> = NODES
        .iter()
        .map(|n| {
            let key = key_of(&fed, &format!("node-{n}"));
            let mut l = NodeLedger::open_with_clock(
                &work.join(n),
                key,
                party(Role::Node, n),
                clock.clone(),
            )
            .unwrap();
            l.open_period(Period::new("2026-11").unwrap(), "1/2".parse().unwrap())
                .unwrap();
            l
        })
        .collect();
    let coord_path = work.join("coordinator.jsonl");
    let coord_key = key_of(&fed, "coordinator-coordinator");
    let mut coord = CoordinatorLedger::open_with_clock(
        &coord_path,
        coord_key,
        party(Role::Coordinator, "coordinator"),
        ring,
        clock.clone(),
    )
    .unwrap();
    coord
        .set_policy(Policy {
            per_job_cap_rho: "1/1".parse().unwrap(),
            min_cell_size: 10,
            max_holders_per_person: None,
        })
        .unwrap();
    let mut plan: Vec<(u64, u32, &[usize])> =
        vec![(1, 0, &[0, 1, 2]), (1, 1, &[0, 1]), (2, 0, &[1, 2])];
    if second_period {
        plan.extend([(0, 0, &[][..]), (3, 0, &[0, 1, 2]), (3, 1, &[0])]);
    }
    for (job, round, who) in plan {
        if job == 0 {
            now.store(1_796_086_800, std::sync::atomic::Ordering::SeqCst);
            for store in &mut stores {
                store
                    .open_period(Period::new("2026-12").unwrap(), "1/2".parse().unwrap())
                    .unwrap();
            }
            continue;
        }
        let release = ReleaseId {
            job: JobId(job),
            round: RoundId(round),
            nonce: Digest::of(&[job as u8, round as u8]),
        };
        let receipts = who
            .iter()
            .map(|i| {
                stores[*i]
                    .prepare_release(release, gaussian(), [7; 32], || vec![job, 7])
                    .unwrap()
                    .entry()
                    .clone()
            })
            .collect();
        if who.len() < 2 {
            // Below the coordinator's n_min: paid for by the node, never published.
            continue;
        }
        let record = ReleaseRecord {
            release,
            job_kind: Label::new("transaction-totals").unwrap(),
            mechanism: gaussian(),
            receipts,
            published_digest: Digest::of(b"published result"),
        };
        coord.record_release(record).unwrap();
    }
    let mut pristine: Vec<(String, String)> = NODES
        .iter()
        .zip(&stores)
        .map(|(n, s)| {
            (
                format!("node-{n}.jsonl"),
                fs::read_to_string(s.path()).unwrap(),
            )
        })
        .collect();
    pristine.push((
        "coordinator.jsonl".into(),
        fs::read_to_string(&coord_path).unwrap(),
    ));
    let s = Setup {
        _tmp: tmp,
        fed,
        pristine,
    };
    restore(&s);
    s
}

fn restore(s: &Setup) {
    fs::create_dir_all(s.fed.join("ledgers")).unwrap();
    for (name, text) in &s.pristine {
        fs::write(s.fed.join("ledgers").join(name), text).unwrap();
    }
}

/// Rewrites the lines of `ledgers/<file>`.
fn tamper(s: &Setup, file: &str, edit: impl FnOnce(&mut Vec<String>)) {
    restore(s);
    let path = s.fed.join("ledgers").join(file);
    let mut lines: Vec<String> = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    edit(&mut lines);
    fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

fn fedprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedprof"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn audit(s: &Setup, extra: &[&str]) -> (bool, String, String) {
    let dir = s.fed.to_str().unwrap();
    let o = fedprof(&[&["audit", "verify", dir][..], extra].concat());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.success(), text(&o.stdout), text(&o.stderr))
}

/// The audit must fail, name `file` and entry `seq`, in text and in JSON.
fn assert_caught(s: &Setup, file: &str, seq: u64, what: &str) {
    let (ok, _, err) = audit(s, &[]);
    assert!(!ok, "{what}: tampering went unnoticed");
    let want = format!("ledgers/{file}: entry seq {seq} (line {})", seq + 1);
    assert!(err.contains(&want), "{what}: expected {want:?} in:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (ok, out, _) = audit(s, &["--json"]);
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false, "{what}");
    assert_eq!(v["error"]["file"], format!("ledgers/{file}"), "{what}");
    assert_eq!(v["error"]["seq"], seq, "{what}");
}

#[test]
fn intact_ledgers_verify_with_exact_json_and_a_report() {
    let s = setup();
    let (ok, out, err) = audit(&s, &["--json"]);
    assert!(ok, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["releases"], 3);
    let nodes = v["nodes"].as_array().unwrap();
    let got: Vec<(&str, &str)> = nodes
        .iter()
        .map(|n| (n["node"].as_str().unwrap(), n["rho"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("a", "1/4"), ("b", "3/8"), ("c", "1/4")]);
    let b = &nodes[1];
    assert_eq!(b["rho_f64"], 0.375);
    assert_eq!(b["cap_rho"], "1/2");
    assert_eq!(b["remaining_rho"], "1/8");
    assert_eq!(b["delta"], 1e-6);
    let eps = b["epsilon"].as_f64().unwrap();
    let simple = b["epsilon_simple"].as_f64().unwrap();
    assert!(
        (simple - (0.375 + 2.0 * (0.375f64 * 1e6f64.ln()).sqrt())).abs() < 1e-9,
        "{simple}"
    );
    // The tight conversion: rho 3/8 at delta 1e-6, as Google's dp-accounting computes it
    // (privacy/tests/data has the reference table; this value is checked there to 1e-6).
    let tight = fedprof_privacy::epsilon_for_delta(&"3/8".parse().unwrap(), 1e-6).unwrap();
    assert!(
        (eps - tight).abs() < 1e-12 && eps < simple,
        "{eps} vs {simple}"
    );
    let (_, out, _) = audit(&s, &["--json", "--delta", "1e-9"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["nodes"][1]["epsilon"].as_f64().unwrap() > eps);

    let (ok, out, _) = audit(&s, &[]);
    assert!(ok && out.starts_with("OK: 3 node ledger(s)"), "{out}");
    // Every entry is dated (item 6): the span of each ledger is shown, in UTC.
    assert!(
        out.contains("dated 2026-11-15T00:00:00Z to 2026-11-15T00:00:00Z")
            && !out.contains("warning:"),
        "{out}"
    );
    let (_, json_out, _) = audit(&s, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["ledgers"][0]["first_time"], "2026-11-15T00:00:00Z");
    assert_eq!(v["warnings"], serde_json::json!([]));
    let o = fedprof(&["audit", "report", s.fed.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{table}");
    assert!(table.contains("epsilon (delta=1e-6)"), "{table}");
    let row_b = table.lines().find(|l| l.starts_with("b ")).unwrap();
    for cell in [
        "2026-11",
        "3 (3 published)",
        "3/8",
        "0.375000",
        "1/2",
        "1/8",
    ] {
        assert!(row_b.contains(cell), "{cell:?} missing in {row_b:?}");
    }
    let o = fedprof(&["audit", "verify", s.fed.to_str().unwrap(), "--delta", "2"]);
    assert!(!o.status.success());
    let help =
        String::from_utf8_lossy(&fedprof(&["audit", "verify", "--help"]).stdout).into_owned();
    for want in [
        "<DIR>",
        "--json",
        "--delta <DELTA>",
        "[default: 0.000001]",
        "--max-holders <K>",
    ] {
        assert!(help.contains(want), "{want:?} missing in:\n{help}");
    }
}

/// Two periods: `audit verify --json` gives per node the current period, the sum over all
/// periods and the person figures for K nodes, exactly; `--max-holders` replaces the default K.
#[test]
fn two_periods_add_up_and_a_person_at_k_nodes_is_shown() {
    let s = setup_with(true);
    let rel = |a: f64, b: f64| (a / b - 1.0).abs();
    let (ok, out, err) = audit(&s, &["--json"]);
    assert!(ok, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["releases"], 4);
    assert_eq!(v["max_holders"]["value"], 3);
    assert_eq!(
        v["max_holders"]["source"],
        "default: number of node ledgers"
    );
    let nodes = v["nodes"].as_array().unwrap();
    let a = &nodes[0];
    // Current period only: 2026-12, (3,0) and the unpublished (3,1).
    assert_eq!(
        (&a["period"], &a["rho"], &a["cap_rho"]),
        (&"2026-12".into(), &"1/4".into(), &"1/2".into())
    );
    assert_eq!(a["periods"].as_array().unwrap().len(), 2);
    // All periods: 1/4 + 1/4.
    assert_eq!(a["cumulative"]["rho"], "1/2");
    assert_eq!(a["cumulative"]["periods"], 2);
    assert_eq!(a["cumulative"]["lifetime_cap_rho"], serde_json::Value::Null);
    // rho 1/2 at delta 1e-6 by Google's dp-accounting (privacy/tests/data).
    let eps = a["cumulative"]["epsilon"].as_f64().unwrap();
    assert!(rel(eps, 5.221534446403448) < 1e-6, "{eps}");
    assert_eq!(a["person"]["one_holder"]["rho"], "1/2");
    // Node a, K = 3: (1,0) 3^2/8 + (1,1) 2^2/8 + (3,0) 3^2/8 + (3,1) 1/8.
    assert_eq!(a["person"]["max_holders"], 3);
    assert_eq!(a["person"]["max_holders_rho"]["rho"], "23/8");
    let cum: Vec<&str> = nodes
        .iter()
        .map(|n| n["cumulative"]["rho"].as_str().unwrap())
        .collect();
    assert_eq!(cum, ["1/2", "1/2", "3/8"]);
    let person: Vec<&str> = nodes
        .iter()
        .map(|n| n["person"]["max_holders_rho"]["rho"].as_str().unwrap())
        .collect();
    assert_eq!(person, ["23/8", "13/4", "11/4"]);
    // Federation-wide: 9/8 + 4/8 + 4/8 + 9/8 + 1/8 over the five releases debited (the
    // unpublished one counted: node a's input for it may have left).
    assert_eq!(v["person"]["max_holders_rho"]["rho"], "27/8");
    assert_eq!(v["person"]["one_holder"]["rho"], "1/2");
    let eps = v["person"]["max_holders_rho"]["epsilon"].as_f64().unwrap();
    assert!(rel(eps, 16.072282298051746) < 1e-6, "{eps}");

    let (ok, out, _) = audit(&s, &["--json", "--max-holders", "2"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["max_holders"]["value"], 2);
    assert_eq!(v["max_holders"]["source"], "declared");
    assert_eq!(v["person"]["max_holders_rho"]["rho"], "17/8");
    assert_eq!(v["nodes"][0]["person"]["max_holders_rho"]["rho"], "13/8");
    let (ok, _, err) = audit(&s, &["--max-holders", "0"]);
    assert!(!ok && err.contains("--max-holders"), "{err}");

    let o = fedprof(&[
        "audit",
        "report",
        s.fed.to_str().unwrap(),
        "--max-holders",
        "3",
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    if std::env::var_os("FEDPROF_PRINT_SAMPLE").is_some() {
        println!("{table}\n{}", audit(&s, &["--json"]).1);
    }
    assert!(o.status.success(), "{table}");
    let row_a = table.lines().find(|l| l.starts_with("a ")).unwrap();
    for cell in [
        "2026-12",
        "1/4",
        "1/2 over 2 period(s)",
        "none",
        "(rho 23/8)",
    ] {
        assert!(row_a.contains(cell), "{cell:?} missing in {row_a:?}");
    }
    for want in [
        "epsilon, person at 3 nodes",
        "A person whose records sit at up to 3 nodes (as declared)",
        "rho 27/8 (epsilon 16.0723)",
        "A period cap is a rate limit, not a lifetime bound",
    ] {
        assert!(table.contains(want), "{want:?} missing in:\n{table}");
    }
}

#[test]
fn tampered_node_ledgers_are_caught_at_the_entry() {
    let s = setup();
    let f = "node-b.jsonl";
    tamper(&s, f, |l| l[2] = l[2].replacen("\"job\":1", "\"job\":9", 1));
    assert_caught(&s, f, 2, "changed byte");
    tamper(&s, f, |l| drop(l.remove(1)));
    assert_caught(&s, f, 1, "dropped entry");
    tamper(&s, f, |l| l.swap(1, 2));
    assert_caught(&s, f, 1, "reordered entries");
    tamper(&s, f, |l| l.push(l[1].clone()));
    assert_caught(&s, f, 4, "replayed entry");
    let other = key_of(&s.fed, "node-a");
    tamper(&s, f, |l| {
        let e = Entry::<NodeBody>::from_line(&l[2]).unwrap();
        l[2] = Entry::sign_at(
            e.seq(),
            *e.prev(),
            e.writer().clone(),
            e.time(),
            e.body().clone(),
            &other,
        )
        .to_line();
    });
    assert_caught(&s, f, 2, "signature by another party's key");
    // The last debit cut off: the coordinator's release that used it is now unpaid.
    tamper(&s, f, |l| drop(l.pop()));
    assert_caught(&s, "coordinator.jsonl", 3, "truncated node ledger");
    let (_, _, err) = audit(&s, &[]);
    assert!(
        err.contains("not covered by a debit in node b's ledger"),
        "{err}"
    );
    // A torn last line is reported, not dropped.
    restore(&s);
    let path = s.fed.join("ledgers").join(f);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, &text[..text.len() - 20]).unwrap();
    assert_caught(&s, f, 3, "torn last line");
}

#[test]
fn tampered_coordinator_ledgers_are_caught_at_the_entry() {
    let s = setup();
    let f = "coordinator.jsonl";
    tamper(&s, f, |l| {
        l[1] = l[1].replacen("published_digest\":\"", "published_digest\":\"0", 1)
    });
    assert_caught(&s, f, 1, "changed bytes");
    tamper(&s, f, |l| {
        let mut b = std::mem::take(&mut l[2]).into_bytes();
        let at = b.len() / 2;
        b[at] ^= 1;
        l[2] = String::from_utf8(b).unwrap();
    });
    assert_caught(&s, f, 2, "flipped byte");
    tamper(&s, f, |l| drop(l.remove(2)));
    assert_caught(&s, f, 2, "dropped entry");
    tamper(&s, f, |l| l.swap(2, 3));
    assert_caught(&s, f, 2, "reordered entries");
    tamper(&s, f, |l| l.push(l[1].clone()));
    assert_caught(&s, f, 4, "replayed entry");
    let node_key = key_of(&s.fed, "node-a");
    tamper(&s, f, |l| {
        let e = Entry::<CoordinatorBody>::from_line(&l[3]).unwrap();
        l[3] = Entry::sign_at(
            e.seq(),
            *e.prev(),
            e.writer().clone(),
            e.time(),
            e.body().clone(),
            &node_key,
        )
        .to_line();
    });
    assert_caught(&s, f, 3, "signature by another party's key");
}

#[test]
fn certificates_must_come_from_the_federation_ca() {
    let s = setup();
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other");
    init(&FederationPlan {
        dir: other.clone(),
        name: "other".into(),
        coordinator: "127.0.0.1:7300".into(),
        nodes: vec![PartyName::new("a").unwrap()],
        analysts: vec![],
        auditors: vec![],
    })
    .unwrap();
    fs::copy(
        other.join("parties/node-a/cert.pem"),
        s.fed.join("parties/node-a/cert.pem"),
    )
    .unwrap();
    let (ok, _, err) = audit(&s, &[]);
    assert!(!ok);
    assert!(
        err.contains("parties/node-a/cert.pem: certificate is not trusted by the federation CA"),
        "{err}"
    );
}

/// Every party's certificate replaced by one for the same key valid from `from` to `until`
/// (relative to now), as `FederationCa::renew` makes them.
fn reissue_all(s: &Setup, from: time::Duration, until: time::Duration) {
    let now = time::OffsetDateTime::now_utc();
    reissue_all_for(s, now + from, now + until);
}

/// [`reissue_all`] for a window given in absolute times.
fn reissue_all_for(s: &Setup, not_before: time::OffsetDateTime, not_after: time::OffsetDateTime) {
    let ca = fedprof::certs::load_ca(&s.fed).unwrap();
    let validity = fedprof_transport::Validity {
        not_before,
        not_after,
    };
    for entry in fs::read_dir(s.fed.join("parties")).unwrap() {
        let dir = entry.unwrap().path();
        let cert = fs::read_to_string(dir.join("cert.pem")).unwrap();
        let key = fs::read_to_string(dir.join("key.pem")).unwrap();
        fs::write(
            dir.join("cert.pem"),
            ca.renew(&cert, &key, validity).unwrap(),
        )
        .unwrap();
    }
}

/// H7: ledgers written while the certificates were valid verify `--at` such a time after
/// every certificate expired, and not at a time no certificate covers.
#[test]
fn audit_at_a_past_time_verifies_ledgers_whose_certificates_expired() {
    let s = setup();
    let day = time::Duration::days(1);
    reissue_all(&s, day * -10, -day);
    let (ok, _, err) = audit(&s, &[]);
    assert!(!ok, "expired certificates pass at now");
    assert!(err.contains("not trusted by the federation CA"), "{err}");
    let two_days_ago: time::OffsetDateTime = time::OffsetDateTime::now_utc() - day * 2;
    let at = two_days_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (ok, out, err) = audit(&s, &["--at", &at]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("OK"), "{out}");
    let (ok, _, err) = audit(&s, &["--at", "2000-01-01T00:00:00Z"]);
    assert!(!ok && err.contains("not trusted"), "{err}");
    let (ok, _, err) = audit(&s, &["--at", "yesterday"]);
    assert!(!ok && err.contains("RFC 3339"), "{err}");
}

/// H7: `fedprof federation renew` keeps each party's key, so every old ledger still verifies,
/// and the renewed-away certificate still covers the times before the new one.
#[test]
fn renewed_certificates_keep_every_ledger_verifiable() {
    let s = setup();
    let dir = s.fed.to_str().unwrap();
    for entry in fs::read_dir(s.fed.join("parties")).unwrap() {
        let party = entry.unwrap().file_name().into_string().unwrap();
        let party = party.as_str();
        let o = fedprof(&[
            "federation",
            "renew",
            "--dir",
            dir,
            "--party",
            party,
            "--days",
            "30",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            s.fed
                .join("parties")
                .join(party)
                .join("cert.1.pem")
                .is_file()
        );
    }
    let (ok, out, err) = audit(&s, &[]);
    assert!(ok, "{out}{err}");
    // A current certificate that is not valid yet: the kept one (cert.1.pem) covers now.
    let day = time::Duration::days(1);
    reissue_all(&s, day, day * 30);
    let (ok, out, err) = audit(&s, &[]);
    assert!(ok, "{out}{err}");
    // A party that does not exist is refused.
    let o = fedprof(&["federation", "renew", "--dir", dir, "--party", "node-zz"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a party"));
}

/// H7: `--at written` checks each ledger against its writer's certificates over the time its
/// entries were written (2026-11-15 here): it passes after every certificate expired, and
/// fails when no certificate covered the writing.
#[test]
fn audit_at_written_checks_each_ledger_against_its_writers_certificates() {
    let s = setup();
    let t = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    // As issued by `init` today: valid from an hour ago, after the entries were written.
    let (ok, _, err) = audit(&s, &["--at", "written"]);
    assert!(!ok, "entries older than every certificate passed");
    assert!(
        err.contains("not all within the validity of a certificate"),
        "{err}"
    );
    // Valid from November until yesterday: expired now, but valid when the ledgers were written.
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    reissue_all_for(&s, t("2026-11-01T00:00:00Z"), yesterday);
    let (ok, _, _) = audit(&s, &[]);
    assert!(!ok, "expired certificates pass at now");
    let (ok, out, err) = audit(&s, &["--at", "written"]);
    assert!(ok, "{out}{err}");
    // Valid only from after the writing: refused, naming a ledger.
    reissue_all_for(&s, t("2026-11-20T00:00:00Z"), yesterday);
    let (ok, _, err) = audit(&s, &["--at", "written"]);
    assert!(!ok);
    assert!(err.contains("ledgers/"), "{err}");
}
