//! The TLS client configuration: Mozilla's roots (for Amazon Trust Services) plus, optionally, one CA
//! file (avs-sim's, or a private gateway's). There is deliberately no way to turn verification off.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA file {path} (config key ca_file): {source}")]
    CaFileUnreadable { path: String, source: std::io::Error },
    #[error("the CA file {path} is not usable: {reason}")]
    CaFileInvalid { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The client configuration for every connection the device makes (AVS, Login with Amazon,
/// Capabilities API). ALPN offers only h2: AVS speaks nothing else.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for cert in ca_certificates(path)? {
            roots.add(cert).map_err(|e| TlsError::CaFileInvalid {
                path: path.display().to_string(),
                reason: format!("a certificate in it cannot be a trust anchor: {e}"),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The PEM certificates of a CA file; a file without any is an error rather than a silent no-op, since
/// the device would then fail every handshake with a less helpful message.
fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = || path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| TlsError::CaFileUnreadable { path: shown(), source })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::CaFileInvalid { path: shown(), reason: format!("malformed PEM: {e}") })?;
    if certs.is_empty() {
        return Err(TlsError::CaFileInvalid {
            path: shown(),
            reason: "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_invalid_ca_file_is_named_in_the_error() {
        let err = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            matches!(&err, TlsError::CaFileUnreadable { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        );
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("empty.pem", "not a certificate".to_string(), "no PEM certificate"),
            ("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA".to_string(), "malformed PEM"),
            (
                "garbage.pem",
                "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n".to_string(),
                "trust anchor",
            ),
        ];
        for (name, contents, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            let err = client_config(Some(&path)).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(expected), "{err}");
        }
    }

    #[test]
    fn a_ca_file_is_trusted_in_addition_to_the_public_roots() {
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let config = client_config(Some(&path)).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(client_config(None).unwrap().alpn_protocols, vec![b"h2".to_vec()]);
    }
}
