//! A database URL as libpq reads it, TLS included. tokio-postgres knows `sslmode` only as
//! disable, prefer or require and checks no certificate itself, and refuses `sslrootcert`; a URL
//! copied from a provider's console (`?sslmode=verify-full&sslrootcert=ca.pem`) must mean here what
//! it means to `psql`, so those two options are read here and the rest is left to tokio-postgres.
//!
//! - `disable`: never TLS. `allow`, `prefer` (the default, as in libpq): TLS when the server offers
//!   it (and this client can speak it), else plain.
//! - `require`: TLS or nothing; the certificate is checked against `sslrootcert` when one is
//!   given (as libpq does), otherwise only encrypted. A SCRAM sign-in is bound to the server's
//!   certificate when the server supports it; `channel_binding=require` (passed on to
//!   tokio-postgres) refuses a server that asks for the password any other way.
//! - `verify-ca`: the certificate must chain to `sslrootcert` (a PEM file, required);
//!   `verify-full`: and name the host, trusting `sslrootcert`, or the public web's roots when it
//!   is absent or `system` (which, as in libpq 16, goes with nothing weaker than verify-full).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why a database URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("sslmode={0:?}: use disable, allow, prefer, require, verify-ca or verify-full")]
    SslMode(String),
    #[error("{0}")]
    Weak(&'static str),
    #[error("sslrootcert {path}: {reason}")]
    RootCert { path: String, reason: String },
    #[error("the database URL: {0}")]
    Url(#[from] tokio_postgres::Error),
    #[error("TLS settings: {0}")]
    Tls(#[from] rustls::Error),
}

/// What `sslmode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Where to connect and how: the URL's settings and the TLS they ask for.
#[derive(Clone)]
pub struct Database {
    pub config: tokio_postgres::Config,
    pub mode: TlsMode,
    tls: MakeRustlsConnect,
}

/// A connection as [`Database::connect`] opens it (TLS or not).
pub type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

impl Database {
    /// Reads `url` (`postgres://…?sslmode=…`, or the `host=… sslmode=…` form).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (rest, options) = take_tls_options(url);
        let mut mode = None;
        let mut root_cert = None;
        for (key, value) in options {
            match key.as_str() {
                "sslmode" => {
                    mode = Some(match value.as_str() {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        _ => return Err(UrlError::SslMode(value)),
                    })
                }
                _ => root_cert = Some(value),
            }
        }
        // As libpq 16: the public roots are trusted only to name the server, so nothing weaker
        // than verify-full goes with them; and verify-ca, which does not check the name, needs
        // the team's own root (any public certificate, for any name, would pass otherwise).
        let system = root_cert.as_deref() == Some("system");
        let mode = match (mode, system) {
            (None, true) => TlsMode::VerifyFull,
            (Some(mode), true) if mode != TlsMode::VerifyFull => {
                return Err(UrlError::Weak(
                    "sslrootcert=system goes only with sslmode=verify-full",
                ))
            }
            (Some(TlsMode::VerifyCa), false) if root_cert.is_none() => {
                return Err(UrlError::Weak(
                    "sslmode=verify-ca needs sslrootcert=FILE (the CA that signed the server's certificate); or use verify-full",
                ))
            }
            (mode, _) => mode.unwrap_or(TlsMode::Prefer),
        };
        let mut config: tokio_postgres::Config = rest.parse()?;
        // An sslmode this parser did not see (it would be overridden below) is refused instead.
        if config.get_ssl_mode() != SslMode::Prefer {
            return Err(UrlError::Weak(
                "the URL's sslmode could not be read; percent-encode '?' and '&' in the password",
            ));
        }
        config.ssl_mode(match mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        let roots = match root_cert.as_deref() {
            None | Some("system") => None,
            Some(path) => Some(roots_from(path)?),
        };
        Ok(Self {
            config,
            mode,
            tls: MakeRustlsConnect::new(client_config(mode, roots)?),
        })
    }

    pub async fn connect(
        &self,
    ) -> Result<(tokio_postgres::Client, Connection), tokio_postgres::Error> {
        match self.config.connect(self.tls.clone()).await {
            // As libpq's prefer: a server whose TLS this client cannot speak (an old protocol
            // version) is used without it.
            Err(e) if self.mode == TlsMode::Prefer && e.to_string().contains("TLS handshake") => {
                tracing::warn!(error = %e, "store: the database's TLS failed; connecting without it (sslmode=prefer)");
                let mut plain = self.config.clone();
                plain.ssl_mode(SslMode::Disable);
                plain.connect(self.tls.clone()).await
            }
            other => other,
        }
    }
}

/// The certificates in a PEM file.
fn roots_from(path: &str) -> Result<RootCertStore, UrlError> {
    let failed = |reason: String| UrlError::RootCert {
        path: path.to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| failed(e.to_string()))? {
        let cert = cert.map_err(|e| failed(e.to_string()))?;
        roots.add(cert).map_err(|e| failed(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(failed(
            "no certificate in it (a PEM file is expected)".into(),
        ));
    }
    Ok(roots)
}

fn client_config(
    mode: TlsMode,
    roots: Option<RootCertStore>,
) -> Result<rustls::ClientConfig, UrlError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let checks_chain = matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull)
        || (mode == TlsMode::Require && roots.is_some());
    let chain = match checks_chain {
        false => None,
        true => {
            let roots = Arc::new(roots.unwrap_or_else(|| RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }));
            let chain = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            Some(chain)
        }
    };
    Ok(match (mode, chain) {
        (TlsMode::VerifyFull, Some(chain)) => builder.with_webpki_verifier(chain),
        (_, chain) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ShortOfFull { provider, chain })),
    }
    .with_no_client_auth())
}

/// Splits libpq's TLS options (`sslmode`, `sslrootcert`) out of a URL in either form; the rest is
/// given back as written.
fn take_tls_options(url: &str) -> (String, Vec<(String, String)>) {
    let ours = |key: &str| key == "sslmode" || key == "sslrootcert";
    let mut taken = Vec::new();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Where tokio-postgres finds the query: after the credentials, which end at the first
        // '@' (a password may hold a '?').
        let after_scheme = url.find("://").map_or(0, |at| at + 3);
        let host_from = url[after_scheme..]
            .find('@')
            .map_or(after_scheme, |at| after_scheme + at + 1);
        let Some(at) = url[host_from..].find('?').map(|q| host_from + q) else {
            return (url.to_string(), taken);
        };
        let (base, query) = (&url[..at], &url[at + 1..]);
        let mut kept = Vec::new();
        for pair in query.split('&') {
            // libpq's URIs percent-encode; a '+' is a plus, not a space.
            let decoded = pair.replace('+', "%2B");
            match url::form_urlencoded::parse(decoded.as_bytes()).next() {
                Some((key, value)) if ours(&key) => taken.push((key.into(), value.into())),
                _ => kept.push(pair),
            }
        }
        return match kept.is_empty() {
            true => (base.to_string(), taken),
            false => (format!("{base}?{}", kept.join("&")), taken),
        };
    }
    let mut rest = String::new();
    for (key, value, text) in key_values(url) {
        if ours(&key) {
            taken.push((key, value));
        } else {
            rest.push_str(text);
            rest.push(' ');
        }
    }
    (rest.trim_end().to_string(), taken)
}

/// The `key = value` pairs of libpq's keyword form (a value may be 'quoted', with \ escapes),
/// each with its text as written.
fn key_values(s: &str) -> Vec<(String, String, &str)> {
    let mut pairs = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return pairs;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        // A key without '=' is left for tokio-postgres to refuse.
        let has_value = chars.next_if(|(_, c)| *c == '=').is_some();
        while has_value && chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = has_value && chars.next_if(|(_, c)| *c == '\'').is_some();
        while let Some((_, c)) = chars.peek().copied() {
            if !quoted && c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '\'' if quoted => break,
                c => value.push(c),
            }
        }
        let end = chars.peek().map_or(s.len(), |&(at, _)| at);
        pairs.push((key, value, &s[start..end]));
    }
}

/// The checks short of verify-full (which is rustls's own): `prefer` and `require` without a
/// root take any certificate; `verify-ca` (and `require` with one) takes one that chains to the
/// roots, whatever name it bears (webpki checks the chain first, so a name error means the chain
/// was good). Either way the handshake's signatures are checked.
#[derive(Debug)]
struct ShortOfFull {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for ShortOfFull {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(url: &str) -> (String, Vec<(String, String)>) {
        take_tls_options(url)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_urls_tls_options_are_taken_out_and_the_rest_is_left_as_written() {
        assert_eq!(
            taken("postgres://u:p%2B@db/baton?sslmode=verify-full&application_name=a+b&sslrootcert=%2Fetc%2Fca.pem"),
            (
                "postgres://u:p%2B@db/baton?application_name=a+b".to_string(),
                pairs(&[("sslmode", "verify-full"), ("sslrootcert", "/etc/ca.pem")])
            )
        );
        assert_eq!(
            taken("postgresql://db/baton?sslmode=require"),
            (
                "postgresql://db/baton".to_string(),
                pairs(&[("sslmode", "require")])
            )
        );
        assert_eq!(
            taken("postgres://db/baton"),
            ("postgres://db/baton".to_string(), Vec::new())
        );
    }

    #[test]
    fn the_keyword_forms_tls_options_are_taken_out_quotes_and_escapes_included() {
        assert_eq!(
            taken(r"host=db sslmode = verify-ca  sslrootcert='/my certs/it\'s.pem' password='a b'"),
            (
                "host=db password='a b'".to_string(),
                pairs(&[
                    ("sslmode", "verify-ca"),
                    ("sslrootcert", "/my certs/it's.pem")
                ])
            )
        );
    }

    #[test]
    fn an_unknown_sslmode_or_a_missing_root_certificate_is_refused_with_why() {
        let mode = Database::parse("postgres://db/baton?sslmode=verify_full").err();
        assert_eq!(
            mode.map(|e| e.to_string()).as_deref(),
            Some("sslmode=\"verify_full\": use disable, allow, prefer, require, verify-ca or verify-full")
        );
        let root = Database::parse(
            "postgres://db/baton?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            root.starts_with("sslrootcert /nonexistent/ca.pem: "),
            "{root}"
        );
    }

    #[test]
    fn public_roots_go_only_with_verify_full_and_verify_ca_needs_the_teams_root() {
        let refused = |url: &str| Database::parse(url).err().map(|e| e.to_string());
        assert_eq!(
            Database::parse("postgres://db/baton?sslrootcert=system")
                .expect("parses")
                .mode,
            TlsMode::VerifyFull
        );
        for weaker in ["prefer", "require", "verify-ca"] {
            assert_eq!(
                refused(&format!(
                    "postgres://db/baton?sslmode={weaker}&sslrootcert=system"
                ))
                .as_deref(),
                Some("sslrootcert=system goes only with sslmode=verify-full"),
            );
        }
        assert!(refused("postgres://db/baton?sslmode=verify-ca")
            .is_some_and(|e| e.starts_with("sslmode=verify-ca needs sslrootcert=FILE")));
        assert_eq!(
            Database::parse("postgres://db/baton?sslmode=verify-full")
                .expect("parses")
                .mode,
            TlsMode::VerifyFull
        );
    }

    #[test]
    fn a_question_mark_in_the_password_does_not_hide_the_sslmode() {
        assert_eq!(
            taken("postgres://u:pa?ss@db/x?sslmode=require"),
            (
                "postgres://u:pa?ss@db/x".to_string(),
                pairs(&[("sslmode", "require")])
            )
        );
        let database = Database::parse("postgres://u:pa?ss@db/x?sslmode=require").expect("parses");
        assert_eq!(database.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(database.config.get_password(), Some(&b"pa?ss"[..]));
    }

    #[test]
    fn the_default_is_libpqs_prefer() {
        let database = Database::parse("postgres://db/baton").expect("parses");
        assert_eq!(database.mode, TlsMode::Prefer);
        assert_eq!(database.config.get_ssl_mode(), SslMode::Prefer);
        let database = Database::parse("host=db sslmode=disable").expect("parses");
        assert_eq!(database.config.get_ssl_mode(), SslMode::Disable);
    }
}

/// Against a real server that offers TLS with a certificate for `localhost` from a test CA.
#[cfg(test)]
mod with_a_server {
    use super::*;
    use crate::store::postgres::testing;
    use crate::store::postgres::tests::{add_channel, customer};
    use crate::store::{PostgresStore, Store};
    use baton_protocol::EventData;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use std::sync::OnceLock;

    struct Setup {
        server: testing::Server,
        _dir: tempfile::TempDir,
        ca: String,
        other_ca: String,
    }

    fn a_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
    }

    fn setup() -> &'static Setup {
        static SETUP: OnceLock<Setup> = OnceLock::new();
        SETUP.get_or_init(|| {
            let (ca, other) = (a_ca("Baton test CA"), a_ca("Someone else's CA"));
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(vec!["localhost".to_string()])
                .expect("params")
                .signed_by(&key, &ca)
                .expect("server certificate");
            let dir = tempfile::tempdir().expect("tempdir");
            let file = |name: &str, pem: String| {
                let path = dir.path().join(name);
                std::fs::write(&path, pem).expect("write");
                path.display().to_string()
            };
            Setup {
                server: testing::tls_server(&cert.pem(), &key.serialize_pem()),
                ca: file("ca.pem", ca.pem()),
                other_ca: file("other.pem", other.pem()),
                _dir: dir,
            }
        })
    }

    /// A new database's URL, to `host`, with `options` added.
    fn url(host: &str, options: &str) -> String {
        let url = testing::database_on(&setup().server).replace("127.0.0.1", host);
        format!("{url}?{options}")
    }

    /// Whether a connection to `url` is made, and if so whether it is encrypted; else why not.
    fn encrypted(url: &str) -> Result<bool, String> {
        let database = Database::parse(url).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (client, connection) = database.connect().await.map_err(|e| {
                // The handshake's reason is in the error's sources.
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    why = format!("{why}: {cause}");
                    source = cause.source();
                }
                why
            })?;
            tokio::spawn(connection);
            let row = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(row.get::<_, bool>(0))
        })
    }

    #[test]
    fn verify_full_connects_encrypted_to_the_named_host_with_the_teams_ca() {
        let ca = &setup().ca;
        assert_eq!(
            encrypted(&url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={ca}")
            )),
            Ok(true)
        );
        // The hub's whole store, over TLS: written, read back, and the other connections too.
        let store = PostgresStore::open(&url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ))
        .expect("open over TLS");
        let store: &dyn Store = &store;
        store
            .write(|tx| {
                add_channel(tx, "whatsapp")?;
                tx.put(EventData::Contact(customer("u_1", "Zoë")))
                    .map(|_| ())
            })
            .expect("write");
        let read = store.reader().expect("reader");
        assert_eq!(
            read.contact("u_1").expect("read").map(|c| c.name),
            Some("Zoë".into())
        );
    }

    #[test]
    fn verify_full_refuses_a_certificate_for_another_name_or_from_another_ca() {
        let (ca, other) = (&setup().ca, &setup().other_ca);
        let refused = |url: String| match encrypted(&url) {
            Ok(_) => panic!("connected to {url}"),
            Err(why) => why,
        };
        // The certificate names localhost, not 127.0.0.1.
        let why = refused(url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ));
        assert!(why.contains("certificate not valid for name"), "{why}");
        let why = refused(url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        ));
        assert!(why.contains("UnknownIssuer"), "{why}");
        // Without sslrootcert, only the public web's CAs are trusted.
        let why = refused(url("localhost", "sslmode=verify-full"));
        assert!(why.contains("UnknownIssuer"), "{why}");
    }

    #[test]
    fn verify_ca_checks_the_chain_but_not_the_name() {
        let (ca, other) = (&setup().ca, &setup().other_ca);
        assert_eq!(
            encrypted(&url(
                "127.0.0.1",
                &format!("sslmode=verify-ca&sslrootcert={ca}")
            )),
            Ok(true)
        );
        assert!(encrypted(&url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={other}")
        ))
        .is_err());
    }

    #[test]
    fn require_and_prefer_encrypt_and_require_checks_a_given_root_as_libpq_does() {
        assert_eq!(encrypted(&url("127.0.0.1", "sslmode=require")), Ok(true));
        assert_eq!(encrypted(&url("127.0.0.1", "sslmode=prefer")), Ok(true));
        assert_eq!(encrypted(&testing::database_on(&setup().server)), Ok(true));
        let other = &setup().other_ca;
        assert!(encrypted(&url(
            "127.0.0.1",
            &format!("sslmode=require&sslrootcert={other}")
        ))
        .is_err());
        assert_eq!(encrypted(&url("127.0.0.1", "sslmode=disable")), Ok(false));
    }

    #[test]
    fn require_refuses_a_server_without_tls_and_prefer_goes_on_without() {
        let plain = testing::fresh_database();
        let why = encrypted(&format!("{plain}?sslmode=require"))
            .err()
            .unwrap_or_default();
        assert!(why.contains("TLS"), "{why}");
        assert_eq!(encrypted(&format!("{plain}?sslmode=prefer")), Ok(false));
    }
}
