//! The mapping registry: each stream's parsed mapping and the profile schema they define.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tributary_lang::{parse_mapping, Kind, Mapping, MergeOp};

use crate::store::StreamMapping;

/// One profile field as `GET /api/schema` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SchemaEntry {
    pub name: String,
    pub kind: Kind,
    pub merge_op: &'static str,
    /// The streams whose mappings write it.
    pub streams: Vec<String>,
    pub short_desc: Option<String>,
    /// Whether it identifies profiles (`BY`) in some mapping.
    pub identity: bool,
    /// `WINDOW` as written, for a windowed field.
    pub window: Option<String>,
}

#[derive(Debug, Default)]
pub struct MappingRegistry {
    by_stream: HashMap<String, Arc<Mapping>>,
    /// Each stored mapping's stream and when it last changed, in stream order: tells whether
    /// the store still holds what this registry was made from.
    stamp: Vec<(String, crate::store::Timestamp)>,
}

fn stamp_of(rows: &[StreamMapping]) -> Vec<(String, crate::store::Timestamp)> {
    let mut stamp: Vec<_> = rows
        .iter()
        .map(|r| (r.stream.clone(), r.updated_at))
        .collect();
    stamp.sort();
    stamp
}

impl MappingRegistry {
    /// Stored mappings that no longer parse are skipped (logged): their events make no
    /// profile changes until the mapping is fixed.
    pub fn new(rows: Vec<StreamMapping>) -> Self {
        let stamp = stamp_of(&rows);
        let mut by_stream = HashMap::new();
        for row in rows {
            match parse_mapping(&row.text) {
                Ok(m) => {
                    by_stream.insert(row.stream, Arc::new(m));
                }
                Err(e) => {
                    tracing::error!(stream = %row.stream, error = %e, "stored mapping does not parse; its events are skipped");
                }
            }
        }
        MappingRegistry { by_stream, stamp }
    }

    /// Whether `rows` (the stored mappings) are the ones this registry was made from.
    pub fn made_from(&self, rows: &[StreamMapping]) -> bool {
        stamp_of(rows) == self.stamp
    }

    pub fn get(&self, stream: &str) -> Option<&Arc<Mapping>> {
        self.by_stream.get(stream)
    }

    /// The streams that have a mapping.
    pub fn streams(&self) -> Vec<String> {
        self.by_stream.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_stream.is_empty()
    }

    /// Every profile field, by name; a field written by several streams lists them all (the
    /// first stream in name order gives its kind and rule).
    pub fn schema(&self) -> Vec<SchemaEntry> {
        let mut streams: Vec<&String> = self.by_stream.keys().collect();
        streams.sort();
        let mut out: Vec<SchemaEntry> = Vec::new();
        for s in streams {
            let m = &self.by_stream[s];
            for f in m.schema() {
                let identity = m.identities.contains(&f.name);
                match out.iter_mut().find(|e| e.name == f.name) {
                    Some(e) => {
                        e.streams.push(s.clone());
                        e.identity |= identity;
                    }
                    None => out.push(SchemaEntry {
                        name: f.name,
                        kind: f.kind,
                        merge_op: merge_op_name(f.merge_op),
                        streams: vec![s.clone()],
                        short_desc: f.short_desc,
                        identity,
                        window: f.window,
                    }),
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

fn merge_op_name(op: MergeOp) -> &'static str {
    op.name()
}
