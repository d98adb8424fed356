//! Transport security: the PEM files of `jamjet dev --tls-cert/--tls-key/
//! --client-ca` made into a rustls server configuration ([`ServerFiles`]),
//! and the files a client trusts and presents ([`ClientTls`]: `--ca-cert`,
//! `--client-cert`, `--client-key`, or `JAMJET_CA_CERT`,
//! `JAMJET_CLIENT_CERT`, `JAMJET_CLIENT_KEY`), applied to a reqwest client
//! (the CLI's, [`crate::client::Client`], and the nodes' HTTP client).
//!
//! Everything is read and checked before anything starts: a file that
//! cannot be read, holds no PEM block of the right kind, or a key that does
//! not belong to its certificate is an [`Error`] naming the file and what is
//! wrong. The crypto is rustls with aws-lc-rs, the backend reqwest and sqlx
//! already use. [`Peer`] reads the names of a verified client certificate
//! (its subject's CN, its DNS and URI SANs), which the API-key check
//! ([`crate::server::auth`]) maps to permissions. This module names no
//! other part of the crate: the server, the client and the nodes use it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The environment variables a client reads its TLS files from (the CLI's
/// `--ca-cert`, `--client-cert`, `--client-key` set the same).
pub const CA_CERT_ENV: &str = "JAMJET_CA_CERT";
pub const CLIENT_CERT_ENV: &str = "JAMJET_CLIENT_CERT";
pub const CLIENT_KEY_ENV: &str = "JAMJET_CLIENT_KEY";

/// Why TLS could not be set up; each names the file (and the flag or
/// variable that gave it) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {what} {path}: {message}")]
    Read { what: &'static str, path: String, message: String },
    #[error("{what} {path} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`){found}")]
    NoCertificate { what: &'static str, path: String, found: String },
    #[error("{what} {path} holds no PEM private key (`-----BEGIN PRIVATE KEY-----`, RSA or EC){found}")]
    NoKey { what: &'static str, path: String, found: String },
    #[error("{what} {path}: {message}")]
    BadPem { what: &'static str, path: String, message: String },
    #[error("the key {key} does not belong to the certificate {cert} ({message})")]
    KeyMismatch { cert: String, key: String, message: String },
    #[error("{what} {path}: {message}")]
    BadCa { what: &'static str, path: String, message: String },
    #[error("a client certificate needs its key and the other way round: {given} is set, {missing} is not")]
    Half { given: &'static str, missing: &'static str },
    #[error("{0} is not UTF-8 text")]
    NotUnicode(&'static str),
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Read { what, path: path.display().to_string(), message: e.to_string() })
}

/// What a file that should hold PEM looks like instead, for the message.
fn found(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return " (the file is empty)".into();
    }
    if bytes.first() == Some(&0x30) {
        return " (it looks like DER: convert it with `openssl x509 -inform der -out FILE.pem`)".into();
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")))
        .collect();
    if labels.is_empty() { " (it is not PEM)".into() } else { format!(" (it holds: {})", labels.join(", ")) }
}

/// Every certificate in a PEM file, at least one.
pub fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read(what, path)?;
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| Error::BadPem {
        what,
        path: shown.clone(),
        message: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate { what, path: shown, found: found(&bytes) });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read(what, path)?;
    let shown = path.display().to_string();
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => Error::NoKey { what, path: shown, found: found(&bytes) },
        e => Error::BadPem { what, path: shown, message: e.to_string() },
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The roots of a CA file, every certificate in it a trust anchor.
fn roots(what: &'static str, path: &Path) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(what, path)? {
        roots.add(cert).map_err(|e| Error::BadCa {
            what,
            path: path.display().to_string(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// A certificate chain and its key, checked to belong together.
fn certified(
    cert_what: &'static str,
    cert: &Path,
    key_what: &'static str,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let chain = certificates(cert_what, cert)?;
    let der = private_key(key_what, key)?;
    rustls::sign::CertifiedKey::from_der(chain.clone(), der.clone_key(), &provider()).map_err(|e| {
        Error::KeyMismatch { cert: cert.display().to_string(), key: key.display().to_string(), message: e.to_string() }
    })?;
    Ok((chain, der))
}

/// `jamjet dev`'s TLS files.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    /// `--tls-cert`: the server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// `--tls-key`: its private key.
    pub key: PathBuf,
    /// `--client-ca`: with it, every client must present a certificate this CA signed.
    pub client_ca: Option<PathBuf>,
}

impl ServerFiles {
    /// The rustls configuration: HTTP/1.1 (what the server speaks), TLS 1.2
    /// and 1.3, and with `client_ca` a verifier that refuses, at the
    /// handshake, any client without a certificate that CA signed.
    pub fn config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        let (chain, key) = certified("--tls-cert", &self.cert, "--tls-key", &self.key)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Setup(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots("--client-ca", ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| Error::BadCa {
                    what: "--client-ca",
                    path: ca.display().to_string(),
                    message: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| Error::KeyMismatch {
            cert: self.cert.display().to_string(),
            key: self.key.display().to_string(),
            message: e.to_string(),
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// What a client trusts and presents: a CA beside the system's roots, and
/// a certificate with its key for servers that ask for one (mTLS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// Trust servers whose certificate this CA signed (PEM, one or more).
    pub ca_cert: Option<PathBuf>,
    /// Present this certificate chain (PEM) ...
    pub client_cert: Option<PathBuf>,
    /// ... with this private key (PEM).
    pub client_key: Option<PathBuf>,
}

fn env_path(name: &'static str) -> Result<Option<PathBuf>, Error> {
    match std::env::var(name) {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => Ok(Some(PathBuf::from(v))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::NotUnicode(name)),
    }
}

impl ClientTls {
    /// `JAMJET_CA_CERT`, `JAMJET_CLIENT_CERT` and `JAMJET_CLIENT_KEY` (unset or empty: none).
    pub fn from_env() -> Result<ClientTls, Error> {
        Ok(ClientTls {
            ca_cert: env_path(CA_CERT_ENV)?,
            client_cert: env_path(CLIENT_CERT_ENV)?,
            client_key: env_path(CLIENT_KEY_ENV)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.ca_cert.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }

    /// `builder` trusting the CA (added to the system's roots, so public
    /// servers stay reachable) and presenting the client certificate. The
    /// files are read and checked here, once.
    pub fn apply(&self, mut builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, Error> {
        if let Some(ca) = &self.ca_cert {
            let certs = certificates("the CA certificate", ca)?;
            let mut parsed = Vec::with_capacity(certs.len());
            for cert in certs {
                parsed.push(reqwest::Certificate::from_der(&cert).map_err(|e| Error::BadCa {
                    what: "the CA certificate",
                    path: ca.display().to_string(),
                    message: e.to_string(),
                })?);
            }
            builder = builder.tls_certs_merge(parsed);
        }
        match (&self.client_cert, &self.client_key) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::Half {
                    given: "--client-cert (JAMJET_CLIENT_CERT)",
                    missing: "--client-key (JAMJET_CLIENT_KEY)",
                });
            }
            (None, Some(_)) => {
                return Err(Error::Half {
                    given: "--client-key (JAMJET_CLIENT_KEY)",
                    missing: "--client-cert (JAMJET_CLIENT_CERT)",
                });
            }
            (Some(cert), Some(key)) => {
                certified("the client certificate", cert, "the client key", key)?;
                // Both were just read; reqwest wants them as one PEM buffer.
                let mut pem = read("the client certificate", cert)?;
                pem.push(b'\n');
                pem.extend(read("the client key", key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| Error::KeyMismatch {
                    cert: cert.display().to_string(),
                    key: key.display().to_string(),
                    message: e.to_string(),
                })?;
                builder = builder.identity(identity);
            }
        }
        Ok(builder)
    }
}

/// How long [`asks_for_certificate`] waits for its connection and handshake.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a client adds to a failed request's error when the server at `url`
/// asks for a client certificate and the client presents none, else None.
///
/// Under TLS 1.3 a server refuses a missing certificate only after the
/// client's half of the handshake is done, so the refusal (the alert
/// `CertificateRequired`) may arrive after the client has given up on the
/// connection, and the request fails as "connection closed" or "not
/// ready" instead. When the error does not already name an alert, one
/// handshake asks the server (see [`asks_for_certificate`]).
pub async fn certificate_hint(url: &reqwest::Url, error: &str, presents: bool) -> Option<&'static str> {
    const HINT: &str = " (the server asks for a client certificate, alert CertificateRequired: give --client-cert \
                        and --client-key, or JAMJET_CLIENT_CERT and JAMJET_CLIENT_KEY)";
    if error.contains("CertificateRequired") {
        return Some(HINT);
    }
    if presents || url.scheme() != "https" || error.contains("UnknownIssuer") || error.contains("alert") {
        return None;
    }
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']');
    asks_for_certificate(host, url.port_or_known_default()?).await.then_some(HINT)
}

/// Whether the TLS server at `host:port` asks its clients for a
/// certificate: one handshake that presents none, sends nothing after it,
/// and accepts any server certificate (it only asks a question; no request
/// and no secret is sent). False when it cannot connect in 5 seconds.
pub async fn asks_for_certificate(host: &str, port: u16) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Notes that the server sent a CertificateRequest; presents nothing.
    #[derive(Debug)]
    struct Asked(Arc<AtomicBool>);
    impl rustls::client::ResolvesClientCert for Asked {
        fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
            self.0.store(true, Ordering::Relaxed);
            None
        }
        fn has_certs(&self) -> bool {
            false
        }
    }

    /// Any server certificate will do: the probe sends nothing to trust it with.
    #[derive(Debug)]
    struct AnyServer(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    let asked = Arc::new(AtomicBool::new(false));
    let Ok(builder) = rustls::ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()
    else {
        return false;
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
        .with_client_cert_resolver(Arc::new(Asked(asked.clone())));
    let Ok(name) = rustls::pki_types::ServerName::try_from(host.to_string()) else { return false };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await?;
        connector.connect(name, tcp).await
    };
    // The answer is known once the server's CertificateRequest is read,
    // whatever becomes of the handshake after it.
    let _ = tokio::time::timeout(PROBE_TIMEOUT, handshake).await;
    asked.load(Ordering::Relaxed)
}

/// A connection's verified client certificate, as names: its subject's
/// common name and its DNS and URI subject alternative names (what a keys
/// file's `cert:` lines match). `None` inside: no certificate (no mTLS).
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub cert: Option<Arc<CertNames>>,
}

/// The names a certificate answers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    /// The subject's CN, if it has one.
    pub common_name: Option<String>,
    /// DNS names, then URIs, from the subject alternative names.
    pub alt_names: Vec<String>,
}

impl CertNames {
    /// The names of a DER certificate (`None`: it does not parse).
    pub fn of(der: &CertificateDer<'_>) -> Option<CertNames> {
        let cert = webpki::EndEntityCert::try_from(der).ok()?;
        let common_name = common_name(cert.subject());
        let mut alt_names: Vec<String> = cert.valid_dns_names().map(str::to_string).collect();
        alt_names.extend(cert.valid_uri_names().map(str::to_string));
        Some(CertNames { common_name, alt_names })
    }

    /// Every name, CN first.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.common_name.iter().map(String::as_str).chain(self.alt_names.iter().map(String::as_str))
    }

    /// For a message: `CN=ops-laptop, DNS/URI=a, b`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(cn) = &self.common_name {
            parts.push(format!("CN={cn}"));
        }
        if !self.alt_names.is_empty() {
            parts.push(format!("SAN={}", self.alt_names.join(",")));
        }
        if parts.is_empty() { "(no CN and no DNS or URI SAN)".into() } else { parts.join(" ") }
    }
}

/// The last CN of a DER `Name` without its outer SEQUENCE header (what
/// webpki hands out): a SEQUENCE of SETs of `{OID, value}` SEQUENCEs.
fn common_name(name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03]; // 2.5.4.3
    let mut cn = None;
    let mut rdns = name;
    while let Some((0x31, set, rest)) = tlv(rdns) {
        rdns = rest;
        let mut atvs = set;
        while let Some((0x30, atv, rest)) = tlv(atvs) {
            atvs = rest;
            let Some((0x06, oid, value)) = tlv(atv) else { continue };
            let Some((tag, text, _)) = tlv(value) else { continue };
            // UTF8String, PrintableString, IA5String, T61String (read as Latin-1-ish UTF-8).
            if oid == CN && matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
                cn = std::str::from_utf8(text).ok().map(str::to_string);
            }
        }
    }
    cn
}

/// One DER TLV: (tag, contents, what follows). Short and long lengths up to 4 bytes.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn issue(name: &str, alt: &[&str]) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        for name in alt {
            let ia5 = rcgen::string::Ia5String::try_from(*name).unwrap();
            let san = if name.contains("://") { rcgen::SanType::URI(ia5) } else { rcgen::SanType::DnsName(ia5) };
            params.subject_alt_names.push(san);
        }
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn a_certificate_s_names_are_its_cn_and_sans() {
        let (cert, _) = issue("ops-laptop", &["ops.example", "spiffe://example/ops"]);
        let names = CertNames::of(cert.der()).unwrap();
        assert_eq!(names.common_name.as_deref(), Some("ops-laptop"));
        assert_eq!(names.alt_names, ["ops.example", "spiffe://example/ops"]);
        assert_eq!(names.describe(), "CN=ops-laptop SAN=ops.example,spiffe://example/ops");
    }

    #[test]
    fn bad_files_say_which_and_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = issue("server", &["localhost"]);
        let (_, other_key) = issue("other", &["localhost"]);
        let cert_pem = write(dir.path(), "cert.pem", &cert.pem());
        let key_pem = write(dir.path(), "key.pem", &key.serialize_pem());
        let other_pem = write(dir.path(), "other.pem", &other_key.serialize_pem());
        let text = write(dir.path(), "notes.txt", "hello\n");
        let files = |cert: &Path, key: &Path| ServerFiles { cert: cert.into(), key: key.into(), client_ca: None };

        assert!(files(&cert_pem, &key_pem).config().is_ok());
        let e = files(&text, &key_pem).config().unwrap_err().to_string();
        assert!(e.contains("--tls-cert") && e.contains("notes.txt") && e.contains("no PEM certificate"), "{e}");
        let e = files(&cert_pem, &cert_pem).config().unwrap_err().to_string();
        assert!(e.contains("--tls-key") && e.contains("no PEM private key") && e.contains("CERTIFICATE"), "{e}");
        let e = files(&cert_pem, &other_pem).config().unwrap_err().to_string();
        assert!(e.contains("does not belong") && e.contains("other.pem") && e.contains("cert.pem"), "{e}");
        let e = files(&dir.path().join("missing.pem"), &key_pem).config().unwrap_err().to_string();
        assert!(e.contains("cannot read --tls-cert") && e.contains("missing.pem"), "{e}");

        let half = ClientTls { client_cert: Some(cert_pem), ..Default::default() };
        let e = half.apply(reqwest::Client::builder()).unwrap_err().to_string();
        assert!(e.contains("JAMJET_CLIENT_KEY"), "{e}");
    }
}
