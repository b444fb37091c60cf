//! `fedprof audit verify|report DIR`: reads an audit directory, verifies every certificate
//! against the federation CA and hands the ledgers to the sans-IO audit in `fedprof-ledger`.
//!
//! Audit directory (the federation directory of `fedprof federation init` works as is, once
//! the ledgers are copied in; private keys are neither needed nor read):
//! ```text
//! DIR/ca.pem                              federation CA certificate
//! DIR/parties/<role>-<name>/cert.pem      every party's certificate (and the cert.<n>.pem
//!                                         that renewals kept, for the same key)
//! DIR/ledgers/node-<name>.jsonl           each node's budget ledger
//! DIR/ledgers/coordinator.jsonl           the coordinator's release ledger
//! ```

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use fedprof_ledger::audit::{self, AuditFailure, AuditInput, AuditReport, LedgerText};
use fedprof_ledger::{KeyRing, Rho, epsilon_at_delta, epsilon_simple_at_delta};
use fedprof_protocol::{PartyId, PartyName, Role};

mod certs;
pub use certs::CertsAt;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// `fedprof audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify every ledger in DIR; exit non-zero naming the first inconsistent entry.
    Verify(AuditArgs),
    /// Verify, then print per node: releases, rho spent in the current period (exact and
    /// float), its cap, epsilon at delta and what remains; rho and epsilon over all periods,
    /// the lifetime cap, and epsilon for a person whose records sit at K nodes.
    Report(AuditArgs),
}

/// Arguments of `fedprof audit verify|report`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Audit directory: ca.pem, parties/<role>-<name>/cert.pem, ledgers/node-<name>.jsonl,
    /// ledgers/coordinator.jsonl.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The delta at which epsilon is reported, in (0, 1).
    #[arg(long, default_value_t = 1e-6, value_parser = parse_delta)]
    pub delta: f64,
    /// The federation's declared maximum number of nodes holding one person's records, K:
    /// epsilon is also printed for such a person (zCDP group privacy, K^2 rho per release).
    /// Default: the number of node ledgers (every node may hold the same person).
    #[arg(long = "max-holders", value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_holders: Option<u32>,
    /// Check the certificates as valid at TIME (RFC 3339, e.g. `2026-11-30T00:00:00Z`)
    /// instead of now, or `written`: each ledger against its writer's certificates over the
    /// time its entries were written. Ledgers written while their certificates were valid so
    /// still verify after the certificates expired. Entries dated after now are reported.
    #[arg(long, value_name = "TIME|written")]
    pub at: Option<CertsAt>,
}

fn parse_delta(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if d > 0.0 && d < 1.0 => Ok(d),
        _ => Err(format!("{s:?} is not a number strictly between 0 and 1")),
    }
}

/// Runs an audit command; returns the text for stdout, or the stdout text and the failure.
pub fn run(cmd: &AuditCommand) -> Result<String, (String, AuditFailure)> {
    let (args, table) = match cmd {
        AuditCommand::Verify(a) => (a, false),
        AuditCommand::Report(a) => (a, true),
    };
    let now = OffsetDateTime::now_utc();
    let certs_at = args.at.unwrap_or(CertsAt::Time(now));
    match verify_dir_at(&args.dir, certs_at, now, args.max_holders) {
        Ok(report) if args.json => Ok(format!("{:#}\n", to_json(&report, args.delta))),
        Ok(report) if table => Ok(render_table(&report, args.delta)),
        Ok(report) => Ok(render_ok(&report)),
        Err(failure) if args.json => {
            let v = json!({ "ok": false, "nodes": [], "delta": args.delta, "error": {
                "file": failure.file, "seq": failure.seq, "line": failure.line, "reason": failure.reason,
            }});
            Err((format!("{v:#}\n"), failure))
        }
        Err(failure) => Err((String::new(), failure)),
    }
}

/// Reads `dir`, verifies the certificates at time `at` and audits the ledgers, with `K` (the
/// most nodes holding one person) defaulted to the number of node ledgers.
pub fn verify_dir(dir: &Path, at: OffsetDateTime) -> Result<AuditReport, AuditFailure> {
    verify_dir_with(dir, at, None)
}

/// [`verify_dir`] with the federation's declared maximum of holders per person, if known
/// (`--max-holders`, or a value recorded in a ledger); `None` takes the default.
pub fn verify_dir_with(
    dir: &Path,
    at: OffsetDateTime,
    max_holders_per_person: Option<u32>,
) -> Result<AuditReport, AuditFailure> {
    verify_dir_at(dir, CertsAt::Time(at), at, max_holders_per_person)
}

/// [`verify_dir_with`] with the certificates checked as valid at `certs_at` (`--at`) and
/// entries dated after `now` reported. A party's certificate is any of `cert.pem` and the
/// `cert.<n>.pem` a renewal kept (`fedprof federation renew`: the same key), see
/// [`certs`].
pub fn verify_dir_at(
    dir: &Path,
    certs_at: CertsAt,
    now: OffsetDateTime,
    max_holders_per_person: Option<u32>,
) -> Result<AuditReport, AuditFailure> {
    let whole = |file: &str, reason: String| AuditFailure {
        file: file.to_owned(),
        line: 0,
        seq: None,
        reason,
    };
    let ca = fs::read(dir.join("ca.pem")).map_err(|e| whole("ca.pem", e.to_string()))?;
    let parties = certs::read_parties(dir, &ca, certs_at)?;
    let mut keys = KeyRing::new();
    let mut coordinators = Vec::new();
    for p in &parties {
        if p.party.role == Role::Coordinator {
            coordinators.push(p.party.clone());
        }
        let rel = format!("parties/{}", fedprof_transport::pki::party_label(&p.party));
        keys.insert(p.party.clone(), p.key)
            .map_err(|e| whole(&rel, e.to_string()))?;
    }
    let node_files = list(dir, "ledgers", |f| {
        f.strip_prefix("node-")?
            .strip_suffix(".jsonl")
            .map(str::to_owned)
    })?;
    let mut nodes = Vec::new();
    for (name, path) in node_files {
        let rel = format!("ledgers/node-{name}.jsonl");
        let party = PartyName::new(name).map_err(|e| whole(&rel, e.to_string()))?;
        nodes.push((
            party,
            rel,
            fs::read(&path).map_err(|e| whole(&path.display().to_string(), e.to_string()))?,
        ));
    }
    let coord_rel = "ledgers/coordinator.jsonl";
    let coord_bytes = fs::read(dir.join(coord_rel)).map_err(|e| whole(coord_rel, e.to_string()))?;
    let coordinator: PartyId = match coordinators.as_slice() {
        [one] => one.clone(),
        more => {
            let why = format!(
                "expected exactly one coordinator certificate under parties/, found {}",
                more.len()
            );
            return Err(whole(coord_rel, why));
        }
    };
    let input = AuditInput {
        keys,
        nodes: nodes
            .iter()
            .map(|(n, f, b)| {
                (
                    n.clone(),
                    LedgerText {
                        file: f.clone(),
                        bytes: b,
                    },
                )
            })
            .collect(),
        coordinator: (
            coordinator,
            LedgerText {
                file: coord_rel.to_owned(),
                bytes: &coord_bytes,
            },
        ),
        max_holders_per_person,
        // Entries dated after the audit's own time are reported (a writer's clock ran ahead).
        now: u64::try_from(now.unix_timestamp())
            .ok()
            .map(fedprof_ledger::Timestamp),
    };
    let report = audit::verify(&input)?;
    if certs_at == CertsAt::Written {
        certs::check_written(&report, &parties)?;
    }
    Ok(report)
}

/// Entries of `dir/sub` whose file name `select` maps to a key, sorted by that key.
fn list(
    dir: &Path,
    sub: &str,
    select: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, PathBuf)>, AuditFailure> {
    let fail = |reason: String| AuditFailure {
        file: format!("{sub}/"),
        line: 0,
        seq: None,
        reason,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir.join(sub)).map_err(|e| fail(e.to_string()))? {
        let entry = entry.map_err(|e| fail(e.to_string()))?;
        if let Some(key) = entry.file_name().to_str().and_then(&select) {
            out.push((key, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A rho as exact text, decimal and epsilon at `delta`.
fn rho_json(rho: &Rho, delta: f64) -> Value {
    json!({ "rho": rho.to_string(), "rho_f64": rho.to_f64(), "epsilon": epsilon_at_delta(rho, delta) })
}

fn to_json(report: &AuditReport, delta: f64) -> Value {
    let k = report.max_holders.value;
    let nodes: Vec<Value> = report
        .nodes
        .iter()
        .filter_map(|n| {
            let p = n.current()?;
            let periods: Vec<Value> = n
                .periods
                .iter()
                .map(|p| json!({ "period": p.period.as_str(), "rho": p.spent.to_string(), "cap_rho": p.cap.to_string(), "epsilon": epsilon_at_delta(&p.spent, delta), "debits": p.debits }))
                .collect();
            let mut cumulative = rho_json(&n.cumulative, delta);
            cumulative["periods"] = json!(n.periods.len());
            cumulative["lifetime_cap_rho"] = json!(n.lifetime_cap.as_ref().map(Rho::to_string));
            cumulative["lifetime_remaining_rho"] =
                json!(n.lifetime_remaining().as_ref().map(Rho::to_string));
            Some(json!({
                "node": n.node.as_str(),
                "period": p.period.as_str(),
                "rho": p.spent.to_string(),
                "rho_f64": p.spent.to_f64(),
                "epsilon": epsilon_at_delta(&p.spent, delta),
                "epsilon_simple": epsilon_simple_at_delta(&p.spent, delta),
                "delta": delta,
                "cap_rho": p.cap.to_string(),
                "remaining_rho": n.remaining().to_string(),
                "debits": n.debits,
                "released": n.released,
                "periods": periods,
                "cumulative": cumulative,
                "person": {
                    "max_holders": k,
                    "one_holder": rho_json(&n.cumulative, delta),
                    "max_holders_rho": rho_json(&n.person_rho, delta),
                },
            }))
        })
        .collect();
    let ledgers: Vec<Value> = report
        .ledgers
        .iter()
        .map(|l| {
            let time = |t: Option<fedprof_ledger::Timestamp>| t.map(|t| t.to_string());
            json!({ "file": l.file, "entries": l.entries, "head": l.head.to_string(),
                    "first_time": time(l.first_time), "last_time": time(l.last_time) })
        })
        .collect();
    let warnings: Vec<Value> = report
        .warnings
        .iter()
        .map(|w| json!({ "file": w.file, "seq": w.seq, "message": w.message }))
        .collect();
    let source = if report.max_holders.declared {
        "declared"
    } else {
        "default: number of node ledgers"
    };
    json!({
        "ok": true,
        "delta": delta,
        "releases": report.releases,
        "max_holders": { "value": k, "source": source },
        "person": {
            "one_holder": rho_json(&report.person_rho_one_holder, delta),
            "max_holders_rho": rho_json(&report.person_rho, delta),
        },
        "nodes": nodes,
        "ledgers": ledgers,
        "warnings": warnings,
    })
}

fn render_ok(report: &AuditReport) -> String {
    let mut out = format!(
        "OK: {} node ledger(s) and the coordinator ledger verified; {} release(s), each covered by every contributing node's debit.\n",
        report.nodes.len(),
        report.releases
    );
    for l in &report.ledgers {
        let _ = write!(out, "  {}: {} entries, head {}", l.file, l.entries, l.head);
        match (l.first_time, l.last_time) {
            (Some(first), Some(last)) => {
                let _ = writeln!(out, ", dated {first} to {last}");
            }
            _ => out.push_str(", undated (written before entries carried times)\n"),
        }
    }
    render_warnings(&mut out, report);
    out
}

/// Entries dated after the audit's time: the ledgers verify, but a clock ran ahead.
fn render_warnings(out: &mut String, report: &AuditReport) {
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
}

fn render_table(report: &AuditReport, delta: f64) -> String {
    let k = report.max_holders.value;
    let eps = |rho: &Rho| format!("{:.4}", epsilon_at_delta(rho, delta));
    let head = [
        "node".to_owned(),
        "period".to_owned(),
        "releases".to_owned(),
        "spent rho".to_owned(),
        "spent (float)".to_owned(),
        "cap rho".to_owned(),
        format!("epsilon (delta={delta:e})"),
        "remaining rho".to_owned(),
        "all periods rho".to_owned(),
        "all periods epsilon".to_owned(),
        "lifetime cap".to_owned(),
        format!("epsilon, person at {k} nodes"),
    ];
    let mut rows: Vec<Vec<String>> = vec![head.to_vec()];
    for n in &report.nodes {
        let Some(p) = n.current() else { continue };
        rows.push(vec![
            n.node.to_string(),
            p.period.to_string(),
            format!("{} ({} published)", n.debits, n.released),
            p.spent.to_string(),
            format!("{:.6}", p.spent.to_f64()),
            p.cap.to_string(),
            format!(
                "{} ({:.4})",
                eps(&p.spent),
                epsilon_simple_at_delta(&p.spent, delta)
            ),
            n.remaining().to_string(),
            format!("{} over {} period(s)", n.cumulative, n.periods.len()),
            eps(&n.cumulative),
            n.lifetime_cap
                .as_ref()
                .map_or_else(|| "none".to_owned(), Rho::to_string),
            format!("{} (rho {})", eps(&n.person_rho), n.person_rho),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = render_ok(report);
    out.push('\n');
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    let source = if report.max_holders.declared {
        "as declared"
    } else {
        "by default every audited node, as none was declared (--max-holders)"
    };
    let _ = write!(
        out,
        "\nA person at one node, over all periods: rho {} (epsilon {}). A person whose records sit at up to {k} nodes ({source}), over all periods and releases: rho {} (epsilon {}).\n",
        report.person_rho_one_holder,
        eps(&report.person_rho_one_holder),
        report.person_rho,
        eps(&report.person_rho),
    );
    out.push_str(
        "\nReleases: debits in all periods (published: used by a recorded release). Spent rho, cap, epsilon and remaining: the current period only.\n\
         All periods: the exact sum of every debit in the node's ledger. A period cap is a rate limit, not a lifetime bound: the same customers are released again every period, so their loss is the all-periods figure, bounded only by a lifetime cap where one is recorded.\n\
         The privacy unit is a customer at one node. A person at K nodes loses min(K, n)^2 rho in a release that n nodes paid for (zCDP group privacy: their K blocks add in the sum); the person column sums that over the node's debits, the line above over every release of every node.\n\
         Epsilon: the tight Canonne-Kamath-Steinke conversion of rho, and in brackets the simple bound rho + 2*sqrt(rho*ln(1/delta)).\n",
    );
    render_warnings(&mut out, report);
    out
}
