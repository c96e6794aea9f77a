//! `serve` settings: command-line flags, then environment variables, then an optional TOML
//! file (`--config`), then built-in defaults — the first that sets a value wins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the server keeps its state and how it signs: shared by `serve` and the commands that
/// work on the server's database directly (`offline activate`). Every flag can also come from
/// the environment and from the TOML file named by `--config` (keys spelled like the flags,
/// with `_`).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct StoreArgs {
    /// TOML file with any of these settings (e.g. `listen = "0.0.0.0:8080"`).
    #[arg(long, env = "LICENSING_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the database and the signing key [default: ./data] (`serve` creates it,
    /// mode 0700; the other commands refuse a missing one).
    #[arg(long, env = "LICENSING_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite:PATH` or `postgres://user:password@host:port/database`. Default:
    /// the file `licensing.db` in the data directory.
    #[arg(long, env = "LICENSING_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PKCS#8 PEM signing key to use (must exist). Default: `signing-key.pem` in the data
    /// directory, generated on first start.
    #[arg(long, env = "LICENSING_SIGNING_KEY_FILE")]
    pub signing_key: Option<PathBuf>,
    /// The `iss` of every token the server signs [default: licensing-server].
    #[arg(long, env = "LICENSING_ISSUER")]
    pub issuer: Option<String>,
    /// The key-encryption key of the signing keys at rest.
    #[command(flatten)]
    pub key_encryption: super::key_wrap::KeyEncryptionArgs,
}

/// Where an existing server keeps its database, for the commands that work on it directly and
/// never create it (`audit verify`, `admin-token`): the database flags of [`StoreArgs`] alone.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct DatabaseArgs {
    /// TOML file with the settings of `serve` (only `data_dir` and `database_url` are used).
    #[arg(long, env = "LICENSING_CONFIG")]
    pub config: Option<PathBuf>,
    /// The server's data directory [default: ./data]; it must exist (never created).
    #[arg(long, env = "LICENSING_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The server's database URL: `sqlite:PATH` or `postgres://...`. Default: the file
    /// `licensing.db` in the data directory. It must exist and hold the server's schema.
    #[arg(long, env = "LICENSING_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The key-encryption key of the signing keys at rest.
    #[command(flatten)]
    pub key_encryption: super::key_wrap::KeyEncryptionArgs,
}

impl DatabaseArgs {
    /// The settings these flags, the environment and the config file resolve to.
    pub(crate) fn settings(&self) -> Result<Settings, String> {
        Settings::resolve(ServeArgs {
            store: StoreArgs {
                config: self.config.clone(),
                data_dir: self.data_dir.clone(),
                database_url: self.database_url.clone(),
                key_encryption: self.key_encryption.clone(),
                ..StoreArgs::default()
            },
            ..ServeArgs::default()
        })
    }
}

/// `licensing-server serve` options: the store's, plus the listener's.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port (the bound
    /// address is printed).
    #[arg(long, env = "LICENSING_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The data directory, database, signing key and config file.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Seconds between re-reads of the signing keys from the database [default: 30] (a
    /// rotation made on another replica takes effect here within this period).
    #[arg(long, env = "LICENSING_KEY_RELOAD_SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub key_reload_secs: Option<u64>,
    /// Seconds a staged signing key must have been published (in the JWKS) before it may be
    /// promoted to sign [default: 604800, 7 days], so the vendor can ship it in an app release
    /// first. Also read by `keys promote`.
    #[arg(long, env = "LICENSING_KEY_MIN_PUBLISH_SECS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_KEY_MIN_PUBLISH_SECS))]
    pub key_min_publish_secs: Option<u64>,
    /// Client API requests (activate, validate, ...) allowed per license key per minute on
    /// this replica [default: 120]; beyond it the answer is 429 with `Retry-After`.
    #[arg(long, env = "LICENSING_CLIENT_RATE_PER_MINUTE",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub client_rate_per_minute: Option<u32>,
    /// Seconds between two runs of the reaper [default: 15] (releases lapsed seat leases,
    /// purges denials past their organization's retention, 60 days by default; hourly, prunes
    /// audit entries and lease history by the retention).
    #[arg(long, env = "LICENSING_REAP_INTERVAL",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub reap_interval: Option<u64>,
    /// Seconds between two runs of the inactivity reclamation [default: 3600; 0: never on
    /// this replica] (reclaims assigned seats idle past their license's threshold; safe on
    /// several replicas at once).
    #[arg(long, env = "LICENSING_RECLAIM_INTERVAL",
          value_parser = clap::value_parser!(u64).range(0..=MAX_RECLAIM_INTERVAL))]
    pub reclaim_interval: Option<u64>,
    /// Seconds between two signed checkpoints of the audit chains [default: 3600; 0: none on
    /// this replica] (the server's and each organization's with new entries, signed with the
    /// current signing key; `GET /v1/audit/checkpoints`).
    #[arg(long, env = "LICENSING_AUDIT_CHECKPOINT_INTERVAL",
          value_parser = clap::value_parser!(u64).range(0..=super::checkpoints::MAX_CHECKPOINT_INTERVAL))]
    pub audit_checkpoint_interval: Option<u64>,
    /// Send every new audit entry and client event to this syslog collector as RFC 5424 with
    /// the CEF line as its text: `udp://HOST:PORT` or `tcp://HOST:PORT` (RFC 6587 octet
    /// counting) [default: none]. Read from the database by a task of its own: requests never
    /// wait for it. Enable it on one replica.
    #[arg(long, env = "LICENSING_AUDIT_SYSLOG", value_name = "URL")]
    pub audit_syslog: Option<String>,
    /// Microseconds the seat writer may wait for a batch of seat writes (check-outs,
    /// check-ins, SQLite heartbeats) to fill before it commits [default: 1000; 0: never wait]
    /// (group commit, like PostgreSQL's `commit_delay`). It waits only while fewer writes are
    /// queued than its last batch carried: under load, for the clients it just answered.
    #[arg(long, env = "LICENSING_SEAT_BATCH_WAIT_US",
          value_parser = clap::value_parser!(u64).range(0..=MAX_SEAT_BATCH_WAIT_US))]
    pub seat_batch_wait_us: Option<u64>,
    /// Seconds a client has to send a complete request head, from the connection's start or
    /// from the first byte of a later request [default: 10]; then the connection is closed.
    #[arg(long, env = "LICENSING_HEADER_READ_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..=MAX_HEADER_READ_TIMEOUT))]
    pub header_read_timeout: Option<u64>,
    /// Seconds a keep-alive connection may stay idle between requests [default: 60]; then it
    /// is closed.
    #[arg(long, env = "LICENSING_IDLE_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..=MAX_IDLE_TIMEOUT))]
    pub idle_timeout: Option<u64>,
    /// Most client connections open at once [default: 10000]; more wait in the listen backlog
    /// until one closes.
    #[arg(long, env = "LICENSING_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECTIONS)))]
    pub max_connections: Option<u32>,
    /// PEM certificate chain (leaf first) to serve HTTPS with; needs `--tls-key`. Re-read when
    /// the file changes (new connections get the new certificate).
    #[arg(long, env = "LICENSING_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1); re-read with it.
    #[arg(long, env = "LICENSING_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Clients reach this server over HTTPS through a TLS-terminating reverse proxy: the
    /// console's cookies are marked `Secure` although this listener speaks plain HTTP.
    #[arg(long, env = "LICENSING_BEHIND_TLS_PROXY")]
    pub behind_tls_proxy: bool,
}

/// Default minimum publication time of a staged key (7 days).
pub(crate) const DEFAULT_KEY_MIN_PUBLISH_SECS: i64 = 7 * 86_400;

/// Longest `key_min_publish_secs` accepted (10 years).
const MAX_KEY_MIN_PUBLISH_SECS: u64 = 10 * 365 * 86_400;

/// Longest `header_read_timeout` accepted, seconds.
const MAX_HEADER_READ_TIMEOUT: u64 = 300;
/// Longest `idle_timeout` accepted, seconds.
const MAX_IDLE_TIMEOUT: u64 = 3600;
/// Largest `max_connections` accepted.
const MAX_CONNECTIONS: u32 = 1_000_000;

/// Default `audit_checkpoint_interval` (an hour).
const DEFAULT_CHECKPOINT_INTERVAL: u64 = 3600;

/// Longest `reclaim_interval` accepted (a day).
const MAX_RECLAIM_INTERVAL: u64 = 86_400;

/// Longest `seat_batch_wait_us` accepted (10 ms).
const MAX_SEAT_BATCH_WAIT_US: u64 = 10_000;

/// The TOML file: the same settings, every one optional, nothing else.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    signing_key: Option<PathBuf>,
    key_reload_secs: Option<u64>,
    key_min_publish_secs: Option<u64>,
    client_rate_per_minute: Option<u32>,
    reap_interval: Option<u64>,
    reclaim_interval: Option<u64>,
    audit_checkpoint_interval: Option<u64>,
    audit_syslog: Option<String>,
    seat_batch_wait_us: Option<u64>,
    issuer: Option<String>,
    header_read_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    max_connections: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    behind_tls_proxy: Option<bool>,
    key_encryption_key_file: Option<PathBuf>,
    key_unwrap_command: Option<String>,
}

/// The resolved settings of a `serve` run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub signing_key: Option<PathBuf>,
    pub key_reload_secs: u64,
    pub key_min_publish_secs: u64,
    pub client_rate_per_minute: u32,
    pub reap_interval: u64,
    /// Seconds between two reclamation runs; 0: none on this replica.
    pub reclaim_interval: u64,
    /// Seconds between two audit checkpoint runs; 0: none on this replica.
    pub audit_checkpoint_interval: u64,
    /// Where new audit entries are sent as syslog messages, if anywhere.
    pub audit_syslog: Option<super::syslog::SyslogTarget>,
    pub seat_batch_wait: std::time::Duration,
    pub issuer: String,
    pub limits: super::conn::Limits,
    /// `--tls-cert` and `--tls-key`, both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub behind_tls_proxy: bool,
    /// Where the key-encryption key of the signing keys comes from.
    pub key_encryption: super::key_wrap::KeyEncryptionArgs,
}

/// Largest config file read (it is a handful of lines).
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

impl Settings {
    /// Flags and environment (already merged by clap) over the file over the defaults.
    pub fn resolve(args: ServeArgs) -> Result<Settings, String> {
        let ServeArgs {
            listen,
            store,
            key_reload_secs,
            key_min_publish_secs,
            client_rate_per_minute,
            reap_interval,
            reclaim_interval,
            audit_checkpoint_interval,
            audit_syslog,
            seat_batch_wait_us,
            header_read_timeout,
            idle_timeout,
            max_connections,
            tls_cert,
            tls_key,
            behind_tls_proxy,
        } = args;
        let file = match &store.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let key_reload_secs = key_reload_secs.or(file.key_reload_secs).unwrap_or(30);
        if !(1..=3600).contains(&key_reload_secs) {
            return Err("key_reload_secs must be 1 to 3600".into());
        }
        let key_min_publish_secs = key_min_publish_secs
            .or(file.key_min_publish_secs)
            .unwrap_or(DEFAULT_KEY_MIN_PUBLISH_SECS.unsigned_abs());
        if key_min_publish_secs > MAX_KEY_MIN_PUBLISH_SECS {
            return Err("key_min_publish_secs must be 0 to 315360000 (10 years)".into());
        }
        let client_rate_per_minute = client_rate_per_minute
            .or(file.client_rate_per_minute)
            .unwrap_or(120);
        if client_rate_per_minute == 0 {
            return Err("client_rate_per_minute must be at least 1".into());
        }
        let reap_interval = reap_interval.or(file.reap_interval).unwrap_or(15);
        if !(1..=3600).contains(&reap_interval) {
            return Err("reap_interval must be 1 to 3600".into());
        }
        let reclaim_interval = reclaim_interval
            .or(file.reclaim_interval)
            .unwrap_or(super::reclamation::DEFAULT_RECLAIM_INTERVAL);
        if reclaim_interval > MAX_RECLAIM_INTERVAL {
            return Err("reclaim_interval must be 0 to 86400".into());
        }
        let audit_checkpoint_interval = audit_checkpoint_interval
            .or(file.audit_checkpoint_interval)
            .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL);
        if audit_checkpoint_interval > super::checkpoints::MAX_CHECKPOINT_INTERVAL {
            return Err("audit_checkpoint_interval must be 0 to 604800".into());
        }
        let audit_syslog = audit_syslog
            .or(file.audit_syslog)
            .map(|url| super::syslog::SyslogTarget::parse(&url))
            .transpose()?;
        let seat_batch_wait_us = seat_batch_wait_us
            .or(file.seat_batch_wait_us)
            .unwrap_or(1000);
        if seat_batch_wait_us > MAX_SEAT_BATCH_WAIT_US {
            return Err("seat_batch_wait_us must be 0 to 10000".into());
        }
        let header_read_timeout = header_read_timeout
            .or(file.header_read_timeout)
            .unwrap_or(10);
        if !(1..=MAX_HEADER_READ_TIMEOUT).contains(&header_read_timeout) {
            return Err("header_read_timeout must be 1 to 300".into());
        }
        let idle_timeout = idle_timeout.or(file.idle_timeout).unwrap_or(60);
        if !(1..=MAX_IDLE_TIMEOUT).contains(&idle_timeout) {
            return Err("idle_timeout must be 1 to 3600".into());
        }
        let max_connections = max_connections.or(file.max_connections).unwrap_or(10_000);
        if !(1..=MAX_CONNECTIONS).contains(&max_connections) {
            return Err("max_connections must be 1 to 1000000".into());
        }
        let tls = match (tls_cert.or(file.tls_cert), tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => return Err("tls_cert needs tls_key".into()),
            (None, Some(_)) => return Err("tls_key needs tls_cert".into()),
        };
        let key_encryption = super::key_wrap::KeyEncryptionArgs {
            key_encryption_key_file: store
                .key_encryption
                .key_encryption_key_file
                .or(file.key_encryption_key_file),
            key_unwrap_command: store
                .key_encryption
                .key_unwrap_command
                .or(file.key_unwrap_command),
        };
        Ok(Settings {
            key_encryption,
            tls,
            behind_tls_proxy: behind_tls_proxy || file.behind_tls_proxy.unwrap_or(false),
            limits: super::conn::Limits {
                header_read_timeout: std::time::Duration::from_secs(header_read_timeout),
                idle_timeout: std::time::Duration::from_secs(idle_timeout),
                max_connections,
            },
            reap_interval,
            reclaim_interval,
            audit_checkpoint_interval,
            audit_syslog,
            seat_batch_wait: std::time::Duration::from_micros(seat_batch_wait_us),
            listen: listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: store
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            database_url: store.database_url.or(file.database_url),
            signing_key: store.signing_key.or(file.signing_key),
            key_reload_secs,
            key_min_publish_secs,
            client_rate_per_minute,
            issuer: store
                .issuer
                .or(file.issuer)
                .unwrap_or_else(|| "licensing-server".into()),
        })
    }
}

fn read_file(path: &Path) -> Result<FileSettings, String> {
    use crate::cli_input::{Source, read_capped_text};
    let text = read_capped_text("--config", Source::File(path), MAX_CONFIG_BYTES)?;
    toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("licensing.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let (_dir, path) =
            write("listen = \"127.0.0.1:9999\"\nissuer = \"from-file\"\nkey_reload_secs = 5\n");
        let args = ServeArgs {
            store: StoreArgs {
                config: Some(path),
                issuer: Some("from-flag".into()),
                ..StoreArgs::default()
            },
            ..ServeArgs::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.issuer, "from-flag");
        assert_eq!(s.key_reload_secs, 5);
        assert_eq!(s.client_rate_per_minute, 120);
        assert_eq!(s.key_min_publish_secs, 7 * 86_400);
        assert_eq!(s.seat_batch_wait, std::time::Duration::from_millis(1));
        assert_eq!(s.reclaim_interval, 3600);
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.limits.header_read_timeout.as_secs(), 10);
        assert_eq!(s.limits.idle_timeout.as_secs(), 60);
        assert_eq!(s.limits.max_connections, 10_000);
    }

    #[test]
    fn connection_limits_come_from_flags_and_the_file() {
        let (_dir, path) =
            write("header_read_timeout = 3\nidle_timeout = 30\nmax_connections = 50\n");
        let args = ServeArgs {
            store: StoreArgs {
                config: Some(path),
                ..StoreArgs::default()
            },
            idle_timeout: Some(5),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.limits.header_read_timeout.as_secs(), 3);
        assert_eq!(s.limits.idle_timeout.as_secs(), 5);
        assert_eq!(s.limits.max_connections, 50);
    }

    #[test]
    fn tls_comes_from_flags_and_the_file_and_needs_both_files() {
        let (_dir, path) = write(
            "tls_cert = \"/etc/tls/cert.pem\"\ntls_key = \"/etc/tls/key.pem\"\nbehind_tls_proxy = true\n",
        );
        let args = ServeArgs {
            store: StoreArgs {
                config: Some(path),
                ..StoreArgs::default()
            },
            tls_key: Some(PathBuf::from("/other/key.pem")),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(
            s.tls,
            Some((
                PathBuf::from("/etc/tls/cert.pem"),
                PathBuf::from("/other/key.pem")
            ))
        );
        assert!(s.behind_tls_proxy);
        let s = Settings::resolve(ServeArgs::default()).unwrap();
        assert_eq!(s.tls, None);
        assert!(!s.behind_tls_proxy);
        let (_dir, path) = write("tls_cert = \"/etc/tls/cert.pem\"\n");
        let args = ServeArgs {
            store: StoreArgs {
                config: Some(path),
                ..StoreArgs::default()
            },
            ..ServeArgs::default()
        };
        let e = Settings::resolve(args).unwrap_err();
        assert!(e.contains("tls_key"), "{e}");
    }

    #[test]
    fn a_bad_file_is_a_clear_error() {
        for (text, needle) in [
            ("listen = 5\n", "listen"),
            ("lisen = \"127.0.0.1:1\"\n", "lisen"),
            ("key_reload_secs = 0\n", "key_reload_secs"),
            (
                "key_min_publish_secs = 999999999999\n",
                "key_min_publish_secs",
            ),
            ("seat_batch_wait_us = 10001\n", "seat_batch_wait_us"),
            ("header_read_timeout = 0\n", "header_read_timeout"),
            ("idle_timeout = 3601\n", "idle_timeout"),
            ("reclaim_interval = 86401\n", "reclaim_interval"),
            ("max_connections = 0\n", "max_connections"),
            ("[[[", "config"),
        ] {
            let (_dir, path) = write(text);
            let args = ServeArgs {
                store: StoreArgs {
                    config: Some(path),
                    ..StoreArgs::default()
                },
                ..ServeArgs::default()
            };
            let e = Settings::resolve(args).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let args = ServeArgs {
            store: StoreArgs {
                config: Some("/nonexistent/licensing.toml".into()),
                ..StoreArgs::default()
            },
            ..ServeArgs::default()
        };
        assert!(
            Settings::resolve(args)
                .unwrap_err()
                .contains("/nonexistent")
        );
    }
}
