//! TLS to the brokers (`security.protocol=SSL`), with rustls. The core never sees it: it only
//! moves plaintext Kafka frames; this wraps each broker socket.
//!
//! Properties, as librdkafka names them:
//! - `ssl.ca.location`: PEM file of the CAs to trust (default: the system's trust store);
//! - `ssl.ca.pem`: the same, inline;
//! - `ssl.certificate.location` + `ssl.key.location`: PEM client certificate chain and key, for
//!   brokers that require client authentication (mutual TLS);
//! - `ssl.endpoint.identification.algorithm`: `https` (default, as in Kafka 2.0+) checks that
//!   the certificate names the broker's host; `none` checks the chain only.
//!
//! And as the Java client names them, for PEM stores (`ssl.truststore.type=PEM`,
//! `ssl.keystore.type=PEM`, KIP-651): `ssl.truststore.location` (a PEM file of CAs) or
//! `ssl.truststore.certificates` (inline); `ssl.keystore.location` (one PEM file with the key
//! and its certificate chain) or `ssl.keystore.key` + `ssl.keystore.certificate.chain` (inline).
//! JKS and PKCS12 stores and encrypted keys are refused, naming the property.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::Error;
use crate::error::{config_error, ConfigErrorKind};

/// The properties this module reads (the host transport's, not the core's).
pub(crate) const PROPERTIES: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
    "ssl.protocol",
    "ssl.enabled.protocols",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.truststore.password",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.password",
    "ssl.key.password",
];

/// The TLS versions Java's `ssl.enabled.protocols` (default `TLSv1.2,TLSv1.3`) and
/// `ssl.protocol` (default `TLSv1.3`; `TLSv1.2` caps the version) allow. Older versions are
/// refused: rustls does not speak them.
fn protocol_versions<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Error> {
    let parse = |property: &str, name: &str| match name.trim() {
        "TLSv1.2" => Ok(&rustls::version::TLS12),
        "TLSv1.3" => Ok(&rustls::version::TLS13),
        other => Err(config_error(
            ConfigErrorKind::Unsupported,
            Some(property),
            format!("{property}: {other} is not supported (TLSv1.2 and TLSv1.3 are)"),
        )),
    };
    let mut versions = match get("ssl.enabled.protocols") {
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        Some(list) => list
            .split(',')
            .filter(|v| !v.trim().is_empty())
            .map(|v| parse("ssl.enabled.protocols", v))
            .collect::<Result<Vec<_>, _>>()?,
    };
    match get("ssl.protocol").map(str::trim) {
        None | Some("TLS" | "TLSv1.3") => {}
        Some("TLSv1.2") => versions.retain(|v| v.version == rustls::ProtocolVersion::TLSv1_2),
        Some(other) => {
            return Err(config_error(
                ConfigErrorKind::Unsupported,
                Some("ssl.protocol"),
                format!("ssl.protocol: {other} is not supported (TLSv1.2, TLSv1.3 or TLS are)"),
            ))
        }
    }
    if versions.is_empty() {
        return Err(config_error(
            ConfigErrorKind::Conflict,
            Some("ssl.enabled.protocols"),
            "ssl.enabled.protocols / ssl.protocol leave no TLS version".into(),
        ));
    }
    Ok(versions)
}

/// Java's stores are read only in PEM: a JKS or PKCS12 one (Java's default type is JKS) is
/// refused, naming what to set instead.
fn check_java_stores<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<(), Error> {
    for (store, contents, instead) in [
        ("truststore", &["ssl.truststore.location", "ssl.truststore.certificates"][..], "ssl.ca.location"),
        (
            "keystore",
            &["ssl.keystore.location", "ssl.keystore.key", "ssl.keystore.certificate.chain"][..],
            "ssl.certificate.location + ssl.key.location",
        ),
    ] {
        let kind = get(&format!("ssl.{store}.type")).map(|t| t.trim().to_ascii_uppercase());
        let given = contents.iter().find(|p| get(p).is_some());
        if let (Some(p), false) = (given, kind.as_deref() == Some("PEM")) {
            let kind = kind.unwrap_or_else(|| "JKS (Java's default)".into());
            return Err(config_error(ConfigErrorKind::Unsupported, Some(p), format!(
                "{p} with ssl.{store}.type={kind} is not supported: only PEM stores are read; convert it to PEM and set ssl.{store}.type=PEM, or use {instead}"
            )));
        }
    }
    for p in ["ssl.truststore.password", "ssl.keystore.password", "ssl.key.password"] {
        if get(p).is_some_and(|v| !v.is_empty()) {
            return Err(config_error(ConfigErrorKind::Unsupported, Some(p), format!(
                "{p} is not supported: PEM stores and keys are read unencrypted (decrypt the key with `openssl pkey`)"
            )));
        }
    }
    Ok(())
}

/// A connector for every broker connection of one producer.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Builds the TLS settings from the properties, or `None` for plaintext. Every problem is an
    /// error that names its property.
    pub(crate) fn from_properties<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Option<Self>, Error> {
        let protocol = get("security.protocol").unwrap_or("plaintext").trim().to_ascii_lowercase();
        // SASL is the core's; TLS under it is this module's.
        match protocol.as_str() {
            "plaintext" | "sasl_plaintext" => return Ok(None),
            "ssl" | "sasl_ssl" => {}
            _ => {
                return Err(config_error(ConfigErrorKind::InvalidValue, Some("security.protocol"), format!(
                    "invalid value for security.protocol: {protocol} (expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
                )))
            }
        }
        check_java_stores(&get)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let files = ["ssl.ca.location", "ssl.truststore.location"];
        let inline = ["ssl.ca.pem", "ssl.truststore.certificates"];
        let custom_ca = files.iter().chain(&inline).any(|p| get(p).is_some());
        for p in files {
            if let Some(path) = get(p) {
                add_certs(&mut roots, CertificateDer::pem_file_iter(path.trim()), p)?;
            }
        }
        for p in inline {
            if let Some(pem) = get(p) {
                add_certs(&mut roots, Ok(CertificateDer::pem_slice_iter(pem.as_bytes())), p)?;
            }
        }
        if !custom_ca {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // The system store holds certificates rustls cannot use; skip those, as
                // librdkafka does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(config_error(
                    ConfigErrorKind::Environment,
                    Some("ssl.ca.location"),
                    "security.protocol=SSL: no CA certificates in the system trust store; set ssl.ca.location"
                        .into(),
                ));
            }
        }
        let check_name =
            match get("ssl.endpoint.identification.algorithm").map(|v| v.trim().to_ascii_lowercase()) {
                None => true,
                Some(v) if v == "https" => true,
                Some(v) if v == "none" || v.is_empty() => false,
                Some(v) => {
                    return Err(config_error(
                        ConfigErrorKind::InvalidValue,
                        Some("ssl.endpoint.identification.algorithm"),
                        format!(
                    "invalid value for ssl.endpoint.identification.algorithm: {v} (expected https or none)"
                ),
                    ))
                }
            };
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| config_error(ConfigErrorKind::Tls, None, format!("TLS trust anchors: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> =
            if check_name { webpki } else { Arc::new(ChainOnly(webpki)) };
        let versions = protocol_versions(&get)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| config_error(ConfigErrorKind::Tls, None, format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let java_key = match (
            get("ssl.keystore.location"),
            get("ssl.keystore.key"),
            get("ssl.keystore.certificate.chain"),
        ) {
            (Some(path), None, None) => {
                let chain = CertificateDer::pem_file_iter(path.trim())
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        config_error(
                            ConfigErrorKind::File,
                            Some("ssl.keystore.location"),
                            format!("ssl.keystore.location: {e}"),
                        )
                    })?;
                let key = PrivateKeyDer::from_pem_file(path.trim()).map_err(|e| {
                    config_error(
                        ConfigErrorKind::File,
                        Some("ssl.keystore.location"),
                        format!("ssl.keystore.location: no private key: {e}"),
                    )
                })?;
                Some((chain, key, "ssl.keystore.location"))
            }
            (None, Some(key), Some(chain)) => {
                let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                    config_error(
                        ConfigErrorKind::File,
                        Some("ssl.keystore.certificate.chain"),
                        format!("ssl.keystore.certificate.chain: {e}"),
                    )
                })?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| {
                    config_error(
                        ConfigErrorKind::File,
                        Some("ssl.keystore.key"),
                        format!("ssl.keystore.key: {e}"),
                    )
                })?;
                Some((chain, key, "ssl.keystore.certificate.chain"))
            }
            (None, None, None) => None,
            _ => {
                return Err(config_error(
                    ConfigErrorKind::Conflict,
                    Some("ssl.keystore.location"),
                    "ssl.keystore.location, or ssl.keystore.key with ssl.keystore.certificate.chain".into(),
                ))
            }
        };
        let config = match (get("ssl.certificate.location"), get("ssl.key.location"), java_key) {
            (None, None, Some((chain, key, property))) => {
                if chain.is_empty() {
                    return Err(config_error(ConfigErrorKind::File, Some(property), format!("{property}: no certificate")));
                }
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| config_error(ConfigErrorKind::Tls, Some(property), format!("{property}: {e}")))?
            }
            (None, None, None) => builder.with_no_client_auth(),
            (Some(_), _, Some((_, _, property))) | (_, Some(_), Some((_, _, property))) => {
                return Err(config_error(ConfigErrorKind::Conflict, Some(property), format!(
                    "ssl.certificate.location / ssl.key.location and {property} both set: give the client certificate once"
                )))
            }
            (Some(cert), Some(key), None) => {
                let chain = CertificateDer::pem_file_iter(cert.trim())
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| config_error(ConfigErrorKind::File, Some("ssl.certificate.location"), format!("ssl.certificate.location: {e}")))?;
                if chain.is_empty() {
                    return Err(config_error(
                        ConfigErrorKind::File,
                        Some("ssl.certificate.location"),
                        "ssl.certificate.location: no certificate in the file".into(),
                    ));
                }
                let key = PrivateKeyDer::from_pem_file(key.trim())
                    .map_err(|e| config_error(ConfigErrorKind::File, Some("ssl.key.location"), format!("ssl.key.location: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| config_error(ConfigErrorKind::Tls, Some("ssl.certificate.location"), format!("ssl.certificate.location / ssl.key.location: {e}")))?
            }
            (Some(_), None, None) => {
                return Err(config_error(
                    ConfigErrorKind::Conflict,
                    Some("ssl.certificate.location"),
                    "ssl.certificate.location needs ssl.key.location".into(),
                ))
            }
            (None, Some(_), None) => {
                return Err(config_error(
                    ConfigErrorKind::Conflict,
                    Some("ssl.key.location"),
                    "ssl.key.location needs ssl.certificate.location".into(),
                ))
            }
        };
        Ok(Some(Self { connector: TlsConnector::from(Arc::new(config)) }))
    }

    /// The TLS handshake over a connected socket to `host`.
    pub(crate) async fn connect(&self, host: &str, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, tcp).await
    }
}

fn add_certs<I>(
    roots: &mut RootCertStore,
    certs: Result<I, rustls::pki_types::pem::Error>,
    property: &str,
) -> Result<(), Error>
where
    I: Iterator<Item = Result<CertificateDer<'static>, rustls::pki_types::pem::Error>>,
{
    let mut added = 0;
    for cert in
        certs.map_err(|e| config_error(ConfigErrorKind::File, Some(property), format!("{property}: {e}")))?
    {
        let cert = cert
            .map_err(|e| config_error(ConfigErrorKind::File, Some(property), format!("{property}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| config_error(ConfigErrorKind::File, Some(property), format!("{property}: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(config_error(
            ConfigErrorKind::File,
            Some(property),
            format!("{property}: no certificate found"),
        ));
    }
    Ok(())
}

/// `ssl.endpoint.identification.algorithm=none`: the chain must still lead to a trusted CA and
/// be valid now; only the name check is skipped.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
