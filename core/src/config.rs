//! Device configuration: built-in defaults < `avs.toml` < `AVS_*` environment variables (figment).

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// The AVS region; it picks the gateway the device connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Region {
    Na,
    Eu,
    Fe,
}

impl Region {
    /// The current (a2z gateway) base URL, and the legacy one still documented.
    pub fn base_url(self, legacy: bool) -> &'static str {
        match (self, legacy) {
            (Region::Na, false) => "https://alexa.na.gateway.devices.a2z.com",
            (Region::Eu, false) => "https://alexa.eu.gateway.devices.a2z.com",
            (Region::Fe, false) => "https://alexa.fe.gateway.devices.a2z.com",
            (Region::Na, true) => "https://avs-alexa-na.amazon.com",
            (Region::Eu, true) => "https://avs-alexa-eu.amazon.com",
            (Region::Fe, true) => "https://avs-alexa-fe.amazon.com",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub region: Region,
    pub legacy_endpoint: bool,
    /// AVS base URL override (avs-sim, or a gateway from System.SetEndpoint).
    pub endpoint: Option<String>,
    /// Login with Amazon base URL override.
    pub lwa_url: Option<String>,
    /// Capabilities API base URL override.
    pub capabilities_url: Option<String>,
    pub client_id: String,
    pub product_id: String,
    pub device_serial_number: String,
    pub firmware_version: String,
    pub locale: String,
    /// Where plugin libraries are loaded from.
    pub plugin_dir: PathBuf,
    /// File stems of the plugins to load (`libavs_speaker` or `avs_speaker`); empty loads them all.
    pub plugins: Vec<String>,
    pub data_dir: PathBuf,
    /// An extra CA certificate (PEM) to trust, e.g. avs-sim's. Verification itself cannot be disabled.
    pub ca_file: Option<PathBuf>,
    /// Public keys (hex files from `avs plugin keygen`) whose signatures make a plugin loadable.
    pub plugin_trusted_keys: Vec<PathBuf>,
    /// Development mode: load plugins without checking their signatures.
    pub allow_unsigned_plugins: bool,
    /// `null`, or a directory receiving one file per played item.
    pub audio_sink: String,
}

impl Config {
    /// The built-in defaults, with the plugin dir next to the running executable.
    pub fn defaults() -> Config {
        let plugin_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        Config {
            region: Region::Na,
            legacy_endpoint: false,
            endpoint: None,
            lwa_url: None,
            capabilities_url: None,
            client_id: "amzn1.application-oa2-client.avs-runtime".into(),
            product_id: "avs_runtime_device".into(),
            device_serial_number: "avs-runtime-0001".into(),
            firmware_version: "1".into(),
            locale: "en-US".into(),
            plugin_dir,
            plugins: Vec::new(),
            data_dir: PathBuf::from("avs-data"),
            ca_file: None,
            plugin_trusted_keys: Vec::new(),
            allow_unsigned_plugins: false,
            audio_sink: "null".into(),
        }
    }

    /// Defaults < `file` (or `./avs.toml` when present) < `AVS_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let file = file.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("avs.toml"));
        Self::from_figment(
            Figment::from(Serialized::defaults(Config::defaults()))
                .merge(Toml::file(file))
                .merge(Env::prefixed("AVS_")),
        )
    }

    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        figment.extract().map_err(|e| ConfigError(Box::new(e)))
    }

    pub fn avs_base_url(&self) -> String {
        let url = self.endpoint.as_deref().unwrap_or_else(|| self.region.base_url(self.legacy_endpoint));
        url.trim_end_matches('/').to_string()
    }

    pub fn lwa_base_url(&self) -> String {
        self.lwa_url.as_deref().unwrap_or("https://api.amazon.com").trim_end_matches('/').to_string()
    }

    pub fn capabilities_endpoint(&self) -> String {
        let base = self.capabilities_url.as_deref().unwrap_or("https://api.amazonalexa.com").trim_end_matches('/');
        format!("{base}/v1/devices/@self/capabilities")
    }
}

#[cfg(test)]
// figment's Jail hands back figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_env_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("avs.toml", "region = \"EU\"\ndata_dir = \"/var/lib/avs\"\nlocale = \"de-DE\"\n")?;
            jail.set_env("AVS_DATA_DIR", "/tmp/avs-env");
            jail.set_env("AVS_ENDPOINT", "https://localhost:8443/");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.region, Region::Eu);
            assert_eq!(config.locale, "de-DE");
            assert_eq!(config.data_dir, PathBuf::from("/tmp/avs-env"));
            assert_eq!(config.avs_base_url(), "https://localhost:8443");
            assert_eq!(config.client_id, Config::defaults().client_id);
            Ok(())
        });
    }

    #[test]
    fn regions_pick_current_or_legacy_gateways() {
        let mut config = Config::defaults();
        assert_eq!(config.avs_base_url(), "https://alexa.na.gateway.devices.a2z.com");
        config.region = Region::Fe;
        config.legacy_endpoint = true;
        assert_eq!(config.avs_base_url(), "https://avs-alexa-fe.amazon.com");
        assert_eq!(config.lwa_base_url(), "https://api.amazon.com");
        assert_eq!(config.capabilities_endpoint(), "https://api.amazonalexa.com/v1/devices/@self/capabilities");
    }

    #[test]
    fn a_bad_value_is_a_clear_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("avs.toml", "region = \"MARS\"\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("region") || err.contains("MARS"), "{err}");
            Ok(())
        });
    }
}
