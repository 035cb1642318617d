//! Settings, layered: built-in defaults, then an optional TOML file, then `TRIBUTARY_*`
//! environment variables, then command-line flags (clap reads flags and env together, so the
//! file only fills what neither gave).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./tributary-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Seconds a node's leases outlive its last renewal (several nodes on PostgreSQL only): how
/// long the work of a node that died waits before another node takes it over.
pub const DEFAULT_LEASE_TIMEOUT_SECS: u64 = 10;
/// The profile processor's cache budget in MiB: off. Measured on the cdp bench (1M profiles,
/// bench/README.md) it saved no CPU on SQLite, whose page cache already holds the hot profiles'
/// pages, and cost ~140 MiB at 128 MiB (the processor then stayed under 500 MiB in all).
pub const DEFAULT_PROFILE_CACHE_MB: u64 = 0;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check the --config path")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid listen address {value:?}: {source}; use HOST:PORT, e.g. 127.0.0.1:7878")]
    Listen {
        value: String,
        source: std::net::AddrParseError,
    },
    #[error("{setting} {value:?} is not an age: {message}")]
    Age {
        setting: &'static str,
        value: String,
        message: String,
    },
    #[error("--tls-cert and --tls-key go together: give both PEM files (certificate chain and private key), or neither for plain HTTP")]
    TlsPair,
    #[error("{name} must be a whole number, not {value:?}")]
    NotANumber { name: &'static str, value: String },
}

/// How `serve` writes its log lines (to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (no colour codes unless stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message, fields.
    Json,
}

/// The certificate and key `serve` speaks HTTPS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// What the `serve` command was given on the command line or in the environment.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where Tributary keeps its database, API token and master key [default: ./tributary-data]
    #[arg(long, env = "TRIBUTARY_DATA_DIR", hide_env_values = true)]
    pub data_dir: Option<PathBuf>,
    /// Address (HOST:PORT) the HTTP API and web UI listen on [default: 127.0.0.1:7878]
    #[arg(long, env = "TRIBUTARY_LISTEN", hide_env_values = true)]
    pub listen: Option<String>,
    /// Store URL: `sqlite://PATH` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`
    /// [default: sqlite://DATA_DIR/tributary.db]
    #[arg(long, env = "TRIBUTARY_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Optional TOML file with the same settings (data_dir, listen, store, api_token,
    /// master_key, tls_cert, tls_key, log_format, lease_timeout, retention_max_age,
    /// dead_letter_max_age, outbox_max_age, profile_cache_mb).
    #[arg(long, env = "TRIBUTARY_CONFIG", hide_env_values = true)]
    pub config: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(
        long,
        env = "TRIBUTARY_TLS_CERT",
        hide_env_values = true,
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "TRIBUTARY_TLS_KEY",
        hide_env_values = true,
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Log lines as human text or as one JSON object per line (for log collectors)
    /// [default: text]
    #[arg(long, env = "TRIBUTARY_LOG_FORMAT", hide_env_values = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Several nodes on one PostgreSQL store: seconds after which the work of a node that
    /// stopped renewing its leases moves to the others [default: 10].
    #[arg(long, env = "TRIBUTARY_LEASE_TIMEOUT", hide_env_values = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_timeout: Option<u64>,
    /// Delete events older than this (`30d`, `12h`, `90m`, `3600s`) from streams without a
    /// retention of their own (PUT /api/streams/NAME/retention) [default: keep for ever]
    #[arg(long, env = "TRIBUTARY_RETENTION_MAX_AGE", hide_env_values = true)]
    pub retention_max_age: Option<String>,
    /// Delete dead letters older than this, or `off` to keep them [default: 14d]
    #[arg(long, env = "TRIBUTARY_DEAD_LETTER_MAX_AGE", hide_env_values = true)]
    pub dead_letter_max_age: Option<String>,
    /// Delete audience changes every running export job has published once older than this,
    /// or `off` (a paused export job resumed later is told what it missed) [default: 7d]
    #[arg(long, env = "TRIBUTARY_OUTBOX_MAX_AGE", hide_env_values = true)]
    pub outbox_max_age: Option<String>,
    /// Memory for the profile processor's cache of recently changed profiles, in MiB, e.g.
    /// `128`; `0` turns it off (it is off with several nodes) [default: 0]
    #[arg(long, env = "TRIBUTARY_PROFILE_CACHE_MB", hide_env_values = true)]
    pub profile_cache_mb: Option<u64>,
}

/// The optional TOML file. Unknown keys are rejected so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    store: Option<String>,
    api_token: Option<String>,
    master_key: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log_format: Option<LogFormat>,
    lease_timeout: Option<u64>,
    retention_max_age: Option<String>,
    dead_letter_max_age: Option<String>,
    outbox_max_age: Option<String>,
    profile_cache_mb: Option<u64>,
}

/// What is deleted when: `None` keeps for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Events of streams without a retention of their own.
    pub default_max_age: Option<std::time::Duration>,
    pub dead_letter_max_age: Option<std::time::Duration>,
    /// Audience changes every running export job has published.
    pub outbox_max_age: Option<std::time::Duration>,
}

pub const DEFAULT_DEAD_LETTER_MAX_AGE: &str = "14d";
pub const DEFAULT_OUTBOX_MAX_AGE: &str = "7d";

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            default_max_age: None,
            dead_letter_max_age: parse_age(DEFAULT_DEAD_LETTER_MAX_AGE).ok().flatten(),
            outbox_max_age: parse_age(DEFAULT_OUTBOX_MAX_AGE).ok().flatten(),
        }
    }
}

/// An age: a whole number with a unit (`s`, `m`, `h`, `d`), or `off` / `forever` (`None`).
pub fn parse_age(text: &str) -> Result<Option<std::time::Duration>, String> {
    let text = text.trim();
    if matches!(text, "off" | "forever" | "none") {
        return Ok(None);
    }
    let unit = match text.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        _ => return Err("end it with a unit: s, m, h or d (e.g. 30d), or say off".into()),
    };
    let n: u64 = text[..text.len() - 1]
        .parse()
        .map_err(|_| "give a whole number before the unit (e.g. 30d)".to_owned())?;
    if n == 0 {
        return Err("must be more than 0 (say off to keep for ever)".into());
    }
    n.checked_mul(unit)
        .map(|secs| Some(std::time::Duration::from_secs(secs)))
        .ok_or_else(|| "is too large".to_owned())
}

/// An age as [`parse_age`] reads it (`30d`, `12h`, …), in the largest unit it divides.
pub fn format_age(age: std::time::Duration) -> String {
    let secs = age.as_secs();
    [(86_400, 'd'), (3600, 'h'), (60, 'm')]
        .iter()
        .find(|(unit, _)| secs % unit == 0)
        .map_or_else(
            || format!("{secs}s"),
            |(unit, c)| format!("{}{c}", secs / unit),
        )
}

/// Fully resolved settings of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub store_url: String,
    /// `TRIBUTARY_API_TOKEN`; when absent a token is generated into the data dir.
    pub api_token: Option<String>,
    /// `TRIBUTARY_MASTER_KEY` (64 hex characters); when absent a key file in the data dir is used.
    pub master_key: Option<String>,
    /// HTTPS when set; plain HTTP otherwise.
    pub tls: Option<TlsFiles>,
    pub log_format: LogFormat,
    /// How long a node's leases outlive its last renewal (see [`DEFAULT_LEASE_TIMEOUT_SECS`]).
    pub lease_timeout: std::time::Duration,
    /// `TRIBUTARY_NODE_ID`: this node's id in a cluster; a new UUID per process when absent.
    pub node_id: Option<String>,
    /// Test-only clock settings (environment only, not for production).
    pub test_clock: TestClock,
    pub retention: RetentionSettings,
    /// The profile processor's cache budget in MiB (`0`: off).
    pub profile_cache_mb: u64,
}

/// Test-only: moves "now" for audiences, windowed fields and scores, and how often their ageing
/// runs, so integration tests can make time pass. Environment only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestClock {
    /// `TRIBUTARY_TEST_CLOCK_OFFSET_SECS`: seconds added to the system clock (may be negative).
    pub offset_secs: Option<i64>,
    /// `TRIBUTARY_TEST_AGING_EVERY_MS`: how often time-relative audiences are re-evaluated
    /// for their members (default 60 s).
    pub aging_every_ms: Option<u64>,
}

impl Settings {
    pub fn resolve(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileSettings::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let listen_text = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|source| ConfigError::Listen {
            value: listen_text.clone(),
            source,
        })?;
        let store_url = args
            .store
            .clone()
            .or(file.store)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("tributary.db").display()));
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::TlsPair),
        };
        Ok(Settings {
            data_dir,
            listen,
            store_url,
            api_token: non_empty_env("TRIBUTARY_API_TOKEN").or(file.api_token),
            master_key: non_empty_env("TRIBUTARY_MASTER_KEY").or(file.master_key),
            tls,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            lease_timeout: std::time::Duration::from_secs(
                args.lease_timeout
                    .or(file.lease_timeout)
                    .unwrap_or(DEFAULT_LEASE_TIMEOUT_SECS),
            ),
            node_id: non_empty_env("TRIBUTARY_NODE_ID"),
            test_clock: TestClock {
                offset_secs: parsed_env("TRIBUTARY_TEST_CLOCK_OFFSET_SECS")?,
                aging_every_ms: parsed_env("TRIBUTARY_TEST_AGING_EVERY_MS")?,
            },
            retention: RetentionSettings {
                default_max_age: age(
                    "retention_max_age",
                    args.retention_max_age.clone().or(file.retention_max_age),
                    "off",
                )?,
                dead_letter_max_age: age(
                    "dead_letter_max_age",
                    args.dead_letter_max_age
                        .clone()
                        .or(file.dead_letter_max_age),
                    DEFAULT_DEAD_LETTER_MAX_AGE,
                )?,
                outbox_max_age: age(
                    "outbox_max_age",
                    args.outbox_max_age.clone().or(file.outbox_max_age),
                    DEFAULT_OUTBOX_MAX_AGE,
                )?,
            },
            profile_cache_mb: args
                .profile_cache_mb
                .or(file.profile_cache_mb)
                .unwrap_or(DEFAULT_PROFILE_CACHE_MB),
        })
    }
}

fn age(
    setting: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<Option<std::time::Duration>, ConfigError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    parse_age(&value).map_err(|message| ConfigError::Age {
        setting,
        value,
        message,
    })
}

fn load_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// A number from the environment; an error naming the variable when it is not one.
fn parsed_env<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError> {
    match non_empty_env(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::NotANumber { name, value: v }),
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\ndata_dir = \"/from/file\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            data_dir: Some("/from/flag".into()),
            config: Some(file),
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(s.store_url, "sqlite:///from/flag/tributary.db");
        assert_eq!(s.profile_cache_mb, 0, "the profile cache is off by default");

        std::fs::write(dir.path().join("c.toml"), "profile_cache_mb = 64\n").unwrap();
        let from_file = ServeArgs {
            config: Some(dir.path().join("c.toml")),
            ..Default::default()
        };
        assert_eq!(Settings::resolve(&from_file).unwrap().profile_cache_mb, 64);
    }

    #[test]
    fn unknown_keys_and_bad_addresses_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(file),
            ..Default::default()
        };
        assert!(matches!(
            Settings::resolve(&args),
            Err(ConfigError::Parse { .. })
        ));
        let args = ServeArgs {
            listen: Some("nonsense".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&args).unwrap_err().to_string();
        assert!(err.contains("HOST:PORT"), "{err}");
    }

    #[test]
    fn retention_ages_parse_with_units_and_defaults() {
        let s = Settings::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(s.retention, RetentionSettings::default());
        assert_eq!(s.retention.default_max_age, None);
        assert_eq!(format_age(s.retention.dead_letter_max_age.unwrap()), "14d");
        let args = ServeArgs {
            retention_max_age: Some("30d".into()),
            outbox_max_age: Some("off".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.retention.default_max_age.unwrap().as_secs(), 30 * 86_400);
        assert_eq!(s.retention.outbox_max_age, None);
        for bad in ["30", "0d", "xd", "3w"] {
            let args = ServeArgs {
                retention_max_age: Some(bad.into()),
                ..Default::default()
            };
            let err = Settings::resolve(&args).unwrap_err().to_string();
            assert!(err.contains("retention_max_age"), "{err}");
        }
        assert_eq!(format_age(std::time::Duration::from_secs(90)), "90s");
        assert_eq!(format_age(std::time::Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn tls_files_come_in_pairs_and_the_log_format_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "tls_cert = \"/etc/t/cert.pem\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        assert!(matches!(
            Settings::resolve(&args),
            Err(ConfigError::TlsPair)
        ));
        let args = ServeArgs {
            config: Some(file),
            tls_key: Some("/etc/t/key.pem".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                cert: "/etc/t/cert.pem".into(),
                key: "/etc/t/key.pem".into()
            })
        );
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(
            Settings::resolve(&ServeArgs::default()).unwrap().log_format,
            LogFormat::Text
        );
    }
}
