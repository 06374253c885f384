//! The `avs` subcommands, one module each.

pub mod bench;
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

/// A distinct signed build of a plugin library, as the next release of it would be: the same code with
/// bytes appended (another file, hash and path), named `<stem>-build-<n>.so` in `dir`. The demo and the
/// bench swap these in to measure memory per OTA swap.
pub fn rebuilt_artifact(
    library: &[u8],
    stem: &str,
    dir: &std::path::Path,
    n: usize,
    key: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{stem}-build-{n}.so"));
    let mut bytes = library.to_vec();
    bytes.extend_from_slice(format!("build {n}").as_bytes());
    std::fs::write(&path, bytes)?;
    avs_core::plugins::signature::sign_file(&path, key)?;
    Ok(path)
}
