//! Renders the sample report in headless Chromium: the page loads from a `file://` URL with no
//! console message, every chart survives parsing, and a screenshot is taken.
//!
//! Chromium is `FEDPROF_TEST_CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`. Without
//! it the test says it was skipped, unless `FEDPROF_REQUIRE_CHROMIUM=1` (then it fails).
//! `.ci/run` installs Debian's `chromium` when it runs as root.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fedprof_profile::html::{SECTIONS, external_references, render, sample::sample_report};

/// How long one Chromium run may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The Chromium binary, if there is one.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = env::var_os("FEDPROF_TEST_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A fresh directory under the system temporary directory.
fn scratch_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = env::temp_dir().join(format!("fedprof-html-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// What one Chromium run left behind.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs Chromium headless on `page` with `extra` arguments, in its own (then removed) profile
/// directory, killing it after [`TIMEOUT`]. Output goes to files, so a large DOM dump cannot block it.
fn run_chromium(chromium: &Path, dir: &Path, name: &str, page: &Path, extra: &[String]) -> Run {
    let stdout_path = dir.join(format!("{name}.stdout"));
    let stderr_path = dir.join(format!("{name}.stderr"));
    let profile = dir.join(format!("{name}.profile"));
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--no-first-run", "--no-default-browser-check"])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).unwrap())
        .stderr(fs::File::create(&stderr_path).unwrap());
    eprintln!("running: {command:?}");
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium ({name}) did not finish in {TIMEOUT:?}; stderr:\n{}",
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(100));
    };
    // The profile is a few megabytes of browser state; the page, logs and screenshot stay.
    let _ = fs::remove_dir_all(&profile);
    Run {
        status,
        stdout: fs::read_to_string(&stdout_path).unwrap(),
        stderr: fs::read_to_string(&stderr_path).unwrap(),
    }
}

/// The console messages and uncaught errors Chromium logged (`...:INFO:CONSOLE:1] "..."`),
/// leaving out its own log noise (D-Bus, GPU, sandbox warnings).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.contains("CONSOLE") || line.contains("Uncaught"))
        .collect()
}

#[test]
fn sample_report_renders_in_chromium() {
    let Some(chromium) = chromium() else {
        assert_ne!(
            env::var("FEDPROF_REQUIRE_CHROMIUM").as_deref(),
            Ok("1"),
            "FEDPROF_REQUIRE_CHROMIUM=1 but no chromium: set FEDPROF_TEST_CHROMIUM or put \
             chromium on PATH"
        );
        eprintln!("skipped: no chromium");
        return;
    };
    let dir = scratch_dir();
    let html = render(&sample_report());
    assert_eq!(external_references(&html), Vec::<String>::new());
    let page = dir.join("report.html");
    fs::write(&page, &html).unwrap();
    let charts = html.matches("data-chart=\"").count();
    assert!(charts > 0);

    // A control page with a failing script: if this stops being reported, the console check
    // below would pass vacuously.
    let control = dir.join("control.html");
    fs::write(
        &control,
        "<!DOCTYPE html><p>x</p><script>console.error('ctl');nope();</script>",
    )
    .unwrap();
    let run = run_chromium(
        &chromium,
        &dir,
        "control",
        &control,
        &["--dump-dom".to_owned()],
    );
    assert!(
        run.status.success(),
        "control: {:?}\n{}",
        run.status,
        run.stderr
    );
    let lines = console_lines(&run.stderr);
    assert!(
        lines.iter().any(|l| l.contains("Uncaught")) && lines.iter().any(|l| l.contains("ctl")),
        "chromium no longer logs console messages as expected:\n{}",
        run.stderr
    );

    let dom = run_chromium(&chromium, &dir, "dom", &page, &["--dump-dom".to_owned()]);
    assert!(
        dom.status.success(),
        "dump-dom: {:?}\n{}",
        dom.status,
        dom.stderr
    );
    assert_eq!(
        console_lines(&dom.stderr),
        Vec::<&str>::new(),
        "console output"
    );
    assert_eq!(
        dom.stdout.matches("data-chart=\"").count(),
        charts,
        "charts in the DOM"
    );
    assert_eq!(
        dom.stdout.matches("</svg>").count(),
        charts + 1,
        "charts and the definitions"
    );
    for id in SECTIONS {
        assert!(
            dom.stdout.contains(&format!(" id=\"{id}\"")),
            "section {id} in the DOM"
        );
    }
    assert!(
        dom.stdout
            .contains("<td class=\"suppressed\">suppressed</td>")
    );

    let png = dir.join("report.png");
    let shot = run_chromium(
        &chromium,
        &dir,
        "screenshot",
        &page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,4000".to_owned(),
        ],
    );
    assert!(
        shot.status.success(),
        "screenshot: {:?}\n{}",
        shot.status,
        shot.stderr
    );
    assert_eq!(
        console_lines(&shot.stderr),
        Vec::<&str>::new(),
        "console output"
    );
    let bytes = fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(bytes.len() > 10_000, "screenshot of {} bytes", bytes.len());
    eprintln!("screenshot: {}", png.display());
}
