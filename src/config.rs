//! Settings, layered: built-in defaults, then an optional TOML file, then `TRIBUTARY_*`
//! environment variables, then command-line flags (clap reads flags and env together, so the
//! file only fills what neither gave).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./tributary-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

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
}

/// What the `serve` command was given on the command line or in the environment.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where Tributary keeps its database, API token and master key.
    #[arg(long, env = "TRIBUTARY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the HTTP API and web UI listen on.
    #[arg(long, env = "TRIBUTARY_LISTEN")]
    pub listen: Option<String>,
    /// Store URL: `sqlite://PATH` (default: DATA_DIR/tributary.db).
    #[arg(long, env = "TRIBUTARY_STORE")]
    pub store: Option<String>,
    /// Optional TOML file with the same settings (data_dir, listen, store, api_token, master_key).
    #[arg(long, env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
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
        Ok(Settings {
            data_dir,
            listen,
            store_url,
            api_token: non_empty_env("TRIBUTARY_API_TOKEN").or(file.api_token),
            master_key: non_empty_env("TRIBUTARY_MASTER_KEY").or(file.master_key),
        })
    }
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
}
