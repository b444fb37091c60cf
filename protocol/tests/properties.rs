//! Property tests: the decoders are total on arbitrary bytes, and every valid envelope survives
//! encoding, framing and reassembly from arbitrary chunking.
//!
//! Case counts are kept modest (512) so the suite stays fast; `fuzz/` runs the same decoders for
//! much longer, coverage-guided.

#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

use fedprof_protocol::frame::{HEADER_LEN, encode_frame};
use fedprof_protocol::query::{
    CategoricalFeature, Dimension, FeatureQuery, MixFeature, NumericFeature, QueryPart, Segmenter,
};
use fedprof_protocol::{
    Body, Contribution, DecodeError, Envelope, ErrorCode, ErrorFrame, Fraction, FrameDecoder,
    FrameError, FrameLimit, Header, JobAnnounce, JobId, JobOutcome, JobResult, JobSpec,
    NodeFailure, PROTOCOL_VERSION, PartyId, PartyName, ProfileId, ProfileTag, ReceiptHead, Refusal,
    RefuseReason, Register, Registered, ReleaseParams, RequestId, Role, RosterEntry, RoundId,
    RoundOver, RoundOverReason, SecAggGraph, SecAggSetup, Submission, decode, encode, secagg,
};
use proptest::collection::vec;
use proptest::prelude::*;

const CASES: u32 = 512;

// ---- Strategies for valid messages -----------------------------------------------------------

fn party_name() -> impl Strategy<Value = PartyName> {
    // 1 to 63 of [a-z0-9-], no hyphen at either end: the whole valid set.
    "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?".prop_map(|s| PartyName::new(s).unwrap())
}

/// Free text (details, reasons, software versions): any Unicode, including the empty string.
fn text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

fn ring_vector() -> impl Strategy<Value = Vec<u64>> {
    // Mix small values (1- and 2-byte varints) with the full range (up to 10 bytes).
    vec(prop_oneof![0u64..300, any::<u64>()], 0..8)
}

fn header() -> impl Strategy<Value = Header> {
    (any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(job, round, seq)| Header {
        job: JobId(job),
        round: RoundId(round),
        seq,
    })
}

fn role() -> impl Strategy<Value = Role> {
    proptest::sample::select(Role::ALL.to_vec())
}

/// Feature queries small enough that every envelope still fits the test's frame limit: short
/// ASCII texts and small integers (the codec's handling of long strings and large varints is
/// covered by the other strategies).
fn short_text() -> impl Strategy<Value = String> {
    "[a-z0-9/-]{0,8}"
}

fn query_part() -> impl Strategy<Value = QueryPart> {
    let levels = || vec("[a-z]{0,6}", 1..3);
    prop_oneof![
        Just(QueryPart::Count),
        Just(QueryPart::Cost),
        (-1000i64..1000, -1000i64..1000).prop_map(|(lo, hi)| QueryPart::Numeric {
            feature: NumericFeature::MonetaryTotal,
            lo,
            hi
        }),
        vec(-1000i64..1000, 0..4).prop_map(|edges| QueryPart::Histogram {
            feature: NumericFeature::DaysSinceLast,
            edges
        }),
        levels().prop_map(|levels| QueryPart::Levels {
            feature: CategoricalFeature::Region,
            levels
        }),
        levels().prop_map(|levels| QueryPart::Mix {
            feature: MixFeature::Category,
            levels
        }),
        vec(vec(-1000i64..1000, 1..3), 1..3).prop_map(|edges| QueryPart::Grid {
            features: vec![NumericFeature::Frequency; edges.len()],
            edges
        }),
    ]
}

fn segmenter() -> impl Strategy<Value = Segmenter> {
    let cuts = || proptest::array::uniform4(-1000i64..1000);
    prop_oneof![
        Just(Segmenter::All),
        Just(Segmenter::Lifecycle),
        (cuts(), cuts(), cuts()).prop_map(|(r, f, m)| Segmenter::Rfm {
            recency: r,
            frequency: f,
            monetary: m,
        }),
        (-1000i64..1000, vec(vec(0u32..2000, 1..3), 0..3)).prop_map(|(lo, centroids)| {
            Segmenter::Centroids {
                dimensions: vec![Dimension {
                    feature: NumericFeature::Frequency,
                    lo,
                    hi: lo + 1,
                }],
                centroids,
            }
        }),
    ]
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    let small_fraction =
        || (0u64..1000, 1u64..1000).prop_map(|(numer, denom)| Fraction { numer, denom });
    (
        short_text(),
        short_text(),
        0u32..5000,
        segmenter(),
        vec(query_part(), 0..3),
        small_fraction(),
        small_fraction(),
        proptest::option::of(any::<[u8; 16]>().prop_map(ProfileId)),
    )
        .prop_map(
            |(label, as_of, scale, segmenter, parts, budget, reserve, job)| {
                JobSpec::Features(Box::new(FeatureQuery {
                    label,
                    as_of,
                    scale,
                    segmenter,
                    parts,
                    budget,
                    reserve,
                    job,
                }))
            },
        )
}

fn refuse_reason() -> impl Strategy<Value = RefuseReason> {
    proptest::sample::select(RefuseReason::ALL.to_vec())
}

fn profile_tag() -> impl Strategy<Value = ProfileTag> {
    (any::<[u8; 16]>(), party_name(), fraction()).prop_map(|(id, analyst, cap)| ProfileTag {
        id: ProfileId(id),
        analyst,
        cap,
    })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(vec![
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
    ])
}

fn round_over_reason() -> impl Strategy<Value = RoundOverReason> {
    proptest::sample::select(vec![
        RoundOverReason::NotInSum,
        RoundOverReason::Aborted,
        RoundOverReason::Excluded,
    ])
}

fn fraction() -> impl Strategy<Value = Fraction> {
    (any::<u64>(), any::<u64>()).prop_map(|(numer, denom)| Fraction { numer, denom })
}

fn release() -> impl Strategy<Value = ReleaseParams> {
    (vec(fraction(), 0..4), any::<u32>(), any::<u32>()).prop_map(
        |(node_variance, min_contributors, colluders)| ReleaseParams {
            node_variance,
            min_contributors,
            colluders,
        },
    )
}

fn secagg_setup() -> impl Strategy<Value = SecAggSetup> {
    (
        vec((party_name(), vec(any::<u8>(), 0..64)), 0..4),
        any::<u32>(),
        prop_oneof![
            Just(SecAggGraph::Complete),
            (any::<u32>(), any::<[u8; 32]>())
                .prop_map(|(neighbours, seed)| SecAggGraph::Sparse { neighbours, seed }),
        ],
        any::<u32>(),
    )
        .prop_map(|(roster, threshold, graph, min_survivors)| SecAggSetup {
            roster: roster
                .into_iter()
                .map(|(name, certificate)| RosterEntry { name, certificate })
                .collect(),
            threshold,
            graph,
            min_survivors,
        })
}

fn secagg_node_message() -> impl Strategy<Value = secagg::NodeMessage> {
    let tag = (any::<u64>(), any::<u32>()).prop_map(|(job, round)| secagg::RoundTag { job, round });
    prop_oneof![
        (tag.clone(), any::<u32>(), vec(any::<u8>(), 0..64)).prop_map(|(tag, sender, masked)| {
            secagg::NodeMessage::Masked(secagg::MaskedInput {
                tag,
                sender,
                masked,
            })
        }),
        (tag, any::<u32>(), any::<[u8; 32]>()).prop_map(|(tag, sender, key)| {
            secagg::NodeMessage::Advertise(secagg::AdvertiseKeys {
                tag,
                sender,
                cipher_public: key,
                mask_public: key,
                self_mask_commitment: key,
                signature: vec![7; 64],
            })
        }),
    ]
}

fn secagg_coordinator_message() -> impl Strategy<Value = secagg::CoordinatorMessage> {
    (any::<u64>(), any::<u32>(), vec(any::<u32>(), 0..8)).prop_map(|(job, recipient, survivors)| {
        secagg::CoordinatorMessage::Unmask(secagg::UnmaskRequest {
            tag: secagg::RoundTag { job, round: 0 },
            recipient,
            survivors,
        })
    })
}

fn job_result() -> impl Strategy<Value = JobResult> {
    (
        job_spec(),
        ring_vector(),
        vec(party_name(), 0..4),
        release(),
        profile_tag(),
    )
        .prop_map(|(spec, values, contributors, release, profile)| JobResult {
            spec,
            values,
            contributors,
            release,
            profile,
        })
}

fn failures() -> impl Strategy<Value = Vec<NodeFailure>> {
    vec(
        (party_name(), text()).prop_map(|(node, reason)| NodeFailure { node, reason }),
        0..4,
    )
}

fn job_outcome() -> impl Strategy<Value = JobOutcome> {
    prop_oneof![
        (job_result(), failures())
            .prop_map(|(result, failures)| JobOutcome::Completed { result, failures }),
        (text(), failures())
            .prop_map(|(reason, failures)| JobOutcome::Aborted { reason, failures }),
    ]
}

/// Every `Body` variant. Keep in step with `Body`: `body_strategy_covers_every_variant` fails
/// when a variant is missing here.
fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        text().prop_map(|software| Body::Register(Register { software })),
        (role(), party_name()).prop_map(|(role, name)| Body::Registered(Registered {
            party: PartyId { role, name }
        })),
        (
            job_spec(),
            any::<u32>(),
            release(),
            secagg_setup(),
            profile_tag(),
            any::<[u8; 32]>(),
            proptest::option::of((any::<u64>(), any::<[u8; 32]>()))
        )
            .prop_map(
                |(spec, timeout_ms, release, secagg, profile, nonce, last)| {
                    Body::JobAnnounce(JobAnnounce {
                        spec,
                        timeout_ms,
                        release,
                        secagg,
                        profile,
                        nonce,
                        last_receipt: last
                            .map(|(seq, digest)| Box::new(ReceiptHead { seq, digest })),
                    })
                },
            ),
        Just(Body::Accept),
        (refuse_reason(), text())
            .prop_map(|(reason, detail)| Body::Refuse(Refusal { reason, detail })),
        ring_vector().prop_map(|values| Body::Submit(Contribution { values })),
        job_result().prop_map(Body::Result),
        (any::<[u8; 16]>(), job_spec()).prop_map(|(r, spec)| Body::SubmitJob(Submission {
            request: RequestId(r),
            spec
        })),
        job_outcome().prop_map(Body::Outcome),
        (error_code(), text()).prop_map(|(code, detail)| Body::Error(ErrorFrame { code, detail })),
        secagg_node_message().prop_map(Body::SecAgg),
        secagg_coordinator_message().prop_map(Body::SecAggRelay),
        text().prop_map(Body::Receipt),
        (round_over_reason(), text())
            .prop_map(|(reason, detail)| Body::RoundOver(RoundOver { reason, detail })),
        any::<u64>().prop_map(Body::Ping),
        any::<u64>().prop_map(Body::Pong),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (header(), body()).prop_map(|(header, body)| Envelope { header, body })
}

fn limit() -> FrameLimit {
    FrameLimit::new(u64::from(FrameLimit::MIN)).unwrap()
}

// ---- Helpers -----------------------------------------------------------------------------------

/// Checks that `decode`'s answer for `bytes` is consistent with what the bytes are.
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    match decode(bytes) {
        Err(DecodeError::TooShort(n)) => {
            prop_assert!(bytes.len() < 2);
            prop_assert_eq!(n, bytes.len());
        }
        Err(DecodeError::UnsupportedVersion { got }) => {
            prop_assert!(bytes.len() >= 2);
            prop_assert_eq!(got, u16::from_be_bytes([bytes[0], bytes[1]]));
            prop_assert_ne!(got, PROTOCOL_VERSION);
        }
        Err(DecodeError::TrailingBytes(n)) => {
            // At least a version and a one-byte body precede the trailing bytes, and dropping
            // exactly them leaves a valid envelope.
            prop_assert!(n >= 1 && n + 3 <= bytes.len(), "{n} of {}", bytes.len());
            prop_assert!(decode(&bytes[..bytes.len() - n]).is_ok());
        }
        Err(DecodeError::Malformed(_)) => {
            prop_assert_eq!(&bytes[..2], &PROTOCOL_VERSION.to_be_bytes()[..]);
        }
        Ok(envelope) => {
            // Postcard accepts overlong varints, so re-encoding need not give `bytes` back; the
            // value must survive, and the canonical encoding is never longer.
            let again = encode(&envelope).unwrap();
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(decode(&again), Ok(envelope));
        }
    }
    Ok(())
}

/// A reference framer over a whole stream: the complete frames, and the error the stream ends
/// in, if its first incomplete-or-bad frame has a complete prefix above `limit`.
fn model_frames(stream: &[u8], limit: FrameLimit) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut pos = 0;
    while let Some(prefix) = stream.get(pos..pos + HEADER_LEN) {
        let len = u32::from_be_bytes(prefix.try_into().unwrap());
        if len > limit.bytes() {
            return (
                frames,
                Some(FrameError::TooLarge {
                    len: len.into(),
                    limit: limit.bytes(),
                }),
            );
        }
        let end = pos + HEADER_LEN + len as usize;
        match stream.get(pos + HEADER_LEN..end) {
            Some(payload) => frames.push(payload.to_vec()),
            None => break,
        }
        pos = end;
    }
    (frames, None)
}

/// Feeds `stream` to a `FrameDecoder` in pieces of the given sizes (cycled), draining frames as
/// they complete; stops at the first error.
fn run_decoder(
    stream: &[u8],
    chunks: &[usize],
    limit: FrameLimit,
) -> Result<(Vec<Vec<u8>>, Option<FrameError>), TestCaseError> {
    let mut d = FrameDecoder::new(limit);
    let mut frames = Vec::new();
    let mut sizes = chunks.iter().cycle();
    let mut input = stream;
    while !input.is_empty() {
        let size = (*sizes.next().unwrap()).min(input.len());
        let (mut piece, rest) = input.split_at(size);
        input = rest;
        while !piece.is_empty() {
            let before = piece.len();
            piece = match d.push(piece) {
                Ok(p) => p,
                Err(e) => return Ok((frames, Some(e))),
            };
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        prop_assert!(f.len() <= limit.bytes() as usize);
                        frames.push(f);
                    }
                    Ok(None) => break,
                    Err(e) => return Ok((frames, Some(e))),
                }
            }
            // No livelock: after draining, a push either consumed bytes or had none left over.
            prop_assert!(piece.len() < before || piece.is_empty());
        }
    }
    match d.next_frame() {
        Ok(None) => Ok((frames, None)),
        Ok(Some(_)) => Err(TestCaseError::fail("frame left undrained")),
        Err(e) => Ok((frames, Some(e))),
    }
}

// ---- Properties --------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn decode_is_total_on_random_bytes(bytes in vec(any::<u8>(), 0..128)) {
        check_decode(&bytes)?;
    }

    #[test]
    fn decode_is_total_on_versioned_random_bytes(body in vec(any::<u8>(), 0..128)) {
        // Past the version check, so postcard sees the noise.
        let bytes = [&PROTOCOL_VERSION.to_be_bytes()[..], &body].concat();
        check_decode(&bytes)?;
    }

    #[test]
    fn decode_is_total_on_mutated_envelopes(
        e in envelope(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        // Valid messages with a few bytes replaced, inserted or deleted reach deep decoder
        // states that uniform noise rarely does.
        let mut bytes = encode(&e).unwrap();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.push(byte),
            }
        }
        check_decode(&bytes)?;
    }

    #[test]
    fn envelopes_round_trip(e in envelope()) {
        let bytes = encode(&e).unwrap();
        prop_assert_eq!(&bytes[..2], &PROTOCOL_VERSION.to_be_bytes()[..]);
        prop_assert_eq!(decode(&bytes), Ok(e));
    }

    #[test]
    fn envelopes_refuse_truncation_and_trailing_bytes(
        e in envelope(),
        cut in any::<prop::sample::Index>(),
        extra in vec(any::<u8>(), 1..16),
    ) {
        let bytes = encode(&e).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes decoded");
        let longer = [&bytes[..], &extra].concat();
        prop_assert_eq!(decode(&longer), Err(DecodeError::TrailingBytes(extra.len())));
    }

    #[test]
    fn envelopes_survive_framing_in_random_chunks(
        envelopes in vec(envelope(), 1..8),
        chunks in vec(1usize..48, 1..16),
    ) {
        let mut stream = Vec::new();
        for e in &envelopes {
            stream.extend(encode_frame(&encode(e).unwrap(), limit()).unwrap());
        }
        let (frames, error) = run_decoder(&stream, &chunks, limit())?;
        prop_assert_eq!(error, None);
        let decoded: Vec<Envelope> = frames.iter().map(|f| decode(f).unwrap()).collect();
        prop_assert_eq!(decoded, envelopes);
    }

    #[test]
    fn frame_decoder_is_total_on_random_bytes(
        stream in vec(any::<u8>(), 0..256),
        chunks in vec(1usize..64, 1..16),
    ) {
        // Mostly prefixes far above the limit: the decoder must say so, exactly when the model
        // does, and never buffer behind them.
        prop_assert_eq!(run_decoder(&stream, &chunks, limit())?, model_frames(&stream, limit()));
    }

    #[test]
    fn frame_decoder_matches_the_model(
        payloads in vec(vec(any::<u8>(), 0..40), 0..6),
        bad_len in prop::option::of(1025u32..),
        tail in vec(any::<u8>(), 0..12),
        chunks in vec(1usize..64, 1..16),
    ) {
        // Valid frames, optionally one prefix above the limit, then noise (often a partial
        // frame): frames and error must match the reference framer, whatever the chunking.
        let mut stream = Vec::new();
        for p in &payloads {
            stream.extend(encode_frame(p, limit()).unwrap());
        }
        if let Some(len) = bad_len {
            stream.extend(len.to_be_bytes());
        }
        stream.extend(&tail);
        let expected = model_frames(&stream, limit());
        prop_assert!(expected.0.len() >= payloads.len());
        prop_assert_eq!(&expected.0[..payloads.len()], &payloads[..]);
        prop_assert_eq!(run_decoder(&stream, &chunks, limit())?, expected);
    }
}

/// The postcard variant index of a body. Exhaustive on purpose: a new `Body` variant does not
/// compile until it is listed here, and then `body_strategy_covers_every_variant` asks for it in
/// [`body`].
fn variant_index(body: &Body) -> usize {
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
const BODY_VARIANTS: usize = 16;

#[test]
fn body_strategy_covers_every_variant() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = body();
    let mut seen = [0u32; BODY_VARIANTS];
    for _ in 0..2000 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        // The index is also the first byte postcard writes for the body.
        let bytes = postcard::to_stdvec(&body).unwrap();
        assert_eq!(usize::from(bytes[0]), variant_index(&body));
        seen[variant_index(&body)] += 1;
    }
    assert!(
        seen.iter().all(|n| *n > 0),
        "variants never generated: {seen:?}"
    );
}
