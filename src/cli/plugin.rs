//! `avs plugin …`: what each plugin library is (read from the library itself), and signing keys and
//! signatures for shipping them.

use std::path::PathBuf;

use anyhow::Context;
use avs_core::plugins::loader::{self, Trust};
use avs_core::plugins::signature::{self, TrustedKeys};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// List the plugins in a directory: interface, version, file, sha256.
    List {
        /// Plugin directory (default: next to the avs binary).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Public key file(s) to check signatures against; without one, the libraries are opened
        /// unverified (development only).
        #[arg(long)]
        trust: Vec<PathBuf>,
    },
    /// Create an Ed25519 signing key pair: DIR/plugin-signing.key (0600) and DIR/plugin-signing.pub.
    Keygen {
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Sign a plugin library with a private key, writing the detached signature FILE.sig.
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

pub fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::List { dir, trust } => list(dir.unwrap_or_else(super::default_plugin_dir), &trust),
        PluginCommand::Keygen { out } => {
            let (key, public) = signature::write_key_pair(&out, "plugin-signing")?;
            println!("private key: {} (keep it secret; mode 0600)", key.display());
            println!("public key:  {} (list it in plugin_trusted_keys on devices)", public.display());
            Ok(())
        }
        PluginCommand::Sign { file, key } => {
            let sig = signature::sign_file(&file, &key)?;
            println!("signed {} → {}", file.display(), sig.display());
            Ok(())
        }
    }
}

fn list(dir: PathBuf, trust: &[PathBuf]) -> anyhow::Result<()> {
    let files = loader::discover(&dir).with_context(|| format!("reading plugin dir {}", dir.display()))?;
    if files.is_empty() {
        anyhow::bail!("no plugin libraries (*.so) in {} — build them with `cargo build --workspace`", dir.display());
    }
    let trust = if trust.is_empty() {
        eprintln!("note: signatures not checked (no --trust key given)");
        Trust::AllowUnsigned
    } else {
        Trust::Signed(TrustedKeys::load(trust)?)
    };
    println!("{:<22} {:<8} {:<44} sha256", "interface", "version", "file");
    let mut failures = 0;
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match loader::load(&path, &trust) {
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
