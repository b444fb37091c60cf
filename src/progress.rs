//! Progress display for long commands: a spinner on a terminal, plain step lines otherwise
//! (logs and CI keep a record of what happened).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Shows what a long command is doing.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Steps go to the log instead of stderr (background work in a long-running service).
    log: bool,
}

impl Progress {
    /// A spinner on stderr if it is a terminal, otherwise plain lines.
    pub fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                log: false,
            };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed:>3}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress {
            bar: Some(bar),
            log: false,
        }
    }

    /// Steps as log lines (`tracing`, level info): for work a service does by itself.
    pub fn quiet() -> Self {
        Progress {
            bar: None,
            log: true,
        }
    }

    /// Starts a step.
    pub fn step(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.bar {
            Some(bar) => bar.set_message(msg),
            None if self.log => tracing::info!("{msg}"),
            None => eprintln!("... {msg}"),
        }
    }

    /// Records a finished step.
    pub fn done(&self, msg: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(format!("  ok {}", msg.as_ref())),
            None if self.log => tracing::info!("{}", msg.as_ref()),
            None => eprintln!("  ok {}", msg.as_ref()),
        }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
