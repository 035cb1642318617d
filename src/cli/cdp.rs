//! `tributary mapping …`, `tributary audience …` and `tributary profile …`.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use reqwest::Method;

use super::auth::Deleted;
use super::client::{count, joined, labelled, q, s, table, Client, ClientError};
use crate::api::model::audiences::{
    AudienceList, AudienceView, ChangesPage, CreateAudience, MembersPage, UpdateAudience,
};
use crate::api::model::lifecycle::{BackupRequest, BackupView, Erased};
use crate::api::model::mappings::{MappingView, ProfileSchema};
use crate::api::model::profiles::{ProfileView, Rebuild};

#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Set a stream's mapping from a file (`-` reads standard input).
    #[command(after_help = "\
Examples:
  tributary mapping set web_events web_events.map
  cat web_events.map | tributary mapping set web_events -")]
    Set {
        /// The event stream the mapping reads.
        stream: String,
        /// The file holding the mapping (`-` reads standard input).
        file: PathBuf,
    },
    /// Show a stream's mapping and its fields.
    #[command(after_help = "\
Example:
  tributary mapping show web_events")]
    Show {
        /// The event stream.
        stream: String,
    },
    /// Every profile field the mappings define.
    #[command(after_help = "\
Example:
  tributary mapping schema")]
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum AudienceCommand {
    /// Create an audience from a filter (inline with --filter, or from --file).
    #[command(after_help = "\
Examples:
  tributary audience create big_spenders --name 'Big spenders' --filter 'total_spent >= 300'
  tributary audience create regulars --file regulars.filter")]
    Create {
        /// Its identifier in commands and export jobs: 1–64 characters of a-z, 0-9, _ and -.
        slug: String,
        /// A display name [default: the slug].
        #[arg(long)]
        name: Option<String>,
        /// What the audience is for.
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
    #[command(after_help = "\
Example:
  tributary audience list")]
    List,
    /// Show one audience.
    #[command(after_help = "\
Example:
  tributary audience show big_spenders")]
    Show {
        /// The audience's slug.
        slug: String,
    },
    /// Change an audience's filter (everyone is re-evaluated), name or description.
    #[command(after_help = "\
Examples:
  tributary audience update big_spenders --filter 'total_spent >= 500'
  tributary audience update big_spenders --name 'Top spenders'")]
    Update {
        /// The audience's slug.
        slug: String,
        /// A new display name.
        #[arg(long)]
        name: Option<String>,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
        /// A new filter text.
        #[arg(long, conflicts_with = "file")]
        filter: Option<String>,
        /// A file holding the new filter (`-` reads standard input).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List members (profile ids), a page at a time.
    #[command(after_help = "\
Examples:
  tributary audience members big_spenders --limit 20
  tributary audience members big_spenders --after 0193a601-2d3e-7f40-8a1b-2c3d4e5f6a7b")]
    Members {
        /// The audience's slug.
        slug: String,
        /// At most this many members (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The cursor printed at the end of the previous page.
        #[arg(long)]
        after: Option<String>,
    },
    /// Delete an audience no other audience INCLUDEs.
    #[command(after_help = "\
Example:
  tributary audience delete big_spenders")]
    Delete {
        /// The audience's slug.
        slug: String,
    },
    /// Show the audience-change outbox (entries and exits), oldest first.
    #[command(after_help = "\
Examples:
  tributary audience changes --limit 20
  tributary audience changes --after 4812")]
    Changes {
        /// Only changes after this sequence number (the last SEQ of the previous page).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many changes (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Show the profile holding an identifier (`--field email --value a@b.c`) or with an id.
    #[command(after_help = "\
Examples:
  tributary profile get --field email --value user7@example.com
  tributary profile get --id 0193a601-2d3e-7f40-8a1b-2c3d4e5f6a7b")]
    Get {
        /// An identity field (a mapping's BY field), with --value.
        #[arg(long, requires = "value", conflicts_with = "id")]
        field: Option<String>,
        /// The identifier to look up in --field.
        #[arg(long, requires = "field")]
        value: Option<String>,
        /// A profile id.
        #[arg(long)]
        id: Option<String>,
    },
    /// Rebuild every profile from the stored events (after a mapping change).
    #[command(after_help = "\
Example:
  tributary profile rebuild")]
    Rebuild,
    /// Show the progress of a rebuild.
    #[command(after_help = "\
Example:
  tributary profile rebuild-status")]
    RebuildStatus,
    /// Erase a person: the profile, its identities and memberships (exits with reason
    /// "deleted" go to export jobs), and every stored event carrying one of its identifiers.
    #[command(after_help = "\
Examples:
  tributary profile delete 0193a601-2d3e-7f40-8a1b-2c3d4e5f6a7b
  tributary profile delete --field email --value user7@example.com --suppress")]
    Delete {
        /// The profile id (or give --field and --value).
        #[arg(required_unless_present = "field", conflicts_with = "field")]
        id: Option<String>,
        /// An identity field (a mapping's BY field), with --value.
        #[arg(long, requires = "value")]
        field: Option<String>,
        /// The identifier in --field.
        #[arg(long, requires = "field")]
        value: Option<String>,
        /// Also put its identifiers on the suppression list (as SHA-256 hashes), so later
        /// events carrying one are dropped.
        #[arg(long)]
        suppress: bool,
    },
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
            client.print(&v, |m: &MappingView| {
                format!("Mapping for {stream} set\n{}", describe_mapping(m))
            })
        }
        MappingCommand::Show { stream } => {
            let v = client
                .get(&format!("/api/streams/{}/mapping", q(&stream)))
                .await?;
            client.print(&v, |m: &MappingView| {
                format!("{}\n\n{}", m.text, describe_mapping(m))
            })
        }
        MappingCommand::Schema => {
            let v = client.get("/api/schema").await?;
            client.print(&v, |schema: &ProfileSchema| {
                let rows = schema
                    .fields
                    .iter()
                    .map(|f| {
                        vec![
                            f.name.clone(),
                            f.kind.clone(),
                            f.merge_op.clone(),
                            joined(&f.streams, ",").unwrap_or_default(),
                            if f.identity { "yes" } else { "" }.into(),
                        ]
                    })
                    .collect();
                table(&["FIELD", "KIND", "MERGE", "STREAMS", "IDENTITY"], rows)
            })
        }
    }
}

fn describe_mapping(m: &MappingView) -> String {
    let by = joined(&m.by, " OR ").unwrap_or_default();
    let fields = m
        .fields
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.kind.clone(),
                f.aggregate.clone(),
                f.merge_op.clone(),
            ]
        })
        .collect();
    format!(
        "into {} by {by}\n{}",
        m.into,
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
            let body = CreateAudience {
                name: Some(name.unwrap_or_else(|| slug.clone())),
                slug,
                description,
                filter,
            };
            let v = client.post("/api/audiences", &body).await?;
            client.print(&v, |a: &AudienceView| {
                format!("Created audience {}\n{}", a.slug, describe_audience(a))
            })
        }
        AudienceCommand::List => {
            let v = client.get("/api/audiences").await?;
            client.print(&v, |list: &AudienceList| {
                let rows = list
                    .audiences
                    .iter()
                    .map(|a| {
                        vec![
                            a.slug.clone(),
                            a.name.clone(),
                            s(&a.members),
                            a.filter.clone(),
                        ]
                    })
                    .collect();
                table(&["SLUG", "NAME", "MEMBERS", "FILTER"], rows)
            })
        }
        AudienceCommand::Show { slug } => {
            let v = client.get(&format!("/api/audiences/{}", q(&slug))).await?;
            client.print(&v, describe_audience)
        }
        AudienceCommand::Update {
            slug,
            name,
            description,
            filter,
            file,
        } => {
            let body = UpdateAudience {
                name,
                description,
                filter: filter_text(filter, file),
            };
            let v = client
                .put(&format!("/api/audiences/{}", q(&slug)), &body)
                .await?;
            client.print(&v, |a: &AudienceView| {
                format!(
                    "Updated audience {} (re-evaluating every profile)\n{}",
                    a.slug,
                    describe_audience(a)
                )
            })
        }
        AudienceCommand::Members { slug, limit, after } => {
            let mut path = format!("/api/audiences/{}/members?limit={limit}", q(&slug));
            if let Some(a) = after {
                path.push_str(&format!("&after={}", q(&a)));
            }
            let v = client.get(&path).await?;
            client.print(&v, |page: &MembersPage| {
                let rows = page
                    .members
                    .iter()
                    .map(|m| vec![m.profile_id.clone(), s(&m.entered_at)])
                    .collect();
                let mut out = table(&["PROFILE", "ENTERED"], rows);
                if let Some(next) = &page.next {
                    out.push_str(&format!("\nmore: --after {next}"));
                }
                out
            })
        }
        AudienceCommand::Delete { slug } => {
            client
                .delete(&format!("/api/audiences/{}", q(&slug)))
                .await?;
            client.print_local(&Deleted { deleted: &slug }, || {
                format!("Deleted audience {slug}")
            });
            Ok(())
        }
        AudienceCommand::Changes { after, limit } => {
            let v = client
                .get(&format!(
                    "/api/audience-changes?after={after}&limit={limit}"
                ))
                .await?;
            client.print(&v, |page: &ChangesPage| {
                let rows = page
                    .changes
                    .iter()
                    .map(|c| {
                        vec![
                            s(&c.seq),
                            c.audience.clone(),
                            c.profile_id.clone(),
                            s(&c.kind),
                            s(&c.at),
                        ]
                    })
                    .collect();
                table(&["SEQ", "AUDIENCE", "PROFILE", "CHANGE", "AT"], rows)
            })
        }
    }
}

fn describe_audience(a: &AudienceView) -> String {
    let mut rows = vec![
        ("slug", a.slug.clone()),
        ("id", a.id.clone()),
        ("name", a.name.clone()),
        ("description", a.description.clone()),
        ("filter", a.filter.clone()),
    ];
    if let Some(members) = a.members {
        rows.push(("members", members.to_string()));
    }
    rows.push(("updated", s(&a.updated_at)));
    labelled(&rows)
}

/// A profile for people: who it is, its audiences, then its fields (free-form) as a table.
fn describe_profile(p: &ProfileView) -> String {
    let identities: Vec<String> = p
        .identities
        .iter()
        .flat_map(|(field, values)| values.iter().map(move |v| format!("{field}={v}")))
        .collect();
    let head = labelled(&[
        ("id", p.id.clone()),
        (
            "identities",
            joined(&identities, ", ").unwrap_or_else(|| "-".into()),
        ),
        (
            "audiences",
            joined(&p.audiences, ", ").unwrap_or_else(|| "-".into()),
        ),
        ("created", s(&p.created_at)),
        ("updated", s(&p.updated_at)),
    ]);
    let fields = p
        .fields
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| vec![name.clone(), s(value)])
        .collect();
    format!("{head}\n\n{}", table(&["FIELD", "VALUE"], fields))
}

pub async fn backup(client: &Client, dest_dir: String) -> Result<(), ClientError> {
    let v = client
        .post("/api/backup", &BackupRequest { dest_dir })
        .await?;
    client.print(&v, |b: &BackupView| {
        format!(
            "Backed up {} bytes into:\n  {}\nThe master key is not in it: keep it apart (see the README's \"Backup and restore\").",
            b.bytes,
            b.files.join("\n  ")
        )
    })
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
            client.print(&v, describe_profile)
        }
        ProfileCommand::Rebuild => {
            let v = client.post_empty("/api/profiles/rebuild").await?;
            client.print(&v, |r: &Rebuild| {
                format!(
                    "Rebuilding profiles from {} (tributary profile rebuild-status)",
                    count(r.total, "stored event")
                )
            })
        }
        ProfileCommand::Delete {
            id,
            field,
            value,
            suppress,
        } => {
            let path = match (id, field, value) {
                (Some(id), _, _) => format!("/api/profiles/{}?suppress={suppress}", q(&id)),
                (None, Some(f), Some(v)) => format!(
                    "/api/profiles?field={}&value={}&suppress={suppress}",
                    q(&f),
                    q(&v)
                ),
                _ => {
                    eprintln!("Error: give a profile id, or --field and --value");
                    std::process::exit(2)
                }
            };
            let v = client.delete_with_reply(&path).await?;
            client.print(&v, |e: &Erased| {
                format!(
                    "Erased profile {}: {}, {}, {} left (exits sent with reason \"deleted\"), {} suppressed",
                    e.profile_id,
                    count(e.events_deleted, "event"),
                    count(e.identities_deleted, "identifier"),
                    count(e.audiences_exited, "audience"),
                    count(e.suppressed, "identifier"),
                )
            })
        }
        ProfileCommand::RebuildStatus => {
            let v = client.get("/api/profiles/rebuild").await?;
            client.print(&v, |r: &Rebuild| {
                format!(
                    "{}: {} of {}",
                    r.state,
                    r.processed,
                    count(r.total, "event")
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_profile_reads_as_fields_and_a_table() {
        let v = json!({"id": "p1", "identities": {"email": ["a@x.io"], "user_id": ["u7"]},
            "fields": {"email": "a@x.io", "visits": 3, "pages_seen": ["/", "/docs"]},
            "audiences": [], "created_at": "2026-01-02T03:04:05Z",
            "updated_at": "2026-01-02T03:04:06Z"});
        let text = describe_profile(&serde_json::from_value(v).unwrap());
        assert!(text.starts_with("id:         p1\n"), "{text}");
        assert!(
            text.contains("identities: email=a@x.io, user_id=u7\naudiences:  -\n"),
            "{text}"
        );
        assert!(text.contains("\nFIELD       VALUE\n"), "{text}");
        assert!(text.contains("\npages_seen  [\"/\",\"/docs\"]"), "{text}");
        assert!(text.contains("\nvisits      3"), "{text}");
    }
}
