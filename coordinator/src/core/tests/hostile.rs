//! Hostile peers against the core (security review L3, L8, M8): what they send reaches the log
//! escaped, analysts learn no budget figures, and floods close the flooder only.

use super::*;

/// Runs `f` with every `tracing` event it emits written, without colours, to a buffer: the
/// log an operator would read.
///
/// One global subscriber for the whole test binary, writing into the calling thread's buffer
/// when it has one: a scoped subscriber (`with_default`) misses events when another test's
/// thread registers the same callsite first and tracing caches its interest (this test failed
/// about one run in six that way).
fn log_of(f: impl FnOnce()) -> String {
    use std::cell::RefCell;
    thread_local! {
        static CAPTURE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    }
    struct ThreadBuffer;
    impl std::io::Write for ThreadBuffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            CAPTURE.with(|c| {
                if let Some(buffer) = c.borrow_mut().as_mut() {
                    buffer.extend_from_slice(bytes);
                }
            });
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| ThreadBuffer)
            .finish();
        // Another test binary's harness may have set one already; then nothing is captured
        // and the assertions below say so.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
    f();
    let bytes = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn l3_peer_strings_reach_the_log_escaped_and_bounded() {
    const FORGED: &str = "2026-12-08T00:00:00Z  INFO fedprof: forged";
    let log = log_of(|| {
        let mut f = Fed::new(1);
        f.connect(1, Role::Node, "a");
        let out = f.say(
            1,
            0,
            Body::Register(Register {
                software: format!("evil\n{FORGED}\u{1b}[2J"),
            }),
        );
        assert!(matches!(
            &out[0],
            Output::Send {
                body: Body::Registered(_),
                ..
            }
        ));
        f.say(
            1,
            0,
            Body::Error(ErrorFrame {
                code: ErrorCode::Malformed,
                detail: format!("\r\n{FORGED}{}", "x".repeat(100_000)),
            }),
        );
    });
    // One line per event: no peer newline starts a line of its own.
    assert!(!log.lines().any(|l| l.starts_with(FORGED)), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
    assert!(
        log.contains(&format!("software=evil\\n{FORGED}\\u{{1b}}[2J")),
        "{log}"
    );
    assert!(log.contains(&format!("detail=\\r\\n{FORGED}")), "{log}");
    // The 100,000-byte detail is cut (in the warning, and in the close reason logged after it).
    assert!(log.contains("more bytes]"), "{log}");
    assert!(log.len() < 5_000, "{} bytes of log", log.len());
}

#[test]
fn l8_refusal_details_stay_out_of_the_analysts_outcome() {
    const DETAIL: &str = "spent rho 3/4 of the cap 1/1 this period";
    let mut outcome = None;
    let log = log_of(|| {
        let mut f = Fed::new(2);
        f.register(1, "a");
        f.register(2, "b");
        f.connect(9, Role::Analyst, "x");
        f.say(9, 0, Body::SubmitJob(sub(totals())));
        let refusal = Refusal {
            reason: RefuseReason::BudgetExhausted,
            detail: DETAIL.into(),
        };
        let mut out = f.say(2, 1, Body::Refuse(refusal));
        f.now += Duration::from_secs(6);
        out.extend(f.input(Input::Tick));
        outcome = out.into_iter().find_map(|o| match o {
            Output::Send {
                conn: 9,
                body: Body::Outcome(outcome),
                ..
            } => Some(outcome),
            _ => None,
        });
    });
    let Some(JobOutcome::Aborted { failures, .. }) = outcome else {
        panic!("no abort told to the analyst: {outcome:?}")
    };
    let b = failures.iter().find(|x| x.node.as_str() == "b").unwrap();
    assert!(b.reason.contains("BudgetExhausted"), "{b:?}");
    assert!(b.reason.contains("budget is exhausted"), "{b:?}");
    assert!(
        !b.reason.contains("3/4") && !b.reason.contains("1/1"),
        "{b:?}"
    );
    // The coordinator's operator still reads the node's exact position.
    assert!(log.contains(DETAIL), "{log}");
}

/// Security review M8: a registered node that streams messages faster than any protocol step
/// needs, or keeps answering a round that settled, is closed; an honest node is not.
#[test]
fn floods_close_the_flooder_only() {
    use crate::core::{MAX_STRAY_MESSAGES, MESSAGE_BURST};
    let mut f = Fed::new(2);
    f.register(1, "a");
    f.register(2, "b");
    // A burst of pongs, all at one instant: the first MESSAGE_BURST - 1 pass (the registration
    // took one), then the connection is closed.
    for i in 1..MESSAGE_BURST {
        let out = f.say(1, 0, Body::Pong(i));
        assert!(out.is_empty(), "message {i}: {out:?}");
    }
    let out = f.say(1, 0, Body::Pong(0));
    assert!(
        closes_with(&out, 1, ErrorCode::UnexpectedMessage),
        "{out:?}"
    );
    // Late answers to a settled round: a few are ignored, a stream of them closes the sender.
    f.register(3, "c");
    f.input(Input::SubmitJob {
        submission: sub(totals()),
        requester: Requester::Local(1),
    });
    f.now += Duration::from_secs(6);
    f.input(Input::Tick);
    let job = 1;
    for i in 0..MAX_STRAY_MESSAGES {
        assert!(f.say(2, job, Body::Accept).is_empty(), "stray {i}");
    }
    let out = f.say(2, job, Body::Accept);
    assert!(
        closes_with(&out, 2, ErrorCode::UnexpectedMessage),
        "{out:?}"
    );
    // The honest node that stayed quiet is still registered and keeps being served.
    let out = f.say(3, 0, Body::Pong(1));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(f.core.nodes(), vec![PartyName::new("c").unwrap()]);
}
