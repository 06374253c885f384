//! `avs sim`: avs-sim standalone, for pointing a runtime (ours or another client) at it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use avs_sim::{Approval, Sim, SimConfig};
use clap::Args;

#[derive(Args)]
pub struct SimArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Where the sim keeps its CA and certificates; its CA is written to DIR/ca.pem.
    #[arg(long, default_value = "avs-sim-data")]
    data_dir: PathBuf,
    /// Approve code pairs only through the admin surface (POST /admin/approve?user_code=…).
    #[arg(long)]
    manual_approval: bool,
    /// Seconds until an issued access token expires.
    #[arg(long, default_value_t = 3600)]
    token_lifetime: u64,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let mut config = SimConfig::new(args.listen, args.data_dir);
    config.token_lifetime = Duration::from_secs(args.token_lifetime);
    if args.manual_approval {
        config.approval = Approval::Manual;
    }
    let sim = Sim::start(config).await?;
    println!("avs-sim listening on {} (CA certificate: {})", sim.base_url(), sim.ca_pem_path().display());
    println!("admin: {}/admin/events, /admin/capabilities, /admin/violations; Ctrl-C stops", sim.base_url());
    super::stop_requested().await?;
    sim.shutdown().await;
    Ok(())
}
