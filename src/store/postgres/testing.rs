//! A new database per test on the PostgreSQL server named by `TRIBUTARY_TEST_POSTGRES`, dropped
//! when the test ends. Tests never skip: without a server they fail and say how to point them
//! at one.

use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres::NoTls;

use super::PostgresStore;
use crate::store::DynStore;

/// The variable naming the server (and a database on it to connect to while creating others).
pub const BASE_URL_VAR: &str = "TRIBUTARY_TEST_POSTGRES";
const DEFAULT_BASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Connections per test store: tests run in parallel against a server that allows 100 in all,
/// and the ordering sections need several writers on connections of their own.
pub const TEST_POOL_MAX: usize = 4;

/// The server's URL for tests.
pub fn base_url() -> String {
    std::env::var(BASE_URL_VAR).unwrap_or_else(|_| DEFAULT_BASE_URL.to_owned())
}

/// An empty database made for one test; dropped (with its connections) when this is.
pub struct TestDatabase {
    base: tokio_postgres::Config,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let url = base_url();
        let base = tokio_postgres::Config::from_str(&url)
            .unwrap_or_else(|e| panic!("{BASE_URL_VAR}={url:?} is not a PostgreSQL URL: {e}"));
        let name = format!("tributary_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&base).await.unwrap_or_else(|e| {
            let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(": {c}"));
            panic!(
                "the PostgreSQL store tests need a server: cannot connect to {url} ({e}{cause}). \
                 Start PostgreSQL, or set {BASE_URL_VAR}=postgres://USER@HOST:PORT/DB to one \
                 where USER may create databases"
            )
        });
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name} on {url}: {e}"));
        Self { base, name }
    }

    /// The driver's configuration for this database.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = self.base.clone();
        config.dbname(&self.name);
        config
    }

    /// A URL for this database, as `store::open` takes it (the base URL with its path swapped).
    pub fn url(&self) -> String {
        let url = base_url();
        let base = url.split_once('?').map_or(url.as_str(), |(b, _)| b);
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        format!("{server}/{}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let admin = connect(&base).await.map_err(|e| e.to_string())?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) | Err(e) = dropped.map_err(|_| "the thread panicked".to_string()) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// A client whose connection runs on the current runtime.
async fn connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped; an error then has nobody left to tell.
        let _ = connection.await;
    });
    Ok(client)
}

/// A new, empty PostgreSQL store in a database of its own, for the conformance suite.
pub async fn fresh_postgres() -> (TestDatabase, DynStore) {
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(database.config(), TEST_POOL_MAX)
        .await
        .unwrap_or_else(|e| panic!("opening the test database failed: {e}"));
    (database, Arc::new(store))
}
