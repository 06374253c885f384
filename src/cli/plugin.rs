//! `avs plugin list`: what each plugin library is, read from the library itself.

use std::path::PathBuf;

use anyhow::Context;
use avs_core::plugins::loader;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// List the plugins in a directory: interface, version, file, sha256.
    List {
        /// Plugin directory (default: next to the avs binary).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::List { dir } => list(dir.unwrap_or_else(super::default_plugin_dir)),
    }
}

fn list(dir: PathBuf) -> anyhow::Result<()> {
    let files = loader::discover(&dir).with_context(|| format!("reading plugin dir {}", dir.display()))?;
    if files.is_empty() {
        anyhow::bail!("no plugin libraries (*.so) in {} — build them with `cargo build --workspace`", dir.display());
    }
    println!("{:<22} {:<8} {:<44} sha256", "interface", "version", "file");
    let mut failures = 0;
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match loader::load(&path) {
            Ok(plugin) => println!(
                "{:<22} {:<8} {:<44} {}",
                plugin.manifest.interface, plugin.manifest.version, name, plugin.sha256
            ),
            Err(e) => {
                failures += 1;
                eprintln!("{name}: {e}");
            }
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} file(s) are not loadable plugins");
    }
    Ok(())
}
