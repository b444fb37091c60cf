use super::*;
use crate::pki::Validity;
use fedprof_protocol::{PartyName, Role};

fn ca(name: &str) -> FederationCa {
    FederationCa::generate(name, Validity::days_from(OffsetDateTime::now_utc(), 1)).unwrap()
}

fn entry(cert: &[u8], name: &str, reason: &str) -> Revoked {
    Revoked {
        fingerprint: Fingerprint::of(cert),
        party: PartyId {
            role: Role::Node,
            name: PartyName::new(name).unwrap(),
        },
        revoked_at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        reason: reason.into(),
    }
}

fn signed(ca: &FederationCa, list: &RevocationList) -> String {
    list.sign(ca).unwrap()
}

#[test]
fn a_signed_list_reads_back_and_names_its_certificates() {
    let ca = ca("t");
    let list = RevocationList::empty()
        .extended(
            [entry(b"cert-a", "a", "key leaked")],
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let text = signed(&ca, &list);
    let back = RevocationList::parse_verified(text.as_bytes(), &ca.cert_pem()).unwrap();
    assert_eq!(back, list);
    assert_eq!(back.sequence(), 1);
    assert!(back.is_revoked(b"cert-a"));
    assert!(!back.is_revoked(b"cert-b"));
    assert_eq!(back.entries()[0].reason, "key leaked");
    // The fingerprint is the plain SHA-256 of the DER (what `sha256sum` prints).
    assert_eq!(
        Fingerprint::of(b"abc").to_string(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn a_list_not_signed_by_this_ca_is_refused() {
    let (ca, other) = (ca("t"), ca("other"));
    let list = RevocationList::empty()
        .extended([entry(b"c", "a", "")], OffsetDateTime::now_utc())
        .unwrap();
    let foreign = signed(&other, &list);
    assert!(matches!(
        RevocationList::parse_verified(foreign.as_bytes(), &ca.cert_pem()),
        Err(RevocationError::BadSignature)
    ));
    // An edited entry (a revocation removed by hand) breaks the signature.
    let text = signed(&ca, &list);
    let edited = text.replace("\"reason\":\"\"", "\"reason\":\"x\"");
    assert_ne!(edited, text);
    assert!(matches!(
        RevocationList::parse_verified(edited.as_bytes(), &ca.cert_pem()),
        Err(RevocationError::BadSignature)
    ));
    let unlisted = text.replace(&Fingerprint::of(b"c").to_string(), &"0".repeat(64));
    assert!(matches!(
        RevocationList::parse_verified(unlisted.as_bytes(), &ca.cert_pem()),
        Err(RevocationError::BadSignature)
    ));
}

#[test]
fn unknown_fields_versions_and_bad_entries_are_refused() {
    let ca = ca("t");
    let list = RevocationList::empty()
        .extended([entry(b"c", "a", "r")], OffsetDateTime::now_utc())
        .unwrap();
    let text = signed(&ca, &list);
    let cases = [
        (
            text.replacen("{\"list\":", "{\"extra\":1,\"list\":", 1),
            "malformed",
        ),
        (
            text.replace("\"reason\":\"r\"", "\"reason\":\"r\",\"x\":1"),
            "malformed",
        ),
        (text.replace("\"version\":1", "\"version\":2"), "version"),
        (
            text.replace("\"party\":\"node-a\"", "\"party\":\"admin-a\""),
            "signature",
        ),
        ("not json".to_owned(), "malformed"),
    ];
    for (bad, kind) in cases {
        let err = RevocationList::parse_verified(bad.as_bytes(), &ca.cert_pem()).unwrap_err();
        let ok = match kind {
            "malformed" => matches!(err, RevocationError::Malformed(_)),
            "version" => matches!(err, RevocationError::Version(2)),
            _ => matches!(err, RevocationError::BadSignature),
        };
        assert!(ok, "{kind}: {err:?}");
    }
    // A bad entry signed by the CA is still refused, naming the field.
    let mut wire = list.to_wire().unwrap();
    wire.revoked[0].party = "admin-a".into();
    let sig = ca
        .signing_key()
        .unwrap()
        .sign(SIGNATURE_LABEL, &canonical(&wire).unwrap())
        .unwrap();
    let forged = serde_json::to_string(&File {
        list: wire,
        signature: hex::encode(sig.to_bytes()),
    })
    .unwrap();
    let err = RevocationList::parse_verified(forged.as_bytes(), &ca.cert_pem()).unwrap_err();
    assert!(err.to_string().contains("revoked[0].party"), "{err}");
}

#[test]
fn older_or_conflicting_lists_never_replace_the_one_held() {
    let now = OffsetDateTime::now_utc();
    let one = RevocationList::empty()
        .extended([entry(b"a", "a", "")], now)
        .unwrap();
    let two = one.extended([entry(b"b", "b", "")], now).unwrap();
    assert_eq!(two.sequence(), 2);
    assert!(two.is_revoked(b"a") && two.is_revoked(b"b"));
    assert!(one.may_replace(&two).is_ok());
    assert!(two.may_replace(&two.clone()).is_ok());
    assert!(matches!(
        two.may_replace(&one),
        Err(RevocationError::Older { got: 1, held: 2 })
    ));
    let other_one = RevocationList::empty()
        .extended([entry(b"z", "z", "")], now)
        .unwrap();
    assert!(matches!(
        one.may_replace(&other_one),
        Err(RevocationError::Conflicting(1))
    ));
}

#[test]
fn reasons_are_bounded_and_printable() {
    let long = "x".repeat(MAX_REASON_LEN + 10) + "\n";
    let list = RevocationList::empty()
        .extended(
            [entry(b"a", "a", "line\nbreak"), entry(b"b", "b", &long)],
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    assert_eq!(list.entries()[0].reason, "line break");
    assert_eq!(list.entries()[1].reason.len(), MAX_REASON_LEN);
}

#[test]
fn the_watch_refuses_a_replayed_older_file_and_keeps_its_list() {
    let ca = ca("t");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("revoked.json");
    // No file yet: nothing is revoked.
    let watch = RevocationWatch::open(Some(path.clone()), &ca.cert_pem()).unwrap();
    assert_eq!(watch.current().sequence(), 0);
    let now = OffsetDateTime::now_utc();
    let one = RevocationList::empty()
        .extended([entry(b"a", "a", "")], now)
        .unwrap();
    let two = one.extended([entry(b"b", "b", "")], now).unwrap();
    std::fs::write(&path, signed(&ca, &two)).unwrap();
    assert_eq!(watch.reload().unwrap().sequence(), 2);
    std::fs::write(&path, signed(&ca, &one)).unwrap();
    assert!(matches!(
        watch.reload(),
        Err(RevocationError::Older { got: 1, held: 2 })
    ));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(watch.reload(), Err(RevocationError::Read { .. })));
    std::fs::write(&path, "garbage").unwrap();
    assert!(watch.reload().is_err());
    // Through every refusal the newest list stayed in force, for every clone.
    assert!(watch.clone().current().is_revoked(b"b"));
    assert_eq!(watch.current().sequence(), 2);
}

#[test]
fn the_configured_list_must_exist_and_the_default_may_not() {
    let ca = ca("t");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let mut files = crate::TlsFiles {
        ca: "ca.pem".into(),
        cert: "cert.pem".into(),
        key: "key.pem".into(),
        revoked: Some("revoked.json".into()),
    };
    files.resolve_against(dir.path());
    assert_eq!(
        files.revoked.as_deref(),
        Some(dir.path().join("revoked.json").as_path())
    );
    assert!(matches!(
        files.revocations(),
        Err(RevocationError::Read { .. })
    ));
    files.revoked = None;
    let watch = files.revocations().unwrap();
    assert_eq!(
        watch.path(),
        Some(dir.path().join("revoked.json").as_path())
    );
    assert_eq!(watch.current().sequence(), 0);
    // Once the file appears beside ca.pem, a reload picks it up.
    let list = RevocationList::empty()
        .extended([entry(b"a", "a", "")], OffsetDateTime::now_utc())
        .unwrap();
    std::fs::write(dir.path().join("revoked.json"), signed(&ca, &list)).unwrap();
    assert!(watch.reload().unwrap().is_revoked(b"a"));
}
