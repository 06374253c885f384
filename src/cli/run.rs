//! `avs run`: the device runtime from configuration, until Ctrl-C.

use std::path::PathBuf;

use avs_core::config::Config;
use avs_core::observe::RuntimeEvent;
use avs_core::runtime::{Runtime, RuntimeOptions};
use clap::Args;

#[derive(Args)]
pub struct RunArgs {
    /// Configuration file (default: ./avs.toml if present); AVS_* environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Device template (capabilities/): a built-in name such as `minimal`, or a .toml file.
    #[arg(long)]
    template: Option<String>,
}

impl RunArgs {
    /// The device's configuration: defaults < file < environment < these arguments.
    pub fn config(self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(template) = self.template {
            config.template = template;
        }
        Ok(config)
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let runtime = Runtime::start(config, RuntimeOptions::default()).await?;
    let mut events = runtime.observer().subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                RuntimeEvent::LinkingCode { user_code, verification_uri } => {
                    println!("To link this device, open {verification_uri} and enter the code {user_code}")
                }
                // A terminal is this device's screen; a GUI reads the card's JSON (`avs ctl display`).
                RuntimeEvent::CardShown { text, .. } => println!("{text}"),
                _ => {}
            }
        }
    });
    super::stop_requested().await?;
    eprintln!("shutting down…");
    runtime.shutdown().await;
    printer.abort();
    Ok(())
}
