//! The IAM policies a user pastes into their AWS account: the least privilege Tributary needs
//! for each direction, and the trust policy for delegated access.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Import,
    Export,
    Both,
}

/// Actions the import job uses, and nothing more.
pub const IMPORT_ACTIONS: &[&str] = &[
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
];
/// Actions the export job uses, and nothing more.
pub const EXPORT_ACTIONS: &[&str] = &["kinesis:PutRecord", "kinesis:PutRecords"];

/// ARN of a stream; `partition` follows the region (aws, aws-cn, aws-us-gov).
pub fn stream_arn(region: &str, account: &str, stream: &str) -> String {
    format!(
        "arn:{}:kinesis:{region}:{account}:stream/{stream}",
        partition(region)
    )
}

fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The permission policy for `direction` on one stream. ListStreams (on `*`, since it cannot
/// be scoped) is included only for `both`; it merely fills the UI's stream drop-down.
pub fn permission_policy(direction: Direction, region: &str, account: &str, stream: &str) -> Value {
    let actions: Vec<&str> = match direction {
        Direction::Import => IMPORT_ACTIONS.to_vec(),
        Direction::Export => EXPORT_ACTIONS.to_vec(),
        Direction::Both => IMPORT_ACTIONS
            .iter()
            .chain(EXPORT_ACTIONS)
            .copied()
            .collect(),
    };
    let mut statements = vec![json!({
        "Sid": "TributaryStreamAccess",
        "Effect": "Allow",
        "Action": actions,
        "Resource": stream_arn(region, account, stream),
    })];
    if direction == Direction::Both {
        statements.push(json!({
            "Sid": "TributaryListStreams",
            "Effect": "Allow",
            "Action": ["kinesis:ListStreams"],
            "Resource": "*",
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The trust policy of a role Tributary assumes: only `principal_arn` may assume it, and only
/// while presenting `external_id` (the confused-deputy guard).
pub fn trust_policy(principal_arn: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": principal_arn },
            "Action": "sts:AssumeRole",
            "Condition": { "StringEquals": { "sts:ExternalId": external_id } }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_policy_is_least_privilege() {
        let p = permission_policy(Direction::Import, "us-east-1", "123456789012", "clicks");
        let st = &p["Statement"];
        assert_eq!(st.as_array().unwrap().len(), 1);
        assert_eq!(st[0]["Action"], json!(IMPORT_ACTIONS));
        assert_eq!(
            st[0]["Resource"],
            "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
        );
    }

    #[test]
    fn both_adds_list_streams_on_star_and_partitions_follow_region() {
        let p = permission_policy(Direction::Both, "cn-north-1", "1", "s");
        assert_eq!(p["Statement"][0]["Action"].as_array().unwrap().len(), 5);
        assert_eq!(p["Statement"][1]["Resource"], "*");
        assert!(p["Statement"][0]["Resource"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws-cn:"));
    }

    #[test]
    fn trust_policy_requires_the_external_id() {
        let t = trust_policy("arn:aws:iam::1:user/tributary", "ext-123");
        assert_eq!(
            t["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "ext-123"
        );
        assert_eq!(
            t["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::1:user/tributary"
        );
    }
}
