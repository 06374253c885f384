//! The `avs` subcommands, one module each.

pub mod ctl;
pub mod demo;
pub mod plugin;
pub mod run;
pub mod scenario;
pub mod sim;

use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

/// Logs go to stderr; `RUST_LOG` overrides the level. The demo prints its own narrative, so it only
/// shows warnings by default.
pub fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Where plugin libraries are found when the configuration does not say: next to the `avs` binary
/// (where `cargo build --workspace` puts them).
pub fn default_plugin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Resolves on Ctrl-C or SIGTERM (what a service manager sends), whichever comes first.
pub async fn stop_requested() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
