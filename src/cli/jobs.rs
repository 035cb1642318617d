//! `tributary job …`: create, inspect, pause, resume and delete jobs.

use clap::Subcommand;

use super::auth::Deleted;
use super::client::{count, joined, labelled, q, s, table, Client, ClientError};
use crate::api::model::jobs::{
    CreateJob, DeadLetterList, ExportConfig, ImportConfig, JobConfig, JobList, JobStatus, JobView,
};
use crate::store::StartPosition;

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create a job importing a Kinesis stream into a Tributary event stream.
    #[command(after_help = "\
Example:
  tributary job create-import --auth 0193a5e0-1b2c-7d3e-8f4a-5b6c7d8e9f01 --label 'web events' \\
      --stream web_events --region us-east-1 --kinesis-stream clickstream")]
    CreateImport {
        /// Authorization id (see `tributary auth list`).
        #[arg(long)]
        auth: String,
        /// A name for the job.
        #[arg(long)]
        label: String,
        /// What the job is for.
        #[arg(long, default_value = "")]
        description: String,
        /// The Tributary event stream the events go to.
        #[arg(long)]
        stream: String,
        /// AWS region of the Kinesis stream, like us-east-1.
        #[arg(long)]
        region: String,
        /// The Kinesis data stream to read.
        #[arg(long)]
        kinesis_stream: String,
        /// A role to assume (with the authorization as source) to reach the stream.
        #[arg(long)]
        role_arn: Option<String>,
        /// Where shards without a checkpoint begin: trim_horizon, latest or an RFC 3339 time.
        #[arg(long, default_value = "trim_horizon", value_parser = start_position)]
        start_position: StartPosition,
    },
    /// Create a job publishing audience entries and exits to a Kinesis stream.
    #[command(after_help = "\
Example:
  tributary job create-export --auth 0193a5e0-1b2c-7d3e-8f4a-5b6c7d8e9f01 --label 'vip triggers' \\
      --audience vip --region us-east-1 --kinesis-stream cdp-triggers \\
      --user-identifier-field email --existing-users")]
    CreateExport {
        /// Authorization id (see `tributary auth list`).
        #[arg(long)]
        auth: String,
        /// A name for the job.
        #[arg(long)]
        label: String,
        /// What the job is for.
        #[arg(long, default_value = "")]
        description: String,
        /// An audience slug whose changes are published (repeat for several).
        #[arg(long = "audience", required = true)]
        audiences: Vec<String>,
        /// AWS region of the Kinesis stream, like us-east-1.
        #[arg(long)]
        region: String,
        /// The Kinesis data stream to write.
        #[arg(long)]
        kinesis_stream: String,
        /// A role to assume (with the authorization as source) to reach the stream.
        #[arg(long)]
        role_arn: Option<String>,
        /// The profile field whose value is the partition key (default: the profile id).
        #[arg(long)]
        user_identifier_field: Option<String>,
        /// A profile field to put in each record (repeat; none means all fields).
        #[arg(long = "export-field")]
        export_fields: Vec<String>,
        /// Also send every current member once as an 'enter'.
        #[arg(long)]
        existing_users: bool,
    },
    /// List jobs with their state and totals.
    #[command(after_help = "\
Example:
  tributary job list")]
    List,
    /// Show a job: state, totals, shards and last error.
    #[command(after_help = "\
Example:
  tributary job show 0193a5f2-7c41-7d2e-9b1a-5e6f7a8b9c0d")]
    Show {
        /// Job id.
        id: String,
    },
    /// Pause a job (it resumes from its checkpoints).
    #[command(after_help = "\
Example:
  tributary job pause 0193a5f2-7c41-7d2e-9b1a-5e6f7a8b9c0d")]
    Pause {
        /// Job id.
        id: String,
    },
    /// Resume a paused job, or retry a failed one.
    #[command(after_help = "\
Example:
  tributary job resume 0193a5f2-7c41-7d2e-9b1a-5e6f7a8b9c0d")]
    Resume {
        /// Job id.
        id: String,
    },
    /// Stop and delete a job with its checkpoints and dead letters (its events stay).
    #[command(after_help = "\
Example:
  tributary job delete 0193a5f2-7c41-7d2e-9b1a-5e6f7a8b9c0d")]
    Delete {
        /// Job id.
        id: String,
    },
    /// Show what a job could not decode.
    #[command(after_help = "\
Example:
  tributary job dead-letters 0193a5f2-7c41-7d2e-9b1a-5e6f7a8b9c0d --limit 10")]
    DeadLetters {
        /// Job id.
        id: String,
        /// At most this many dead letters, newest first (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// `POST /api/jobs/{id}/pause|resume`, then the state the job is in.
async fn change_state(client: &Client, id: &str, action: &str) -> Result<(), ClientError> {
    let path = format!("/api/jobs/{}/{action}", q(id));
    let v = client.post_empty(&path).await?;
    client.print(&v, |j: &JobView| format!("Job {} is {}", j.id, s(&j.state)))
}

/// `--start-position`: a name, or an RFC 3339 time.
fn start_position(text: &str) -> Result<StartPosition, String> {
    match text {
        "trim_horizon" => Ok(StartPosition::TrimHorizon),
        "latest" => Ok(StartPosition::Latest),
        other => chrono::DateTime::parse_from_rfc3339(other)
            .map(|t| StartPosition::AtTimestamp(t.with_timezone(&chrono::Utc)))
            .map_err(|_| {
                format!("{other:?} is not trim_horizon, latest or an RFC 3339 time like 2026-01-02T03:04:05Z")
            }),
    }
}

pub async fn run(client: &Client, cmd: JobCommand) -> Result<(), ClientError> {
    match cmd {
        JobCommand::CreateImport {
            auth,
            label,
            description,
            stream,
            region,
            kinesis_stream,
            role_arn,
            start_position,
        } => {
            let config = JobConfig::KinesisImport(ImportConfig {
                stream,
                region,
                role_arn,
                kinesis_stream,
                start_position,
            });
            create(client, label, description, auth, config).await?;
        }
        JobCommand::CreateExport {
            auth,
            label,
            description,
            audiences,
            region,
            kinesis_stream,
            role_arn,
            user_identifier_field,
            export_fields,
            existing_users,
        } => {
            let config = JobConfig::KinesisExport(ExportConfig {
                audiences,
                region,
                role_arn,
                kinesis_stream,
                user_identifier_field,
                export_fields,
                existing_users,
            });
            create(client, label, description, auth, config).await?;
        }
        JobCommand::List => {
            let v = client.get("/api/jobs").await?;
            client.print(&v, list_table)?;
        }
        JobCommand::Show { id } => {
            let v = client.get(&format!("/api/jobs/{}", q(&id))).await?;
            client.print(&v, describe)?;
        }
        JobCommand::Pause { id } => change_state(client, &id, "pause").await?,
        JobCommand::Resume { id } => change_state(client, &id, "resume").await?,
        JobCommand::Delete { id } => {
            client.delete(&format!("/api/jobs/{}", q(&id))).await?;
            client.print_local(&Deleted { deleted: &id }, || format!("Deleted job {id}"));
        }
        JobCommand::DeadLetters { id, limit } => {
            let v = client
                .get(&format!("/api/jobs/{}/dead-letters?limit={limit}", q(&id)))
                .await?;
            client.print(&v, dead_letters_table)?;
        }
    }
    Ok(())
}

async fn create(
    client: &Client,
    label: String,
    description: String,
    authorization: String,
    config: JobConfig,
) -> Result<(), ClientError> {
    let body = CreateJob {
        label,
        description,
        authorization,
        config,
    };
    let v = client.post("/api/jobs", &body).await?;
    client.print(&v, |j: &JobView| {
        format!("Created job {}\n{}", j.id, describe(j))
    })
}

fn list_table(list: &JobList) -> String {
    let rows = list
        .jobs
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                j.label.clone(),
                j.config.job_type().as_str().to_owned(),
                s(&j.state),
                totals(j),
            ]
        })
        .collect();
    table(&["ID", "LABEL", "TYPE", "STATE", "TOTALS"], rows)
}

/// A job's totals in the words of its direction. The status fields are named for imports; an
/// export counts audience changes read in `records_in` and Kinesis records sent in `events_out`.
fn totals(j: &JobView) -> String {
    let st = &j.status;
    let (taken, given) = match j.config {
        JobConfig::KinesisImport(_) => (
            format!("{} in", count(st.records_in, "record")),
            format!("{} out", count(st.events_out, "event")),
        ),
        JobConfig::KinesisExport(_) => (
            format!("{} read", count(st.records_in, "change")),
            format!("{} sent", count(st.events_out, "record")),
        ),
    };
    format!(
        "{taken}, {given}, {}",
        count(st.dead_letters, "dead letter")
    )
}

/// ` as ROLE` when a role is assumed.
fn as_role(role_arn: &Option<String>) -> String {
    role_arn
        .as_deref()
        .map(|r| format!(" as {r}"))
        .unwrap_or_default()
}

/// A job for people: what it does, where it stands, and (imports) one line per shard.
fn describe(j: &JobView) -> String {
    let st = &j.status;
    let mut rows = vec![
        ("id", j.id.clone()),
        ("label", j.label.clone()),
        ("type", j.config.job_type().as_str().to_owned()),
        ("state", s(&j.state)),
    ];
    if !j.description.is_empty() {
        rows.push(("description", j.description.clone()));
    }
    rows.push(("authorization", j.authorization.clone()));
    match &j.config {
        JobConfig::KinesisImport(c) => {
            let reads = format!(
                "{} in {}{}",
                c.kinesis_stream,
                c.region,
                as_role(&c.role_arn)
            );
            rows.push(("reads", reads));
            rows.push(("writes", format!("event stream {}", c.stream)));
            rows.push(("starts at", start_text(&c.start_position)));
        }
        JobConfig::KinesisExport(c) => {
            let audiences = joined(&c.audiences, ", ").unwrap_or_default();
            let publishes = format!(
                "audiences {audiences} to {} in {}{}",
                c.kinesis_stream,
                c.region,
                as_role(&c.role_arn)
            );
            rows.push(("publishes", publishes));
            let key = c
                .user_identifier_field
                .as_deref()
                .unwrap_or("the profile id");
            rows.push(("keyed by", key.to_owned()));
            let fields = joined(&c.export_fields, ", ").unwrap_or_else(|| "all".into());
            rows.push(("fields", fields));
            if let Some(Some(b)) = &st.backfill {
                let done = if b.done { ", done" } else { "" };
                rows.push(("backfill", format!("{} of {} sent{done}", b.sent, b.total)));
            }
        }
    }
    rows.push(("totals", totals(j)));
    rows.push(("created", s(&j.created_at)));
    rows.push(("updated", s(&j.updated_at)));
    if let Some(err) = &j.last_error {
        rows.push(("last error", err.clone()));
    }
    let mut out = labelled(&rows);
    if let JobConfig::KinesisImport(_) = j.config {
        out.push_str("\n\n");
        out.push_str(&shards_table(st));
    }
    out
}

fn shards_table(st: &JobStatus) -> String {
    let rows = st
        .shards
        .iter()
        .map(|sh| {
            vec![
                sh.shard_id.clone(),
                joined(&sh.parent_shard_ids, ",").unwrap_or_else(|| "-".into()),
                s(&sh.state),
                s(&sh.records),
                s(&sh.millis_behind_latest),
                s(&sh.checkpoint),
            ]
        })
        .collect();
    let headers = [
        "SHARD",
        "PARENTS",
        "STATE",
        "RECORDS",
        "BEHIND MS",
        "CHECKPOINT",
    ];
    table(&headers, rows)
}

fn start_text(start: &StartPosition) -> String {
    match start {
        StartPosition::AtTimestamp(t) => s(t),
        other => s(other),
    }
}

fn dead_letters_table(list: &DeadLetterList) -> String {
    let rows = list
        .dead_letters
        .iter()
        .map(|d| {
            vec![
                d.shard_id.clone(),
                d.sequence_number.clone(),
                s(&d.sub_sequence_number),
                s(&d.position),
                d.reason.clone(),
            ]
        })
        .collect();
    table(&["SHARD", "SEQUENCE", "SUB", "POS", "REASON"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn start_positions() {
        assert_eq!(start_position("latest").unwrap(), StartPosition::Latest);
        let at = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(
            start_position("2026-01-02T05:04:05+02:00").unwrap(),
            StartPosition::AtTimestamp(at)
        );
        assert!(start_position("yesterday").is_err());
    }

    #[test]
    fn describe_shows_shards_and_error() {
        let v = json!({"id": "j", "label": "web", "type": "kinesis_import", "state": "failed",
            "description": "", "authorization": "a", "last_error": "access denied",
            "config": {"stream": "web", "region": "us-east-1", "kinesis_stream": "clicks",
                       "role_arn": null, "start_position": "latest"},
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:06Z",
            "status": {"state": "failed", "last_error": "access denied", "records_in": 3, "events_out": 2, "dead_letters": 1, "shards": [
                {"shard_id": "shardId-1", "parent_shard_ids": ["shardId-0"], "state": "reading",
                 "records": 3, "millis_behind_latest": 0, "checkpoint": "4959"}]}});
        let text = describe(&serde_json::from_value(v).unwrap());
        assert!(
            text.contains("reads:         clicks in us-east-1\n"),
            "{text}"
        );
        assert!(
            text.contains("3 records in, 2 events out, 1 dead letter\n"),
            "{text}"
        );
        assert!(text.contains("last error:    access denied"), "{text}");
        assert!(text.contains("shardId-1  shardId-0  reading"), "{text}");
    }

    #[test]
    fn export_jobs_are_described_in_export_words() {
        let v = json!({"id": "x", "label": "vip triggers", "type": "kinesis_export",
            "state": "running", "description": "", "authorization": "a", "last_error": null,
            "config": {"audiences": ["vip", "churned"], "region": "us-east-1",
                       "kinesis_stream": "cdp-triggers", "user_identifier_field": "email"},
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:06Z",
            "status": {"state": "running", "last_error": null, "records_in": 1,
                       "events_out": 2, "dead_letters": 0, "shards": [],
                       "backfill": {"total": 1, "sent": 1, "done": true}}});
        let job: JobView = serde_json::from_value(v).unwrap();
        let text = describe(&job);
        assert!(
            text.contains("publishes:     audiences vip, churned to cdp-triggers in us-east-1\n"),
            "{text}"
        );
        assert!(text.contains("keyed by:      email\n"), "{text}");
        assert!(
            text.contains("totals:        1 change read, 2 records sent, 0 dead letters\n"),
            "{text}"
        );
        assert!(!text.contains("SHARD"), "{text}");
        let list = list_table(&JobList { jobs: vec![job] });
        assert!(list.contains("1 change read, 2 records sent"), "{list}");
    }
}
