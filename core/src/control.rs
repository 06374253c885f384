//! The control socket of a running runtime: `<data>/control.sock`, mode 0600, one JSON request per
//! line and one JSON answer per line. `avs ctl` speaks it; so can a device's own supervisor.
//!
//! Requests: `{"cmd":"status"}`, `{"cmd":"plugins"}`, `{"cmd":"swap","interface":…,"path":…}`,
//! `{"cmd":"rollback","interface":…}`, `{"cmd":"user","kind":"user.button","payload":{"name":"PLAY"}}` (user
//! input, as the device's buttons would give it), `{"cmd":"display"}` (the card on screen: its text and its JSON,
//! for a GUI). Answers: `{"ok":true,…}` or `{"ok":false,"error":…}`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::devices::display::Display;
use crate::plugins::PluginHost;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
enum Request {
    Status,
    Plugins,
    Swap { interface: String, path: PathBuf },
    Rollback { interface: String },
    User { kind: String, payload: Value },
    Display,
}

/// Binds the socket (replacing a stale one from a previous run) with mode 0600.
pub(crate) fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub(crate) async fn serve(
    listener: UnixListener,
    plugins: Arc<PluginHost>,
    display: Arc<Display>,
    mut stop: watch::Receiver<bool>,
) {
    let mut clients = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { clients.spawn(client(stream, plugins.clone(), display.clone())); }
                Err(e) => tracing::warn!("control socket: {e}"),
            },
            Some(_) = clients.join_next() => {}
            _ = crate::tasks::raised(&mut stop) => break,
        }
    }
    clients.shutdown().await;
}

async fn client(stream: UnixStream, plugins: Arc<PluginHost>, display: Arc<Display>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(request) => answer(request, &plugins, &display).await,
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        };
        let mut text = answer.to_string();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn answer(request: Request, plugins: &PluginHost, display: &Display) -> Value {
    let result = match request {
        Request::Status => Ok(json!({
            "interfaces": plugins.describe(),
            "mappedImages": plugins.mapped_images(),
            "rssKib": crate::process::rss_bytes() / 1024,
        })),
        Request::Plugins => Ok(json!({"interfaces": plugins.describe()})),
        Request::Swap { interface, path } => plugins
            .swap(&interface, &path)
            .await
            .map(|r| json!({"interface": r.interface, "from": r.from_version, "to": r.to_version, "path": r.path})),
        Request::Rollback { interface } => plugins
            .rollback(&interface, "requested over the control socket")
            .await
            .map(|r| json!({"interface": r.interface, "from": r.from_version, "to": r.to_version, "path": r.path})),
        // Only user input: host events such as `media` or `device.info` are the host's to give.
        Request::User { kind, .. } if !kind.starts_with("user.") => {
            return json!({"ok": false, "error": format!("not user input: {kind:?} (user.* only)")});
        }
        Request::User { kind, payload } => {
            plugins.user_input(&kind, &payload);
            Ok(json!({}))
        }
        Request::Display => Ok(match display.shown() {
            Some(card) => json!({"card": card.card, "text": card.text, "token": card.token}),
            None => json!({"card": null}),
        }),
    };
    match result {
        Ok(mut value) => {
            value["ok"] = json!(true);
            value
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}
