//! Reference vectors: the wire format of every message, pinned byte by byte, and the ways a
//! decoder must refuse bytes that are not a message.
//!
//! Layout reminder (see `docs/PROTOCOL.md`): `version (u16 BE) || postcard(Envelope)`. Postcard
//! writes integers as LEB128 varints (7 bits per byte, low group first, high bit = "more"), an
//! enum variant as its index (varint), a string or sequence as a varint length then the items,
//! and a struct as its fields in declaration order with nothing between them.
//!
//! A failing vector means the wire format changed: that needs a new `PROTOCOL_VERSION`, not a new
//! vector.

#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

use fedprof_protocol::frame::{HEADER_LEN, encode_frame};
use fedprof_protocol::{
    Body, Contribution, DecodeError, Envelope, ErrorCode, ErrorFrame, Fraction, FrameDecoder,
    FrameError, FrameLimit, Header, JobAnnounce, JobId, JobOutcome, JobResult, JobSpec,
    NodeFailure, PartyId, PartyName, ProfileId, ProfileTag, ReceiptHead, Refusal, RefuseReason,
    Register, Registered, ReleaseParams, RequestId, Role, RosterEntry, RoundId, RoundOver,
    RoundOverReason, SecAggGraph, SecAggSetup, Submission, decode, encode, secagg,
};

fn header(job: u64, round: u32, seq: u64) -> Header {
    Header {
        job: JobId(job),
        round: RoundId(round),
        seq,
    }
}

fn name(s: &str) -> PartyName {
    PartyName::new(s).unwrap()
}

fn envelope(header: Header, body: Body) -> Envelope {
    Envelope { header, body }
}

/// The postcard variant index of a body. Exhaustive on purpose: a new variant does not compile
/// until it is listed here, and `vectors_cover_every_body_variant` then asks for its vector.
fn variant_index(body: &Body) -> u8 {
    match body {
        Body::Register(_) => 0,
        Body::Registered(_) => 1,
        Body::JobAnnounce(_) => 2,
        Body::Accept => 3,
        Body::Refuse(_) => 4,
        Body::Submit(_) => 5,
        Body::Result(_) => 6,
        Body::SubmitJob(_) => 7,
        Body::Outcome(_) => 8,
        Body::Error(_) => 9,
        Body::SecAgg(_) => 10,
        Body::SecAggRelay(_) => 11,
        Body::Receipt(_) => 12,
        Body::RoundOver(_) => 13,
        Body::Ping(_) => 14,
        Body::Pong(_) => 15,
    }
}
const BODY_VARIANTS: u8 = 16;

/// The profiling job tag used in several vectors: id 0x11 x 16, analyst "x", cap 1/2.
fn tag() -> ProfileTag {
    ProfileTag {
        id: ProfileId([0x11; 16]),
        analyst: name("x"),
        cap: Fraction { numer: 1, denom: 2 },
    }
}

/// The job spec used in several vectors: a small transaction-totals feature query (label "t",
/// as of 2026-06-30, scale 8, every customer in one segment, parts: count, transactions in
/// [0, 5], amount in [0, 100] minor units; budget 1/2, reserve 0, a new profiling job).
fn totals() -> JobSpec {
    use fedprof_protocol::query::{FeatureQuery, NumericFeature, QueryPart, Segmenter};
    JobSpec::Features(Box::new(FeatureQuery {
        label: "t".into(),
        as_of: "2026-06-30".into(),
        scale: 8,
        segmenter: Segmenter::All,
        parts: vec![
            QueryPart::Count,
            QueryPart::Numeric {
                feature: NumericFeature::TxnCount,
                lo: 0,
                hi: 5,
            },
            QueryPart::Numeric {
                feature: NumericFeature::MonetaryTotal,
                lo: 0,
                hi: 100,
            },
        ],
        budget: Fraction { numer: 1, denom: 2 },
        reserve: Fraction { numer: 0, denom: 1 },
        job: None,
    }))
}

/// Small release parameters used in several vectors.
fn release() -> ReleaseParams {
    ReleaseParams {
        node_variance: vec![Fraction { numer: 4, denom: 1 }],
        min_contributors: 2,
        colluders: 1,
    }
}

struct Vector {
    name: &'static str,
    value: Envelope,
    bytes: &'static [u8],
}

#[rustfmt::skip]
fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "register",
            value: envelope(
                header(0, 0, 0),
                Body::Register(Register { software: "fedprof 0.1.0".into() }),
            ),
            bytes: &[
                0x00, 0x03,       // protocol version 3, u16 big-endian
                0x00, 0x00, 0x00, // header: job 0 (JobId::NONE), round 0, seq 0
                0x00,             // Body::Register
                0x0d,             // software: 13 bytes
                b'f', b'e', b'd', b'p', b'r', b'o', b'f', b' ', b'0', b'.', b'1', b'.', b'0',
            ],
        },
        Vector {
            name: "registered",
            value: envelope(
                header(0, 0, 0),
                Body::Registered(Registered {
                    party: PartyId { role: Role::Node, name: name("branch-7") },
                }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x00, 0x00, 0x00, // header: job 0, round 0, seq 0
                0x01,             // Body::Registered
                0x01,             // party.role: Role::Node
                0x08,             // party.name: 8 bytes
                b'b', b'r', b'a', b'n', b'c', b'h', b'-', b'7',
            ],
        },
        Vector {
            name: "job-announce",
            value: envelope(
                header(7, 0, 1),
                Body::JobAnnounce(JobAnnounce {
                    spec: totals(),
                    timeout_ms: 30_000,
                    release: release(),
                    secagg: SecAggSetup {
                        roster: vec![RosterEntry { name: name("a"), certificate: vec![0xde, 0xad] }],
                        threshold: 2,
                        graph: SecAggGraph::Complete,
                        min_survivors: 2,
                    },
                    profile: tag(),
                    nonce: [0x22; 32],
                    last_receipt: Some(Box::new(ReceiptHead { seq: 5, digest: [0x33; 32] })),
                }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x01, // header: job 7, round 0, seq 1
                0x02,             // Body::JobAnnounce
                // spec: totals(), 32 bytes
                0x00,             //   JobSpec::Features
                0x01, b't',       //   label: 1 byte, "t"
                0x0a,             //   as_of: 10 bytes
                b'2', b'0', b'2', b'6', b'-', b'0', b'6', b'-', b'3', b'0',
                0x08,             //   scale 8
                0x00,             //   segmenter: Segmenter::All
                0x03,             //   parts: 3
                0x00,             //     QueryPart::Count
                0x01, 0x04, 0x00, 0x0a,       // Numeric, TxnCount, lo 0, hi 5 (zigzag 10)
                0x01, 0x05, 0x00, 0xc8, 0x01, // Numeric, MonetaryTotal, lo 0, hi 100 (zigzag 200)
                0x01, 0x02,       //   budget 1/2
                0x00, 0x01,       //   reserve 0/1
                0x00,             //   job: None
                0xb0, 0xea, 0x01, // timeout_ms: 30000 = 0x30 | 0x6a << 7 | 0x01 << 14
                0x01, 0x04, 0x01, 0x02, 0x01, // release (release(): variances [4/1], n_min 2, c 1)
                0x01,             // secagg.roster: 1 entry
                0x01, b'a',       //   name "a"
                0x02, 0xde, 0xad, //   certificate: 2 bytes (a byte string)
                0x02,             // secagg.threshold 2
                0x00,             // secagg.graph: Complete
                0x02,             // secagg.min_survivors 2
                // profile: tag() (id 0x11 x 16, analyst "x", cap 1/2), then the nonce: 32 raw bytes 0x22
                0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                0x01, b'x', 0x01, 0x02,
                0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
                0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
                0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
                0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
                // last_receipt: Some, seq 5, digest: 32 raw bytes 0x33
                0x01, 0x05,
                0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33,
                0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33,
                0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33,
                0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33,
            ],
        },
        Vector {
            name: "accept",
            value: envelope(header(7, 0, 2), Body::Accept),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x02, // header: job 7, round 0, seq 2
                0x03,             // Body::Accept (unit variant: index only)
            ],
        },
        Vector {
            name: "accept-wide-header",
            value: envelope(header(1 << 35, u32::MAX, 128), Body::Accept),
            bytes: &[
                0x00, 0x03,                         // version 3
                0x80, 0x80, 0x80, 0x80, 0x80, 0x01, // job 2^35: five empty 7-bit groups, then 1
                0xff, 0xff, 0xff, 0xff, 0x0f,       // round u32::MAX: 5 bytes, last holds 4 bits
                0x80, 0x01,                         // seq 128
                0x03,                               // Body::Accept
            ],
        },
        Vector {
            name: "refuse",
            value: envelope(
                header(7, 0, 2),
                Body::Refuse(Refusal {
                    reason: RefuseReason::BudgetExhausted,
                    detail: "no budget".into(),
                }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x02, // header: job 7, round 0, seq 2
                0x04,             // Body::Refuse
                0x02,             // reason: RefuseReason::BudgetExhausted
                0x09,             // detail: 9 bytes
                b'n', b'o', b' ', b'b', b'u', b'd', b'g', b'e', b't',
            ],
        },
        Vector {
            name: "submit",
            value: envelope(
                header(7, 0, 3),
                // Noise can push a coordinate below 0: -1 is u64::MAX in Z_2^64.
                Body::Submit(Contribution { values: vec![3, 300, u64::MAX] }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x03, // header: job 7, round 0, seq 3
                0x05,             // Body::Submit
                0x18,             // values: 24 bytes = 3 fixed-width little-endian elements
                0x03, 0, 0, 0, 0, 0, 0, 0, // 3
                0x2c, 0x01, 0, 0, 0, 0, 0, 0, // 300 = 0x012c
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // u64::MAX
            ],
        },
        Vector {
            name: "result",
            value: envelope(
                header(7, 0, 2),
                Body::Result(JobResult {
                    spec: totals(),
                    values: vec![5, 600, 128],
                    contributors: vec![name("a"), name("b")],
                    release: release(),
                    profile: tag(),
                }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x02, // header: job 7, round 0, seq 2
                0x06,             // Body::Result
                // spec: totals(), as in "job-announce"
                0x00, 0x01, b't', 0x0a, b'2', b'0', b'2', b'6', b'-', b'0', b'6', b'-', b'3', b'0',
                0x08, 0x00, 0x03, 0x00, 0x01, 0x04, 0x00, 0x0a, 0x01, 0x05, 0x00, 0xc8, 0x01,
                0x01, 0x02, 0x00, 0x01, 0x00,
                0x18,             // values: 24 bytes = 3 fixed-width little-endian elements
                0x05, 0, 0, 0, 0, 0, 0, 0, // 5
                0x58, 0x02, 0, 0, 0, 0, 0, 0, // 600 = 0x0258
                0x80, 0, 0, 0, 0, 0, 0, 0, // 128
                0x02,             // contributors: 2 names
                0x01, b'a',       // "a"
                0x01, b'b',       // "b"
                0x01, 0x04, 0x01, 0x02, 0x01, // release (release(): variances [4/1], n_min 2, c 1)
                0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, // profile: tag()
                0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                0x01, b'x', 0x01, 0x02,
            ],
        },
        Vector {
            name: "submit-job",
            value: envelope(
                header(0, 0, 0),
                Body::SubmitJob(Submission { request: RequestId([0x22; 16]), spec: totals() }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x00, 0x00, 0x00, // header: job 0 (none yet), round 0, seq 0
                0x07,             // Body::SubmitJob
                0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, // request: 16 raw bytes
                0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
                // the spec: totals(), as in "job-announce"
                0x00, 0x01, b't', 0x0a, b'2', b'0', b'2', b'6', b'-', b'0', b'6', b'-', b'3', b'0',
                0x08, 0x00, 0x03, 0x00, 0x01, 0x04, 0x00, 0x0a, 0x01, 0x05, 0x00, 0xc8, 0x01,
                0x01, 0x02, 0x00, 0x01, 0x00,
            ],
        },
        Vector {
            name: "outcome-completed",
            value: envelope(
                header(7, 0, 1),
                Body::Outcome(JobOutcome::Completed {
                    result: JobResult {
                        spec: totals(),
                        values: vec![2, 4, 0],
                        contributors: vec![name("a")],
                        release: release(),
                        profile: tag(),
                    },
                    failures: vec![NodeFailure { node: name("c"), reason: "timed out".into() }],
                }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x01, // header: job 7, round 0, seq 1
                0x08,             // Body::Outcome
                0x00,             // JobOutcome::Completed
                // result.spec: totals(), as in "job-announce"
                0x00, 0x01, b't', 0x0a, b'2', b'0', b'2', b'6', b'-', b'0', b'6', b'-', b'3', b'0',
                0x08, 0x00, 0x03, 0x00, 0x01, 0x04, 0x00, 0x0a, 0x01, 0x05, 0x00, 0xc8, 0x01,
                0x01, 0x02, 0x00, 0x01, 0x00,
                0x18,             // result.values: 24 bytes, elements 2, 4, 0
                0x02, 0, 0, 0, 0, 0, 0, 0,
                0x04, 0, 0, 0, 0, 0, 0, 0,
                0x00, 0, 0, 0, 0, 0, 0, 0,
                0x01, 0x01, b'a', // result.contributors: 1 name, "a"
                0x01, 0x04, 0x01, 0x02, 0x01, // result.release (release(): variances [4/1], n_min 2, c 1)
                0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, // result.profile: tag()
                0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                0x01, b'x', 0x01, 0x02,
                0x01,             // failures: 1
                0x01, b'c',       // failures[0].node: "c"
                0x09,             // failures[0].reason: 9 bytes
                b't', b'i', b'm', b'e', b'd', b' ', b'o', b'u', b't',
            ],
        },
        Vector {
            name: "secagg-masked-input",
            value: envelope(
                header(7, 0, 4),
                Body::SecAgg(secagg::NodeMessage::Masked(secagg::MaskedInput {
                    tag: secagg::RoundTag { job: 7, round: 0 },
                    sender: 1,
                    masked: vec![1, 0, 0, 0, 0, 0, 0, 0],
                })),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x04, // header: job 7, round 0, seq 4
                0x0a,             // Body::SecAgg
                0x02,             // NodeMessage::Masked
                0x07, 0x00,       // tag: job 7, round 0
                0x01,             // sender 1
                0x08,             // masked: 8 bytes (a byte string)
                0x01, 0, 0, 0, 0, 0, 0, 0,
            ],
        },
        Vector {
            name: "secagg-unmask-request",
            value: envelope(
                header(7, 0, 5),
                Body::SecAggRelay(secagg::CoordinatorMessage::Unmask(secagg::UnmaskRequest {
                    tag: secagg::RoundTag { job: 7, round: 0 },
                    recipient: 1,
                    survivors: vec![0, 1],
                })),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x05, // header: job 7, round 0, seq 5
                0x0b,             // Body::SecAggRelay
                0x02,             // CoordinatorMessage::Unmask
                0x07, 0x00,       // tag: job 7, round 0
                0x01,             // recipient 1
                0x02, 0x00, 0x01, // survivors: 2 indices, 0 and 1
            ],
        },
        Vector {
            name: "receipt",
            value: envelope(header(7, 0, 3), Body::Receipt("{}".into())),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x03, // header: job 7, round 0, seq 3
                0x0c,             // Body::Receipt
                0x02, b'{', b'}', // the ledger line: 2 bytes
            ],
        },
        Vector {
            name: "round-over",
            value: envelope(
                header(7, 0, 9),
                Body::RoundOver(RoundOver { reason: RoundOverReason::Aborted, detail: "x".into() }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x07, 0x00, 0x09, // header: job 7, round 0, seq 9
                0x0d,             // Body::RoundOver
                0x01,             // RoundOverReason::Aborted
                0x01, b'x',       // detail: 1 byte
            ],
        },
        Vector {
            name: "ping",
            value: envelope(header(0, 0, 4), Body::Ping(300)),
            bytes: &[
                0x00, 0x03,       // version 3
                0x00, 0x00, 0x04, // header: job 0 (connection-level), round 0, seq 4
                0x0e,             // Body::Ping
                0xac, 0x02,       // 300 as a varint
            ],
        },
        Vector {
            name: "pong",
            value: envelope(header(0, 0, 1), Body::Pong(300)),
            bytes: &[
                0x00, 0x03,       // version 3
                0x00, 0x00, 0x01, // header: job 0 (connection-level), round 0, seq 1
                0x0f,             // Body::Pong
                0xac, 0x02,       // 300 as a varint
            ],
        },
        Vector {
            name: "outcome-aborted",
            value: envelope(
                header(8, 0, 2),
                Body::Outcome(JobOutcome::Aborted { reason: "no nodes".into(), failures: vec![] }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x08, 0x00, 0x02, // header: job 8, round 0, seq 2
                0x08,             // Body::Outcome
                0x01,             // JobOutcome::Aborted
                0x08,             // reason: 8 bytes
                b'n', b'o', b' ', b'n', b'o', b'd', b'e', b's',
                0x00,             // failures: none
            ],
        },
        Vector {
            name: "error",
            value: envelope(
                header(0, 0, 5),
                Body::Error(ErrorFrame { code: ErrorCode::OutOfSequence, detail: "want 4".into() }),
            ),
            bytes: &[
                0x00, 0x03,       // version 3
                0x00, 0x00, 0x05, // header: job 0 (connection-level), round 0, seq 5
                0x09,             // Body::Error
                0x03,             // code: ErrorCode::OutOfSequence
                0x06,             // detail: 6 bytes
                b'w', b'a', b'n', b't', b' ', b'4',
            ],
        },
    ]
}

#[test]
fn encode_gives_the_pinned_bytes() {
    for v in vectors() {
        assert_eq!(encode(&v.value).unwrap(), v.bytes, "{}", v.name);
    }
}

#[test]
fn decode_of_the_pinned_bytes_gives_the_value() {
    for v in vectors() {
        assert_eq!(decode(v.bytes).as_ref(), Ok(&v.value), "{}", v.name);
    }
}

#[test]
fn vectors_cover_every_body_variant() {
    let mut seen = [false; BODY_VARIANTS as usize];
    for v in vectors() {
        let index = variant_index(&v.value.body);
        seen[usize::from(index)] = true;
        // The variant index follows the version and the header; every vector but the wide one
        // has a 3-byte header.
        if v.name != "accept-wide-header" {
            assert_eq!(v.bytes[5], index, "{}: variant index byte", v.name);
        }
    }
    assert!(
        seen.iter().all(|s| *s),
        "variants without a vector: {seen:?}"
    );
}

/// Variant order is wire format for every enum, not just `Body`: pin each index.
#[test]
fn enum_variant_indices_are_pinned() {
    fn one_byte<T: serde::Serialize>(v: &T) -> u8 {
        let bytes = postcard::to_stdvec(v).unwrap();
        assert_eq!(bytes.len(), 1);
        bytes[0]
    }
    let codes = [
        ErrorCode::FrameTooLarge,
        ErrorCode::Malformed,
        ErrorCode::UnsupportedVersion,
        ErrorCode::OutOfSequence,
        ErrorCode::RoleNotPermitted,
        ErrorCode::UnexpectedMessage,
        ErrorCode::UnknownJob,
        ErrorCode::BadContribution,
        ErrorCode::ShuttingDown,
        ErrorCode::Replaced,
        ErrorCode::Internal,
        ErrorCode::Unresponsive,
    ];
    for (i, c) in codes.iter().enumerate() {
        assert_eq!(usize::from(one_byte(c)), i, "{c:?}");
    }
    let reasons = [
        RefuseReason::UnsupportedJob,
        RefuseReason::DataUnavailable,
        RefuseReason::BudgetExhausted,
        RefuseReason::Policy,
        RefuseReason::Busy,
        RefuseReason::PrivacyFloor,
        RefuseReason::RolledBack,
    ];
    assert_eq!(
        reasons,
        RefuseReason::ALL,
        "ALL lists every reason in wire order"
    );
    for (i, r) in reasons.iter().enumerate() {
        assert_eq!(usize::from(one_byte(r)), i, "{r:?}");
    }
    for (i, r) in Role::ALL.iter().enumerate() {
        assert_eq!(usize::from(one_byte(r)), i, "{r:?}");
    }
}

// ---- Negative vectors -------------------------------------------------------------------------

fn malformed(bytes: &[u8]) -> postcard::Error {
    match decode(bytes) {
        Err(DecodeError::Malformed(e)) => e,
        other => unreachable!("expected Malformed for {bytes:02x?}, got {other:?}"),
    }
}

#[test]
fn too_short_for_a_version() {
    assert_eq!(decode(&[]), Err(DecodeError::TooShort(0)));
    assert_eq!(decode(&[0x00]), Err(DecodeError::TooShort(1)));
}

#[test]
fn unknown_version_is_refused_before_the_body_is_read() {
    // Version alone, version with a valid current body, version with garbage: all the same error.
    let accept_v1 = &vectors()[3].bytes[2..];
    for version in [
        [0x00, 0x01],
        [0x00, 0x02],
        [0xff, 0xff],
        [0x00, 0x00],
        [0x01, 0x00],
    ] {
        let got = u16::from_be_bytes(version);
        for body in [&[][..], accept_v1, &[0xff; 16]] {
            let bytes = [&version[..], body].concat();
            assert_eq!(
                decode(&bytes),
                Err(DecodeError::UnsupportedVersion { got }),
                "{bytes:02x?}"
            );
        }
    }
}

#[test]
fn version_without_envelope_is_malformed() {
    assert_eq!(
        malformed(&[0x00, 0x03]),
        postcard::Error::DeserializeUnexpectedEnd
    );
}

#[test]
fn every_truncation_is_refused() {
    for v in vectors() {
        for cut in 0..v.bytes.len() {
            let got = decode(&v.bytes[..cut]);
            let want = if cut < 2 {
                DecodeError::TooShort(cut)
            } else {
                DecodeError::Malformed(postcard::Error::DeserializeUnexpectedEnd)
            };
            assert_eq!(got, Err(want), "{} cut at {cut}", v.name);
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    for v in vectors() {
        for extra in [&[0x00][..], &[0x03], &[0xff, 0xff, 0xff]] {
            let bytes = [v.bytes, extra].concat();
            assert_eq!(
                decode(&bytes),
                Err(DecodeError::TrailingBytes(extra.len())),
                "{}",
                v.name
            );
        }
    }
}

#[test]
fn unknown_variant_indices_are_refused() {
    let cases: [(&str, &[u8]); 7] = [
        // version, header (job 7, round 0, seq 0), then:
        ("Body 17", &[0x00, 0x03, 0x07, 0x00, 0x00, 0x11]),
        ("Body 127", &[0x00, 0x03, 0x07, 0x00, 0x00, 0x7f]),
        (
            "Role 4 in Registered",
            &[0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, b'a'],
        ),
        (
            "JobSpec 2 in JobAnnounce",
            &[0x00, 0x03, 0x07, 0x00, 0x00, 0x02, 0x02, 0x00],
        ),
        (
            "RefuseReason 7",
            &[0x00, 0x03, 0x07, 0x00, 0x00, 0x04, 0x07, 0x00],
        ),
        (
            "JobOutcome 2",
            &[0x00, 0x03, 0x07, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00],
        ),
        (
            "ErrorCode 12",
            &[0x00, 0x03, 0x00, 0x00, 0x00, 0x09, 0x0c, 0x00],
        ),
    ];
    for (what, bytes) in cases {
        // serde reports an out-of-range index as a custom error.
        assert_eq!(malformed(bytes), postcard::Error::SerdeDeCustom, "{what}");
    }
    // A variant index that does not fit the u32 postcard allows: 5 bytes, last above 0x0f.
    assert_eq!(
        malformed(&[0x00, 0x03, 0x07, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x10]),
        postcard::Error::DeserializeBadVarint
    );
}

#[test]
fn huge_length_prefixes_fail_without_allocating() {
    // 2^60 as a varint: eight empty 7-bit groups, then 0x10 (bit 4 of the ninth group).
    const LEN_2_60: [u8; 9] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
    let prefix: &[u8] = &[0x00, 0x03, 0x07, 0x00, 0x03]; // version, header job 7 seq 3
    // Submit: a ring vector claiming 2^60 bytes, followed by three of them. A
    // decoder that reserved the declared length would abort the test process here; postcard
    // gives serde no size hint above the bytes actually left.
    let submit = [prefix, &[0x05], &LEN_2_60, &[0x01, 0x02, 0x03]].concat();
    assert_eq!(
        malformed(&submit),
        postcard::Error::DeserializeUnexpectedEnd
    );
    // Result.contributors: Vec<PartyName> of 2^60 names.
    let result = [prefix, &[0x06, 0x00, 0x00], &LEN_2_60, &[0x01, b'a']].concat();
    assert_eq!(
        malformed(&result),
        postcard::Error::DeserializeUnexpectedEnd
    );
    // Register.software: a string of 2^60 bytes.
    let register = [prefix, &[0x00], &LEN_2_60, b"fedprof"].concat();
    assert_eq!(
        malformed(&register),
        postcard::Error::DeserializeUnexpectedEnd
    );
    // A length that overflows u64 (ten bytes, last above 0x01) is a bad varint.
    let overflow = [prefix, &[0x05], &[0xff; 9], &[0x02]].concat();
    assert_eq!(malformed(&overflow), postcard::Error::DeserializeBadVarint);
}

#[test]
fn invalid_party_names_are_refused_inside_messages() {
    // Registered { party: { role: Node, name: "Branch-7" } }: uppercase is not a party name.
    let mut registered = vectors()[1].bytes.to_vec();
    assert_eq!(registered[8], b'b');
    registered[8] = b'B';
    assert_eq!(malformed(&registered), postcard::Error::SerdeDeCustom);
    // Empty name and edge hyphen in Registered.
    assert_eq!(
        malformed(&[0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00]),
        postcard::Error::SerdeDeCustom
    );
    assert_eq!(
        malformed(&[0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, b'a', b'-']),
        postcard::Error::SerdeDeCustom
    );
    // A contributor name with a '/' in Result (the name "b" sits before the release's 5 bytes
    // and the profile tag's 20).
    let mut result = vectors()[7].bytes.to_vec();
    let last = result.len() - 26;
    assert_eq!(result[last], b'b');
    result[last] = b'/';
    assert_eq!(malformed(&result), postcard::Error::SerdeDeCustom);
}

#[test]
fn invalid_utf8_is_refused() {
    let mut register = vectors()[0].bytes.to_vec();
    register[7] = 0xff; // first byte of the software string
    assert_eq!(malformed(&register), postcard::Error::DeserializeBadUtf8);
}

// ---- Framing -----------------------------------------------------------------------------------

fn limit_1024() -> FrameLimit {
    FrameLimit::new(u64::from(FrameLimit::MIN)).unwrap()
}

#[test]
fn frame_vector() {
    let accept = vectors()[3].bytes;
    let frame = encode_frame(accept, FrameLimit::DEFAULT).unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x00, 0x00, 0x00, 0x06,             // payload length 6, u32 big-endian
        0x00, 0x03, 0x07, 0x00, 0x02, 0x03, // the "accept" envelope
    ];
    assert_eq!(frame, expected);
    let mut d = FrameDecoder::new(FrameLimit::DEFAULT);
    assert_eq!(d.push(expected), Ok(&[][..]));
    assert_eq!(d.next_frame(), Ok(Some(accept.to_vec())));
    assert_eq!(d.next_frame(), Ok(None));
}

#[test]
fn one_push_takes_one_whole_frame() {
    // Regression: `push` used to stop after the 4-byte prefix, so one call never completed a
    // frame: a caller that reads the socket again whenever `next_frame` gives `None` would wait
    // for bytes it already held.
    let mut stream = encode_frame(vectors()[3].bytes, limit_1024()).unwrap();
    stream.extend(encode_frame(vectors()[4].bytes, limit_1024()).unwrap());
    let mut d = FrameDecoder::new(limit_1024());
    let rest = d.push(&stream).unwrap();
    assert_eq!(rest.len(), HEADER_LEN + vectors()[4].bytes.len());
    assert_eq!(
        decode(&d.next_frame().unwrap().unwrap()),
        Ok(vectors()[3].value.clone())
    );
    assert_eq!(d.push(rest), Ok(&[][..]));
    assert_eq!(
        decode(&d.next_frame().unwrap().unwrap()),
        Ok(vectors()[4].value.clone())
    );
    assert_eq!(d.next_frame(), Ok(None));
}

#[test]
fn encode_framed_equals_encode_then_frame() {
    let limit = FrameLimit::new(1024).unwrap();
    let env = envelope(
        header(7, 0, 3),
        Body::Submit(Contribution {
            values: vec![1, 2, 3],
        }),
    );
    let framed = fedprof_protocol::encode_framed(&env, limit).unwrap();
    let two_step =
        fedprof_protocol::frame::encode_frame(&fedprof_protocol::encode(&env).unwrap(), limit)
            .unwrap();
    assert_eq!(framed, two_step);
    let big = envelope(
        header(7, 0, 3),
        Body::Submit(Contribution {
            values: vec![0; 200],
        }),
    );
    assert!(matches!(
        fedprof_protocol::encode_framed(&big, limit),
        Err(fedprof_protocol::EncodeError::Frame(
            FrameError::TooLarge { .. }
        ))
    ));
}
