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
    about = "Customer data platform connector for Amazon Kinesis Data Streams",
    after_help = "\
Examples:
  tributary serve
  tributary job list --server http://tributary.internal:7878"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API, web UI and jobs.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
    /// Manage AWS authorizations.
    #[command(after_help = "\
Examples:
  tributary auth list
  tributary auth add --label prod --access-key-id AKIAIOSFODNN7EXAMPLE --secret-access-key -")]
    Auth {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: auth::AuthCommand,
    },
    /// List the Kinesis streams an authorization can see (kinesis:ListStreams).
    #[command(after_help = "\
Example:
  tributary streams --auth 0193a5e0-1b2c-7d3e-8f4a-5b6c7d8e9f01 --region eu-west-1")]
    Streams {
        #[command(flatten)]
        server: ServerArgs,
        /// Authorization id (see `tributary auth list`).
        #[arg(long)]
        auth: String,
        /// The AWS region to list the streams of.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// A role to assume (with the authorization as source) to list the streams.
        #[arg(long)]
        role_arn: Option<String>,
    },
    /// Manage import and export jobs.
    #[command(after_help = "\
Examples:
  tributary job list
  tributary job show 0193a5f2-7c41-7d2e-9b1a-5e6f7a8b9c0d")]
    Job {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: jobs::JobCommand,
    },
    /// Show a Tributary event stream's events, newest first.
    #[command(after_help = "\
Examples:
  tributary events web_events --limit 20
  tributary events web_events --before 4812")]
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
    #[command(after_help = "\
Examples:
  tributary collect web_events events.ndjson
  echo '{\"email\": \"ada@example.com\", \"page\": \"/pricing\"}' | tributary collect web_events")]
    Collect {
        #[command(flatten)]
        server: ServerArgs,
        /// The event stream.
        stream: String,
        /// The file to send; `-` or nothing reads standard input.
        file: Option<std::path::PathBuf>,
    },
    /// Set and show event stream mappings (events → profile fields).
    #[command(after_help = "\
Examples:
  tributary mapping set web_events web_events.map
  tributary mapping schema")]
    Mapping {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: cdp::MappingCommand,
    },
    /// Manage audiences (profiles matching a filter) and read their entry/exit changes.
    #[command(after_help = "\
Examples:
  tributary audience create big_spenders --filter 'total_spent >= 300'
  tributary audience list")]
    Audience {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: cdp::AudienceCommand,
    },
    /// Look up profiles; rebuild them from the stored events.
    #[command(after_help = "\
Examples:
  tributary profile get --field email --value user7@example.com
  tributary profile rebuild")]
    Profile {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: cdp::ProfileCommand,
    },
    /// Copy the running server's store into a directory on its machine (SQLite stores; back up
    /// PostgreSQL with pg_dump). The master key is not copied: keep it apart.
    #[command(after_help = "\
Example:
  tributary backup /var/backups/tributary/2026-12-06")]
    Backup {
        #[command(flatten)]
        server: ServerArgs,
        /// The directory, on the server's machine; made if missing, never overwritten.
        dest_dir: String,
    },
}

/// The secrets `serve` takes from the environment only (or the --config file), so that they
/// stay out of `ps` and shell history: clap does not read them, hence no flag lists them.
const SERVE_AFTER_HELP: &str = "\
Secrets, read from the environment (or as api_token and master_key in the --config file):
  TRIBUTARY_API_TOKEN   The bearer token clients must send [default: generated into DATA_DIR/api-token]
  TRIBUTARY_MASTER_KEY  64 hex characters that encrypt stored AWS secrets [default: generated into
                        DATA_DIR/master.key]
Several nodes on one PostgreSQL store share both, and each has its own:
  TRIBUTARY_NODE_ID     This node's id among them [default: a new UUID at every start]

Examples:
  tributary serve
  tributary serve --store postgres://tributary@db.internal/tributary --listen 0.0.0.0:7878 \\
      --tls-cert /etc/tributary/cert.pem --tls-key /etc/tributary/key.pem
  TRIBUTARY_MASTER_KEY=$(cat /run/secrets/master-key) tributary serve --data-dir /var/lib/tributary \\
      --listen 0.0.0.0:7878 --log-format json";

/// Runs a client command; `serve` is handled by the binary.
pub async fn run_client(command: Command) -> Result<(), client::ClientError> {
    match command {
        Command::Serve(_) => unreachable!("serve is not a client command"),
        Command::Mapping { server, command } => cdp::mapping(&Client::new(&server)?, command).await,
        Command::Audience { server, command } => {
            cdp::audience(&Client::new(&server)?, command).await
        }
        Command::Profile { server, command } => cdp::profile(&Client::new(&server)?, command).await,
        Command::Backup { server, dest_dir } => cdp::backup(&Client::new(&server)?, dest_dir).await,
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

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;
    use crate::config::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};

    /// `cmd` and every command below it, each with its path (`tributary job show`); clap's
    /// generated `help` subcommands are left out.
    fn commands(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|sub| sub.get_name() != "help") {
            commands(sub, format!("{path} {}", sub.get_name()), out);
        }
        out.push((path, cmd.clone()));
    }

    /// The example command lines of a help text: the indented lines under `Example:` or
    /// `Examples:`, a trailing ` \` continuing on the next line.
    fn examples(after_help: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        let lines = after_help
            .lines()
            .skip_while(|l| !l.starts_with("Example"))
            .skip(1)
            .take_while(|l| l.starts_with("  "));
        for line in lines {
            match line.trim().strip_suffix('\\') {
                Some(head) => current.push_str(head),
                None => out.push(std::mem::take(&mut current) + line.trim()),
            }
        }
        out
    }

    /// Splits a line into words the way a shell does, for what the examples use: blanks and
    /// '…' quoting.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    word.get_or_insert_with(String::new);
                }
                c if c.is_whitespace() && !quoted => words.extend(word.take()),
                c => word.get_or_insert_with(String::new).push(c),
            }
        }
        words.extend(word);
        words
    }

    /// The `tributary …` invocation in an example line, without what a shell adds around it
    /// (`VAR=… ` before, `| …` or redirections after).
    fn invocation(example: &str) -> Vec<String> {
        shell_words(example)
            .into_iter()
            .skip_while(|w| w != "tributary")
            .take_while(|w| !matches!(w.as_str(), "|" | "<" | ">"))
            .collect()
    }

    #[test]
    fn every_command_and_argument_is_explained_and_every_command_has_a_working_example() {
        let mut cli = Cli::command();
        cli.build();
        let mut all = Vec::new();
        commands(&cli, "tributary".into(), &mut all);
        let mut problems = Vec::new();
        for (path, cmd) in &all {
            let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
            if about.trim().is_empty() {
                problems.push(format!("`{path}` has no about"));
            }
            let after_help = cmd.get_after_help().map(|h| h.to_string());
            let examples = examples(&after_help.unwrap_or_default());
            if examples.is_empty() {
                problems.push(format!("`{path}` has no example in its after-help"));
            }
            for example in examples {
                let words = invocation(&example);
                if !words.join(" ").starts_with(path.as_str()) {
                    problems.push(format!("`{path}`'s example runs something else: {example}"));
                } else if let Err(e) = Cli::try_parse_from(&words) {
                    problems.push(format!("`{path}`'s example `{example}` fails: {e}"));
                }
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if help.trim().is_empty() {
                    problems.push(format!("`{path}`: `{id}` has no help"));
                }
                // The value of an environment variable may be a secret (a store URL with a
                // password): help names the variable, never what it holds.
                if arg.get_env().is_some() && !arg.is_hide_env_values_set() {
                    problems.push(format!("`{path}`: `{id}` would print its env value"));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        // The walk saw the whole tree, leaves and groups.
        let paths: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
        for path in [
            "tributary",
            "tributary serve",
            "tributary job",
            "tributary job show",
        ] {
            assert!(paths.contains(&path), "{paths:?}");
        }
    }

    #[test]
    fn serve_help_shows_the_defaults_and_every_environment_variable_without_its_value() {
        let err = Cli::try_parse_from(["tributary", "serve", "--help"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DisplayHelp);
        let help = err.to_string();
        for expected in [
            format!("[default: {DEFAULT_DATA_DIR}]"),
            format!("[default: {DEFAULT_LISTEN}]"),
            "[default: sqlite://DATA_DIR/tributary.db]".into(),
            "[default: text]".into(),
            "[env: TRIBUTARY_DATA_DIR]".into(),
            "[env: TRIBUTARY_STORE]".into(),
            "TRIBUTARY_API_TOKEN".into(),
            "TRIBUTARY_MASTER_KEY".into(),
            "Examples:\n  tributary serve\n".into(),
        ] {
            assert!(help.contains(&expected), "no {expected:?} in:\n{help}");
        }
        assert!(!help.contains("=]"), "{help}");
    }

    #[test]
    fn example_lines_split_like_a_shell() {
        assert_eq!(
            examples(
                "Intro\n\nExamples:\n  tributary a 'b c' \\\n      --d e\n  x | tributary f\n"
            ),
            ["tributary a 'b c' --d e", "x | tributary f"]
        );
        assert_eq!(
            invocation("V=$(cat k) tributary a 'b c' | jq"),
            ["tributary", "a", "b c"]
        );
    }
}
