//! Who a process is to the NATS server: its credentials (a `.creds` file, an NKey seed file, a
//! token, a user and password from the environment or the URL), TLS, and the role whose
//! permissions it runs with. Secrets never reach a message: [`Secret`] shows as `***`, and URLs
//! are shown with their password replaced ([`redact`]).

use super::super::{BusError, Rejection};
use std::path::PathBuf;
use std::sync::Arc;

/// A secret value (a token or a password): shown as `***` by `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// What a process does on the bus, which decides what it sets up at connect and the inbox
/// prefix of its replies (so that a server's permissions can give each role its own inboxes:
/// `_INBOX_worker.>` for workers, and no role reads another's replies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// Owns the streams, buckets and consumers: creates and reconciles them.
    #[default]
    Coordinator,
    /// Takes steps and answers them: opens only the step, result and dead-letter streams and
    /// the workers, cache and leases buckets (never the books or outputs).
    Worker,
    /// A command-line tool (submit, status, operators' commands): looks streams up, changes no
    /// setting.
    Tool,
}

impl Role {
    /// The prefix of this role's reply subjects.
    pub fn inbox_prefix(self) -> &'static str {
        match self {
            Role::Coordinator => "_INBOX_coordinator",
            Role::Worker => "_INBOX_worker",
            Role::Tool => "_INBOX_tool",
        }
    }

    /// The role's name, as the server config in `deploy/nats/` names its users.
    pub fn name(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Worker => "worker",
            Role::Tool => "tool",
        }
    }
}

/// How to prove who this process is, and how to reach the server over TLS. At most one kind of
/// credentials; a user and password (or a token) in the URL count when none is given here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsAuth {
    /// A `.creds` file (user JWT and NKey seed, as `nsc` writes them).
    pub creds_file: Option<PathBuf>,
    /// A file holding an NKey seed (`SU...`).
    pub nkey_file: Option<PathBuf>,
    /// A token.
    pub token: Option<Secret>,
    /// A user name (with `password`).
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<Secret>,
    /// CA certificate(s) (PEM) the server's certificate is checked against.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for servers that verify clients.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Connect over TLS even with `nats://` URLs.
    pub require_tls: bool,
}

/// The environment variables [`NatsAuth::from_env`] reads.
pub mod env {
    /// Path of a `.creds` file.
    pub const CREDS: &str = "SCRIPTORIUM_NATS_CREDS";
    /// Path of an NKey seed file.
    pub const NKEY: &str = "SCRIPTORIUM_NATS_NKEY";
    /// A token.
    pub const TOKEN: &str = "SCRIPTORIUM_NATS_TOKEN";
    /// A user name.
    pub const USER: &str = "SCRIPTORIUM_NATS_USER";
    /// The user's password.
    pub const PASSWORD: &str = "SCRIPTORIUM_NATS_PASSWORD";
    /// Path of the CA certificate(s).
    pub const CA: &str = "SCRIPTORIUM_NATS_CA";
    /// Path of the client certificate.
    pub const CERT: &str = "SCRIPTORIUM_NATS_CERT";
    /// Path of the client certificate's key.
    pub const KEY: &str = "SCRIPTORIUM_NATS_KEY";
    /// `1` or `true`: require TLS.
    pub const TLS: &str = "SCRIPTORIUM_NATS_TLS";
}

impl NatsAuth {
    /// Reads the `SCRIPTORIUM_NATS_*` variables of [`env`]; empty ones count as unset.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let path = |name: &str| var(name).map(PathBuf::from);
        NatsAuth {
            creds_file: path(env::CREDS),
            nkey_file: path(env::NKEY),
            token: var(env::TOKEN).map(Secret),
            user: var(env::USER),
            password: var(env::PASSWORD).map(Secret),
            ca_file: path(env::CA),
            cert_file: path(env::CERT),
            key_file: path(env::KEY),
            require_tls: var(env::TLS).is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes")),
        }
    }

    /// Whether any credentials are given (the URL's aside).
    pub fn has_credentials(&self) -> bool {
        self.creds_file.is_some()
            || self.nkey_file.is_some()
            || self.token.is_some()
            || self.user.is_some()
            || self.password.is_some()
    }

    /// The token and password, for a log redactor to learn.
    pub fn secrets(&self) -> Vec<&str> {
        [&self.token, &self.password].into_iter().flatten().map(Secret::expose).collect()
    }

    /// Checks what can be checked before any I/O, naming the setting and the rule.
    pub fn validate(&self) -> Result<(), String> {
        let kinds = [
            (self.creds_file.is_some(), "a .creds file"),
            (self.nkey_file.is_some(), "an NKey seed file"),
            (self.token.is_some(), "a token"),
            (self.user.is_some() || self.password.is_some(), "a user and password"),
        ];
        let given: Vec<&str> = kinds.iter().filter(|(on, _)| *on).map(|(_, what)| *what).collect();
        if given.len() > 1 {
            return Err(format!("nats credentials: give one kind only (got {})", given.join(", ")));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(format!(
                "nats credentials: a user needs a password and a password a user ({} and {})",
                env::USER,
                env::PASSWORD
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("nats tls: a client certificate needs its key and a key its certificate \
                 (--nats-cert and --nats-key)"
                .into());
        }
        for (what, path) in [
            ("nats .creds file", &self.creds_file),
            ("nats NKey seed file", &self.nkey_file),
            ("nats CA file", &self.ca_file),
            ("nats client certificate", &self.cert_file),
            ("nats client key", &self.key_file),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                return Err(format!("{what} {}: not a readable file", p.display()));
            }
        }
        Ok(())
    }

    /// `opts` with these credentials (or else `from_url`'s) and TLS settings.
    pub(super) async fn apply(
        &self,
        mut opts: async_nats::ConnectOptions,
        from_url: Option<&UrlCredentials>,
    ) -> Result<async_nats::ConnectOptions, BusError> {
        let refused = |what: String| BusError::rejected("nats credentials", Rejection::Other, what);
        if let Some(path) = &self.creds_file {
            // Only the path is shown: the file's content is a secret.
            opts = opts.credentials_file(path).await.map_err(|e| {
                refused(format!("cannot use the .creds file {}: {}", path.display(), e.kind()))
            })?;
        } else if let Some(path) = &self.nkey_file {
            let seed = std::fs::read_to_string(path).map_err(|e| {
                refused(format!("cannot read the NKey seed file {}: {}", path.display(), e.kind()))
            })?;
            let seed =
                seed.lines().map(str::trim).find(|l| l.starts_with('S')).ok_or_else(|| {
                    refused(format!("the NKey seed file {} holds no seed", path.display()))
                })?;
            opts = opts.nkey(seed.to_string());
        } else if let Some(token) = &self.token {
            opts = opts.token(token.expose().to_string());
        } else if let (Some(user), Some(password)) = (&self.user, &self.password) {
            opts = opts.user_and_password(user.clone(), password.expose().to_string());
        } else if let Some(creds) = from_url {
            opts = match creds {
                UrlCredentials::Token(t) => opts.token(t.expose().to_string()),
                UrlCredentials::UserPassword(u, p) => {
                    opts.user_and_password(u.clone(), p.expose().to_string())
                }
            };
        }
        if let Some(ca) = &self.ca_file {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            opts = opts.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
        }
        if self.require_tls {
            opts = opts.require_tls(true);
        }
        Ok(opts)
    }
}

/// Credentials written in a server URL (`nats://user:pass@host`, `nats://token@host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UrlCredentials {
    /// `token@host`.
    Token(Secret),
    /// `user:password@host`.
    UserPassword(String, Secret),
}

/// The servers of `url` (comma separated) without their credentials, and the credentials of the
/// first that has some (one client connects with one identity). Percent-escapes in the
/// credentials are decoded, as URLs require for `@`, `:` or `/` in a password.
pub(crate) fn split_url(url: &str) -> (Vec<String>, Option<UrlCredentials>) {
    let mut creds = None;
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|one| {
            let (scheme, rest) = match one.find("://") {
                Some(i) => (&one[..i + 3], &one[i + 3..]),
                None => ("", one),
            };
            let Some(at) = rest.rfind('@') else { return one.to_string() };
            let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
            if creds.is_none() && !userinfo.is_empty() {
                creds = Some(match userinfo.split_once(':') {
                    Some((user, pass)) => {
                        UrlCredentials::UserPassword(decode(user), Secret(decode(pass)))
                    }
                    None => UrlCredentials::Token(Secret(decode(userinfo))),
                });
            }
            format!("{scheme}{host}")
        })
        .collect();
    (servers, creds)
}

/// The secrets written in `url` (a password or a token), for a log redactor to learn.
pub fn url_secrets(url: &str) -> Vec<Secret> {
    match split_url(url).1 {
        Some(UrlCredentials::Token(t)) | Some(UrlCredentials::UserPassword(_, t)) => vec![t],
        None => Vec::new(),
    }
}

/// Percent-decoding of URL userinfo; a malformed escape is kept as written.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` without secrets, for errors and logs: `nats://user:pass@host` becomes
/// `nats://user:***@host`, `nats://token@host` becomes `nats://***@host`.
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let start = one.find("://").map_or(0, |i| i + 3);
            match one[start..].rfind('@') {
                Some(at) => {
                    let (userinfo, host) = (&one[start..start + at], &one[start + at..]);
                    let shown = match userinfo.split_once(':') {
                        Some((user, _)) => format!("{user}:***"),
                        None => "***".to_string(),
                    };
                    format!("{}{shown}{host}", &one[..start])
                }
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The permissions the server refused this connection, as it said them
/// (`Permissions Violation for Publish to "..."`): recorded by the connection's event callback,
/// so that setup can name the permission at once rather than wait for a reply that never comes.
#[derive(Clone)]
pub(crate) struct Refusals {
    tx: Arc<tokio::sync::watch::Sender<Option<String>>>,
}

impl Refusals {
    pub(crate) fn new() -> Self {
        Refusals { tx: Arc::new(tokio::sync::watch::channel(None).0) }
    }

    /// Notes one server error; only permission violations count.
    pub(crate) fn record(&self, error: &str) {
        if error.to_ascii_lowercase().contains("permissions violation") {
            tracing::warn!(refusal = %error, "nats refused a permission");
            self.tx.send_replace(Some(error.to_string()));
        }
    }

    /// A receiver that wakes on the next refusal.
    pub(crate) fn watch(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        let mut rx = self.tx.subscribe();
        rx.mark_unchanged();
        rx
    }
}

/// Runs `op` unless the server refuses a permission first: then the refusal, as a
/// [`Rejection::Permission`] naming it, or as transient when the refused request was the
/// creation of a stream (a role that may not create streams waits for the coordinator to).
pub(crate) async fn unless_refused<T>(
    refusals: &Refusals,
    role: Role,
    op: impl std::future::Future<Output = Result<T, BusError>>,
) -> Result<T, BusError> {
    let mut rx = refusals.watch();
    tokio::select! {
        r = op => r,
        Ok(()) = rx.changed() => {
            let refusal = rx.borrow().clone().unwrap_or_default();
            if let Some(stream) = created_stream(&refusal) {
                Err(BusError::Unavailable {
                    op: format!("stream {stream}"),
                    detail: format!(
                        "missing, and the {} role may not create it (the coordinator does)",
                        role.name()
                    ),
                })
            } else {
                Err(BusError::rejected(
                    "nats permissions",
                    Rejection::Permission,
                    format!("the server refused a permission the {} role needs: {refusal}", role.name()),
                ))
            }
        }
    }
}

/// The stream a refused `$JS.API.STREAM.CREATE.<stream>` was for.
fn created_stream(refusal: &str) -> Option<&str> {
    let rest = refusal.split("$JS.API.STREAM.CREATE.").nth(1)?;
    Some(rest.split(['"', '\'', ' ']).next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_taken_out_and_never_shown() {
        let (servers, creds) = split_url("nats://alice:s%40cret@a:4222, tls://b:4223");
        assert_eq!(servers, ["nats://a:4222", "tls://b:4223"]);
        assert_eq!(
            creds,
            Some(UrlCredentials::UserPassword("alice".into(), Secret::new("s@cret")))
        );
        let (servers, creds) = split_url("tok3n@h:1");
        assert_eq!(servers, ["h:1"]);
        assert_eq!(creds, Some(UrlCredentials::Token(Secret::new("tok3n"))));
        assert_eq!(split_url("nats://h:1").1, None);
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact("nats://u:secret@h:4222"), "nats://u:***@h:4222");
        assert_eq!(
            redact("nats://tok@a:1,nats://b:2,u:p@c:3"),
            "nats://***@a:1,nats://b:2,u:***@c:3"
        );
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
        let auth = NatsAuth { token: Some(Secret::new("hunter2")), ..Default::default() };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn one_kind_of_credentials_and_whole_pairs() {
        let both = NatsAuth {
            token: Some(Secret::new("t")),
            user: Some("u".into()),
            password: Some(Secret::new("p")),
            ..Default::default()
        };
        assert!(both.validate().unwrap_err().contains("one kind only"));
        let half = NatsAuth { user: Some("u".into()), ..Default::default() };
        assert!(half.validate().unwrap_err().contains("needs a password"));
        let cert = NatsAuth { cert_file: Some("/nonexistent".into()), ..Default::default() };
        assert!(cert.validate().unwrap_err().contains("needs its key"));
        let missing =
            NatsAuth { creds_file: Some("/nonexistent.creds".into()), ..Default::default() };
        assert!(missing.validate().unwrap_err().contains("/nonexistent.creds"));
        assert!(NatsAuth::default().validate().is_ok());
    }

    #[test]
    fn a_refused_stream_creation_names_the_stream() {
        let refusal =
            r#"Permissions Violation for Publish to "$JS.API.STREAM.CREATE.SCRIPTORIUM_STEPS""#;
        assert_eq!(created_stream(refusal), Some("SCRIPTORIUM_STEPS"));
        assert_eq!(
            created_stream(r#"Permissions Violation for Publish to "scriptorium.submit""#),
            None
        );
    }
}
