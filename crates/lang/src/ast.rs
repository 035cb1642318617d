//! The expression tree shared by both languages.
//!
//! A mapping's SELECT items are *value* expressions (fields, literals, function calls); a
//! mapping's WHERE clause and a filter are *boolean* expressions built from the same nodes
//! plus comparisons and logic. One tree keeps the two languages consistent.

use serde::Serialize;

use crate::error::Span;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Literal {
    String(String),
    Int(i64),
    Number(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub enum Expr {
    /// A field reference. `name` is as written; `path` is what is looked up: a bare
    /// `user.address.city` is the path `[user, address, city]`, a backtick name is one segment.
    Field {
        name: String,
        path: Vec<String>,
        span: Span,
    },
    Literal {
        value: Literal,
        span: Span,
    },
    /// `*`, only valid as the argument of `count(*)`; as a filter, `FILTER *` matches all.
    Star {
        span: Span,
    },
    Call {
        name: String,
        args: Vec<Expr>,
        span: Span,
    },
    Not {
        expr: Box<Expr>,
        span: Span,
    },
    And {
        exprs: Vec<Expr>,
        span: Span,
    },
    Or {
        exprs: Vec<Expr>,
        span: Span,
    },
    Compare {
        op: CmpOp,
        left: Box<Expr>,
        right: Box<Expr>,
        span: Span,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        span: Span,
    },
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        span: Span,
    },
    Intersects {
        expr: Box<Expr>,
        list: Vec<Expr>,
        span: Span,
    },
    Contains {
        expr: Box<Expr>,
        value: Box<Expr>,
        span: Span,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        span: Span,
    },
    Exists {
        expr: Box<Expr>,
        span: Span,
    },
    IsNull {
        expr: Box<Expr>,
        span: Span,
    },
    /// `INCLUDE other_audience`: true when the profile is a member of that audience.
    Include {
        name: String,
        span: Span,
    },
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Field { span, .. }
            | Expr::Literal { span, .. }
            | Expr::Star { span }
            | Expr::Call { span, .. }
            | Expr::Not { span, .. }
            | Expr::And { span, .. }
            | Expr::Or { span, .. }
            | Expr::Compare { span, .. }
            | Expr::Between { span, .. }
            | Expr::In { span, .. }
            | Expr::Intersects { span, .. }
            | Expr::Contains { span, .. }
            | Expr::Like { span, .. }
            | Expr::Exists { span, .. }
            | Expr::IsNull { span, .. }
            | Expr::Include { span, .. } => *span,
        }
    }

    /// Calls `f` on this node and every node below it.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Field { .. }
            | Expr::Literal { .. }
            | Expr::Star { .. }
            | Expr::Include { .. } => {}
            Expr::Call { args, .. } => args.iter().for_each(|a| a.walk(f)),
            Expr::Not { expr, .. } | Expr::Exists { expr, .. } | Expr::IsNull { expr, .. } => {
                expr.walk(f)
            }
            Expr::And { exprs, .. } | Expr::Or { exprs, .. } => {
                exprs.iter().for_each(|e| e.walk(f))
            }
            Expr::Compare { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                expr.walk(f);
                low.walk(f);
                high.walk(f);
            }
            Expr::In { expr, list, .. } | Expr::Intersects { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            Expr::Contains { expr, value, .. } => {
                expr.walk(f);
                value.walk(f);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
        }
    }
}
