//! `tributary job …`: create, inspect, pause, resume and delete jobs.

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{joined, q, rows, s, table, Client, ClientError};

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create a job importing a Kinesis stream into a Tributary event stream.
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
        start_position: Value,
    },
    /// Create a job publishing audience entries and exits to a Kinesis stream.
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
    List,
    /// Show a job: state, totals, shards and last error.
    Show {
        /// Job id.
        id: String,
    },
    /// Pause a job (it resumes from its checkpoints).
    Pause {
        /// Job id.
        id: String,
    },
    /// Resume a paused job, or retry a failed one.
    Resume {
        /// Job id.
        id: String,
    },
    /// Stop and delete a job with its checkpoints and dead letters (its events stay).
    Delete {
        /// Job id.
        id: String,
    },
    /// Show what a job could not decode.
    DeadLetters {
        /// Job id.
        id: String,
        /// At most this many (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// `POST /api/jobs/{id}/pause|resume`, then the state the job is in.
async fn change_state(client: &Client, id: &str, action: &str) -> Result<(), ClientError> {
    let path = format!("/api/jobs/{}/{action}", q(id));
    let v = client.call(reqwest::Method::POST, &path, None).await?;
    client.print(&v, |v| format!("Job {} is {}", s(&v["id"]), s(&v["state"])));
    Ok(())
}

/// `--start-position` as the API wants it: a name, or `{"at_timestamp": RFC3339}`.
fn start_position(text: &str) -> Result<Value, String> {
    match text {
        "trim_horizon" | "latest" => Ok(json!(text)),
        other => chrono::DateTime::parse_from_rfc3339(other)
            .map(|t| json!({ "at_timestamp": t.to_rfc3339() }))
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
            let body = json!({
                "type": "kinesis_import",
                "label": label,
                "description": description,
                "authorization": auth,
                "config": {
                    "stream": stream,
                    "region": region,
                    "kinesis_stream": kinesis_stream,
                    "role_arn": role_arn,
                    "start_position": start_position,
                },
            });
            let v = client.post("/api/jobs", &body).await?;
            client.print(&v, |v| {
                format!("Created job {}\n{}", s(&v["id"]), describe(v))
            });
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
            let body = json!({
                "type": "kinesis_export",
                "label": label,
                "description": description,
                "authorization": auth,
                "config": {
                    "audiences": audiences,
                    "region": region,
                    "kinesis_stream": kinesis_stream,
                    "role_arn": role_arn,
                    "user_identifier_field": user_identifier_field,
                    "export_fields": export_fields,
                    "existing_users": existing_users,
                },
            });
            let v = client.post("/api/jobs", &body).await?;
            client.print(&v, |v| {
                format!("Created job {}\n{}", s(&v["id"]), describe(v))
            });
        }
        JobCommand::List => {
            let v = client.get("/api/jobs").await?;
            client.print(&v, list_table);
        }
        JobCommand::Show { id } => {
            let v = client.get(&format!("/api/jobs/{}", q(&id))).await?;
            client.print(&v, describe);
        }
        JobCommand::Pause { id } => change_state(client, &id, "pause").await?,
        JobCommand::Resume { id } => change_state(client, &id, "resume").await?,
        JobCommand::Delete { id } => {
            client.delete(&format!("/api/jobs/{}", q(&id))).await?;
            client.print(&json!({ "deleted": id }), |_| format!("Deleted job {id}"));
        }
        JobCommand::DeadLetters { id, limit } => {
            let v = client
                .get(&format!("/api/jobs/{}/dead-letters?limit={limit}", q(&id)))
                .await?;
            client.print(&v, dead_letters_table);
        }
    }
    Ok(())
}

fn list_table(v: &Value) -> String {
    let rows = rows(&v["jobs"], |j| {
        vec![
            s(&j["id"]),
            s(&j["label"]),
            s(&j["type"]),
            s(&j["state"]),
            s(&j["status"]["events_out"]),
            s(&j["status"]["dead_letters"]),
        ]
    });
    table(
        &["ID", "LABEL", "TYPE", "STATE", "EVENTS", "DEAD LETTERS"],
        rows,
    )
}

/// A job for people: what it does, where it stands, one line per shard.
fn describe(v: &Value) -> String {
    let c = &v["config"];
    let st = &v["status"];
    let mut lines = vec![
        format!("id:            {}", s(&v["id"])),
        format!("label:         {}", s(&v["label"])),
        format!("type:          {}", s(&v["type"])),
        format!("state:         {}", s(&v["state"])),
    ];
    if !v["description"].as_str().unwrap_or("").is_empty() {
        lines.push(format!("description:   {}", s(&v["description"])));
    }
    lines.push(format!("authorization: {}", s(&v["authorization"])));
    if v["type"] == "kinesis_import" {
        lines.push(format!(
            "reads:         {} in {}{}",
            s(&c["kinesis_stream"]),
            s(&c["region"]),
            c["role_arn"]
                .as_str()
                .map(|r| format!(" as {r}"))
                .unwrap_or_default()
        ));
        lines.push(format!("writes:        event stream {}", s(&c["stream"])));
        lines.push(format!(
            "starts at:     {}",
            start_text(&c["start_position"])
        ));
    } else {
        lines.push(format!(
            "publishes:     audiences {} to {} in {}{}",
            joined(&c["audiences"], ", ").unwrap_or_default(),
            s(&c["kinesis_stream"]),
            s(&c["region"]),
            c["role_arn"]
                .as_str()
                .map(|r| format!(" as {r}"))
                .unwrap_or_default()
        ));
        lines.push(format!(
            "keyed by:      {}",
            c["user_identifier_field"]
                .as_str()
                .unwrap_or("the profile id")
        ));
        lines.push(format!(
            "fields:        {}",
            joined(&c["export_fields"], ", ").unwrap_or_else(|| "all".into())
        ));
        if let Some(b) = st["backfill"].as_object() {
            lines.push(format!(
                "backfill:      {} of {} sent{}",
                s(&b["sent"]),
                s(&b["total"]),
                if b["done"] == true { ", done" } else { "" }
            ));
        }
    }
    lines.push(format!(
        "totals:        {} records in, {} events out, {} dead letters",
        s(&st["records_in"]),
        s(&st["events_out"]),
        s(&st["dead_letters"])
    ));
    lines.push(format!("created:       {}", s(&v["created_at"])));
    lines.push(format!("updated:       {}", s(&v["updated_at"])));
    if let Some(err) = v["last_error"].as_str() {
        lines.push(format!("last error:    {err}"));
    }
    if v["type"] != "kinesis_import" {
        return lines.join("\n");
    }
    let rows = rows(&st["shards"], |sh| {
        vec![
            s(&sh["shard_id"]),
            joined(&sh["parent_shard_ids"], ",").unwrap_or_else(|| "-".into()),
            s(&sh["state"]),
            s(&sh["records"]),
            s(&sh["millis_behind_latest"]),
            s(&sh["checkpoint"]),
        ]
    });
    lines.push(String::new());
    lines.push(table(
        &[
            "SHARD",
            "PARENTS",
            "STATE",
            "RECORDS",
            "BEHIND MS",
            "CHECKPOINT",
        ],
        rows,
    ));
    lines.join("\n")
}

fn start_text(v: &Value) -> String {
    match v.get("at_timestamp") {
        Some(t) => s(t),
        None => s(v),
    }
}

fn dead_letters_table(v: &Value) -> String {
    let rows = rows(&v["dead_letters"], |d| {
        vec![
            s(&d["shard_id"]),
            s(&d["sequence_number"]),
            s(&d["sub_sequence_number"]),
            s(&d["position"]),
            s(&d["reason"]),
        ]
    });
    table(&["SHARD", "SEQUENCE", "SUB", "POS", "REASON"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions() {
        assert_eq!(start_position("latest").unwrap(), json!("latest"));
        assert_eq!(
            start_position("2026-01-02T03:04:05Z").unwrap(),
            json!({"at_timestamp": "2026-01-02T03:04:05+00:00"})
        );
        assert!(start_position("yesterday").is_err());
    }

    #[test]
    fn describe_shows_shards_and_error() {
        let v = json!({"id": "j", "label": "web", "type": "kinesis_import", "state": "failed",
            "description": "", "authorization": "a", "last_error": "access denied",
            "config": {"stream": "web", "region": "us-east-1", "kinesis_stream": "clicks",
                       "role_arn": null, "start_position": "latest"},
            "created_at": "t0", "updated_at": "t1",
            "status": {"records_in": 3, "events_out": 2, "dead_letters": 1, "shards": [
                {"shard_id": "shardId-1", "parent_shard_ids": ["shardId-0"], "state": "reading",
                 "records": 3, "millis_behind_latest": 0, "checkpoint": "4959"}]}});
        let text = describe(&v);
        assert!(
            text.contains("reads:         clicks in us-east-1\n"),
            "{text}"
        );
        assert!(
            text.contains("3 records in, 2 events out, 1 dead letters"),
            "{text}"
        );
        assert!(text.contains("last error:    access denied"), "{text}");
        assert!(text.contains("shardId-1  shardId-0  reading"), "{text}");
    }
}
