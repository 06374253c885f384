//! avs-sim's certificates: a CA (written to `ca.pem` for clients to trust explicitly) and a server
//! certificate for `localhost` / `127.0.0.1` signed by it. Both are reused across restarts with the same
//! data dir, so a client that trusted `ca.pem` once keeps working.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::SimError;

const CA: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const SERVER: &str = "server.pem";
const SERVER_KEY: &str = "server-key.pem";

/// Loads the sim's certificates from `dir`, creating them on first use, and builds the TLS config.
pub(crate) fn server_config(dir: &Path) -> Result<Arc<ServerConfig>, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    if !dir.join(SERVER).exists() || !dir.join(CA).exists() || !dir.join(SERVER_KEY).exists() {
        generate(dir)?;
    }
    let server = std::fs::read(dir.join(SERVER)).map_err(|e| SimError::io(&dir.join(SERVER), e))?;
    let ca = std::fs::read(dir.join(CA)).map_err(|e| SimError::io(&dir.join(CA), e))?;
    let key = std::fs::read(dir.join(SERVER_KEY)).map_err(|e| SimError::io(&dir.join(SERVER_KEY), e))?;
    let chain = vec![
        CertificateDer::from_pem_slice(&server).map_err(|e| SimError::Tls(format!("server.pem: {e}")))?,
        CertificateDer::from_pem_slice(&ca).map_err(|e| SimError::Tls(format!("ca.pem: {e}")))?,
    ];
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| SimError::Tls(format!("server-key.pem: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| SimError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn generate(dir: &Path) -> Result<(), SimError> {
    let tls = |e: rcgen::Error| SimError::Tls(e.to_string());
    let ca_key = KeyPair::generate().map_err(tls)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    ca_params.distinguished_name.push(DnType::CommonName, "avs-sim local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;

    let server_key = KeyPair::generate().map_err(tls)?;
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).map_err(tls)?;
    server_params.distinguished_name.push(DnType::CommonName, "avs-sim");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_cert = server_params.signed_by(&server_key, &issuer).map_err(tls)?;

    write(dir, CA, &ca_cert.pem(), false)?;
    write(dir, CA_KEY, &issuer.key().serialize_pem(), true)?;
    write(dir, SERVER, &server_cert.pem(), false)?;
    write(dir, SERVER_KEY, &server_key.serialize_pem(), true)
}

fn write(dir: &Path, name: &str, contents: &str, secret: bool) -> Result<(), SimError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(&path).map_err(|e| SimError::io(&path, e))?;
    file.write_all(contents.as_bytes()).map_err(|e| SimError::io(&path, e))
}
