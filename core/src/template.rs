//! Device templates: which plugin libraries a kind of device loads, and which interface and version
//! each must provide. The project's templates (`capabilities/*.toml`) are compiled in, so an installed
//! binary needs no data files; a device maker's own template is a path to a file of the same shape.

use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// The templates shipped with avs-runtime, by name.
const BUILT_IN: &[(&str, &str)] = &[
    ("minimal", include_str!("../../capabilities/minimal.toml")),
    ("headless-speaker", include_str!("../../capabilities/headless-speaker.toml")),
    ("screen-device", include_str!("../../capabilities/screen-device.toml")),
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTemplate {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    #[serde(rename = "plugin")]
    pub plugins: Vec<TemplatePlugin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatePlugin {
    pub interface: String,
    pub version: String,
    /// The library's file stem without `lib` (`avs_speaker` for `libavs_speaker.so`).
    pub file: String,
    /// The capability's `configurations` (e.g. EqualizerController's bands), in place of the plugin's
    /// defaults: published to AVS and handed to the plugin.
    #[serde(default)]
    pub configurations: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("no device template {name:?}: the built-in ones are {known}, or give the path of a .toml file")]
    Unknown { name: String, known: String },
    #[error("device template {name}: {reason}")]
    Invalid { name: String, reason: String },
}

impl DeviceTemplate {
    /// A built-in template by name, or the template file at `name` when it ends in `.toml`.
    pub fn resolve(name: &str) -> Result<DeviceTemplate, TemplateError> {
        let figment = if name.ends_with(".toml") {
            let path = Path::new(name);
            if !path.is_file() {
                return Err(TemplateError::Invalid { name: name.into(), reason: "no such file".into() });
            }
            Figment::from(Toml::file(path))
        } else {
            let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == name).ok_or_else(|| TemplateError::Unknown {
                name: name.into(),
                known: BUILT_IN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            })?;
            Figment::from(Toml::string(text))
        };
        let invalid = |reason: String| TemplateError::Invalid { name: name.into(), reason };
        let mut template: DeviceTemplate = figment.extract().map_err(|e| invalid(e.to_string()))?;
        template.name = name.into();
        let mut interfaces: Vec<&str> = template.plugins.iter().map(|p| p.interface.as_str()).collect();
        interfaces.sort_unstable();
        if let Some(twice) = interfaces.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(format!("{} is listed twice", twice[0])));
        }
        Ok(template)
    }

    /// The file stems to load.
    pub fn files(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.file.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_parses_and_lists_each_interface_once() {
        for (name, _) in BUILT_IN {
            let template = DeviceTemplate::resolve(name).unwrap();
            assert!(!template.plugins.is_empty(), "{name}");
        }
        let minimal = DeviceTemplate::resolve("minimal").unwrap();
        let interfaces: Vec<&str> = minimal.plugins.iter().map(|p| p.interface.as_str()).collect();
        assert_eq!(interfaces, ["System", "SpeechRecognizer", "SpeechSynthesizer", "Speaker"]);
        // Each larger template builds on the one before it, as the device kinds do.
        let headless = DeviceTemplate::resolve("headless-speaker").unwrap();
        let screen = DeviceTemplate::resolve("screen-device").unwrap();
        assert_eq!(&headless.plugins[..4], &minimal.plugins[..]);
        assert_eq!(&screen.plugins[..headless.plugins.len()], &headless.plugins[..]);
        assert_eq!(headless.plugins.len(), 12);
        assert_eq!(screen.plugins.len(), 15);
    }

    #[test]
    fn unknown_names_and_bad_files_are_explained() {
        let err = DeviceTemplate::resolve("toaster").unwrap_err().to_string();
        assert!(err.contains("\"toaster\"") && err.contains("minimal"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mine.toml");
        let entry = "[[plugin]]\ninterface = \"Speaker\"\nversion = \"1.0\"\nfile = \"avs_speaker\"\n";
        std::fs::write(&file, format!("description = \"twice\"\n{entry}{entry}")).unwrap();
        let err = DeviceTemplate::resolve(file.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("Speaker is listed twice"), "{err}");
        std::fs::write(&file, "description = \"typo\"\n[[plugin]]\ninterface = \"Speaker\"\nversoin = \"1.0\"\n")
            .unwrap();
        let err = DeviceTemplate::resolve(file.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("versoin"), "{err}");
    }
}
