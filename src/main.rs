//! `fedprof`: see `fedprof --help`.

use std::process::ExitCode;

use clap::Parser;
use fedprof::cli::{Cli, run};
use tracing_subscriber::EnvFilter;

/// How long blocking work may run on after the command ended (review finding M11).
const BLOCKING_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> ExitCode {
    // A dependency's panic that the pipeline catches on purpose (a reader's bug on a damaged
    // file) becomes an error naming the file, or a logged fallback: its panic message would
    // only alarm before a run that goes on. Every other panic is reported as usual.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !fedprof_node::pipeline::catching_panics() {
            report(info);
        }
    }));
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(cli.command.default_log_level()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Blocking work still running (a node's local computation, stuck on a slow disk or a
    // pipe) must not keep the process alive after shutdown: it is abandoned after a grace
    // period, and it pays for nothing once shutdown began (`fedprof_node::books::debit`).
    runtime.shutdown_timeout(BLOCKING_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line; never a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
