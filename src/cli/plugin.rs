//! `avs plugin …`: what each plugin library is (read from the library itself), and signing keys and
//! signatures for shipping them.

use std::path::PathBuf;

use anyhow::Context;
use avs_core::config::Config;
use avs_core::plugins::loader::{self, Trust};
use avs_core::plugins::signature::{self, TrustedKeys};
use avs_core::plugins::store::PluginStore;
use avs_core::storage::Storage;
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
    /// Verify a signed plugin and keep it in the device's plugin store (DATA/plugins/<interface>-<version>-
    /// <sha256 prefix>.so), ready for `avs ctl swap`.
    Install {
        file: PathBuf,
        /// The detached signature (default: FILE.sig).
        #[arg(long)]
        sig: Option<PathBuf>,
        /// The device's configuration (data dir, trusted keys); default ./avs.toml if present.
        #[arg(long)]
        config: Option<PathBuf>,
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
        PluginCommand::Install { file, sig, config } => {
            let config = Config::load(config.as_deref())?;
            let trust = Trust::from_config(&config)?;
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("data dir {}", config.data_dir.display()))?;
            let storage = Storage::open(&config.data_dir.join("avs.db"))?;
            let store = PluginStore::in_data_dir(&config.data_dir, storage);
            let sig = sig.unwrap_or_else(|| signature::signature_path(&file));
            let (stored, manifest) = store.install(&file, &sig, &trust)?;
            println!("installed {} {} → {}", manifest.interface, manifest.version, stored.display());
            println!(
                "activate it on the running device with: avs ctl swap {} {}",
                manifest.interface,
                stored.display()
            );
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
