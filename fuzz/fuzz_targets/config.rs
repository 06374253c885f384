//! The configuration loader on arbitrary `avs.toml` text. Oracles: no panic; an accepted configuration
//! gives URLs without a trailing slash, and extracts to itself again from its own serialization.
#![no_main]

use avs_core::config::Config;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = Config::from_figment(Figment::from(Toml::string(text))) else { return };
    for url in [config.avs_base_url(), config.lwa_base_url()] {
        assert!(!url.ends_with('/'), "{url}");
    }
    assert!(config.capabilities_endpoint().ends_with("/v1/devices/@self/capabilities"));
    let again = Config::from_figment(Figment::from(Serialized::defaults(&config)));
    assert_eq!(again.as_ref().ok(), Some(&config), "{again:?}");
});
