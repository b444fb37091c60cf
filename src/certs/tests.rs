use super::*;
use crate::federation::{FederationPlan, init};
use fedprof_protocol::{PartyName, Role};
use fedprof_transport::pki::verify_party_cert;
use std::os::unix::fs::PermissionsExt;

fn party(role: Role, name: &str) -> PartyId {
    PartyId {
        role,
        name: PartyName::new(name).unwrap(),
    }
}

fn federation(dir: &Path) {
    init(&FederationPlan {
        dir: dir.to_owned(),
        name: "test".into(),
        coordinator: "127.0.0.1:7300".into(),
        nodes: vec![PartyName::new("a").unwrap()],
        analysts: vec![],
        auditors: vec![],
    })
    .unwrap();
}

fn cert(dir: &Path, party: &PartyId, file: &str) -> Vec<u8> {
    fs::read(dir.join(party_rel(party)).join(file)).unwrap()
}

#[test]
fn issue_adds_a_party_with_a_private_key_and_a_config_and_never_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    federation(dir);
    let now = OffsetDateTime::now_utc();
    let d = party(Role::Node, "d");
    let config = issue(dir, &d, None, 30, now).unwrap().unwrap();
    assert_eq!(config, dir.join("node-d.toml"));
    // It dials what the other configs dial.
    assert!(
        fs::read_to_string(&config)
            .unwrap()
            .contains("127.0.0.1:7300")
    );
    let ca = fs::read(dir.join("ca.pem")).unwrap();
    let (got, _) = verify_party_cert(&ca, &cert(dir, &d, "cert.pem"), now).unwrap();
    assert_eq!(got, d);
    for key in ["key.pem", "pseudonym.key"] {
        let meta = fs::metadata(dir.join(party_rel(&d)).join(key)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{key}");
    }
    let e = issue(dir, &d, None, 30, now).unwrap_err();
    assert!(
        format!("{e:#}").contains("already in the federation"),
        "{e:#}"
    );
    // An auditor gets no config.
    assert!(
        issue(dir, &party(Role::Auditor, "y"), None, 30, now)
            .unwrap()
            .is_none()
    );
}

#[test]
fn renew_keeps_the_key_and_the_old_certificate_and_refuses_strangers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    federation(dir);
    let now = OffsetDateTime::now_utc();
    let a = party(Role::Node, "a");
    let ca = fs::read(dir.join("ca.pem")).unwrap();
    let (_, old_key) = verify_party_cert(&ca, &cert(dir, &a, "cert.pem"), now).unwrap();
    let old = cert(dir, &a, "cert.pem");
    renew(dir, &a, 800, now).unwrap();
    assert_eq!(cert(dir, &a, "cert.1.pem"), old);
    let later = now + time::Duration::days(500);
    let (_, new_key) = verify_party_cert(&ca, &cert(dir, &a, "cert.pem"), later).unwrap();
    assert_eq!(old_key, new_key);
    renew(dir, &a, 1, now).unwrap();
    assert!(dir.join(party_rel(&a)).join("cert.2.pem").is_file());
    let e = renew(dir, &party(Role::Node, "zz"), 1, now).unwrap_err();
    assert!(e.to_string().contains("not a party"), "{e}");
}

#[test]
fn revoke_lists_every_certificate_of_the_party_in_a_growing_signed_list() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    federation(dir);
    let now = OffsetDateTime::now_utc();
    let a = party(Role::Node, "a");
    let b = party(Role::Node, "b");
    issue(dir, &b, None, 30, now).unwrap();
    renew(dir, &a, 30, now).unwrap();
    let done = revoke(dir, &a, "key leaked", now).unwrap();
    assert_eq!((done.sequence, done.revoked.len()), (1, 2));
    let ca = fs::read_to_string(dir.join("ca.pem")).unwrap();
    let list = RevocationList::parse_verified(&fs::read(&done.path).unwrap(), &ca).unwrap();
    assert!(list.is_revoked(&pem_der(&cert(dir, &a, "cert.pem"))));
    assert!(list.is_revoked(&pem_der(&cert(dir, &a, "cert.1.pem"))));
    assert!(!list.is_revoked(&pem_der(&cert(dir, &b, "cert.pem"))));
    let e = revoke(dir, &a, "", now).unwrap_err();
    assert!(e.to_string().contains("already revoked"), "{e}");
    assert_eq!(revoke(dir, &b, "", now).unwrap().sequence, 2);
    // A list not signed by the CA is not extended.
    fs::write(&done.path, "{}").unwrap();
    assert!(revoke(dir, &party(Role::Coordinator, "coordinator"), "", now).is_err());
}

fn pem_der(pem: &[u8]) -> Vec<u8> {
    fedprof_transport::pki::pem_certificate(std::str::from_utf8(pem).unwrap())
        .unwrap()
        .to_vec()
}
