//! The `tributary` binary: parse the command line, set up logging, run. Errors become one
//! readable line and a non-zero exit.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tributary::cli::{run_client, Cli, Command};
use tributary::config::LogFormat;

/// mimalloc instead of glibc's allocator: the import path allocates on one thread and frees on
/// another, which glibc's per-thread arenas turn into fragmentation (measured: 15–25% of the
/// CPU and a much higher peak RSS; see bench/README.md). Built without transparent huge pages
/// (`no_thp`): with them, SQLite's page buffers and the decoded pages kept landing on fresh
/// 2 MiB pages that the kernel zeroes on first touch — a quarter of an import's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with its causes), never a backtrace: this is for people.
            eprintln!("Error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: most of ours already put their cause's text in their
/// own message, so anyhow's `{:#}` would print it two or three times over.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = tributary::config::Settings::resolve(&args)?;
            init_logging(settings.log_format);
            tributary::server::serve(settings).await?;
        }
        other => {
            init_logging(LogFormat::Text);
            run_client(other).await?
        }
    }
    Ok(())
}

/// Log lines go to stderr (stdout carries what a command prints), filtered by `RUST_LOG`;
/// colour codes only when stderr is a terminal, so log files stay plain text.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=error,aws_smithy_runtime=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
