//! The shared recursive-descent parser core: a token cursor and the expression grammar.
//!
//! Hand-written recursive descent (rather than a parser generator) so that every error names
//! the exact line and column of the offending token and what was expected there, and so that
//! keywords stay contextual (`count`, `map`, `set` are function names *and* valid field names).
//!
//! Expression grammar (lowest precedence first):
//! ```text
//! or        := and ( (OR | '||') and )*
//! and       := unary ( (AND | '&&') unary )*
//! unary     := (NOT | '!') unary | primary
//! primary   := (AND | OR) '(' or (',' or)* [','] ')'     -- FilterQL list form
//!            | '(' or ')'
//!            | EXISTS value | INCLUDE name
//!            | value [ ('='|'=='|'!='|'<>'|'<'|'<='|'>'|'>=') value
//!                    | [NOT] IN '(' values ')' | [NOT] INTERSECTS '(' values ')'
//!                    | [NOT] CONTAINS value | [NOT] LIKE value
//!                    | [NOT] BETWEEN value AND value | IS [NOT] NULL ]
//! value     := literal | '-' number | '*' | name '(' [args] ')' | name | `quoted name`
//! ```
//!
//! FilterQL also separates list-form arguments with line breaks alone (`AND (` then one
//! condition per line). That reading is [`ListStyle::CommasOrLines`], and [`parse_either`]
//! tries it only when the comma-only grammar fails, so a text accepted by the comma grammar
//! keeps its meaning (there, a line starting with `AND (` continues the previous condition).

use crate::ast::{CmpOp, Expr, Literal};
use crate::error::{ParseError, Span};
use crate::lexer::{tokenize, Token, TokenKind};

/// Words that cannot be bare field names (use backticks for such a field).
/// Other keywords (`KIND`, `BY`, `SHORTDESC`, `MERGEOP`) only matter where a value cannot
/// be, so `kind` or `by` stay valid field names; names after `AS`, `BY`, `FROM`, `INTO`,
/// `ALIAS` and `INCLUDE` may be any identifier.
pub const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "INTO",
    "AS",
    "ALIAS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "CONTAINS",
    "BETWEEN",
    "IS",
    "NULL",
    "EXISTS",
    "INCLUDE",
    "INTERSECTS",
    "FILTER",
    "TRUE",
    "FALSE",
];

/// Deepest nesting accepted, so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

pub fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

/// Whether an expression can start with this token.
fn starts_expression(t: &Token) -> bool {
    const STARTERS: [&str; 8] = [
        "NOT", "EXISTS", "INCLUDE", "AND", "OR", "TRUE", "FALSE", "NULL",
    ];
    match &t.kind {
        TokenKind::Ident(s) => {
            !is_reserved(s) || STARTERS.iter().any(|w| w.eq_ignore_ascii_case(s))
        }
        TokenKind::QuotedIdent(_)
        | TokenKind::Str(_)
        | TokenKind::Int(_)
        | TokenKind::Number(_)
        | TokenKind::Minus
        | TokenKind::LParen
        | TokenKind::Bang
        | TokenKind::Star => true,
        _ => false,
    }
}

/// What separates the arguments of the list forms `AND ( … )` and `OR ( … )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStyle {
    /// Commas only.
    Commas,
    /// Commas or line breaks (FilterQL's style). A line that starts with `AND (` or `OR (`
    /// inside a list starts the next argument rather than continuing the previous one.
    CommasOrLines,
}

/// Parses `text` with `parse` in the comma-only style, and when that fails, in the style
/// that also lets line breaks separate list arguments. When both fail, the error found
/// further into the text is reported, so a mistake after a FilterQL-style list is still
/// pointed at precisely. On a tie the line style's wins: it differs from the comma style's
/// only when it read past a line break the comma style stopped at (`unknown function 'x'`
/// rather than `expected ',' or ')', found 'x'`).
pub fn parse_either<T>(
    text: &str,
    parse: impl Fn(&mut Parser) -> Result<T, ParseError>,
) -> Result<T, ParseError> {
    let strict = Parser::with_style(text, ListStyle::Commas).and_then(|mut p| parse(&mut p));
    let Err(strict_err) = strict else {
        return strict;
    };
    match Parser::with_style(text, ListStyle::CommasOrLines).and_then(|mut p| parse(&mut p)) {
        Ok(v) => Ok(v),
        Err(lines_err) if lines_err.span() >= strict_err.span() => Err(lines_err),
        Err(_) => Err(strict_err),
    }
}

pub struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    style: ListStyle,
    /// Whether the innermost construct being parsed is an argument of a list form (not a
    /// parenthesized group or function arguments inside one).
    in_list: bool,
    /// Whether the last predicate parsed was a bare value (so an operator could have followed).
    pub last_was_bare: bool,
}

impl Parser {
    /// A parser of the comma-only style.
    pub fn new(text: &str) -> Result<Self, ParseError> {
        Self::with_style(text, ListStyle::Commas)
    }

    pub fn with_style(text: &str, style: ListStyle) -> Result<Self, ParseError> {
        Ok(Parser {
            tokens: tokenize(text)?,
            pos: 0,
            depth: 0,
            style,
            in_list: false,
            last_was_bare: false,
        })
    }

    /// Whether the previous token is the last on its line (see [`Token::newline_before`]).
    pub fn at_line_start(&self) -> bool {
        self.peek().newline_before
    }

    /// Whether the next tokens start a new list argument rather than continue an infix
    /// `AND`/`OR`: a line starting with `AND (` or `OR (`, in the line-separated style.
    fn at_list_item_start(&self) -> bool {
        self.style == ListStyle::CommasOrLines
            && self.in_list
            && self.at_line_start()
            && (self.at_word("AND") || self.at_word("OR"))
            && self.peek_at(1).kind == TokenKind::LParen
    }

    /// Runs `f` with [`Parser::in_list`] set to `in_list`, restoring it afterwards.
    fn nested<T>(
        &mut self,
        in_list: bool,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        let outer = std::mem::replace(&mut self.in_list, in_list);
        let out = f(self);
        self.in_list = outer;
        out
    }

    pub fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    pub fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }

    pub fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    pub fn at_end(&self) -> bool {
        self.peek().kind == TokenKind::Eof
    }

    pub fn at_word(&self, word: &str) -> bool {
        self.peek().is_word(word)
    }

    pub fn eat_word(&mut self, word: &str) -> bool {
        if self.at_word(word) {
            self.advance();
            true
        } else {
            false
        }
    }

    pub fn eat(&mut self, kind: &TokenKind) -> bool {
        if &self.peek().kind == kind {
            self.advance();
            true
        } else {
            false
        }
    }

    /// An error at the next token: `expected {expected}, found {token}`.
    pub fn expected(&self, expected: &str) -> ParseError {
        let t = self.peek();
        ParseError::new(
            t.span,
            format!("expected {expected}, found {}", t.describe()),
        )
    }

    pub fn expect_word(&mut self, word: &str, expected: &str) -> Result<Span, ParseError> {
        if self.at_word(word) {
            Ok(self.advance().span)
        } else {
            Err(self.expected(expected))
        }
    }

    pub fn expect(&mut self, kind: &TokenKind, expected: &str) -> Result<Span, ParseError> {
        if &self.peek().kind == kind {
            Ok(self.advance().span)
        } else {
            Err(self.expected(expected))
        }
    }

    /// A name: a bare identifier or a backtick-quoted one. Keywords are accepted as names
    /// (`AS kind`), except the words in `stop`, which may legitimately follow at this point
    /// (so `FROM INTO user` reports the missing stream instead of naming it `INTO`) — unless
    /// another such word follows, as in `AS kind KIND string`.
    /// Returns (name, span, was_quoted).
    pub fn name(
        &mut self,
        expected: &str,
        stop: &[&str],
    ) -> Result<(String, Span, bool), ParseError> {
        match &self.peek().kind {
            TokenKind::Ident(s)
                if !stop.iter().any(|w| w.eq_ignore_ascii_case(s))
                    || stop.iter().any(|w| self.peek_at(1).is_word(w)) =>
            {
                let s = s.clone();
                Ok((s, self.advance().span, false))
            }
            TokenKind::QuotedIdent(s) => {
                let s = s.clone();
                Ok((s, self.advance().span, true))
            }
            _ => Err(self.expected(expected)),
        }
    }

    /// [`Parser::name`], or a quoted string as FilterQL writes audience names and ids
    /// (`INCLUDE 'f9f0dc74'`, `ALIAS "Big spenders"`).
    pub fn name_or_string(
        &mut self,
        expected: &str,
        stop: &[&str],
    ) -> Result<(String, Span, bool), ParseError> {
        match &self.peek().kind {
            TokenKind::Str(s) if !s.is_empty() => {
                let s = s.clone();
                Ok((s, self.advance().span, true))
            }
            _ => self.name(expected, stop),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                self.peek().span,
                format!("expression nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    pub fn parse_or(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let first = self.parse_and()?;
        let span = first.span();
        let mut exprs = vec![first];
        while (self.at_word("OR") || self.peek().kind == TokenKind::OrOr)
            && !self.at_list_item_start()
        {
            self.advance();
            exprs.push(self.parse_and()?);
        }
        self.leave();
        Ok(if exprs.len() == 1 {
            exprs.pop().expect("one element")
        } else {
            Expr::Or { exprs, span }
        })
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        let first = self.parse_unary()?;
        let span = first.span();
        let mut exprs = vec![first];
        while (self.at_word("AND") || self.peek().kind == TokenKind::AndAnd)
            && !self.at_list_item_start()
        {
            self.advance();
            exprs.push(self.parse_unary()?);
        }
        Ok(if exprs.len() == 1 {
            exprs.pop().expect("one element")
        } else {
            Expr::And { exprs, span }
        })
    }

    fn parse_unary(&mut self) -> Result<Expr, ParseError> {
        if self.at_word("NOT") || self.peek().kind == TokenKind::Bang {
            let span = self.advance().span;
            self.enter()?;
            let inner = self.parse_unary()?;
            self.leave();
            self.last_was_bare = false;
            return Ok(Expr::Not {
                expr: Box::new(inner),
                span,
            });
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        let t = self.peek().clone();
        if (t.is_word("AND") || t.is_word("OR")) && self.peek_at(1).kind == TokenKind::LParen {
            self.advance();
            self.advance();
            let is_and = t.is_word("AND");
            let mut exprs = Vec::new();
            loop {
                if self.eat(&TokenKind::RParen) {
                    if exprs.is_empty() {
                        return Err(ParseError::new(
                            t.span,
                            format!(
                                "{} ( ) needs at least one expression",
                                if is_and { "AND" } else { "OR" }
                            ),
                        ));
                    }
                    break;
                }
                exprs.push(self.nested(true, Self::parse_or)?);
                if self.eat(&TokenKind::Comma) {
                    continue;
                }
                // A line break separates only when an argument can follow; otherwise the
                // missing ',' or ')' is the error to report.
                let line_break = self.style == ListStyle::CommasOrLines
                    && self.at_line_start()
                    && starts_expression(self.peek());
                if !line_break {
                    self.expect(&TokenKind::RParen, "',' or ')'")?;
                    break;
                }
            }
            self.last_was_bare = false;
            return Ok(if is_and {
                Expr::And {
                    exprs,
                    span: t.span,
                }
            } else {
                Expr::Or {
                    exprs,
                    span: t.span,
                }
            });
        }
        if t.kind == TokenKind::LParen {
            self.advance();
            let inner = self.nested(false, Self::parse_or)?;
            self.expect(&TokenKind::RParen, "')'")?;
            self.last_was_bare = false;
            return Ok(inner);
        }
        if t.is_word("EXISTS") && self.peek_at(1).kind != TokenKind::LParen {
            self.advance();
            let expr = self.parse_value()?;
            self.last_was_bare = false;
            return Ok(Expr::Exists {
                expr: Box::new(expr),
                span: t.span,
            });
        }
        if t.is_word("INCLUDE") {
            self.advance();
            let (name, _, _) =
                self.name_or_string("an audience name after INCLUDE", &["AND", "OR"])?;
            self.last_was_bare = false;
            return Ok(Expr::Include { name, span: t.span });
        }
        let left = self.parse_value()?;
        self.parse_predicate_rest(left)
    }

    fn parse_predicate_rest(&mut self, left: Expr) -> Result<Expr, ParseError> {
        let span = left.span();
        self.last_was_bare = false;
        let op = match self.peek().kind {
            TokenKind::Eq | TokenKind::EqEq => Some(CmpOp::Eq),
            TokenKind::NotEq => Some(CmpOp::NotEq),
            TokenKind::Lt => Some(CmpOp::Lt),
            TokenKind::Le => Some(CmpOp::Le),
            TokenKind::Gt => Some(CmpOp::Gt),
            TokenKind::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.advance();
            let right = self.parse_value()?;
            return Ok(Expr::Compare {
                op,
                left: Box::new(left),
                right: Box::new(right),
                span,
            });
        }
        if self.at_word("IS") {
            self.advance();
            let negated = self.eat_word("NOT");
            self.expect_word("NULL", if negated { "NULL" } else { "NOT or NULL" })?;
            let e = Expr::IsNull {
                expr: Box::new(left),
                span,
            };
            return Ok(if negated {
                Expr::Not {
                    expr: Box::new(e),
                    span,
                }
            } else {
                e
            });
        }
        let negated = self.at_word("NOT")
            && ["IN", "LIKE", "CONTAINS", "BETWEEN", "INTERSECTS"]
                .iter()
                .any(|w| self.peek_at(1).is_word(w));
        if negated {
            self.advance();
        }
        let left = Box::new(left);
        let e = if self.eat_word("IN") {
            Expr::In {
                expr: left,
                list: self.parse_value_list()?,
                span,
            }
        } else if self.eat_word("INTERSECTS") {
            Expr::Intersects {
                expr: left,
                list: self.parse_value_list()?,
                span,
            }
        } else if self.eat_word("CONTAINS") {
            Expr::Contains {
                expr: left,
                value: Box::new(self.parse_value()?),
                span,
            }
        } else if self.eat_word("LIKE") {
            Expr::Like {
                expr: left,
                pattern: Box::new(self.parse_value()?),
                span,
            }
        } else if self.eat_word("BETWEEN") {
            let low = self.parse_value()?;
            self.expect_word("AND", "AND")?;
            let high = self.parse_value()?;
            Expr::Between {
                expr: left,
                low: Box::new(low),
                high: Box::new(high),
                span,
            }
        } else {
            self.last_was_bare = true;
            return Ok(*left);
        };
        Ok(if negated {
            Expr::Not {
                expr: Box::new(e),
                span,
            }
        } else {
            e
        })
    }

    fn parse_value_list(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect(&TokenKind::LParen, "'('")?;
        let mut list = Vec::new();
        loop {
            if self.eat(&TokenKind::RParen) {
                break;
            }
            list.push(self.parse_value()?);
            if !self.eat(&TokenKind::Comma) {
                self.expect(&TokenKind::RParen, "',' or ')'")?;
                break;
            }
        }
        Ok(list)
    }

    /// A value: literal, field, function call or `*`.
    pub fn parse_value(&mut self) -> Result<Expr, ParseError> {
        let t = self.peek().clone();
        let span = t.span;
        let lit = |value| Ok(Expr::Literal { value, span });
        match t.kind {
            TokenKind::Str(s) => {
                self.advance();
                lit(Literal::String(s))
            }
            TokenKind::Int(i) => {
                self.advance();
                lit(Literal::Int(i))
            }
            TokenKind::Number(n) => {
                self.advance();
                lit(Literal::Number(n))
            }
            TokenKind::Minus => {
                self.advance();
                match self.peek().kind {
                    TokenKind::Int(i) => {
                        self.advance();
                        lit(Literal::Int(-i))
                    }
                    TokenKind::Number(n) => {
                        self.advance();
                        lit(Literal::Number(-n))
                    }
                    _ => Err(self.expected("a number after '-'")),
                }
            }
            TokenKind::Star => {
                self.advance();
                Ok(Expr::Star { span })
            }
            TokenKind::Ident(ref s) if self.peek_at(1).kind == TokenKind::LParen => {
                let name = s.to_ascii_lowercase();
                self.advance();
                self.advance();
                self.enter()?;
                let mut args = Vec::new();
                loop {
                    if self.eat(&TokenKind::RParen) {
                        break;
                    }
                    args.push(self.parse_value()?);
                    if !self.eat(&TokenKind::Comma) {
                        self.expect(&TokenKind::RParen, "',' or ')'")?;
                        break;
                    }
                }
                self.leave();
                Ok(Expr::Call { name, args, span })
            }
            TokenKind::Ident(ref s) if s.eq_ignore_ascii_case("true") => {
                self.advance();
                lit(Literal::Bool(true))
            }
            TokenKind::Ident(ref s) if s.eq_ignore_ascii_case("false") => {
                self.advance();
                lit(Literal::Bool(false))
            }
            TokenKind::Ident(ref s) if s.eq_ignore_ascii_case("null") => {
                self.advance();
                lit(Literal::Null)
            }
            TokenKind::Ident(ref s) if !is_reserved(s) => {
                self.advance();
                Ok(Expr::Field {
                    name: s.clone(),
                    path: s.split('.').map(str::to_string).collect(),
                    span,
                })
            }
            TokenKind::QuotedIdent(s) => {
                self.advance();
                Ok(Expr::Field {
                    name: s.clone(),
                    path: vec![s],
                    span,
                })
            }
            _ => Err(self.expected("an expression")),
        }
    }
}
