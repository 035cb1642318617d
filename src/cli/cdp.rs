//! `tributary mapping …`, `tributary audience …` and `tributary profile …`.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{joined, q, rows, s, table, Client, ClientError};

#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Set a stream's mapping from a file (`-` reads standard input).
    Set { stream: String, file: PathBuf },
    /// Show a stream's mapping and its fields.
    Show { stream: String },
    /// Every profile field the mappings define.
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum AudienceCommand {
    /// Create an audience from a filter (inline with --filter, or from --file).
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// The filter text, e.g. 'visits > 3 AND EXISTS email'.
        #[arg(long, conflicts_with = "file")]
        filter: Option<String>,
        /// A file holding the filter (`-` reads standard input).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List audiences with their member counts.
    List,
    /// Show one audience.
    Show { slug: String },
    /// Change an audience's filter (everyone is re-evaluated), name or description.
    Update {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "file")]
        filter: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List members (profile ids), a page at a time.
    Members {
        slug: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The cursor printed at the end of the previous page.
        #[arg(long)]
        after: Option<String>,
    },
    /// Delete an audience no other audience INCLUDEs.
    Delete { slug: String },
    /// Show the audience-change outbox (entries and exits), oldest first.
    Changes {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Show the profile holding an identifier (`--field email --value a@b.c`) or with an id.
    Get {
        #[arg(long, requires = "value", conflicts_with = "id")]
        field: Option<String>,
        #[arg(long, requires = "field")]
        value: Option<String>,
        #[arg(long)]
        id: Option<String>,
    },
    /// Rebuild every profile from the stored events (after a mapping change).
    Rebuild,
    /// Show the progress of a rebuild.
    RebuildStatus,
}

fn read_text(path: &Path) -> String {
    let result = if path == Path::new("-") {
        let mut buf = String::new();
        std::io::stdin().read_to_string(&mut buf).map(|_| buf)
    } else {
        std::fs::read_to_string(path)
    };
    result.unwrap_or_else(|e| {
        // A local problem, not the server's: no ClientError variant says so, hence exit here.
        eprintln!("Error: cannot read {}: {e}", path.display());
        std::process::exit(2)
    })
}

fn filter_text(filter: Option<String>, file: Option<PathBuf>) -> Option<String> {
    filter.or_else(|| file.map(|f| read_text(&f)))
}

pub async fn mapping(client: &Client, cmd: MappingCommand) -> Result<(), ClientError> {
    match cmd {
        MappingCommand::Set { stream, file } => {
            let text = read_text(&file);
            let v = client
                .send_text(
                    Method::PUT,
                    &format!("/api/streams/{}/mapping", q(&stream)),
                    "text/plain; charset=utf-8",
                    text,
                )
                .await?;
            client.print(&v, |v| {
                format!("Mapping for {stream} set\n{}", describe_mapping(v))
            });
        }
        MappingCommand::Show { stream } => {
            let v = client
                .get(&format!("/api/streams/{}/mapping", q(&stream)))
                .await?;
            client.print(&v, |v| {
                format!("{}\n\n{}", s(&v["text"]), describe_mapping(v))
            });
        }
        MappingCommand::Schema => {
            let v = client.get("/api/schema").await?;
            client.print(&v, |v| {
                let rows = rows(&v["fields"], |f| {
                    vec![
                        s(&f["name"]),
                        s(&f["kind"]),
                        s(&f["merge_op"]),
                        joined(&f["streams"], ",").unwrap_or_default(),
                        if f["identity"] == true { "yes" } else { "" }.into(),
                    ]
                });
                table(&["FIELD", "KIND", "MERGE", "STREAMS", "IDENTITY"], rows)
            });
        }
    }
    Ok(())
}

fn describe_mapping(v: &Value) -> String {
    let by = joined(&v["by"], " OR ").unwrap_or_default();
    let fields = rows(&v["fields"], |f| {
        vec![
            s(&f["name"]),
            s(&f["kind"]),
            s(&f["aggregate"]),
            s(&f["merge_op"]),
        ]
    });
    format!(
        "into {} by {by}\n{}",
        s(&v["into"]),
        table(&["FIELD", "KIND", "AGGREGATE", "MERGE"], fields)
    )
}

pub async fn audience(client: &Client, cmd: AudienceCommand) -> Result<(), ClientError> {
    match cmd {
        AudienceCommand::Create {
            slug,
            name,
            description,
            filter,
            file,
        } => {
            let filter = filter_text(filter, file).unwrap_or_else(|| {
                eprintln!("Error: give the filter with --filter TEXT or --file PATH");
                std::process::exit(2)
            });
            let body = json!({"slug": slug, "name": name.unwrap_or_else(|| slug.clone()),
                              "description": description, "filter": filter});
            let v = client.post("/api/audiences", &body).await?;
            client.print(&v, |v| {
                format!(
                    "Created audience {}\n{}",
                    s(&v["slug"]),
                    describe_audience(v)
                )
            });
        }
        AudienceCommand::List => {
            let v = client.get("/api/audiences").await?;
            client.print(&v, |v| {
                let rows = rows(&v["audiences"], |a| {
                    vec![
                        s(&a["slug"]),
                        s(&a["name"]),
                        s(&a["members"]),
                        s(&a["filter"]),
                    ]
                });
                table(&["SLUG", "NAME", "MEMBERS", "FILTER"], rows)
            });
        }
        AudienceCommand::Show { slug } => {
            let v = client.get(&format!("/api/audiences/{}", q(&slug))).await?;
            client.print(&v, describe_audience);
        }
        AudienceCommand::Update {
            slug,
            name,
            description,
            filter,
            file,
        } => {
            let mut body = json!({});
            if let Some(n) = name {
                body["name"] = n.into();
            }
            if let Some(d) = description {
                body["description"] = d.into();
            }
            if let Some(f) = filter_text(filter, file) {
                body["filter"] = f.into();
            }
            let v = client
                .call(
                    Method::PUT,
                    &format!("/api/audiences/{}", q(&slug)),
                    Some(&body),
                )
                .await?;
            client.print(&v, |v| {
                format!(
                    "Updated audience {} (re-evaluating every profile)\n{}",
                    s(&v["slug"]),
                    describe_audience(v)
                )
            });
        }
        AudienceCommand::Members { slug, limit, after } => {
            let mut path = format!("/api/audiences/{}/members?limit={limit}", q(&slug));
            if let Some(a) = after {
                path.push_str(&format!("&after={}", q(&a)));
            }
            let v = client.get(&path).await?;
            client.print(&v, |v| {
                let rows = rows(&v["members"], |m| {
                    vec![s(&m["profile_id"]), s(&m["entered_at"])]
                });
                let mut out = table(&["PROFILE", "ENTERED"], rows);
                if !v["next"].is_null() {
                    out.push_str(&format!("\nmore: --after {}", s(&v["next"])));
                }
                out
            });
        }
        AudienceCommand::Delete { slug } => {
            client
                .delete(&format!("/api/audiences/{}", q(&slug)))
                .await?;
            client.print(&json!({"deleted": slug}), |_| {
                format!("Deleted audience {slug}")
            });
        }
        AudienceCommand::Changes { after, limit } => {
            let v = client
                .get(&format!(
                    "/api/audience-changes?after={after}&limit={limit}"
                ))
                .await?;
            client.print(&v, |v| {
                let rows = rows(&v["changes"], |c| {
                    vec![
                        s(&c["seq"]),
                        s(&c["audience"]),
                        s(&c["profile_id"]),
                        s(&c["kind"]),
                        s(&c["at"]),
                    ]
                });
                table(&["SEQ", "AUDIENCE", "PROFILE", "CHANGE", "AT"], rows)
            });
        }
    }
    Ok(())
}

fn describe_audience(v: &Value) -> String {
    let mut lines = vec![
        format!("slug:        {}", s(&v["slug"])),
        format!("id:          {}", s(&v["id"])),
        format!("name:        {}", s(&v["name"])),
        format!("description: {}", s(&v["description"])),
        format!("filter:      {}", s(&v["filter"])),
    ];
    if !v["members"].is_null() {
        lines.push(format!("members:     {}", s(&v["members"])));
    }
    lines.push(format!("updated:     {}", s(&v["updated_at"])));
    lines.join("\n")
}

pub async fn profile(client: &Client, cmd: ProfileCommand) -> Result<(), ClientError> {
    match cmd {
        ProfileCommand::Get { field, value, id } => {
            let path = match (field, value, id) {
                (Some(f), Some(v), _) => format!("/api/profiles?field={}&value={}", q(&f), q(&v)),
                (_, _, Some(id)) => format!("/api/profiles/{}", q(&id)),
                _ => {
                    eprintln!("Error: give --field and --value, or --id");
                    std::process::exit(2)
                }
            };
            let v = client.get(&path).await?;
            client.print(&v, |v| {
                serde_json::to_string_pretty(v).expect("JSON prints")
            });
        }
        ProfileCommand::Rebuild => {
            let v = client.post("/api/profiles/rebuild", &json!({})).await?;
            client.print(&v, |v| {
                format!(
                    "Rebuilding profiles from {} stored events (tributary profile rebuild-status)",
                    s(&v["total"])
                )
            });
        }
        ProfileCommand::RebuildStatus => {
            let v = client.get("/api/profiles/rebuild").await?;
            client.print(&v, |v| {
                format!(
                    "{}: {} of {} events",
                    s(&v["state"]),
                    s(&v["processed"]),
                    s(&v["total"])
                )
            });
        }
    }
    Ok(())
}
