//! Fuzz harnesses (security review L12): each takes arbitrary bytes, drives one parser or
//! machine with them, and panics only when an invariant breaks. The cargo-fuzz targets in
//! `fuzz/fuzz_targets/` call them under libFuzzer (nightly); `tests/fuzz.rs` calls them on
//! stable over 10,000 seeded inputs each ([`mutate`]d seeds and plain random bytes), so
//! `cargo test` exercises them too.
//!
//! - [`ledger`]: ledger text as a node's `ledger.jsonl`: the line splitter, both entry
//!   parsers, and the node book's rules (a parseable line's body is re-signed as the next
//!   entry, so the rules see arbitrary bodies, not only signature failures).
//! - [`config`]: TOML text as a node or coordinator config.
//! - [`coordinator_core`]: a sequence of connections, messages (built or decoded), closes,
//!   ticks, local jobs and ledger failures fed to `fedprof_coordinator::Coordinator`, with
//!   its promises checked after every input.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use fedprof_config::ConfigFile;
use fedprof_coordinator::core::ConnId;
use fedprof_coordinator::journal::Record;
use fedprof_coordinator::{
    Coordinator, CoordinatorConfig, Input, Output, ReleasePolicy, Requester, RoundPolicy,
};
use fedprof_crypto::{SecretKey32, SigningKey};
use fedprof_ledger::{CoordinatorEntry, Entry, NodeBook, NodeEntry, Writer};
use fedprof_privacy::Rho;
use fedprof_protocol::query::{FeatureQuery, NumericFeature, QueryPart, Segmenter};
use fedprof_protocol::{
    Body, ErrorCode, ErrorFrame, Fraction, JobId, JobOutcome, JobSpec, PartyId, PartyName, Refusal,
    RefuseReason, Register, RequestId, Role, Submission,
};
use rand_core::Rng;

use crate::node::NodeConfig;

/// Ledger text (`ledger.jsonl`) through the line splitter, both entry parsers and a node
/// book. Checks: a line that parses is canonical (it re-serializes to itself); the book's
/// chain advances by exactly the lines it accepted; a period never spends past its cap.
pub fn ledger(data: &[u8]) {
    let path = Path::new("fuzz/ledger.jsonl");
    let Ok(lines) = fedprof_ledger::file::ledger_lines(path, data) else {
        return;
    };
    let key = fedprof_ledger::SigningKey::from_bytes(&[1; 32]);
    let verifying = key.verifying_key();
    let writer = Writer::new(party(Role::Node, "a"));
    let Ok(mut book) = NodeBook::new(writer.clone()) else {
        return;
    };
    let mut accepted = 0u64;
    for line in lines {
        if let Ok(entry) = NodeEntry::from_line(line) {
            assert_eq!(entry.to_line(), line, "a parsed node entry is canonical");
        }
        if let Ok(entry) = CoordinatorEntry::from_line(line) {
            assert_eq!(
                entry.to_line(),
                line,
                "a parsed coordinator entry is canonical"
            );
        }
        if book.apply_line(line, &verifying).is_ok() {
            accepted += 1;
        } else if let Ok(entry) = serde_json::from_str::<NodeEntry>(line) {
            // The same body signed by the book's key as its next entry: the rules decide.
            let chain = book.chain();
            let next = Entry::sign_at(
                chain.next_seq(),
                *chain.last_digest(),
                writer.clone(),
                entry.time(),
                entry.body().clone(),
                &key,
            );
            if book.apply_line(&next.to_line(), &verifying).is_ok() {
                accepted += 1;
            }
        }
        assert_eq!(
            book.chain().next_seq(),
            accepted,
            "the chain counts accepted lines"
        );
        for p in book.periods() {
            assert!(p.spent <= p.cap, "period {} spent past its cap", p.period);
        }
    }
}

/// TOML text as a config: the first byte picks the node's (even) or the coordinator's (odd).
/// Checks: an error names the file; an accepted coordinator config has its durations within
/// the bounds `load` promises (review L1).
pub fn config(data: &[u8]) {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let name = if which % 2 == 0 {
        "node.toml"
    } else {
        "coordinator.toml"
    };
    let file = ConfigFile::from_text(Path::new("/nonexistent/fedprof-fuzz").join(name), text);
    let error = if which % 2 == 0 {
        NodeConfig::from_file(&file).err()
    } else {
        match CoordinatorConfig::from_file(&file) {
            Ok(c) => {
                assert!(c.rounds.contribution_timeout_secs.get() <= 6 * 3600);
                assert!(c.limits.idle_timeout_secs.get() <= 3600);
                None
            }
            Err(e) => Some(e),
        }
    };
    if let Some(e) = error {
        let text = e.to_string();
        assert!(text.contains(name), "the error names the file: {text}");
    }
}

/// Party names the core harness uses; a few, so that sessions collide.
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// Bytes as a sequence of inputs to the coordinator core (see the module doc). Checks, after
/// every input: nothing is sent to or closed on a connection that is not open; outcomes go to
/// analysts only; a release is announced only after its journal record; every `Publish` is a
/// completed outcome; registered nodes are open node connections, each once.
pub fn coordinator_core(data: &[u8]) {
    let policy = RoundPolicy {
        min_nodes: 2,
        timeout: Duration::from_secs(5),
    };
    let release = ReleasePolicy {
        rho_per_job: rho(1, 2),
        colluders: 1,
        rho_per_analyst_period: rho(3, 2),
        max_holders_per_person: None,
        name: name("coordinator"),
    };
    let mut core = Coordinator::new(policy, release, [7; 32]);
    let mut now = Instant::now();
    let mut open: BTreeMap<ConnId, PartyId> = BTreeMap::new();
    let mut journaled: BTreeSet<JobId> = BTreeSet::new();
    let mut next_conn: ConnId = 1;
    // A federation to start from (nodes a, b and c registered, analyst d connected), so that
    // most inputs reach a round rather than the registration checks.
    let input = [
        &[0, 0, 0, 1, 0, 0, 0, 1, b't'][..],
        &[0, 0, 1, 1, 1, 0, 0, 1, b't'],
        &[0, 0, 2, 1, 2, 0, 0, 1, b't'],
        &[0, 2, 3],
        data,
    ]
    .concat();
    let mut bytes = Bytes(&input);
    while let Some(op) = bytes.byte() {
        let pick = |b: u8, open: &BTreeMap<ConnId, PartyId>| {
            open.keys().nth(usize::from(b) % open.len().max(1)).copied()
        };
        let input = match op % 9 {
            0 => {
                // The low bits pick the role; a high bit set gives the certificate an expiry
                // up to two minutes away.
                let r = bytes.byte().unwrap_or(0);
                let role =
                    [Role::Node, Role::Node, Role::Analyst, Role::Auditor][usize::from(r % 4)];
                let valid_until = (r >= 128).then(|| now + Duration::from_secs(u64::from(r - 128)));
                let i = usize::from(bytes.byte().unwrap_or(0)) % NAMES.len();
                let conn = next_conn;
                next_conn += 1;
                open.insert(conn, party(role, NAMES[i]));
                Input::Connected {
                    conn,
                    party: party(role, NAMES[i]),
                    certificate: vec![u8::try_from(i).unwrap_or(0)],
                    key: signing_key(u8::try_from(i).unwrap_or(0)).verifying_key(),
                    valid_until,
                }
            }
            1..=4 => {
                let Some(conn) = pick(bytes.byte().unwrap_or(0), &open) else {
                    continue;
                };
                let job = JobId(u64::from(bytes.byte().unwrap_or(0) % 4));
                let Some(body) = body(&mut bytes) else {
                    continue;
                };
                Input::Message {
                    conn,
                    envelope: crate::coordinator::envelope(job, body),
                }
            }
            5 => {
                let Some(conn) = pick(bytes.byte().unwrap_or(0), &open) else {
                    continue;
                };
                open.remove(&conn);
                Input::Closed {
                    conn,
                    reason: bytes.text(),
                }
            }
            6 => {
                now += Duration::from_millis(100 * u64::from(bytes.byte().unwrap_or(0)));
                Input::Tick
            }
            7 => Input::SubmitJob {
                submission: submission(&mut bytes),
                requester: Requester::Local(u64::from(bytes.byte().unwrap_or(0))),
            },
            _ => Input::RecordFailed {
                job: JobId(u64::from(bytes.byte().unwrap_or(0) % 4)),
            },
        };
        let out = core.handle(input, now);
        check_outputs(&out, &mut open, &mut journaled);
        let nodes = core.nodes();
        let mut seen = BTreeSet::new();
        for node in &nodes {
            assert!(seen.insert(node.clone()), "{node} registered twice");
            assert!(
                open.values()
                    .any(|p| p.role == Role::Node && &p.name == node),
                "{node} is registered without an open connection"
            );
        }
        let _ = core.next_deadline();
    }
}

fn check_outputs(
    out: &[Output],
    open: &mut BTreeMap<ConnId, PartyId>,
    journaled: &mut BTreeSet<JobId>,
) {
    for o in out {
        match o {
            Output::Send {
                conn, job, body, ..
            } => {
                let to = open.get(conn);
                assert!(
                    to.is_some(),
                    "sent {} to closed connection {conn}",
                    body.kind()
                );
                if let Body::Outcome(_) = body {
                    assert!(
                        to.is_some_and(|p| p.role == Role::Analyst),
                        "outcome to a non-analyst"
                    );
                }
                if let Body::JobAnnounce(_) = body {
                    assert!(
                        journaled.contains(job),
                        "{job} announced before its journal record"
                    );
                }
            }
            Output::Close { conn, .. } => {
                assert!(
                    open.remove(conn).is_some(),
                    "closed connection {conn} twice"
                );
            }
            Output::Journal(Record::Announced(a)) => {
                journaled.insert(a.job);
            }
            Output::Publish {
                outcome,
                recipients,
                ..
            } => {
                assert!(matches!(outcome, JobOutcome::Completed { .. }));
                for r in recipients {
                    assert!(open.contains_key(r), "result for closed connection {r}");
                }
            }
            _ => {}
        }
    }
}

/// A message body: built from a template (most), or decoded from the bytes (any message,
/// secure-aggregation ones included).
fn body(bytes: &mut Bytes<'_>) -> Option<Body> {
    let kind = bytes.byte()?;
    Some(match kind % 8 {
        0 => Body::Register(Register {
            software: bytes.text(),
        }),
        1 => Body::Accept,
        2 => Body::Refuse(Refusal {
            reason: RefuseReason::ALL[usize::from(bytes.byte()?) % RefuseReason::ALL.len()],
            detail: bytes.text(),
        }),
        3 => Body::Receipt(bytes.text()),
        4 => Body::SubmitJob(submission(bytes)),
        5 => Body::Error(ErrorFrame {
            code: ErrorCode::Malformed,
            detail: bytes.text(),
        }),
        6 => Body::Pong(u64::from(bytes.byte()?)),
        _ => {
            let len = usize::from(bytes.byte()?);
            fedprof_protocol::decode(bytes.take(len)).ok()?.body
        }
    })
}

/// A small feature query with a request id and budget from the bytes.
fn submission(bytes: &mut Bytes<'_>) -> Submission {
    let b = bytes.byte().unwrap_or(0);
    let denom = u64::from(bytes.byte().unwrap_or(1).max(1));
    Submission {
        request: RequestId([b % 4; 16]),
        spec: JobSpec::Features(Box::new(FeatureQuery {
            label: "fuzz".into(),
            as_of: "2026-06-30".into(),
            scale: 1000,
            segmenter: Segmenter::All,
            parts: vec![
                QueryPart::Count,
                QueryPart::Numeric {
                    feature: NumericFeature::MonetaryTotal,
                    lo: 0,
                    hi: 1000,
                },
            ],
            budget: Fraction { numer: 1, denom },
            reserve: Fraction { numer: 0, denom: 1 },
            job: None,
        })),
    }
}

/// A cursor over the fuzz input; reads past the end give nothing.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A string of up to 255 bytes (lossy UTF-8: control characters and all).
    fn text(&mut self) -> String {
        let n = usize::from(self.byte().unwrap_or(0));
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
}

fn party(role: Role, n: &str) -> PartyId {
    PartyId {
        role,
        name: name(n),
    }
}

fn name(n: &str) -> PartyName {
    #[expect(
        clippy::expect_used,
        reason = "the harness's names are valid constants"
    )]
    PartyName::new(n).expect("a valid party name")
}

fn rho(numer: u8, denom: u8) -> Rho {
    Rho::from_ratio_exact(num_rational::Ratio::new(numer.into(), denom.into()))
}

fn signing_key(i: u8) -> SigningKey {
    SigningKey::from_seed(&SecretKey32::from_bytes([i; 32]))
}

/// `seed` with a few random edits (flip, insert, delete, duplicate a span, truncate), the way
/// libFuzzer mutates a corpus entry: for running the harnesses on stable without a fuzzer.
pub fn mutate(seed: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    let below = |rng: &mut dyn FnMut() -> u64, n: usize| (rng() % (n.max(1) as u64)) as usize;
    let mut next = || rng.next_u64();
    let edits = 1 + below(&mut next, 8);
    for _ in 0..edits {
        let at = below(&mut next, out.len() + 1);
        match below(&mut next, 5) {
            0 if at < out.len() => out[at] ^= 1 << below(&mut next, 8),
            1 => out.insert(at, next() as u8),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => {
                let end = (at + below(&mut next, 32)).min(out.len());
                let span = out[at..end].to_vec();
                out.splice(at..at, span);
            }
            _ => out.truncate(at.max(out.len() / 2)),
        }
    }
    out
}
