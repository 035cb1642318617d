//! The command line: `serve` runs the server; every other command talks to a running server
//! over its HTTP API, so the CLI can do nothing the API cannot.

pub mod auth;
pub mod cdp;
pub mod client;
pub mod events;
pub mod jobs;

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;
use client::{Client, ServerArgs};

#[derive(Debug, Parser)]
#[command(
    name = "tributary",
    version,
    about = "Customer data platform connector for Amazon Kinesis Data Streams"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API, web UI and jobs.
    Serve(ServeArgs),
    /// Manage AWS authorizations.
    Auth {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: auth::AuthCommand,
    },
    /// List the Kinesis streams an authorization can see (kinesis:ListStreams).
    Streams {
        #[command(flatten)]
        server: ServerArgs,
        /// Authorization id.
        #[arg(long)]
        auth: String,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        #[arg(long)]
        role_arn: Option<String>,
    },
    /// Manage import and export jobs.
    Job {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: jobs::JobCommand,
    },
    /// Show a Tributary event stream's events, newest first.
    Events {
        #[command(flatten)]
        server: ServerArgs,
        /// The event stream.
        stream: String,
        /// At most this many events (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only events older than this seq (the cursor printed at the end of a page).
        #[arg(long)]
        before: Option<i64>,
    },
    /// Send events (a JSON object, an array of objects, or NDJSON) to an event stream.
    Collect {
        #[command(flatten)]
        server: ServerArgs,
        /// The event stream.
        stream: String,
        /// The file to send; `-` or nothing reads standard input.
        file: Option<std::path::PathBuf>,
    },
    /// Set and show event stream mappings (events → profile fields).
    Mapping {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: cdp::MappingCommand,
    },
    /// Manage audiences (profiles matching a filter) and read their entry/exit changes.
    Audience {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: cdp::AudienceCommand,
    },
    /// Look up profiles; rebuild them from the stored events.
    Profile {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: cdp::ProfileCommand,
    },
}

/// Runs a client command; `serve` is handled by the binary.
pub async fn run_client(command: Command) -> Result<(), client::ClientError> {
    match command {
        Command::Serve(_) => unreachable!("serve is not a client command"),
        Command::Mapping { server, command } => cdp::mapping(&Client::new(&server)?, command).await,
        Command::Audience { server, command } => {
            cdp::audience(&Client::new(&server)?, command).await
        }
        Command::Profile { server, command } => cdp::profile(&Client::new(&server)?, command).await,
        Command::Auth { server, command } => auth::run(&Client::new(&server)?, command).await,
        Command::Streams {
            server,
            auth,
            region,
            role_arn,
        } => auth::streams(&Client::new(&server)?, &auth, &region, role_arn.as_deref()).await,
        Command::Job { server, command } => jobs::run(&Client::new(&server)?, command).await,
        Command::Events {
            server,
            stream,
            limit,
            before,
        } => events::events(&Client::new(&server)?, &stream, limit, before).await,
        Command::Collect {
            server,
            stream,
            file,
        } => events::collect(&Client::new(&server)?, &stream, file.as_deref()).await,
    }
}
