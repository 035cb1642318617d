//! `tributary auth …` and `tributary streams …`.

use std::io::Read;

use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::client::{q, rows, s, table, Client, ClientError};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    AwsKeys,
    AwsRole,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Store AWS credentials (keys, or a role Tributary assumes with an external ID).
    Add {
        #[arg(long)]
        label: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, value_enum, default_value = "aws-keys")]
        method: MethodArg,
        #[arg(long)]
        access_key_id: Option<String>,
        /// The secret key; `-` reads it from standard input (keeps it out of shell history).
        #[arg(long, env = "TRIBUTARY_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: Option<String>,
        #[arg(long)]
        role_arn: Option<String>,
        /// Generated when omitted.
        #[arg(long)]
        external_id: Option<String>,
    },
    /// List authorizations.
    List,
    /// Show one authorization (never its secret).
    Show { id: String },
    /// Delete an authorization no job uses.
    Remove { id: String },
    /// Check the credentials with STS GetCallerIdentity.
    Verify {
        id: String,
        #[arg(long, default_value = "us-east-1")]
        region: String,
    },
}

pub async fn run(client: &Client, cmd: AuthCommand) -> Result<(), ClientError> {
    match cmd {
        AuthCommand::Add {
            label,
            description,
            method,
            access_key_id,
            secret_access_key,
            role_arn,
            external_id,
        } => {
            let body = match method {
                MethodArg::AwsKeys => {
                    let secret = match secret_access_key.as_deref() {
                        Some("-") | None => read_secret_from_stdin(),
                        Some(s) => s.to_owned(),
                    };
                    json!({"label": label, "description": description, "method": "aws_keys",
                           "access_key_id": access_key_id, "secret_access_key": secret})
                }
                MethodArg::AwsRole => {
                    json!({"label": label, "description": description, "method": "aws_role",
                                             "role_arn": role_arn, "external_id": external_id})
                }
            };
            let created = client.post("/api/authorizations", &body).await?;
            client.print(&created, |v| {
                format!(
                    "Created authorization {} ({})\n{}",
                    s(&v["id"]),
                    s(&v["label"]),
                    describe(v)
                )
            });
        }
        AuthCommand::List => {
            let all = client.get("/api/authorizations").await?;
            client.print(&all, |v| {
                let rows = rows(&v["authorizations"], |x| {
                    vec![
                        s(&x["id"]),
                        s(&x["label"]),
                        s(&x["method"]),
                        s(&x["created_at"]),
                    ]
                });
                table(&["ID", "LABEL", "METHOD", "CREATED"], rows)
            });
        }
        AuthCommand::Show { id } => {
            let v = client
                .get(&format!("/api/authorizations/{}", q(&id)))
                .await?;
            client.print(&v, describe);
        }
        AuthCommand::Remove { id } => {
            client
                .delete(&format!("/api/authorizations/{}", q(&id)))
                .await?;
            client.print(&json!({"deleted": id}), |_| {
                format!("Deleted authorization {id}")
            });
        }
        AuthCommand::Verify { id, region } => {
            let v = client
                .call(
                    reqwest::Method::POST,
                    &format!(
                        "/api/authorizations/{}/verify?region={}",
                        q(&id),
                        q(&region)
                    ),
                    None,
                )
                .await?;
            client.print(&v, |v| {
                format!("OK: account {} as {}", s(&v["account"]), s(&v["arn"]))
            });
        }
    }
    Ok(())
}

fn describe(v: &Value) -> String {
    let mut lines = vec![
        format!("id:          {}", s(&v["id"])),
        format!("label:       {}", s(&v["label"])),
        format!("description: {}", s(&v["description"])),
        format!("method:      {}", s(&v["method"])),
    ];
    if v["method"] == "aws_keys" {
        lines.push(format!("access key:  {}", s(&v["access_key_id"])));
        lines.push("secret key:  ****".into());
    } else {
        lines.push(format!("role ARN:    {}", s(&v["role_arn"])));
        lines.push(format!("external ID: {}", s(&v["external_id"])));
    }
    lines.push(format!("created:     {}", s(&v["created_at"])));
    lines.join("\n")
}

fn read_secret_from_stdin() -> String {
    eprintln!("Secret access key (read from standard input):");
    let mut buf = String::new();
    let _ = std::io::stdin().read_to_string(&mut buf);
    buf.trim().to_owned()
}

pub async fn streams(
    client: &Client,
    auth: &str,
    region: &str,
    role_arn: Option<&str>,
) -> Result<(), ClientError> {
    let mut path = format!(
        "/api/aws/streams?authorization={}&region={}",
        q(auth),
        q(region)
    );
    if let Some(role) = role_arn {
        path.push_str(&format!("&role_arn={}", q(role)));
    }
    let v = client.get(&path).await?;
    client.print(&v, |v| {
        let names: Vec<String> = v["streams"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        if names.is_empty() {
            "(no streams)".into()
        } else {
            names.join("\n")
        }
    });
    Ok(())
}
