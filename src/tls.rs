//! TLS material for outgoing HTTPS (BBB calls): the rustls client config and PEM reading.
//! A leaf module, used by the settings validation and by the BBB client.

use std::sync::Arc;

/// Builds the rustls client config: public web roots plus the PEM certificates in `ca_file`.
pub fn tls_config(ca_file: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !ca_file.is_empty() {
        for cert in read_pem_certs(ca_file)? {
            roots.add(cert).map_err(|e| format!("{ca_file}: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Reads every certificate of a PEM file; an unreadable file or one without certificates is an error.
pub fn read_pem_certs(path: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM file: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM file".into());
    }
    Ok(certs)
}
