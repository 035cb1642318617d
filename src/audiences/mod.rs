//! Audiences: compiled filters, INCLUDE ordering and cycle checks, and the membership engine
//! that turns profile changes into memberships and entry/exit changes (the outbox).
//!
//! Audiences are evaluated in dependency order (an INCLUDEd audience before the audiences that
//! include it), so `INCLUDE x` always sees `x`'s new membership for the same profile.

pub mod engine;

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tributary_lang::{parse_filter, Filter, ParseError};

use crate::store::Audience;

/// Why an audience definition was refused.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("the filter INCLUDEs {0:?}, which is not an audience")]
    UnknownInclude(String),
    #[error("INCLUDE cycle: {0}")]
    Cycle(String),
    #[error("audience {slug:?} is INCLUDEd by {by}; change or delete those first")]
    Included { slug: String, by: String },
}

/// One audience with its parsed filter and what it reads.
#[derive(Debug, Clone)]
pub struct CompiledAudience {
    pub audience: Audience,
    /// `audience.id`, shared by the member lists that name it.
    pub key: Arc<str>,
    pub filter: Filter,
    pub fields: BTreeSet<String>,
    /// Indices (into [`AudienceSet::list`]) of the audiences it INCLUDEs.
    pub includes: Vec<usize>,
    pub time_relative: bool,
}

/// Every audience, in dependency order (INCLUDEd ones first).
#[derive(Debug, Clone, Default)]
pub struct AudienceSet {
    pub list: Vec<CompiledAudience>,
    by_slug: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
    /// field -> audiences reading it directly.
    by_field: HashMap<String, Vec<usize>>,
}

/// A membership vector: `member[i]` for audience `list[i]`.
pub type Members = Vec<bool>;

impl AudienceSet {
    /// Compiles stored audiences. A stored filter that no longer parses or an INCLUDE of a
    /// missing audience makes that audience match nobody (logged), never stops the others.
    pub fn new(audiences: Vec<Audience>) -> Result<AudienceSet, AudienceError> {
        let mut parsed = Vec::with_capacity(audiences.len());
        for a in audiences {
            let filter = match parse_filter(&a.filter) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(audience = %a.slug, error = %e, "stored audience filter does not parse; it matches nobody");
                    parse_filter("EXISTS `__never__` AND NOT EXISTS `__never__`")
                        .expect("a constant filter parses")
                }
            };
            parsed.push((a, filter));
        }
        let order = topo_order(&parsed)?;
        let mut list: Vec<CompiledAudience> = Vec::with_capacity(parsed.len());
        let mut by_slug = HashMap::new();
        let mut slots: Vec<Option<(Audience, Filter)>> = parsed.into_iter().map(Some).collect();
        for i in order {
            let (audience, filter) = slots[i].take().expect("each index once");
            let includes = filter
                .includes()
                .iter()
                .filter_map(|s| by_slug.get(s).copied())
                .collect();
            by_slug.insert(audience.slug.clone(), list.len());
            list.push(CompiledAudience {
                key: Arc::from(audience.id.as_str()),
                fields: filter.fields_read(),
                time_relative: filter.is_time_relative(),
                includes,
                filter,
                audience,
            });
        }
        let by_id = list
            .iter()
            .enumerate()
            .map(|(i, a)| (a.audience.id.clone(), i))
            .collect();
        let mut by_field: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, a) in list.iter().enumerate() {
            for f in &a.fields {
                by_field.entry(f.clone()).or_default().push(i);
            }
        }
        Ok(AudienceSet {
            list,
            by_slug,
            by_id,
            by_field,
        })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn index_of_id(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn index_of_slug(&self, slug: &str) -> Option<usize> {
        self.by_slug.get(slug).copied()
    }

    /// Checks that `audience` (new, or replacing the one with its slug) parses, INCLUDEs only
    /// existing audiences and closes no INCLUDE cycle. Returns the parsed filter.
    pub fn check(&self, audience: &Audience) -> Result<Filter, AudienceError> {
        let filter = parse_filter(&audience.filter)?;
        for inc in filter.includes() {
            if inc != audience.slug && !self.by_slug.contains_key(&inc) {
                return Err(AudienceError::UnknownInclude(inc));
            }
        }
        // The checked audience first, so a cycle is reported starting from it.
        let all: Vec<(Audience, Filter)> = std::iter::once((audience.clone(), filter.clone()))
            .chain(
                self.list
                    .iter()
                    .filter(|a| a.audience.slug != audience.slug)
                    .map(|a| (a.audience.clone(), a.filter.clone())),
            )
            .collect();
        topo_order(&all)?;
        Ok(filter)
    }

    /// Refuses deleting an audience others INCLUDE.
    pub fn check_delete(&self, slug: &str) -> Result<(), AudienceError> {
        let by: Vec<&str> = self
            .list
            .iter()
            .filter(|a| a.filter.includes().contains(slug))
            .map(|a| a.audience.slug.as_str())
            .collect();
        if by.is_empty() {
            Ok(())
        } else {
            Err(AudienceError::Included {
                slug: slug.to_owned(),
                by: by.join(", "),
            })
        }
    }

    /// The audiences to evaluate after `changed` fields changed: those reading one of them,
    /// and (transitively) those INCLUDing an affected one.
    pub fn affected_by<'a>(&self, changed: impl IntoIterator<Item = &'a String>) -> Vec<bool> {
        let mut out = vec![false; self.list.len()];
        for f in changed {
            if let Some(ids) = self.by_field.get(f) {
                for &i in ids {
                    out[i] = true;
                }
            }
        }
        self.close_over_includes(&mut out);
        out
    }

    /// Marks audiences including a marked one (the list is in dependency order).
    pub fn close_over_includes(&self, marked: &mut [bool]) {
        for (i, a) in self.list.iter().enumerate() {
            if !marked[i] && a.includes.iter().any(|&j| marked[j]) {
                marked[i] = true;
            }
        }
    }

    /// New memberships of a profile (its fields object): `old` for audiences not `affected`,
    /// a fresh evaluation for the others.
    pub fn evaluate(
        &self,
        profile: &Value,
        old: &[bool],
        affected: &[bool],
        now: DateTime<Utc>,
    ) -> Members {
        let mut new = old.to_vec();
        for (i, a) in self.list.iter().enumerate() {
            if !affected[i] {
                continue;
            }
            let m = {
                let current = &new;
                let includes = |slug: &str| {
                    self.by_slug
                        .get(slug)
                        .is_some_and(|&j| j < current.len() && current[j])
                };
                a.filter.matches(profile, now, &includes)
            };
            new[i] = m;
        }
        new
    }
}

/// Indices in dependency order; an error naming the cycle when there is one. INCLUDEs of
/// unknown audiences are ignored here (they match nothing).
fn topo_order(all: &[(Audience, Filter)]) -> Result<Vec<usize>, AudienceError> {
    let index: HashMap<&str, usize> = all
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (a.slug.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = all
        .iter()
        .map(|(_, f)| {
            f.includes()
                .iter()
                .filter_map(|s| index.get(s.as_str()).copied())
                .collect()
        })
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark = vec![0u8; all.len()];
    let mut order = Vec::with_capacity(all.len());
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        mark: &mut [u8],
        order: &mut Vec<usize>,
        stack: &mut Vec<usize>,
        all: &[(Audience, Filter)],
    ) -> Result<(), AudienceError> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let from = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut names: Vec<&str> = stack[from..]
                    .iter()
                    .map(|&s| all[s].0.slug.as_str())
                    .collect();
                names.push(all[i].0.slug.as_str());
                return Err(AudienceError::Cycle(names.join(" → ")));
            }
            _ => {}
        }
        mark[i] = 1;
        stack.push(i);
        for &d in &deps[i] {
            visit(d, deps, mark, order, stack, all)?;
        }
        stack.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..all.len() {
        visit(i, &deps, &mut mark, &mut order, &mut stack, all)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn aud(slug: &str, filter: &str) -> Audience {
        Audience {
            id: format!("id-{slug}"),
            slug: slug.into(),
            name: slug.into(),
            description: String::new(),
            filter: filter.into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn includes_are_evaluated_after_what_they_include() {
        let set = AudienceSet::new(vec![
            aud("big", "INCLUDE vip AND visits > 1"),
            aud("vip", "spent >= 100"),
        ])
        .unwrap();
        assert_eq!(set.list[0].audience.slug, "vip");
        let all = vec![true; 2];
        let m = set.evaluate(
            &json!({"spent": 150, "visits": 2}),
            &[false, false],
            &all,
            Utc::now(),
        );
        assert_eq!(m, [true, true]);
        let m = set.evaluate(
            &json!({"spent": 50, "visits": 2}),
            &[true, true],
            &all,
            Utc::now(),
        );
        assert_eq!(m, [false, false]);
    }

    #[test]
    fn only_audiences_reading_changed_fields_are_affected() {
        let set = AudienceSet::new(vec![
            aud("a", "visits > 1"),
            aud("b", "country = \"us\""),
            aud("c", "INCLUDE a"),
        ])
        .unwrap();
        let affected = set.affected_by(&["visits".to_string()]);
        let slugs: Vec<&str> = set
            .list
            .iter()
            .zip(&affected)
            .filter(|(_, &x)| x)
            .map(|(a, _)| a.audience.slug.as_str())
            .collect();
        assert_eq!(slugs, ["a", "c"]);
        // Unaffected audiences keep their old membership even when they would now differ.
        let idx_b = set.index_of_slug("b").unwrap();
        let mut old_by_index = vec![false; 3];
        old_by_index[idx_b] = true;
        let m = set.evaluate(&json!({"visits": 5}), &old_by_index, &affected, Utc::now());
        assert!(m[idx_b]);
        assert!(m[set.index_of_slug("a").unwrap()]);
        assert!(m[set.index_of_slug("c").unwrap()]);
    }

    #[test]
    fn cycles_and_unknown_includes_are_refused() {
        let set = AudienceSet::new(vec![aud("a", "INCLUDE b"), aud("b", "x > 1")]).unwrap();
        let err = set.check(&aud("b", "INCLUDE a")).unwrap_err();
        assert_eq!(err.to_string(), "INCLUDE cycle: b → a → b");
        let err = set.check(&aud("c", "INCLUDE c")).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
        let err = set.check(&aud("d", "INCLUDE nope")).unwrap_err();
        assert!(matches!(err, AudienceError::UnknownInclude(_)));
        assert!(set.check(&aud("d", "INCLUDE a OR INCLUDE b")).is_ok());
        assert!(set.check_delete("b").is_err());
        assert!(set.check_delete("a").is_ok());
        let err = set.check(&aud("e", "x >")).unwrap_err();
        assert!(err.to_string().starts_with("line 1, column"), "{err}");
    }
}
