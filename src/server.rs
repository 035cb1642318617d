//! `tributary serve`: opens the store, loads the keys, starts the jobs and the HTTP API, and
//! shuts everything down at a consistent point on SIGINT/SIGTERM.

use std::io::Write;

use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::aws::AwsConnector;
use crate::cdp::Cdp;
use crate::cluster::{Membership, PROCESSOR};
use crate::config::{Settings, TlsFiles};
use crate::metrics::Metrics;
use crate::secrets::{ApiToken, MasterKey, SecretError};
use crate::store::{DynStore, NodeInfo, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}; is another process using it? choose another with --listen")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("cannot use the TLS certificate {cert} with key {key}: {source}; give PEM files (the certificate chain, leaf first, and its private key)")]
    Tls {
        cert: String,
        key: String,
        source: std::io::Error,
    },
}

/// How long open connections may take to finish when the server stops.
const HTTP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    crate::secrets::create_private_dir(&settings.data_dir).map_err(|source| {
        ServeError::DataDir {
            path: settings.data_dir.display().to_string(),
            source,
        }
    })?;
    let master_key = MasterKey::load_or_create(settings.master_key.as_deref(), &settings.data_dir)?;
    let api_token = ApiToken::load_or_create(settings.api_token.as_deref(), &settings.data_dir)?;
    let store = crate::store::open(&settings.store_url).await?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Http)?;
    let metrics = Metrics::new();
    let membership = join_cluster(&settings, &store, addr, &metrics).await?;
    let mut state = AppState::with_membership(
        store,
        master_key,
        api_token,
        AwsConnector::from_environment().await,
        metrics,
        membership.clone(),
    );

    if let Some(secs) = settings.test_clock.offset_secs {
        tracing::warn!(
            secs,
            "test clock: now is moved by TRIBUTARY_TEST_CLOCK_OFFSET_SECS"
        );
        state.cdp.set_clock_offset(chrono::Duration::seconds(secs));
    }
    if let Some(ms) = settings.test_clock.aging_every_ms {
        state
            .cdp
            .set_aging_every(std::time::Duration::from_millis(ms.max(1)));
    }
    state.retention = settings.retention;
    state
        .cdp
        .set_profile_cache_budget(settings.profile_cache_mb.saturating_mul(1 << 20) as usize);
    // The handlers are installed before `Listening on` is printed: a SIGTERM sent as soon as
    // that line shows (scripts, tests) must stop the server cleanly, not kill it.
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(StopSignals::install()?, shutdown.clone()));
    announce(&settings, &state.api_token, addr);

    let resumed = state.jobs.resume_all().await?;
    if resumed > 0 {
        tracing::info!(
            jobs = resumed,
            "resumed running jobs from their checkpoints"
        );
    }

    // The profile processor: events → profiles → audience changes, until shutdown.
    let processor_stop = CancellationToken::new();
    let processor = tokio::spawn(run_processor(
        state.cdp.clone(),
        membership.clone(),
        processor_stop.clone(),
    ));
    // With several nodes: follow job states and catalog changes made through other nodes.
    let follow_stop = CancellationToken::new();
    tokio::spawn(state.cdp.clone().follow_suppressions(follow_stop.clone()));
    // Retention runs where the processor runs (alone: here), so one node prunes.
    let retention = crate::jobs::retention::Retention {
        store: state.store.clone(),
        settings: state.retention,
        metrics: state.metrics.clone(),
    };
    let (cdp, clustered) = (state.cdp.clone(), membership.is_clustered());
    tokio::spawn(retention.run(
        std::sync::Arc::new(move || !clustered || cdp.is_processing()),
        follow_stop.clone(),
    ));
    if membership.is_clustered() {
        tokio::spawn(state.jobs.clone().follow_store(follow_stop.clone()));
        tokio::spawn(state.cdp.clone().follow_cluster(follow_stop.clone()));
    }

    let app = crate::api::router(state.clone());
    match &settings.tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await
            .map_err(ServeError::Http)?,
        Some(tls) => serve_https(listener, app, tls, shutdown.clone()).await?,
    }
    // Jobs stop after the API so no request starts one mid-shutdown.
    follow_stop.cancel();
    state.jobs.stop_all().await;
    processor_stop.cancel();
    let _ = processor.await;
    // Last: the work is stopped, so the leases go back and other nodes take it at once.
    membership.shutdown().await;
    // The data directory whole without its -wal files, for whoever copies or moves it next.
    if let Err(e) = state.store.flush_to_files().await {
        tracing::warn!(error = %e, "cannot copy the write-ahead logs into the store files at stop; they stay beside them and are read at the next start");
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Alone on SQLite; with a PostgreSQL store, one node of those sharing it (see
/// [`crate::cluster`]).
async fn join_cluster(
    settings: &Settings,
    store: &DynStore,
    addr: std::net::SocketAddr,
    metrics: &Metrics,
) -> Result<Membership, ServeError> {
    if !crate::store::is_shared(&settings.store_url) {
        return Ok(Membership::solo());
    }
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let node = NodeInfo {
        id: settings
            .node_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        address: format!("{scheme}://{addr}"),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: chrono::Utc::now(),
        last_heartbeat: chrono::Utc::now(),
    };
    tracing::info!(node = %node.id, lease_timeout = ?settings.lease_timeout, "joining the nodes that share the store");
    Ok(Membership::cluster(store.clone(), node, settings.lease_timeout, metrics.clone()).await?)
}

/// Runs the profile processor whenever this node holds its claim (always, alone), until
/// `stop`; its batches carry the claim's fence.
async fn run_processor(cdp: Cdp, membership: Membership, stop: CancellationToken) {
    loop {
        let claim = tokio::select! {
            _ = stop.cancelled() => return,
            claim = membership.claim_when_possible(PROCESSOR) => claim,
        };
        let run = stop.child_token();
        let processing = cdp.clone().run_fenced(claim.fence().cloned(), run.clone());
        tokio::pin!(processing);
        tokio::select! {
            _ = &mut processing => {}
            _ = claim.token().cancelled() => {
                // Stops between batches; a batch in flight is refused by its fence.
                run.cancel();
                processing.await;
            }
        }
        if stop.is_cancelled() {
            return;
        }
        tracing::info!("the profile processor moved to another node");
    }
}

/// HTTPS with rustls on the bound listener, stopping like the plain server on `shutdown`.
async fn serve_https(
    listener: TcpListener,
    app: axum::Router,
    tls: &TlsFiles,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let config = RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|source| ServeError::Tls {
            cert: tls.cert.display().to_string(),
            key: tls.key.display().to_string(),
            source,
        })?;
    let listener = listener.into_std().map_err(ServeError::Http)?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stopper.graceful_shutdown(Some(HTTP_GRACE));
    });
    axum_server::from_tcp_rustls(listener, config)
        .map_err(ServeError::Http)?
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .map_err(ServeError::Http)
}

/// What an operator needs to see at start. The `Listening on` line is also what scripts and
/// tests wait for.
fn announce(settings: &Settings, token: &ApiToken, addr: std::net::SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Tributary {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "Data directory: {}", settings.data_dir.display());
    let _ = writeln!(out, "Store: {}", without_password(&settings.store_url));
    match (&token.path, token.generated) {
        (Some(path), true) => {
            let _ = writeln!(
                out,
                "API token (shown once; saved to {}): {}",
                path.display(),
                token.value
            );
        }
        (Some(path), false) => {
            let _ = writeln!(out, "API token: in {}", path.display());
        }
        (None, _) => {
            let _ = writeln!(out, "API token: from TRIBUTARY_API_TOKEN");
        }
    }
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let _ = writeln!(out, "Web UI and API: {scheme}://{addr}/");
    let _ = writeln!(out, "Listening on {scheme}://{addr}");
    let _ = out.flush();
    if token_crosses_network_in_clear(settings, addr) {
        tracing::warn!(
            %addr,
            "serving plain HTTP on a non-loopback address: the API token crosses the network in clear; give --tls-cert and --tls-key to serve HTTPS"
        );
    }
}

/// The store URL as it may be shown: a password in it (`postgres://user:PASSWORD@host/db` or
/// `?password=…`) becomes `****`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:****@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=****"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Plain HTTP reachable from other machines: the bearer token would travel unencrypted.
fn token_crosses_network_in_clear(settings: &Settings, addr: std::net::SocketAddr) -> bool {
    settings.tls.is_none() && !addr.ip().is_loopback()
}

/// SIGINT and SIGTERM, caught from the moment this is made (until then the default action
/// ends the process without a clean stop).
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<Self, ServeError> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind| signal(kind).map_err(ServeError::Signals);
        Ok(Self {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }
}

async fn wait_for_signal(mut signals: StopSignals, shutdown: CancellationToken) {
    tokio::select! {
        _ = signals.interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        _ = signals.terminate.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_shown_without_their_password() {
        assert_eq!(
            without_password("postgres://app:s3cret@db:5432/tributary?pool_max=4"),
            "postgres://app:****@db:5432/tributary?pool_max=4"
        );
        assert_eq!(
            without_password("postgresql://db/t?user=app&password=s3cret"),
            "postgresql://db/t?user=app&password=****"
        );
        assert_eq!(
            without_password("postgres://app@db/t"),
            "postgres://app@db/t"
        );
        assert_eq!(
            without_password("sqlite:///var/lib/tributary/tributary.db"),
            "sqlite:///var/lib/tributary/tributary.db"
        );
    }

    #[test]
    fn plain_http_beyond_loopback_is_warned_about() {
        let mut settings = Settings::resolve(&Default::default()).unwrap();
        let open = "0.0.0.0:7878".parse().unwrap();
        assert!(token_crosses_network_in_clear(&settings, open));
        assert!(!token_crosses_network_in_clear(
            &settings,
            "127.0.0.1:7878".parse().unwrap()
        ));
        settings.tls = Some(TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        });
        assert!(!token_crosses_network_in_clear(&settings, open));
    }
}
