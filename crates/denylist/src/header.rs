//! The optional header (compact-denylist-format.md, "Header"): a small YAML mapping before a
//! `---` line.
//!
//! This is not a general YAML parser. It reads what the spec shows: top-level `key: value`
//! lines, `hints:` followed by indented `key: value` lines (or `hints: {}`), plain, `'single'`
//! and `"double"` quoted scalars, `>`/`|` block scalars for the string fields, `#` comments and
//! blank lines. Unknown (custom) top-level fields are ignored together with their indented
//! lines, as the spec asks. Anything else is a [`ParseError::Header`] naming the line.

use std::collections::BTreeMap;

use crate::error::{ParseError, excerpt};

/// The list header (compact-denylist-format.md, "Header"). All fields are optional in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Format version; 1 when absent (the only version this crate accepts).
    pub version: u32,
    /// `name`: a human name of the list.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `author`.
    pub author: Option<String>,
    /// `hints`: list-wide hints, applied to every block item before its own hints
    /// ("Hints"). Values are kept as strings.
    pub hints: BTreeMap<String, String>,
}

enum Context {
    /// At top level.
    Top,
    /// Inside `hints:`.
    Hints,
    /// Inside a `>` (fold = true) or `|` block scalar of a known field.
    Block {
        field: &'static str,
        fold: bool,
        lines: Vec<String>,
    },
    /// Inside the indented lines of a custom field: skipped.
    Skip,
}

fn err(line: u32, reason: impl Into<String>) -> ParseError {
    ParseError::Header {
        line,
        reason: reason.into(),
    }
}

/// Parses header lines (without the `---` line); `lines[i]` is file line `i + 1`.
pub(crate) fn parse_header(lines: &[&[u8]]) -> Result<Header, ParseError> {
    let mut header = Header {
        version: 1,
        ..Header::default()
    };
    let mut seen: Vec<&'static str> = Vec::new();
    let mut ctx = Context::Top;
    let mut version_line = 0u32;
    let mut version_text: Option<String> = None;
    for (i, raw) in lines.iter().enumerate() {
        let lineno = u32::try_from(i + 1).map_err(|_| ParseError::TooManyLines)?;
        let text = std::str::from_utf8(raw).map_err(|_| err(lineno, "not valid UTF-8"))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.contains('\t') {
            return Err(err(lineno, "tab character (YAML indents with spaces)"));
        }
        let trimmed = text.trim();
        let indented = text.starts_with(' ');
        if let Context::Block { lines, .. } = &mut ctx
            && (indented || trimmed.is_empty())
        {
            lines.push(trimmed.to_owned());
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indented {
            match &ctx {
                Context::Hints => {
                    let (key, value) = split_pair(trimmed)
                        .ok_or_else(|| err(lineno, "expected `key: value` inside hints"))?;
                    let key = scalar(key).map_err(|r| err(lineno, r))?;
                    let value = scalar(value).map_err(|r| err(lineno, r))?;
                    if header.hints.insert(key.clone(), value).is_some() {
                        return Err(err(lineno, format!("duplicate hint {:?}", excerpt(&key))));
                    }
                    continue;
                }
                Context::Skip => continue,
                Context::Top | Context::Block { .. } => {
                    return Err(err(lineno, "unexpected indentation"));
                }
            }
        }
        finish_block(&mut ctx, &mut header);
        let (key, value) = split_pair(trimmed)
            .ok_or_else(|| err(lineno, "expected a top-level `key: value` line"))?;
        let key = scalar(key).map_err(|r| err(lineno, r))?;
        let field: Option<&'static str> = ["version", "name", "description", "author", "hints"]
            .into_iter()
            .find(|f| *f == key);
        let Some(field) = field else {
            // A custom field: ignored ("Implementations SHOULD ignore unknown header fields").
            ctx = Context::Skip;
            continue;
        };
        if seen.contains(&field) {
            return Err(err(lineno, format!("duplicate field {field:?}")));
        }
        seen.push(field);
        if field == "hints" {
            match value {
                "" => ctx = Context::Hints,
                "{}" => ctx = Context::Top,
                _ => {
                    return Err(err(
                        lineno,
                        "hints must be a map of indented `key: value` lines",
                    ));
                }
            }
            continue;
        }
        if let Some(style) = ["|", "|-", "|+", ">", ">-", ">+"]
            .into_iter()
            .find(|s| *s == value)
        {
            if field == "version" {
                return Err(err(lineno, "version must be a plain number"));
            }
            ctx = Context::Block {
                field,
                fold: style.starts_with('>'),
                lines: Vec::new(),
            };
            continue;
        }
        let value = scalar(value).map_err(|r| err(lineno, r))?;
        ctx = Context::Top;
        if field == "version" {
            version_line = lineno;
            version_text = Some(value);
        } else {
            set_field(&mut header, field, value);
        }
    }
    finish_block(&mut ctx, &mut header);
    if let Some(v) = version_text
        && v != "1"
    {
        return Err(ParseError::UnsupportedVersion {
            line: version_line,
            version: excerpt(&v),
        });
    }
    Ok(header)
}

fn set_field(header: &mut Header, field: &str, value: String) {
    let value = (!value.is_empty()).then_some(value);
    match field {
        "name" => header.name = value,
        "description" => header.description = value,
        "author" => header.author = value,
        _ => {}
    }
}

fn finish_block(ctx: &mut Context, header: &mut Header) {
    if let Context::Block { field, fold, lines } = std::mem::replace(ctx, Context::Top) {
        let mut lines = lines;
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        let joined = lines.join(if fold { " " } else { "\n" });
        set_field(header, field, joined);
    }
}

/// Splits `key: value` (or `key:` at the end of the line) at the first `: `.
fn split_pair(line: &str) -> Option<(&str, &str)> {
    if let Some(key) = line.strip_suffix(':')
        && !key.contains(": ")
    {
        return Some((key.trim(), ""));
    }
    let at = line.find(": ")?;
    Some((line[..at].trim(), line[at + 2..].trim()))
}

/// Reads a YAML scalar: `"double"` (with `\"` and `\\` escapes), `'single'` (with `''`), or
/// plain (a trailing ` # comment` removed).
fn scalar(text: &str) -> Result<String, String> {
    if let Some(rest) = text.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        loop {
            match chars.next() {
                None => return Err("unterminated double-quoted string".into()),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('/') => out.push('/'),
                    _ => return Err("unsupported escape in double-quoted string".into()),
                },
                Some(c) => out.push(c),
            }
        }
        return trailing(chars.as_str()).map(|()| out);
    }
    if let Some(rest) = text.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        loop {
            match chars.next() {
                None => return Err("unterminated single-quoted string".into()),
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    out.push('\'');
                }
                Some('\'') => break,
                Some(c) => out.push(c),
            }
        }
        let rest: String = chars.collect();
        return trailing(&rest).map(|()| out);
    }
    if text.starts_with(['[', '{', '&', '*', '!', '|', '>', '%', '@', '`']) {
        return Err(format!("unsupported YAML value {:?}", excerpt(text)));
    }
    let plain = match text.find(" #") {
        Some(at) => &text[..at],
        None => text,
    };
    Ok(plain.trim().to_owned())
}

fn trailing(rest: &str) -> Result<(), String> {
    let rest = rest.trim();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err(format!("text after a quoted string: {:?}", excerpt(rest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Header, ParseError> {
        let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
        parse_header(&lines)
    }

    #[test]
    fn spec_example_header() {
        let h = parse(
            "version: 1\nname: Example IPFSCorp blocking list\n\
             description: A collection of bad things we have found in the universe\n\
             author: abuse-ipfscorp@example.com\nhints:\n  hint: value\n  hint2: value2\n",
        )
        .unwrap();
        assert_eq!(h.version, 1);
        assert_eq!(h.name.as_deref(), Some("Example IPFSCorp blocking list"));
        assert_eq!(
            h.description.as_deref(),
            Some("A collection of bad things we have found in the universe")
        );
        assert_eq!(h.author.as_deref(), Some("abuse-ipfscorp@example.com"));
        assert_eq!(h.hints.len(), 2);
        assert_eq!(h.hints["hint"], "value");
        assert_eq!(h.hints["hint2"], "value2");
    }

    #[test]
    fn quoting_blocks_comments_and_custom_fields() {
        let h = parse(
            "# a comment\nname: \"quoted: \\\"x\\\"\" # trailing\nauthor: 'it''s me'\n\
             description: >\n  folded\n  text\n\ncustom:\n  - a\n  - b: c\nother: x\nhints: {}\n",
        )
        .unwrap();
        assert_eq!(h.name.as_deref(), Some("quoted: \"x\""));
        assert_eq!(h.author.as_deref(), Some("it's me"));
        assert_eq!(h.description.as_deref(), Some("folded text"));
        assert!(h.hints.is_empty());
        assert_eq!(h.version, 1);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("name: a\nnot a pair\n").unwrap_err();
        assert!(matches!(e, ParseError::Header { line: 2, .. }), "{e}");
        let e = parse("version: 2\n").unwrap_err();
        assert!(
            matches!(e, ParseError::UnsupportedVersion { line: 1, .. }),
            "{e}"
        );
        let e = parse("name: a\nname: b\n").unwrap_err();
        assert!(matches!(e, ParseError::Header { line: 2, .. }), "{e}");
        let e = parse("  indented: x\n").unwrap_err();
        assert!(matches!(e, ParseError::Header { line: 1, .. }), "{e}");
        let e = parse("name: \"open\n").unwrap_err();
        assert!(matches!(e, ParseError::Header { line: 1, .. }), "{e}");
        let e = parse("hints: [a]\n").unwrap_err();
        assert!(matches!(e, ParseError::Header { line: 1, .. }), "{e}");
        let e = parse("hints:\n  nopair\n").unwrap_err();
        assert!(matches!(e, ParseError::Header { line: 2, .. }), "{e}");
    }
}
