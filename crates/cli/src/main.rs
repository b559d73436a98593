//! The `pubhook` binary: parses the command line, sets up telemetry and settings, and hands over
//! to the command. Everything else lives in the library crates.

mod cli;
mod commands;
mod dead_letters;
mod receive;
mod redis_child;
mod status;

use clap::Parser as _;

/// mimalloc instead of the system allocator: a delivery allocates a few dozen small buffers
/// (request, headers, signatures, its record), and glibc's malloc took about a fifth of the
/// worker's CPU in a fan-out profile (docs/benchmarks.md). Version 2 of mimalloc (the crate's
/// `v2` feature): v3 keeps freed memory for a second before giving it back, which doubled the
/// resident memory of a burst of large requests (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    pubhook_core::telemetry::init_telemetry("info,actix_server=warn");
    let outcome = commands::settings_for(&cli).and_then(|settings| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let threads = settings
            .as_ref()
            .map_or(1, |settings| settings.runtime_threads_for(cores));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .map_err(|e| anyhow::Error::new(e).context("could not start the async runtime"))?;
        runtime.block_on(commands::run(cli, settings))
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pubhook: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
