//! The Import Activity Data job: every shard of a Kinesis stream into a Tributary event stream.
//!
//! This file holds the job's configuration and its run loop glue; the shard work itself is in
//! [`crate::kinesis::consumer`].

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{JobContext, JobError};
use std::sync::Arc;

use crate::cdp::erasure::Suppressions;
use crate::kinesis::consumer::{ConsumerConfig, ConsumerHandles, EventFilter};
pub use crate::store::StartPosition;
use crate::store::{Job, NewEvent};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// The Tributary event stream the events go to.
    pub stream: String,
    /// The Kinesis stream's AWS region, like `us-east-1`.
    pub region: String,
    /// A role to assume (with the authorization as source) to reach the stream.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The Kinesis data stream to read.
    pub kinesis_stream: String,
    /// Used only for shards without a checkpoint.
    #[serde(default)]
    #[schema(value_type = super::config::StartPositionSchema)]
    pub start_position: StartPosition,
}

/// A configuration problem, naming the field so a form can show it in place.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

impl ImportConfig {
    /// Parses and validates the `config` object of a job request.
    pub fn parse(config: &serde_json::Value) -> Result<Self, FieldError> {
        let cfg: ImportConfig = serde_json::from_value(config.clone()).map_err(|e| {
            let text = e.to_string();
            let field = config_field(&text);
            field_error(&field, format!("{text}; expected {{\"stream\", \"region\", \"kinesis_stream\", \"start_position\": \"trim_horizon\" | \"latest\" | {{\"at_timestamp\": RFC3339}}, \"role_arn\"}}"))
        })?;
        validate_event_stream_name(&cfg.stream).map_err(|m| field_error("config.stream", m))?;
        if let StartPosition::AtTimestamp(t) = &cfg.start_position {
            // Kinesis rejects a future timestamp at run time; say so now, at the form.
            if *t > chrono::Utc::now() + chrono::Duration::minutes(1) {
                return Err(field_error(
                    "config.start_position",
                    format!(
                        "{} is in the future; use a past instant, or \"latest\"",
                        t.to_rfc3339()
                    ),
                ));
            }
        }
        if !crate::aws::is_valid_region(&cfg.region) {
            return Err(field_error(
                "config.region",
                format!("{:?} is not an AWS region like us-east-1", cfg.region),
            ));
        }
        crate::kinesis::validate_stream_name(&cfg.kinesis_stream)
            .map_err(|m| field_error("config.kinesis_stream", m))?;
        if let Some(arn) = cfg.role_arn.as_deref().filter(|a| !a.is_empty()) {
            crate::aws::validate_role_arn(arn).map_err(|m| field_error("config.role_arn", m))?;
        }
        Ok(ImportConfig {
            role_arn: cfg.role_arn.clone().filter(|a| !a.is_empty()),
            ..cfg
        })
    }
}

/// The field a serde error is about ("missing field `x`", "unknown field `x`, …"), else
/// the whole `config`.
pub(crate) fn config_field(serde_message: &str) -> String {
    ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| serde_message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next())
        .map(|f| format!("config.{f}"))
        .unwrap_or_else(|| "config".into())
}

/// Tributary event stream names: 1–100 characters of letters, digits, `_`, `-` and `.`.
pub fn validate_event_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err("must be 1–100 characters long".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        return Err(format!(
            "{name:?} contains {c:?}; use letters, digits, '_', '-' and '.'"
        ));
    }
    Ok(())
}

/// The job's work, until it is cancelled (`Ok`) or fails for good (`Err`: the job's
/// `last_error`). [`super::JobManager`] records the failure.
pub async fn run(
    ctx: JobContext,
    job: Job,
    config: ImportConfig,
    cancel: CancellationToken,
) -> Result<(), JobError> {
    let handles = ConsumerHandles {
        store: ctx.store.clone(),
        aws: ctx.aws,
        filter: Some(Arc::new(SuppressionFilter(ctx.suppressions))),
        metrics: ctx.metrics,
        membership: ctx.membership,
    };
    let consumer_config = ConsumerConfig {
        job_id: job.id,
        authorization_id: job.authorization_id,
        event_stream: config.stream,
        region: config.region,
        role_arn: config.role_arn,
        kinesis_stream: config.kinesis_stream,
        start_position: config.start_position,
    };
    crate::kinesis::consumer::run_import(handles, &consumer_config, cancel).await?;
    Ok(())
}

/// The CDP's suppression list as the consumer's [`EventFilter`]: the consumer counts what it
/// drops per job, in the store (the job's `suppressed`) and in `/metrics`.
struct SuppressionFilter(Suppressions);

impl EventFilter for SuppressionFilter {
    fn drop_suppressed(&self, stream: &str, events: &mut Vec<NewEvent>) -> u64 {
        self.0.drop_suppressed(stream, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn start_positions_parse_in_all_three_shapes() {
        let base = json!({"stream": "web", "region": "us-east-1", "kinesis_stream": "clicks"});
        assert_eq!(
            ImportConfig::parse(&base).unwrap().start_position,
            StartPosition::TrimHorizon
        );
        let mut v = base.clone();
        v["start_position"] = json!("latest");
        assert_eq!(
            ImportConfig::parse(&v).unwrap().start_position,
            StartPosition::Latest
        );
        v["start_position"] = json!({"at_timestamp": "2026-01-02T03:04:05Z"});
        assert!(matches!(
            ImportConfig::parse(&v).unwrap().start_position,
            StartPosition::AtTimestamp(_)
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let bad = |v: serde_json::Value| ImportConfig::parse(&v).unwrap_err().field;
        assert_eq!(
            bad(json!({"stream": "web", "region": "nowhere", "kinesis_stream": "c"})),
            "config.region"
        );
        assert_eq!(
            bad(json!({"stream": "", "region": "us-east-1", "kinesis_stream": "c"})),
            "config.stream"
        );
        assert_eq!(
            bad(json!({"stream": "w", "region": "us-east-1", "kinesis_stream": "a b"})),
            "config.kinesis_stream"
        );
        assert_eq!(
            bad(json!({"stream": "w", "region": "us-east-1"})),
            "config.kinesis_stream"
        );
        assert_eq!(
            bad(
                json!({"stream": "w", "region": "us-east-1", "kinesis_stream": "c", "role_arn": "x"})
            ),
            "config.role_arn"
        );
        let future = json!({"stream": "w", "region": "us-east-1", "kinesis_stream": "c",
                            "start_position": {"at_timestamp": "2999-01-01T00:00:00Z"}});
        assert_eq!(bad(future), "config.start_position");
    }
}
