//! Device configuration: built-in defaults < `avs.toml` < `AVS_*` environment variables (figment).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named explicitly must exist: silently running on defaults after a typo in the path would
    /// link the device with the wrong product id.
    #[error("configuration file {path} does not exist")]
    MissingFile { path: String },
    /// figment's message names the key and where its value came from (the file or the `AVS_*` variable).
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

/// The AVS region; it picks the gateway the device connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Region {
    /// US, Canada, Mexico, Brazil.
    #[serde(rename = "NA", alias = "na")]
    Na,
    /// UK, Germany, Austria, France, Italy, Spain, Saudi Arabia, UAE (India in older lists).
    #[serde(rename = "EU", alias = "eu")]
    Eu,
    /// Japan, Australia, New Zealand (India in the newest list).
    #[serde(rename = "FE", alias = "fe")]
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

/// Unknown keys in the file are refused (a misspelt key would otherwise be silently ignored); missing keys
/// take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub region: Region,
    pub legacy_endpoint: bool,
    /// AVS base URL override (e.g. avs-sim). A gateway AVS sets with System.SetEndpoint wins over it.
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
    /// The device template (`capabilities/`): a built-in name or a `.toml` path. It names the plugins to
    /// load and the interface versions they must provide.
    pub template: String,
    /// File stems of the plugins to load (`libavs_speaker` or `avs_speaker`) instead of the template's.
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
    /// Keep resident only the code that runs (Linux): after a plugin library is loaded, and after the
    /// device connects or swaps a plugin (the executable's code), code pages leave memory and come back
    /// one page at a time as they are used. `false` keeps the kernel's read-ahead: a larger RSS (about
    /// the whole executable, and the whole library per plugin and per OTA swap), and no storage read
    /// the first time a page of code runs.
    pub trim_code_pages: bool,
    /// Threads of the async runtime, which holds the connection (TLS, HTTP/2), the downchannel reader
    /// and routing; plugins run on threads of their own. One by default: measured on two cores, a second
    /// worker costs more in hand-offs between the connection task and the reader than it gains (README,
    /// Performance).
    pub worker_threads: NonZeroUsize,
    /// CPUs the plugins' threads run on (Linux); empty, the default: wherever the scheduler puts them.
    /// On a device with few cores, keeping them off the core the connection runs on lets the answer to
    /// an event find that core free: measured on two cores, with avs-sim on the same machine, the plugins
    /// on one core made the default mix 10–20 % faster and its median dispatch latency a tenth (README,
    /// Performance). A CPU this process may not run on is refused at start.
    pub plugin_cpus: Vec<usize>,
    /// Bounds on what the network can make the runtime hold.
    pub limits: Limits,
}

/// What AVS (or anything posing as it) can make the device hold in memory. Past a bound the input is
/// refused with a clear error and the runtime keeps serving; none of these can run it out of memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A directive's JSON part; a larger one is answered with ExceptionEncountered.
    pub max_directive_bytes: usize,
    /// One part of a multipart body (an attachment such as a Speak's MP3); a larger one ends the stream
    /// as malformed, since its end cannot be found without holding it.
    pub max_attachment_bytes: usize,
    /// `cid:` attachments kept for their directives; the oldest go first.
    pub max_pending_attachments: usize,
    /// Parts in one event's answer (the downchannel is endless and paced by backpressure instead).
    pub max_parts_per_response: usize,
    /// Events waiting for the connection. Directives are not read while more than half are taken, and a
    /// plugin's event is refused when none is left.
    pub max_queued_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_directive_bytes: 256 << 10,
            max_attachment_bytes: 8 << 20,
            max_pending_attachments: 32,
            max_parts_per_response: 128,
            max_queued_events: 4096,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::defaults()
    }
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
            template: "minimal".into(),
            plugins: Vec::new(),
            data_dir: PathBuf::from("avs-data"),
            ca_file: None,
            plugin_trusted_keys: Vec::new(),
            allow_unsigned_plugins: false,
            audio_sink: "null".into(),
            trim_code_pages: true,
            worker_threads: NonZeroUsize::MIN,
            plugin_cpus: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// Defaults < `file` (or `./avs.toml` when present) < `AVS_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let toml = match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError::MissingFile { path: path.display().to_string() });
            }
            Some(path) => Toml::file(path),
            // Absent is fine: figment skips a missing default file.
            None => Toml::file("avs.toml"),
        };
        Self::from_figment(Figment::new().merge(toml).merge(Self::env()))
    }

    /// `AVS_<KEY>` for the keys of `Config` only: other `AVS_*` variables of the environment are none of
    /// its business, and would otherwise be refused as unknown keys.
    fn env() -> Env {
        let keys: Vec<String> = match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
            _ => Vec::new(),
        };
        Env::prefixed("AVS_").filter(move |key| keys.iter().any(|k| k.as_str() == key))
    }

    /// Extracts a `Config` from any figment; keys it lacks take their defaults.
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        figment.extract().map_err(|e| ConfigError::Invalid(Box::new(e)))
    }

    /// The AVS gateway: the override if set, else the region's current or legacy URL; no trailing slash.
    pub fn avs_base_url(&self) -> String {
        let url = self.endpoint.as_deref().unwrap_or_else(|| self.region.base_url(self.legacy_endpoint));
        url.trim_end_matches('/').to_string()
    }

    pub fn lwa_base_url(&self) -> String {
        self.lwa_url.as_deref().unwrap_or("https://api.amazon.com").trim_end_matches('/').to_string()
    }

    /// The full URL of `PUT /v1/devices/@self/capabilities`.
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
    fn defaults_then_file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "device.toml",
                "region = \"EU\"\ndata_dir = \"/var/lib/avs\"\nlocale = \"de-DE\"\nplugins = [\"avs_speaker\"]\n",
            )?;
            jail.set_env("AVS_DATA_DIR", "/tmp/avs-env");
            jail.set_env("AVS_ENDPOINT", "https://localhost:8443/");
            jail.set_env("AVS_LEGACY_ENDPOINT", "true");
            jail.set_env("AVS_TRIM_CODE_PAGES", "false");
            jail.set_env("AVS_WORKER_THREADS", "2");
            // Not a configuration key: ignored rather than refused.
            jail.set_env("AVS_SOMETHING_ELSE", "1");
            let config = Config::load(Some(Path::new("device.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.region, Region::Eu, "from the file");
            assert_eq!(config.locale, "de-DE", "from the file");
            assert_eq!(config.plugins, ["avs_speaker"], "from the file");
            assert_eq!(config.data_dir, PathBuf::from("/tmp/avs-env"), "the environment wins over the file");
            assert!(config.legacy_endpoint, "from the environment");
            assert!(Config::defaults().trim_code_pages && !config.trim_code_pages, "from the environment");
            assert_eq!(config.worker_threads.get(), 2, "from the environment");
            assert_eq!(config.avs_base_url(), "https://localhost:8443", "the override wins over the region");
            assert_eq!(config.client_id, Config::defaults().client_id, "a default");
            assert_eq!(config.firmware_version, "1");
            assert_eq!(config.audio_sink, "null");
            Ok(())
        });
    }

    #[test]
    fn avs_toml_in_the_working_directory_is_read_when_no_file_is_named() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(Config::load(None).map_err(|e| e.to_string())?, Config::defaults(), "no file: defaults");
            jail.create_file("avs.toml", "region = \"fe\"\n")?;
            assert_eq!(Config::load(None).map_err(|e| e.to_string())?.region, Region::Fe);
            Ok(())
        });
    }

    #[test]
    fn every_region_has_a_current_and_a_legacy_gateway() {
        let mut config = Config::defaults();
        let expected = [
            (Region::Na, false, "https://alexa.na.gateway.devices.a2z.com"),
            (Region::Eu, false, "https://alexa.eu.gateway.devices.a2z.com"),
            (Region::Fe, false, "https://alexa.fe.gateway.devices.a2z.com"),
            (Region::Na, true, "https://avs-alexa-na.amazon.com"),
            (Region::Eu, true, "https://avs-alexa-eu.amazon.com"),
            (Region::Fe, true, "https://avs-alexa-fe.amazon.com"),
        ];
        for (region, legacy, url) in expected {
            (config.region, config.legacy_endpoint) = (region, legacy);
            assert_eq!(config.avs_base_url(), url);
        }
        assert_eq!(Config::defaults().avs_base_url(), "https://alexa.na.gateway.devices.a2z.com");
        assert_eq!(config.lwa_base_url(), "https://api.amazon.com");
        assert_eq!(config.capabilities_endpoint(), "https://api.amazonalexa.com/v1/devices/@self/capabilities");
        config.lwa_url = Some("https://localhost:1/".into());
        config.capabilities_url = Some("https://localhost:2".into());
        assert_eq!(config.lwa_base_url(), "https://localhost:1");
        assert_eq!(config.capabilities_endpoint(), "https://localhost:2/v1/devices/@self/capabilities");
    }

    /// Trust can only be widened by a CA file: no key turns certificate verification off.
    #[test]
    fn no_key_turns_tls_verification_off() {
        figment::Jail::expect_with(|jail| {
            for key in ["tls_verify = false", "insecure = true", "danger_accept_invalid_certs = true"] {
                jail.create_file("avs.toml", key)?;
                let err = Config::load(None).unwrap_err().to_string();
                assert!(err.contains("unknown field"), "{key}: {err}");
            }
            jail.create_file("avs.toml", "[limits]\nmax_queued_events = 64\n")?;
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.limits.max_queued_events, 64);
            assert_eq!(config.limits.max_directive_bytes, Limits::default().max_directive_bytes, "the rest default");
            Ok(())
        });
    }

    #[test]
    fn bad_configuration_is_a_clear_error() {
        figment::Jail::expect_with(|jail| {
            let err = Config::load(Some(Path::new("missing.toml"))).unwrap_err().to_string();
            assert_eq!(err, "configuration file missing.toml does not exist");
            jail.create_file("avs.toml", "region = \"MARS\"\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("region") && err.contains("MARS") && err.contains("avs.toml"), "{err}");
            jail.create_file("avs.toml", "regoin = \"EU\"\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("regoin"), "a misspelt key is named: {err}");
            jail.create_file("avs.toml", "worker_threads = 0\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("worker_threads") && err.contains("nonzero"), "{err}");
            jail.create_file("avs.toml", "")?;
            jail.set_env("AVS_LEGACY_ENDPOINT", "maybe");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("LEGACY_ENDPOINT") && err.contains("AVS_") && err.contains("maybe"), "{err}");
            Ok(())
        });
    }
}
