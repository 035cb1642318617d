//! `tributary auth …` and `tributary streams …`.

use std::io::Read;

use clap::{Subcommand, ValueEnum};

use super::client::{labelled, q, s, table, Client, ClientError};
use crate::api::model::authorizations::{
    AuthMethod, AuthorizationList, AuthorizationView, CreateAuthorization, CredentialsView,
    Verified,
};
use crate::api::model::aws::KinesisStreams;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// An IAM user's access key pair.
    AwsKeys,
    /// A role Tributary assumes, with an external ID, from its own AWS identity.
    AwsRole,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Store AWS credentials (keys, or a role Tributary assumes with an external ID).
    #[command(after_help = "\
Examples:
  tributary auth add --label prod --access-key-id AKIAIOSFODNN7EXAMPLE --secret-access-key -
  tributary auth add --label delegated --method aws-role \\
      --role-arn arn:aws:iam::123456789012:role/Tributary")]
    Add {
        /// A name for the authorization.
        #[arg(long)]
        label: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// How Tributary reaches AWS: an access key pair, or a role it assumes.
        #[arg(long, value_enum, default_value = "aws-keys")]
        method: MethodArg,
        /// The access key ID (with --method aws-keys).
        #[arg(long)]
        access_key_id: Option<String>,
        /// The secret key; `-` reads it from standard input (keeps it out of shell history).
        #[arg(long, env = "TRIBUTARY_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: Option<String>,
        /// The ARN of the role to assume (with --method aws-role).
        #[arg(long)]
        role_arn: Option<String>,
        /// The external ID the role's trust policy requires (with --method aws-role; generated
        /// when omitted).
        #[arg(long)]
        external_id: Option<String>,
    },
    /// List authorizations.
    #[command(after_help = "\
Example:
  tributary auth list")]
    List,
    /// Show one authorization (never its secret).
    #[command(after_help = "\
Example:
  tributary auth show 0193a5e0-1b2c-7d3e-8f4a-5b6c7d8e9f01")]
    Show {
        /// Authorization id (see `tributary auth list`).
        id: String,
    },
    /// Delete an authorization no job uses.
    #[command(after_help = "\
Example:
  tributary auth remove 0193a5e0-1b2c-7d3e-8f4a-5b6c7d8e9f01")]
    Remove {
        /// Authorization id (see `tributary auth list`).
        id: String,
    },
    /// Check the credentials with STS GetCallerIdentity.
    #[command(after_help = "\
Example:
  tributary auth verify 0193a5e0-1b2c-7d3e-8f4a-5b6c7d8e9f01 --region eu-west-1")]
    Verify {
        /// Authorization id (see `tributary auth list`).
        id: String,
        /// The AWS region whose STS endpoint is asked.
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
                    CreateAuthorization {
                        label,
                        description,
                        method: AuthMethod::AwsKeys,
                        access_key_id,
                        secret_access_key: Some(secret),
                        role_arn: None,
                        external_id: None,
                    }
                }
                MethodArg::AwsRole => CreateAuthorization {
                    label,
                    description,
                    method: AuthMethod::AwsRole,
                    access_key_id: None,
                    secret_access_key: None,
                    role_arn,
                    external_id,
                },
            };
            let created = client.post("/api/authorizations", &body).await?;
            client.print(&created, |a: &AuthorizationView| {
                format!(
                    "Created authorization {} ({})\n{}",
                    a.id,
                    a.label,
                    describe(a)
                )
            })?;
        }
        AuthCommand::List => {
            let all = client.get("/api/authorizations").await?;
            client.print(&all, |list: &AuthorizationList| {
                let rows = list
                    .authorizations
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.clone(),
                            a.label.clone(),
                            s(&a.credentials.method()),
                            s(&a.created_at),
                        ]
                    })
                    .collect();
                table(&["ID", "LABEL", "METHOD", "CREATED"], rows)
            })?;
        }
        AuthCommand::Show { id } => {
            let v = client
                .get(&format!("/api/authorizations/{}", q(&id)))
                .await?;
            client.print(&v, describe)?;
        }
        AuthCommand::Remove { id } => {
            client
                .delete(&format!("/api/authorizations/{}", q(&id)))
                .await?;
            client.print_local(&Deleted { deleted: &id }, || {
                format!("Deleted authorization {id}")
            });
        }
        AuthCommand::Verify { id, region } => {
            let v = client
                .post_empty(&format!(
                    "/api/authorizations/{}/verify?region={}",
                    q(&id),
                    q(&region)
                ))
                .await?;
            client.print(&v, |v: &Verified| {
                format!("OK: account {} as {}", v.account, v.arn)
            })?;
        }
    }
    Ok(())
}

/// What `remove` prints in `--json` mode (the server answers a delete with no body).
#[derive(serde::Serialize)]
pub struct Deleted<'a> {
    pub deleted: &'a str,
}

fn describe(a: &AuthorizationView) -> String {
    let mut rows = vec![
        ("id", a.id.clone()),
        ("label", a.label.clone()),
        ("description", a.description.clone()),
        ("method", s(&a.credentials.method())),
    ];
    match &a.credentials {
        CredentialsView::AwsKeys { access_key_id, .. } => {
            rows.push(("access key", access_key_id.clone()));
            rows.push(("secret key", "****".into()));
        }
        CredentialsView::AwsRole {
            role_arn,
            external_id,
        } => {
            rows.push(("role ARN", role_arn.clone()));
            rows.push(("external ID", external_id.clone()));
        }
    }
    rows.push(("created", s(&a.created_at)));
    labelled(&rows)
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
    client.print(&v, |v: &KinesisStreams| {
        if v.streams.is_empty() {
            "(no streams)".into()
        } else {
            v.streams.join("\n")
        }
    })
}
