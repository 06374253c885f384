//! `avs`: the avs-runtime command line — the demo, the device runtime, the local AVS cloud and plugin tools.

mod cli;

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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli::init_logging(matches!(cli.command, Command::Demo(_) | Command::Ctl(_) | Command::Bench(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => cli::demo::run(args).await,
            Command::Run(args) => cli::run::run(args).await,
            Command::Sim(args) => cli::sim::run(args).await,
            Command::Plugin(command) => cli::plugin::run(command),
            Command::Ctl(args) => cli::ctl::run(args).await,
            Command::Bench(args) => cli::bench::run(*args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
