//! Byte-by-byte vector of a feature query (`JobSpec::Features`): the layout every node decodes
//! a profiling release from. See `vectors.rs` for the rest of the wire format.

use fedprof_protocol::{Fraction, JobSpec, ProfileId};

/// A whole feature query, byte by byte.
#[test]
fn feature_query_vector() {
    use fedprof_protocol::query::{FeatureQuery, NumericFeature, QueryPart, Segmenter};
    let spec = JobSpec::Features(Box::new(FeatureQuery {
        label: "p/d".into(),
        as_of: "2026-06-30".into(),
        scale: 1000,
        segmenter: Segmenter::Lifecycle,
        parts: vec![
            QueryPart::Count,
            QueryPart::Histogram {
                feature: NumericFeature::Frequency,
                edges: vec![1, 5],
            },
        ],
        budget: Fraction {
            numer: 1,
            denom: 10,
        },
        reserve: Fraction { numer: 0, denom: 1 },
        job: Some(ProfileId([0xab; 16])),
    }));
    let mut expected = vec![
        0x00, // JobSpec::Features (the only kind since wire version 2)
        0x03, b'p', b'/', b'd', // label
        0x0a, // as_of: 10 bytes
    ];
    expected.extend_from_slice(b"2026-06-30");
    expected.extend_from_slice(&[
        0xe8, 0x07, // scale 1000 (varint)
        0x01, // Segmenter::Lifecycle
        0x02, // two parts
        0x00, // QueryPart::Count
        0x03, // QueryPart::Histogram
        0x00, // NumericFeature::Frequency
        0x02, 0x02, 0x0a, // edges [1, 5] (zigzag varints)
        0x01, 0x0a, // budget 1/10
        0x00, 0x01, // reserve 0/1
        0x01, // job: Some
    ]);
    expected.extend_from_slice(&[0xab; 16]); // the profiling job id, 16 raw bytes
    assert_eq!(postcard::to_stdvec(&spec).unwrap(), expected);
    assert_eq!(postcard::from_bytes::<JobSpec>(&expected).unwrap(), spec);
}
