//! `avs`: the avs-runtime command line — the demo, the device runtime, the local AVS cloud and plugin tools.

mod cli;

use std::num::NonZeroUsize;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "avs", version, about = "Alexa Voice Service device runtime with hot-swappable interface plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole flow against an embedded avs-sim: link, publish capabilities, Recognize → Speak, SetVolume.
    Demo(cli::demo::DemoArgs),
    /// Run the device runtime from configuration until Ctrl-C or SIGTERM.
    Run(cli::run::RunArgs),
    /// Run avs-sim, the local AVS-compatible cloud, standalone.
    Sim(cli::sim::SimArgs),
    /// Measure directive throughput against avs-sim, next to the transport and work ceilings; or memory (--footprint).
    Bench(Box<cli::bench::BenchArgs>),
    /// Control a running runtime: status, plugins, live swap and rollback.
    Ctl(cli::ctl::CtlArgs),
    /// Inspect plugin libraries.
    #[command(subcommand)]
    Plugin(cli::plugin::PluginCommand),
}

/// glibc's allocator, tuned for a long-running device process with a thread per plugin: at most two
/// arenas (by default every thread that allocates may get its own, each holding freed memory), and a
/// fixed mmap threshold of 512 KiB, so that a plugin library read to check its signature at an OTA swap
/// goes back to the system when freed instead of raising the threshold and staying in the heap. The
/// trim threshold is fixed with it (glibc would otherwise trim at 128 KiB and churn the heap's top on the
/// directive path). An explicit `MALLOC_*` setting in the environment wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn allocator_policy() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() && std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 512 * 1024);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * 1024 * 1024);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn allocator_policy() {}

fn main() -> std::process::ExitCode {
    allocator_policy();
    let cli = Cli::parse();
    cli::init_logging(matches!(cli.command, Command::Demo(_) | Command::Ctl(_) | Command::Bench(_)));
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        // The device's configuration says how many threads its async runtime has.
        Command::Run(args) => {
            let config = args.config()?;
            async_runtime(Some(config.worker_threads))?.block_on(cli::run::run(config))
        }
        Command::Bench(args) => {
            let threads = args.worker_threads.unwrap_or(avs_core::config::Config::defaults().worker_threads);
            async_runtime(Some(threads))?.block_on(cli::bench::run(*args))
        }
        Command::Demo(args) => async_runtime(None)?.block_on(cli::demo::run(args)),
        Command::Sim(args) => async_runtime(None)?.block_on(cli::sim::run(args)),
        Command::Plugin(command) => async_runtime(None)?.block_on(async { cli::plugin::run(command) }),
        Command::Ctl(args) => async_runtime(None)?.block_on(cli::ctl::run(args)),
    }
}

/// tokio's multi-threaded runtime with `worker_threads` workers; without a number, one per core (or
/// tokio's own `TOKIO_WORKER_THREADS`).
fn async_runtime(worker_threads: Option<NonZeroUsize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = worker_threads {
        builder.worker_threads(threads.get());
    }
    builder.enable_all().build().context("cannot start the async runtime")
}
