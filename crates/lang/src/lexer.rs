//! The shared lexer of both languages.
//!
//! Hand-written rather than generated (e.g. with `logos`) because it is small, has no
//! dependency, and tracks line/column positions exactly as the error messages report them.
//! Keywords are *not* distinguished here: the parser compares identifiers case-insensitively,
//! so words such as `count`, `map` or `set` stay usable as field names.

use crate::error::{ParseError, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// A bare identifier, possibly dotted (`user.address.city`, `hash.sha256`) or with inner
    /// hyphens (`vip-list`).
    Ident(String),
    /// A backtick-quoted identifier, taken literally.
    QuotedIdent(String),
    Str(String),
    Int(i64),
    Number(f64),
    /// A whole number with a time unit, `30d` (`s m h d w`): the length of a `WINDOW`.
    /// Holds the seconds and the text as written.
    Duration(i64, String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Star,
    Minus,
    Semicolon,
    Eq,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Bang,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
    /// Whether a line break separates this token from the previous one (FilterQL lets
    /// newlines separate the arguments of `AND ( … )` / `OR ( … )`).
    pub newline_before: bool,
}

impl Token {
    /// True when this token is the bare identifier `word` (ASCII case-insensitive).
    pub fn is_word(&self, word: &str) -> bool {
        matches!(&self.kind, TokenKind::Ident(s) if s.eq_ignore_ascii_case(word))
    }

    /// How the token is named in "found ..." parts of error messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Ident(s) => format!("'{s}'"),
            TokenKind::QuotedIdent(s) => format!("`{s}`"),
            TokenKind::Str(s) => format!("string \"{}\"", truncate(s)),
            TokenKind::Int(i) => format!("number {i}"),
            TokenKind::Number(n) => format!("number {n}"),
            TokenKind::Duration(_, text) => format!("duration {text}"),
            TokenKind::LParen => "'('".into(),
            TokenKind::RParen => "')'".into(),
            TokenKind::LBracket => "'['".into(),
            TokenKind::RBracket => "']'".into(),
            TokenKind::Comma => "','".into(),
            TokenKind::Star => "'*'".into(),
            TokenKind::Minus => "'-'".into(),
            TokenKind::Semicolon => "';'".into(),
            TokenKind::Eq => "'='".into(),
            TokenKind::EqEq => "'=='".into(),
            TokenKind::NotEq => "'!='".into(),
            TokenKind::Lt => "'<'".into(),
            TokenKind::Le => "'<='".into(),
            TokenKind::Gt => "'>'".into(),
            TokenKind::Ge => "'>='".into(),
            TokenKind::AndAnd => "'&&'".into(),
            TokenKind::OrOr => "'||'".into(),
            TokenKind::Bang => "'!'".into(),
            TokenKind::Eof => "end of input".into(),
        }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 30 {
        let mut t: String = s.chars().take(30).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

struct Cursor<'a> {
    chars: Vec<char>,
    pos: usize,
    line: u32,
    column: u32,
    _src: &'a str,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }
    fn span(&self) -> Span {
        Span::new(self.line, self.column)
    }
}

/// Seconds in a duration unit (`30d`): seconds, minutes, hours, days, weeks.
fn duration_unit(c: char) -> Option<i64> {
    Some(match c {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    })
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$' || c == '@'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || c == '@'
}

/// Splits `text` into tokens; the last token is always [`TokenKind::Eof`].
pub fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut cur = Cursor {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        column: 1,
        _src: text,
    };
    let mut tokens = Vec::new();
    // The line the previous token ended on (a string may span lines).
    let mut prev_end_line = 1;
    loop {
        // Whitespace and comments.
        match (cur.peek(), cur.peek_at(1)) {
            (Some(c), _) if c.is_whitespace() => {
                cur.bump();
                continue;
            }
            (Some('-'), Some('-')) | (Some('/'), Some('/')) => {
                while let Some(c) = cur.peek() {
                    if c == '\n' {
                        break;
                    }
                    cur.bump();
                }
                continue;
            }
            (Some('/'), Some('*')) => {
                let start = cur.span();
                cur.bump();
                cur.bump();
                loop {
                    match (cur.peek(), cur.peek_at(1)) {
                        (Some('*'), Some('/')) => {
                            cur.bump();
                            cur.bump();
                            break;
                        }
                        (Some(_), _) => {
                            cur.bump();
                        }
                        (None, _) => {
                            return Err(ParseError::new(start, "unterminated /* comment"));
                        }
                    }
                }
                continue;
            }
            _ => {}
        }
        let span = cur.span();
        let Some(c) = cur.peek() else {
            tokens.push(Token {
                kind: TokenKind::Eof,
                span,
                newline_before: span.line > prev_end_line,
            });
            return Ok(tokens);
        };
        let kind = match c {
            '(' => single(&mut cur, TokenKind::LParen),
            ')' => single(&mut cur, TokenKind::RParen),
            '[' => single(&mut cur, TokenKind::LBracket),
            ']' => single(&mut cur, TokenKind::RBracket),
            ',' => single(&mut cur, TokenKind::Comma),
            '*' => single(&mut cur, TokenKind::Star),
            '-' => single(&mut cur, TokenKind::Minus),
            ';' => single(&mut cur, TokenKind::Semicolon),
            '=' => {
                cur.bump();
                if cur.peek() == Some('=') {
                    cur.bump();
                    TokenKind::EqEq
                } else {
                    TokenKind::Eq
                }
            }
            '!' => {
                cur.bump();
                if cur.peek() == Some('=') {
                    cur.bump();
                    TokenKind::NotEq
                } else {
                    TokenKind::Bang
                }
            }
            '<' => {
                cur.bump();
                match cur.peek() {
                    Some('=') => {
                        cur.bump();
                        TokenKind::Le
                    }
                    Some('>') => {
                        cur.bump();
                        TokenKind::NotEq
                    }
                    _ => TokenKind::Lt,
                }
            }
            '>' => {
                cur.bump();
                if cur.peek() == Some('=') {
                    cur.bump();
                    TokenKind::Ge
                } else {
                    TokenKind::Gt
                }
            }
            '&' => {
                cur.bump();
                if cur.peek() == Some('&') {
                    cur.bump();
                    TokenKind::AndAnd
                } else {
                    return Err(ParseError::new(
                        span,
                        "unexpected character '&' (did you mean '&&'?)",
                    ));
                }
            }
            '|' => {
                cur.bump();
                if cur.peek() == Some('|') {
                    cur.bump();
                    TokenKind::OrOr
                } else {
                    return Err(ParseError::new(
                        span,
                        "unexpected character '|' (did you mean '||'?)",
                    ));
                }
            }
            '"' | '\'' => TokenKind::Str(lex_string(&mut cur, c, span)?),
            '`' => {
                cur.bump();
                let mut s = String::new();
                loop {
                    match cur.bump() {
                        Some('`') => break,
                        Some(ch) => s.push(ch),
                        None => return Err(ParseError::new(span, "unterminated `identifier`")),
                    }
                }
                if s.is_empty() {
                    return Err(ParseError::new(span, "empty `identifier`"));
                }
                TokenKind::QuotedIdent(s)
            }
            c if c.is_ascii_digit()
                || (c == '.' && cur.peek_at(1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                lex_number(&mut cur, span)?
            }
            c if is_ident_start(c) => {
                let mut s = String::new();
                while let Some(ch) = cur.peek() {
                    let next_ok = cur.peek_at(1).is_some_and(is_ident_char);
                    if is_ident_char(ch) || ((ch == '.' || ch == '-') && next_ok) {
                        s.push(ch);
                        cur.bump();
                    } else {
                        break;
                    }
                }
                TokenKind::Ident(s)
            }
            other => {
                return Err(ParseError::new(
                    span,
                    format!("unexpected character '{other}'"),
                ));
            }
        };
        tokens.push(Token {
            kind,
            span,
            newline_before: !tokens.is_empty() && span.line > prev_end_line,
        });
        prev_end_line = cur.line;
    }
}

fn single(cur: &mut Cursor<'_>, kind: TokenKind) -> TokenKind {
    cur.bump();
    kind
}

fn lex_string(cur: &mut Cursor<'_>, quote: char, span: Span) -> Result<String, ParseError> {
    cur.bump();
    let mut s = String::new();
    loop {
        let esc_span = cur.span();
        match cur.bump() {
            None => return Err(ParseError::new(span, "unterminated string")),
            Some(c) if c == quote => return Ok(s),
            Some('\\') => match cur.bump() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('r') => s.push('\r'),
                Some('\\') => s.push('\\'),
                Some('"') => s.push('"'),
                Some('\'') => s.push('\''),
                Some(other) => {
                    return Err(ParseError::new(
                        esc_span,
                        format!("unknown escape '\\{other}' in string"),
                    ))
                }
                None => return Err(ParseError::new(span, "unterminated string")),
            },
            Some(c) => s.push(c),
        }
    }
}

fn lex_number(cur: &mut Cursor<'_>, span: Span) -> Result<TokenKind, ParseError> {
    let mut s = String::new();
    let mut is_float = false;
    while let Some(c) = cur.peek() {
        if c.is_ascii_digit() {
            s.push(c);
            cur.bump();
        } else if c == '.' && !is_float && cur.peek_at(1).is_some_and(|d| d.is_ascii_digit()) {
            is_float = true;
            s.push(c);
            cur.bump();
        } else {
            break;
        }
    }
    if matches!(cur.peek(), Some('e' | 'E')) {
        let sign = matches!(cur.peek_at(1), Some('+' | '-'));
        let digit_at = if sign { 2 } else { 1 };
        if cur.peek_at(digit_at).is_some_and(|d| d.is_ascii_digit()) {
            is_float = true;
            for _ in 0..digit_at {
                s.push(cur.bump().unwrap_or('0'));
            }
            while let Some(c) = cur.peek() {
                if c.is_ascii_digit() {
                    s.push(c);
                    cur.bump();
                } else {
                    break;
                }
            }
        }
    }
    if !is_float && cur.peek().is_some_and(is_ident_start) {
        let unit = cur.peek().and_then(duration_unit);
        if let (Some(unit), false) = (unit, cur.peek_at(1).is_some_and(is_ident_char)) {
            let text = format!("{s}{}", cur.bump().unwrap_or('s'));
            return s
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(unit))
                .map(|secs| TokenKind::Duration(secs, text.clone()))
                .ok_or_else(|| ParseError::new(span, format!("invalid duration '{text}'")));
        }
    }
    if cur.peek().is_some_and(is_ident_start) {
        while let Some(c) = cur.peek().filter(|c| is_ident_char(*c)) {
            s.push(c);
            cur.bump();
        }
        return Err(ParseError::new(span, format!("invalid number '{s}'")));
    }
    if !is_float {
        if let Ok(i) = s.parse::<i64>() {
            return Ok(TokenKind::Int(i));
        }
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(TokenKind::Number(f)),
        _ => Err(ParseError::new(span, format!("invalid number '{s}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<TokenKind> {
        tokenize(s).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn lexes_idents_numbers_strings_and_comments() {
        assert_eq!(
            kinds("a.b hash.sha256 `odd name` 'x' \"y\\\"\" 12 1.5 -- c\n/* x */ vip-list // z"),
            vec![
                TokenKind::Ident("a.b".into()),
                TokenKind::Ident("hash.sha256".into()),
                TokenKind::QuotedIdent("odd name".into()),
                TokenKind::Str("x".into()),
                TokenKind::Str("y\"".into()),
                TokenKind::Int(12),
                TokenKind::Number(1.5),
                TokenKind::Ident("vip-list".into()),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn operators() {
        assert_eq!(
            kinds("= == != <> < <= > >= && || ! ( ) [ ] , * - ;"),
            vec![
                TokenKind::Eq,
                TokenKind::EqEq,
                TokenKind::NotEq,
                TokenKind::NotEq,
                TokenKind::Lt,
                TokenKind::Le,
                TokenKind::Gt,
                TokenKind::Ge,
                TokenKind::AndAnd,
                TokenKind::OrOr,
                TokenKind::Bang,
                TokenKind::LParen,
                TokenKind::RParen,
                TokenKind::LBracket,
                TokenKind::RBracket,
                TokenKind::Comma,
                TokenKind::Star,
                TokenKind::Minus,
                TokenKind::Semicolon,
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn positions_are_one_based_in_chars() {
        let t = tokenize("é  x\n  y").unwrap();
        assert_eq!(t[0].span, Span::new(1, 1));
        assert_eq!(t[1].span, Span::new(1, 4));
        assert_eq!(t[2].span, Span::new(2, 3));
    }

    #[test]
    fn line_breaks_between_tokens_are_marked() {
        let t = tokenize("a b\n c -- x\n \"s\nt\" d\n").unwrap();
        let marks: Vec<bool> = t.iter().map(|t| t.newline_before).collect();
        // a, b, c (new line), "s\nt" (new line), d (same line as the string's end), EOF.
        assert_eq!(marks, vec![false, false, true, true, false, true]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            tokenize("a \"abc").unwrap_err().to_string(),
            "line 1, column 3: unterminated string"
        );
        assert_eq!(
            tokenize("a\n /* x").unwrap_err().to_string(),
            "line 2, column 2: unterminated /* comment"
        );
        assert_eq!(
            tokenize("a # b").unwrap_err().to_string(),
            "line 1, column 3: unexpected character '#'"
        );
    }
}
