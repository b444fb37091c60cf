use super::*;

fn spec(name: &str, rho: &str) -> ProfileSpec {
    ProfileSpec::from_toml(&format!(
        "name = \"{name}\"\nas_of = \"2026-06-30\"\nrho = \"{rho}\"\n"
    ))
    .unwrap()
}

fn noon() -> OffsetDateTime {
    // 2026-06-30T12:34:56Z.
    OffsetDateTime::from_unix_timestamp(1_782_822_896).unwrap()
}

fn run_file(dir: &Path) -> RunFile {
    serde_json::from_slice(&fs::read(dir.join(RUN_FILE)).unwrap()).unwrap()
}

#[test]
fn a_new_run_keeps_its_key_and_the_same_spec_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let s = spec("bank", "1/2");
    let (key, begun) = begin(&out, &s, noon()).unwrap();
    assert_eq!(begun, Begun::New);
    let file = run_file(&out);
    assert_eq!(file.job, "bank");
    assert_eq!(file.key, hex::encode(key.0));
    assert_eq!(file.started, "2026-06-30T12:34:56Z");

    // The same spec, parsed again, resumes under the same key; the start is the first run's.
    let later = noon() + time::Duration::hours(5);
    let (again, begun) = begin(&out, &spec("bank", "1/2"), later).unwrap();
    assert_eq!(again, key);
    assert_eq!(
        begun,
        Begun::Resumed {
            job: "bank".into(),
            started: "2026-06-30T12:34:56Z".into()
        }
    );
    // A new run elsewhere draws another key.
    let (other, _) = begin(&dir.path().join("elsewhere"), &s, noon()).unwrap();
    assert_ne!(other, key);
}

#[test]
fn another_spec_over_an_unfinished_run_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = begin(dir.path(), &spec("bank", "1/2"), noon()).unwrap();
    let e = begin(dir.path(), &spec("bank", "1/3"), noon()).unwrap_err();
    assert!(
        matches!(&e, RunDirError::AnotherSpec { job, started, .. }
            if job == "bank" && started == "2026-06-30T12:34:56Z"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(&dir.path().join(RUN_FILE).display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("holds an unfinished run of bank (another spec"),
        "{text}"
    );
    // The refusal leaves the unfinished run as it was.
    assert_eq!(run_file(dir.path()).key, hex::encode(key.0));
}

#[test]
fn a_damaged_run_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec("bank", "1/2");
    let path = dir.path().join(RUN_FILE);
    fs::write(&path, "{\"job\": \"bank\"").unwrap();
    let e = begin(dir.path(), &s, noon()).unwrap_err();
    assert!(matches!(e, RunDirError::NotARunFile { .. }), "{e:?}");
    assert_eq!(e.to_string(), format!("{}: not a run file", path.display()));

    let digest = spec_digest(&s);
    for (key, problem) in [
        ("00ff", "24 hex digits expected"),
        ("zz0000000000000000000000", "not hex"),
    ] {
        let run = RunFile {
            job: "bank".into(),
            spec: digest.clone(),
            key: key.into(),
            started: "2026-06-30T12:34:56Z".into(),
        };
        fs::write(&path, serde_json::to_vec(&run).unwrap()).unwrap();
        let e = begin(dir.path(), &s, noon()).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: key: {problem}", path.display()));
    }
    // Keys are read back as written, upper-case hex included.
    let run = RunFile {
        job: "bank".into(),
        spec: digest,
        key: "0102030405060708090A0B0C".into(),
        started: "2026-06-30T12:34:56Z".into(),
    };
    fs::write(&path, serde_json::to_vec(&run).unwrap()).unwrap();
    let (key, _) = begin(dir.path(), &s, noon()).unwrap();
    assert_eq!(key, RunKey([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
}

#[test]
fn finishing_writes_the_outputs_and_removes_the_run_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    begin(&out, &spec("bank", "1/2"), noon()).unwrap();
    let report = crate::html::sample::sample_report();
    let model = crate::model::model_of(&report, Vec::new());
    let paths = finish(&out, &report, &model).unwrap();
    assert_eq!(paths.len(), 6);
    assert!(paths.iter().all(|p| p.is_file()), "{paths:?}");
    assert!(!out.join(RUN_FILE).exists(), "the run is finished");
    let back = load_model(&out.join("model.json")).unwrap();
    assert_eq!(back.name, model.name);
    // The next run into the directory is a new one, with a new key.
    let (_, begun) = begin(&out, &spec("bank", "1/2"), noon()).unwrap();
    assert_eq!(begun, Begun::New);
    // Finishing without a run file (outputs written again) is not an error.
    fs::remove_file(out.join(RUN_FILE)).unwrap();
    assert_eq!(finish(&out, &report, &model).unwrap().len(), 6);
}

#[test]
fn job_and_model_files_are_read_with_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("model.json");
    assert!(load_latest_model(&missing).unwrap().is_none());
    let e = load_model(&missing).unwrap_err();
    assert_eq!(e.to_string(), format!("cannot read {}", missing.display()));

    fs::write(&missing, "{}").unwrap();
    let e = load_latest_model(&missing).unwrap_err();
    assert!(matches!(e, RunDirError::Model { .. }), "{e:?}");
    assert_eq!(e.to_string(), missing.display().to_string());

    let job = dir.path().join("job.toml");
    fs::write(
        &job,
        "name = \"bank\"\nas_of = \"2026-06-30\"\nrho = \"1/2\"\nbogus = 1\n",
    )
    .unwrap();
    let e = load_spec(&job).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with(&format!("{}: ", job.display())), "{text}");
    assert!(text.contains("bogus"), "{text}");
    fs::write(
        &job,
        "name = \"bank\"\nas_of = \"2026-06-30\"\nrho = \"1/2\"\n",
    )
    .unwrap();
    assert_eq!(load_spec(&job).unwrap().name, "bank");
}
