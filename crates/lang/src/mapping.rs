//! The mapping language: which event fields become which profile fields, how they aggregate,
//! and which fields identify the profile.
//!
//! ```text
//! SELECT
//!     email(email)  AS email        KIND string,
//!     count(*)      AS visit_count  KIND int,
//!     set(page)     AS pages_seen   KIND []string  SHORTDESC "Pages" MERGEOP SET
//! FROM web_events
//! WHERE event != "heartbeat"
//! INTO user BY email OR user_id
//! ALIAS web_events
//! ```
//!
//! Grammar: `SELECT item (',' item)* [','] FROM name [WHERE expr] INTO name BY name
//! ((OR | ',') name)* [ALIAS name] [';']`, where `item := expr [AS name] modifier*` and
//! `modifier := KIND kind | SHORTDESC "text" | LONGDESC "text" | MERGEOP op | IF expr |
//! WINDOW duration` (any
//! order, each at most once). This is LQL's item syntax: a plain field reference names its
//! column without `AS`, and without `KIND` the kind is `string` unless the expression's type
//! is known. An item's expression may be wrapped in one aggregate (`count`, `sum`, `min`,
//! `max`, `set`, `first`, `latest`, `valuect`); without one it is `latest`. The WHERE clause
//! and `IF` conditions use the filter expression syntax and are evaluated against the raw
//! event.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::ast::Expr;
use crate::check::{check, check_arity, Lang};
use crate::error::{ParseError, Span};
use crate::eval::{eval_bool, eval_value, Ctx};
use crate::functions::{Ty, AGGREGATES};
use crate::lexer::{Token, TokenKind};
use crate::parser::{parse_either, Parser};
use crate::value::FieldValue;

/// A profile field's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    String,
    Int,
    Number,
    Bool,
    Date,
    /// Same as [`Kind::Date`]; kept so the schema echoes what was written.
    Time,
    StringList,
    IntList,
    MapString,
    MapInt,
    MapNumber,
    MapTime,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Int => "int",
            Kind::Number => "number",
            Kind::Bool => "bool",
            Kind::Date => "date",
            Kind::Time => "time",
            Kind::StringList => "[]string",
            Kind::IntList => "[]int",
            Kind::MapString => "map[string]string",
            Kind::MapInt => "map[string]int",
            Kind::MapNumber => "map[string]number",
            Kind::MapTime => "map[string]time",
        }
    }

    pub fn is_list(self) -> bool {
        matches!(self, Kind::StringList | Kind::IntList)
    }

    pub fn is_map(self) -> bool {
        matches!(
            self,
            Kind::MapString | Kind::MapInt | Kind::MapNumber | Kind::MapTime
        )
    }

    pub fn is_scalar(self) -> bool {
        !self.is_list() && !self.is_map()
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Kind::Int | Kind::Number)
    }

    /// The element kind of a list or the value kind of a map; itself for scalars.
    pub fn element(self) -> Kind {
        match self {
            Kind::StringList | Kind::MapString => Kind::String,
            Kind::IntList | Kind::MapInt => Kind::Int,
            Kind::MapNumber => Kind::Number,
            Kind::MapTime => Kind::Time,
            k => k,
        }
    }

    /// Converts a value to this kind; `None` when it cannot (or is empty).
    pub fn coerce(self, v: FieldValue) -> Option<FieldValue> {
        match self {
            Kind::String => v
                .as_text()
                .filter(|s| !s.is_empty())
                .map(FieldValue::String),
            Kind::Int => v.as_int().map(FieldValue::Int),
            Kind::Number => v.as_number().map(FieldValue::Number),
            Kind::Bool => v.as_bool().map(FieldValue::Bool),
            Kind::Date | Kind::Time => v.as_date().map(FieldValue::Date),
            Kind::StringList | Kind::IntList => {
                let el = self.element();
                let items: Vec<FieldValue> = match v {
                    FieldValue::List(l) => l.into_iter().filter_map(|x| el.coerce(x)).collect(),
                    FieldValue::Map(_) => Vec::new(),
                    scalar => el.coerce(scalar).into_iter().collect(),
                };
                (!items.is_empty()).then_some(FieldValue::List(items))
            }
            _ => {
                let el = self.element();
                let FieldValue::Map(m) = v else { return None };
                let m: BTreeMap<String, FieldValue> = m
                    .into_iter()
                    .filter_map(|(k, x)| Some((k, el.coerce(x)?)))
                    .collect();
                (!m.is_empty()).then_some(FieldValue::Map(m))
            }
        }
    }

    /// Parses a kind; the flag tells whether it was LQL's `map[string]intsum` (read as
    /// `map[string]int` whose values add up by default).
    fn parse(p: &mut Parser) -> Result<(Kind, Span, bool), ParseError> {
        const EXPECTED: &str = "a kind (string, int, number, bool, date, time, []string, []int, \
                                map[string]string, map[string]int, map[string]number or map[string]time)";
        let t = p.peek().clone();
        let word = |p: &mut Parser| -> Option<String> {
            match &p.peek().kind {
                TokenKind::Ident(s) => {
                    let s = s.to_ascii_lowercase();
                    p.advance();
                    Some(s)
                }
                _ => None,
            }
        };
        let mut intsum = false;
        let kind = match &t.kind {
            TokenKind::LBracket => {
                p.advance();
                if !p.eat(&TokenKind::RBracket) {
                    return Err(p.expected("']'"));
                }
                let at = p.peek().clone();
                match word(p).as_deref() {
                    Some("string") => Kind::StringList,
                    Some("int") => Kind::IntList,
                    _ => {
                        return Err(ParseError::new(
                            at.span,
                            format!("expected string or int after '[]', found {}", at.describe()),
                        ))
                    }
                }
            }
            TokenKind::Ident(s) if s.eq_ignore_ascii_case("map") => {
                p.advance();
                if !p.eat(&TokenKind::LBracket) {
                    return Err(p.expected("'[' after map"));
                }
                if !p.at_word("string") {
                    return Err(p.expected("string (map keys are strings)"));
                }
                p.advance();
                if !p.eat(&TokenKind::RBracket) {
                    return Err(p.expected("']'"));
                }
                let at = p.peek().clone();
                match word(p).as_deref() {
                    Some("string") => Kind::MapString,
                    Some("int") => Kind::MapInt,
                    Some("number") => Kind::MapNumber,
                    Some("time" | "date") => Kind::MapTime,
                    Some("intsum") => {
                        intsum = true;
                        Kind::MapInt
                    }
                    _ => {
                        return Err(ParseError::new(
                            at.span,
                            format!(
                                "expected string, int, intsum, number or time as map value kind, found {}",
                                at.describe()
                            ),
                        ))
                    }
                }
            }
            TokenKind::Ident(s) => {
                let k = match s.to_ascii_lowercase().as_str() {
                    "string" => Kind::String,
                    "int" => Kind::Int,
                    "number" => Kind::Number,
                    "bool" => Kind::Bool,
                    "date" => Kind::Date,
                    "time" => Kind::Time,
                    _ => return Err(p.expected(EXPECTED)),
                };
                p.advance();
                k
            }
            _ => return Err(p.expected(EXPECTED)),
        };
        Ok((kind, t.span, intsum))
    }

    /// The kind an item without `KIND` gets: string (LQL's default) unless the expression's
    /// type is known to be another (`count(*)` is an int, `set(x)` a list, `todate(x)` a date).
    fn infer(agg: Aggregate, ty: &Ty) -> Kind {
        let list_of = |el: &Ty| match el {
            Ty::Int => Kind::IntList,
            _ => Kind::StringList,
        };
        match agg {
            Aggregate::Count => Kind::Int,
            Aggregate::Sum => Kind::Number,
            Aggregate::ValueCount => Kind::MapInt,
            Aggregate::Set => match ty {
                Ty::List(el) => list_of(el),
                el => list_of(el),
            },
            Aggregate::Latest | Aggregate::First | Aggregate::Min | Aggregate::Max => match ty {
                Ty::Any | Ty::String => Kind::String,
                Ty::Int => Kind::Int,
                Ty::Number => Kind::Number,
                Ty::Bool => Kind::Bool,
                Ty::Date => Kind::Date,
                Ty::List(el) => list_of(el),
                Ty::Map(el) => match **el {
                    Ty::Int => Kind::MapInt,
                    Ty::Number => Kind::MapNumber,
                    Ty::Date => Kind::MapTime,
                    _ => Kind::MapString,
                },
            },
        }
    }

    /// Whether the token could start a kind (for "expected KIND" when the keyword is missing).
    fn starts_kind(t: &Token) -> bool {
        const WORDS: [&str; 7] = ["string", "int", "number", "bool", "date", "time", "map"];
        t.kind == TokenKind::LBracket || WORDS.iter().any(|w| t.is_word(w))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// How a field folds the values of many events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// A plain expression: the value of the latest event.
    Latest,
    First,
    Count,
    Sum,
    Min,
    Max,
    Set,
    /// `valuect(x)`: a map of each value of `x` to the number of events that had it.
    ValueCount,
}

impl Aggregate {
    fn from_name(name: &str) -> Option<Aggregate> {
        Some(match name {
            "latest" => Aggregate::Latest,
            "first" => Aggregate::First,
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "set" => Aggregate::Set,
            "valuect" => Aggregate::ValueCount,
            _ => return None,
        })
    }

    /// The merge rule a field gets when no `MERGEOP` is given.
    pub fn default_merge_op(self) -> MergeOp {
        match self {
            Aggregate::Latest => MergeOp::Latest,
            Aggregate::First => MergeOp::Oldest,
            Aggregate::Count => MergeOp::Count,
            Aggregate::Sum => MergeOp::Sum,
            Aggregate::Min => MergeOp::Min,
            Aggregate::Max => MergeOp::Max,
            Aggregate::Set => MergeOp::Set,
            Aggregate::ValueCount => MergeOp::ValueCount,
        }
    }
}

/// How two states of a field combine (see [`crate::merge`]). For map kinds the rule applies
/// key by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeOp {
    Latest,
    Oldest,
    Sum,
    Count,
    Min,
    Max,
    Set,
    /// Adds counts key by key: the rule of `valuect()` fields (a map of value → count).
    /// Not selectable with `MERGEOP`; `MERGEOP SUM` on a `map[string]int` adds too.
    ValueCount,
}

impl MergeOp {
    fn from_name(name: &str) -> Option<MergeOp> {
        Some(match name.to_ascii_uppercase().as_str() {
            "LATEST" => MergeOp::Latest,
            "OLDEST" => MergeOp::Oldest,
            "SUM" => MergeOp::Sum,
            "COUNT" => MergeOp::Count,
            "MIN" => MergeOp::Min,
            "MAX" => MergeOp::Max,
            "SET" => MergeOp::Set,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            MergeOp::Latest => "LATEST",
            MergeOp::Oldest => "OLDEST",
            MergeOp::Sum => "SUM",
            MergeOp::Count => "COUNT",
            MergeOp::Min => "MIN",
            MergeOp::Max => "MAX",
            MergeOp::Set => "SET",
            MergeOp::ValueCount => "VALUECT",
        }
    }
}

/// `WINDOW <duration>`: a `count`, `sum`, `min`, `max` or `set` column over the events of
/// the last `seconds` only, kept as time buckets keyed by event time (see
/// [`crate::merge::FieldState::Window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Window {
    /// The window's length.
    pub seconds: i64,
    /// One bucket's length: a day for windows of 2 days or more, else an hour.
    pub bucket_seconds: i64,
}

/// Windows shorter than this are kept in hourly buckets, longer ones in daily buckets.
pub const DAILY_BUCKETS_FROM: i64 = 2 * 86_400;
/// The longest window: bounds the buckets a profile keeps per field.
pub const MAX_WINDOW: i64 = 366 * 86_400;

impl Window {
    /// Checks a window's length: at least an hour, at most [`MAX_WINDOW`], whole hours below
    /// two days and whole days from there.
    pub fn new(seconds: i64) -> Result<Window, String> {
        if seconds < 3600 {
            return Err("WINDOW must be at least 1h".into());
        }
        if seconds > MAX_WINDOW {
            return Err("WINDOW can be at most 366d".into());
        }
        let bucket_seconds = if seconds >= DAILY_BUCKETS_FROM {
            86_400
        } else {
            3600
        };
        if seconds % bucket_seconds != 0 {
            return Err(if bucket_seconds == 3600 {
                "a WINDOW under 2d must be whole hours (it is kept in hourly buckets)".into()
            } else {
                "a WINDOW of 2d or more must be whole days (it is kept in daily buckets)".into()
            });
        }
        Ok(Window {
            seconds,
            bucket_seconds,
        })
    }

    /// Buckets the window covers.
    pub fn buckets(self) -> u32 {
        (self.seconds / self.bucket_seconds) as u32
    }

    /// The length as written in a mapping: `30d`, `36h`.
    pub fn text(self) -> String {
        if self.bucket_seconds == 86_400 {
            format!("{}d", self.seconds / 86_400)
        } else {
            format!("{}h", self.seconds / 3600)
        }
    }
}

/// One SELECT item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDef {
    /// The profile field (the `AS` name).
    pub name: String,
    /// The expression inside the aggregate (`Expr::Star` for `count(*)`).
    pub expr: Expr,
    pub aggregate: Aggregate,
    pub kind: Kind,
    /// Explicit `MERGEOP`, or the aggregate's default.
    pub merge_op: MergeOp,
    pub short_desc: Option<String>,
    /// `LONGDESC "text"`.
    pub long_desc: Option<String>,
    /// `IF expr`: the field takes a value from an event only when this holds for the event.
    pub condition: Option<Expr>,
    /// `WINDOW 30d`: only the events of the last 30 days count (by event time).
    pub window: Option<Window>,
    /// Where the item starts.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mapping {
    pub fields: Vec<FieldDef>,
    /// The source stream (`FROM`).
    pub from: String,
    /// The profile type (`INTO`), e.g. `user`.
    pub into: String,
    /// The identity fields (`BY a OR b`), in order of preference.
    pub identities: Vec<String>,
    pub alias: Option<String>,
    /// `WHERE`: events for which it is false are skipped.
    pub filter: Option<Expr>,
}

/// What one event contributes to a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappedEvent {
    /// `(identity field, value)` for each BY field that produced a value, in BY order.
    pub identities: Vec<(String, String)>,
    /// Only the fields that produced a value, already converted to their KIND.
    pub values: BTreeMap<String, FieldValue>,
}

/// One row of [`Mapping::schema`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaField {
    pub name: String,
    pub kind: Kind,
    pub merge_op: MergeOp,
    /// The source stream (`FROM`).
    pub stream: String,
    pub short_desc: Option<String>,
    pub long_desc: Option<String>,
    /// `WINDOW` as written (`30d`), for windowed fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

impl Mapping {
    /// Maps one event. `None` when the WHERE clause rejects it.
    pub fn apply(
        &self,
        event: &Map<String, Value>,
        event_time: DateTime<Utc>,
    ) -> Option<MappedEvent> {
        let ctx = Ctx {
            root: event,
            now: event_time,
            includes: None,
        };
        if let Some(f) = &self.filter {
            if !eval_bool(f, &ctx) {
                return None;
            }
        }
        let mut values = BTreeMap::new();
        for f in &self.fields {
            if let Some(condition) = &f.condition {
                if !eval_bool(condition, &ctx) {
                    continue;
                }
            }
            let v = match (f.aggregate, &f.expr) {
                (Aggregate::Count, Expr::Star { .. }) => Some(FieldValue::Int(1)),
                (Aggregate::Count, e) => eval_value(e, &ctx)
                    .filter(|v| !v.is_empty())
                    .map(|_| FieldValue::Int(1)),
                (Aggregate::ValueCount, e) => eval_value(e, &ctx).and_then(count_values),
                (_, e) => eval_value(e, &ctx),
            };
            if let Some(v) = v.and_then(|v| f.kind.coerce(v)) {
                values.insert(f.name.clone(), v);
            }
        }
        let identities = self
            .identities
            .iter()
            .filter_map(|id| Some((id.clone(), values.get(id)?.as_text()?)))
            .collect();
        Some(MappedEvent { identities, values })
    }

    /// The profile fields this mapping writes.
    pub fn schema(&self) -> Vec<SchemaField> {
        self.fields
            .iter()
            .map(|f| SchemaField {
                name: f.name.clone(),
                kind: f.kind,
                merge_op: f.merge_op,
                stream: self.from.clone(),
                short_desc: f.short_desc.clone(),
                long_desc: f.long_desc.clone(),
                window: f.window.map(Window::text),
            })
            .collect()
    }

    /// The names of this mapping's windowed fields: their values change as time passes.
    pub fn windowed_fields(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|f| f.window.is_some())
            .map(|f| f.name.as_str())
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One event's contribution to a `valuect()` field: each value (each element of a list)
/// counted once per occurrence.
fn count_values(v: FieldValue) -> Option<FieldValue> {
    let items = match v {
        FieldValue::List(items) => items,
        FieldValue::Map(_) => return None,
        scalar => vec![scalar],
    };
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for text in items.iter().filter_map(FieldValue::as_text) {
        if !text.is_empty() {
            *counts.entry(text).or_default() += 1;
        }
    }
    (!counts.is_empty()).then(|| {
        FieldValue::Map(
            counts
                .into_iter()
                .map(|(k, n)| (k, FieldValue::Int(n)))
                .collect(),
        )
    })
}

/// Parses and checks a mapping (functions, arity, KIND against the expression, MERGEOP
/// against KIND, BY fields).
pub fn parse_mapping(text: &str) -> Result<Mapping, ParseError> {
    parse_either(text, parse_mapping_from)
}

fn parse_mapping_from(p: &mut Parser) -> Result<Mapping, ParseError> {
    p.expect_word("SELECT", "SELECT")?;
    let mut fields: Vec<FieldDef> = Vec::new();
    let mut names = HashSet::new();
    loop {
        if !fields.is_empty() && p.at_word("FROM") {
            break;
        }
        let (field, expected_after) = parse_item(p)?;
        if !names.insert(field.name.clone()) {
            return Err(ParseError::new(
                field.span,
                format!("field '{}' is defined more than once", field.name),
            ));
        }
        fields.push(field);
        if p.eat(&TokenKind::Comma) {
            continue;
        }
        if p.at_word("FROM") {
            break;
        }
        return Err(p.expected(&expected_after));
    }
    p.expect_word("FROM", "FROM")?;
    let (from, _, _) = p.name("a stream name after FROM", &["WHERE", "INTO"])?;
    let filter = if p.eat_word("WHERE") {
        let e = p.parse_or()?;
        check(&e, Lang::Mapping)?;
        Some(e)
    } else {
        None
    };
    if !p.at_word("INTO") {
        return Err(p.expected(match (&filter, p.last_was_bare) {
            (None, _) => "WHERE or INTO",
            (Some(_), true) => "an operator, AND, OR or INTO",
            (Some(_), false) => "AND, OR or INTO",
        }));
    }
    p.advance();
    let (into, _, _) = p.name("a profile type after INTO", &["BY"])?;
    p.expect_word("BY", "BY")?;
    let mut identities = Vec::new();
    loop {
        let (id, span, _) = p.name("an identity field name", &["ALIAS", "OR"])?;
        let Some(def) = fields.iter().find(|f| f.name == id) else {
            return Err(ParseError::new(
                span,
                format!("BY field '{id}' is not defined in the SELECT list"),
            ));
        };
        if !matches!(def.kind, Kind::String | Kind::Int) {
            return Err(ParseError::new(
                span,
                format!(
                    "BY field '{id}' must be KIND string or int, not {}",
                    def.kind
                ),
            ));
        }
        if identities.contains(&id) {
            return Err(ParseError::new(
                span,
                format!("BY field '{id}' is listed twice"),
            ));
        }
        identities.push(id);
        if !(p.eat_word("OR") || p.eat(&TokenKind::Comma)) {
            break;
        }
    }
    let alias = if p.eat_word("ALIAS") {
        Some(p.name("a name after ALIAS", &[])?.0)
    } else {
        None
    };
    p.eat(&TokenKind::Semicolon);
    if !p.at_end() {
        return Err(p.expected(if alias.is_some() {
            "end of input"
        } else {
            "OR, ALIAS or end of input"
        }));
    }
    Ok(Mapping {
        fields,
        from,
        into,
        identities,
        alias,
        filter,
    })
}

/// The words that may follow an item's expression and name, in any order, each at most once.
const MODIFIERS: [&str; 6] = ["KIND", "SHORTDESC", "LONGDESC", "MERGEOP", "IF", "WINDOW"];

fn at_modifier(p: &Parser) -> bool {
    MODIFIERS.iter().any(|m| p.at_word(m))
}

/// A string literal after `SHORTDESC` / `LONGDESC`, given at most once.
fn parse_desc(p: &mut Parser, word: &str, slot: &mut Option<String>) -> Result<(), ParseError> {
    let at = p.advance().span;
    if slot.is_some() {
        return Err(ParseError::new(at, format!("{word} given twice")));
    }
    match &p.peek().kind {
        TokenKind::Str(s) => {
            *slot = Some(s.clone());
            p.advance();
            Ok(())
        }
        _ => Err(p.expected(&format!("a string after {word}"))),
    }
}

/// Parses one SELECT item: `expr [AS name] modifier*` (a plain field reference names its
/// column itself). Also returns what could have followed it, for the error message when
/// neither a `,` nor `FROM` does.
fn parse_item(p: &mut Parser) -> Result<(FieldDef, String), ParseError> {
    let span = p.peek().span;
    let full = p.parse_or()?;
    let mut bare = p.last_was_bare;
    let explicit_name = p.eat_word("AS");
    let name = if explicit_name {
        // A modifier word is the name only where a name must be (`AS kind KIND string`).
        let next = p.peek_at(1);
        let name_ends_item = next.kind == TokenKind::Comma
            || next.kind == TokenKind::Eof
            || next.is_word("FROM")
            || MODIFIERS.iter().any(|m| next.is_word(m));
        if at_modifier(p) && !name_ends_item {
            return Err(p.expected("a field name after AS"));
        }
        let (name, name_span, _) = p.name("a field name after AS", &[])?;
        if name.contains('.') {
            return Err(ParseError::new(
                name_span,
                format!("field name '{name}' cannot contain '.'"),
            ));
        }
        bare = false;
        name
    } else {
        match &full {
            Expr::Field { name, span: at, .. } => {
                if name.contains('.') {
                    return Err(ParseError::new(
                        *at,
                        format!("field name '{name}' cannot contain '.'; name the column with AS"),
                    ));
                }
                name.clone()
            }
            _ => {
                return Err(p.expected(if bare { "an operator or AS" } else { "AS" }));
            }
        }
    };

    let mut kind = None;
    let mut short_desc = None;
    let mut long_desc = None;
    let mut merge = None;
    let mut condition = None;
    let mut window: Option<(i64, Span)> = None;
    let mut any_modifier = false;
    loop {
        if p.at_word("KIND") {
            let at = p.advance().span;
            if kind.is_some() {
                return Err(ParseError::new(at, "KIND given twice"));
            }
            kind = Some(Kind::parse(p)?);
        } else if p.at_word("SHORTDESC") {
            parse_desc(p, "SHORTDESC", &mut short_desc)?;
        } else if p.at_word("LONGDESC") {
            parse_desc(p, "LONGDESC", &mut long_desc)?;
        } else if p.at_word("MERGEOP") {
            let at = p.advance().span;
            if merge.is_some() {
                return Err(ParseError::new(at, "MERGEOP given twice"));
            }
            let t = p.peek().clone();
            let op = match &t.kind {
                TokenKind::Ident(s) => MergeOp::from_name(s),
                _ => None,
            };
            let Some(op) = op else {
                return Err(p.expected("LATEST, OLDEST, SUM, COUNT, MIN, MAX or SET"));
            };
            p.advance();
            merge = Some((op, t.span));
        } else if p.at_word("WINDOW") {
            let at = p.advance().span;
            if window.is_some() {
                return Err(ParseError::new(at, "WINDOW given twice"));
            }
            let t = p.peek().clone();
            let TokenKind::Duration(secs, _) = t.kind else {
                return Err(p.expected("a duration after WINDOW (e.g. 30d, 12h)"));
            };
            p.advance();
            window = Some((secs, t.span));
        } else if p.at_word("IF") {
            let at = p.advance().span;
            if condition.is_some() {
                return Err(ParseError::new(at, "IF given twice"));
            }
            let e = p.parse_or()?;
            check(&e, Lang::Mapping)?;
            condition = Some(e);
            any_modifier = true;
            bare = p.last_was_bare;
            continue;
        } else {
            break;
        }
        any_modifier = true;
        bare = false;
    }
    let expected_after = if kind.is_none() && Kind::starts_kind(p.peek()) {
        "KIND".to_string()
    } else {
        let mut after = Vec::new();
        if bare {
            after.push("an operator");
        }
        if !explicit_name && !any_modifier {
            after.push("AS");
        }
        after.push("','");
        let given = [
            kind.is_some(),
            short_desc.is_some(),
            long_desc.is_some(),
            merge.is_some(),
            condition.is_some(),
            window.is_some(),
        ];
        after.extend(
            MODIFIERS
                .iter()
                .zip(given)
                .filter(|(_, g)| !g)
                .map(|(m, _)| *m),
        );
        format!("{} or FROM", after.join(", "))
    };

    // Peel off the aggregate, then check the inner expression and the KIND.
    let (aggregate, expr) = match &full {
        Expr::Call {
            name,
            args,
            span: call_span,
        } if AGGREGATES.contains(&name.as_str()) => {
            check_arity(name, 1, Some(1), args.len(), *call_span)?;
            let agg = Aggregate::from_name(name).expect("listed aggregate");
            (agg, args[0].clone())
        }
        _ => (Aggregate::Latest, full.clone()),
    };
    let ty = match (&expr, aggregate) {
        (Expr::Star { .. }, Aggregate::Count) => Ty::Int,
        _ => check(&expr, Lang::Mapping)?,
    };
    let (kind, kind_span, intsum) = kind.unwrap_or((Kind::infer(aggregate, &ty), span, false));
    check_kind(aggregate, &ty, kind).map_err(|m| ParseError::new(kind_span, m))?;
    let merge_op = match merge {
        Some((op, at)) => {
            check_merge_op(op, kind).map_err(|m| ParseError::new(at, m))?;
            op
        }
        // LQL's intsum: a plain value adds up, as sum() would.
        None if intsum && aggregate == Aggregate::Latest => MergeOp::Sum,
        None => aggregate.default_merge_op(),
    };
    let window = match window {
        Some((secs, at)) => {
            check_window(aggregate, kind, merge.map(|(op, _)| op))
                .map_err(|m| ParseError::new(at, m))?;
            Some(Window::new(secs).map_err(|m| ParseError::new(at, m))?)
        }
        None => None,
    };
    Ok((
        FieldDef {
            name,
            expr,
            aggregate,
            kind,
            merge_op,
            short_desc,
            long_desc,
            condition,
            window,
            span,
        },
        expected_after,
    ))
}

/// Whether a value of static type `ty` can be stored as `kind`.
fn fits(ty: &Ty, kind: Kind) -> bool {
    match ty {
        Ty::Any => true,
        Ty::String => kind == Kind::String,
        Ty::Int => matches!(kind, Kind::Int | Kind::Number | Kind::String),
        Ty::Number => matches!(kind, Kind::Number | Kind::String),
        Ty::Bool => matches!(kind, Kind::Bool | Kind::String),
        Ty::Date => matches!(kind, Kind::Date | Kind::Time),
        Ty::List(el) => kind.is_list() && fits(el, kind.element()),
        Ty::Map(el) => kind.is_map() && fits(el, kind.element()),
    }
}

fn check_kind(agg: Aggregate, ty: &Ty, kind: Kind) -> Result<(), String> {
    match agg {
        Aggregate::Count if !kind.is_numeric() => Err(format!(
            "count() produces an int; KIND must be int or number, not {kind}"
        )),
        Aggregate::Count => Ok(()),
        Aggregate::Sum if !kind.is_numeric() => Err(format!(
            "sum() produces a number; KIND must be int or number, not {kind}"
        )),
        Aggregate::Sum if !matches!(ty, Ty::Any | Ty::Int | Ty::Number) => Err(format!(
            "sum() needs a numeric value, but its argument produces {}",
            ty.name()
        )),
        Aggregate::Sum => Ok(()),
        Aggregate::Set if !kind.is_list() => Err(format!(
            "set() produces a list; KIND must be []string or []int, not {kind}"
        )),
        Aggregate::Set => {
            let ok = match ty {
                Ty::List(el) => fits(el, kind.element()),
                Ty::Map(_) => false,
                scalar => fits(scalar, kind.element()),
            };
            if ok {
                Ok(())
            } else {
                Err(format!("set() of {} does not fit KIND {kind}", ty.name()))
            }
        }
        Aggregate::ValueCount if kind != Kind::MapInt => Err(format!(
            "valuect() produces a map of counts; KIND must be map[string]int, not {kind}"
        )),
        Aggregate::ValueCount if matches!(ty, Ty::Map(_)) => Err(format!(
            "valuect() counts values, but its argument produces {}",
            ty.name()
        )),
        Aggregate::ValueCount => Ok(()),
        Aggregate::Min | Aggregate::Max if !kind.is_scalar() && !kind.is_map() => Err(format!(
            "{}() needs a single-valued KIND, not {kind}",
            if agg == Aggregate::Min { "min" } else { "max" }
        )),
        _ => {
            if fits(ty, kind) {
                Ok(())
            } else {
                Err(format!(
                    "the expression produces {}, which does not fit KIND {kind}",
                    ty.name()
                ))
            }
        }
    }
}

/// Whether an item may take `WINDOW`: `count`, `sum`, `min`, `max`, `set`, of a single value
/// or a list, merged by the aggregate's own rule (buckets add up bucket by bucket).
fn check_window(agg: Aggregate, kind: Kind, merge: Option<MergeOp>) -> Result<(), String> {
    let name = match agg {
        Aggregate::Count => "count",
        Aggregate::Sum => "sum",
        Aggregate::Min => "min",
        Aggregate::Max => "max",
        Aggregate::Set => "set",
        Aggregate::Latest | Aggregate::First | Aggregate::ValueCount => {
            return Err(
                "WINDOW needs count(), sum(), min(), max() or set() around the expression".into(),
            )
        }
    };
    if kind.is_map() {
        return Err(format!("a windowed {name}() cannot be KIND {kind}"));
    }
    match merge {
        Some(op) if op != agg.default_merge_op() => Err(format!(
            "MERGEOP {} cannot be used with WINDOW: windowed {name}() buckets merge by {}",
            op.name(),
            agg.default_merge_op().name()
        )),
        _ => Ok(()),
    }
}

fn check_merge_op(op: MergeOp, kind: Kind) -> Result<(), String> {
    let ok = match op {
        MergeOp::Latest | MergeOp::Oldest => true,
        MergeOp::Sum | MergeOp::Count => {
            kind.is_numeric() || matches!(kind, Kind::MapInt | Kind::MapNumber)
        }
        MergeOp::Min | MergeOp::Max => !kind.is_list(),
        MergeOp::Set => kind.is_list(),
        MergeOp::ValueCount => kind == Kind::MapInt,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "MERGEOP {} cannot be used with KIND {kind}",
            op.name()
        ))
    }
}
