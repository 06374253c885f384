//! `avs ctl`: talk to a running runtime over its control socket (`<data>/control.sock`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use avs_core::config::Config;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Args)]
pub struct CtlArgs {
    /// The runtime's data dir (default: from configuration).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Each interface's active and previous version, every mapped plugin image, and the process RSS.
    Status,
    /// The loaded plugins.
    Plugins,
    /// Swap the plugin serving INTERFACE for the (signed) library FILE, live.
    Swap { interface: String, file: PathBuf },
    /// Go back to the version the last swap of INTERFACE replaced.
    Rollback { interface: String },
    /// Press a playback button: PLAY, PAUSE, NEXT, PREVIOUS, SKIPFORWARD or SKIPBACKWARD.
    Press { button: String },
    /// Switch a toggle (SHUFFLE, LOOP, REPEAT, THUMBSUP, THUMBSDOWN) on (select) or off (deselect).
    Toggle {
        name: String,
        #[arg(value_parser = ["select", "deselect"])]
        action: String,
    },
    /// The user says "stop" (e.g. to a sounding alarm).
    Stop,
    /// The card on the device's screen, as text and as the JSON a GUI would draw.
    Display,
}

pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => Config::load(None)?.data_dir,
    };
    let request = match args.command {
        CtlCommand::Status => json!({"cmd": "status"}),
        CtlCommand::Plugins => json!({"cmd": "plugins"}),
        CtlCommand::Swap { interface, file } => {
            let path = std::fs::canonicalize(&file).with_context(|| format!("{}", file.display()))?;
            json!({"cmd": "swap", "interface": interface, "path": path})
        }
        CtlCommand::Rollback { interface } => json!({"cmd": "rollback", "interface": interface}),
        CtlCommand::Press { button } => {
            json!({"cmd": "user", "kind": "user.button", "payload": {"name": button.to_uppercase()}})
        }
        CtlCommand::Toggle { name, action } => json!({"cmd": "user", "kind": "user.toggle",
                                                     "payload": {"name": name.to_uppercase(), "action": action.to_uppercase()}}),
        CtlCommand::Stop => json!({"cmd": "user", "kind": "user.stop", "payload": {}}),
        CtlCommand::Display => json!({"cmd": "display"}),
    };
    let socket = avs_core::control::socket_path(&data_dir);
    let stream = tokio::net::UnixStream::connect(&socket)
        .await
        .with_context(|| format!("connecting to {} (is `avs run` running with this data dir?)", socket.display()))?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{request}\n").as_bytes()).await?;
    let line = BufReader::new(read).lines().next_line().await?.context("the runtime closed the control socket")?;
    let answer: Value = serde_json::from_str(&line)?;
    if answer["ok"] != true {
        bail!("{}", answer["error"].as_str().unwrap_or("request failed"));
    }
    if let Some(text) = answer["text"].as_str() {
        println!("{text}");
    }
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
