//! Message and remedy templates: text with `{placeholder}` fields, parsed once at load so that
//! rendering is a walk over pieces. `{{` and `}}` stand for literal braces.

use super::Field;

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Field(Field),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

impl Template {
    /// The text, when the template has no placeholder.
    pub fn plain_text(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Text(s)] => Some(s),
            _ => None,
        }
    }

    pub fn is_plain(&self) -> bool {
        self.plain_text().is_some()
    }
}

/// Splits `text` into pieces, resolving each placeholder name with `resolve`; every problem is
/// returned, not just the first.
pub fn parse(
    text: &str,
    mut resolve: impl FnMut(&str) -> Result<Field, String>,
) -> Result<Template, Vec<String>> {
    let mut pieces = Vec::new();
    let mut errors = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        literal.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            literal.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(after) = tail.strip_prefix('}') {
            errors.push("unmatched `}` in template (write `}}` for a brace)".to_string());
            rest = after;
            continue;
        }
        let Some(end) = tail.find('}') else {
            errors.push("unclosed `{` in template (write `{{` for a brace)".to_string());
            rest = "";
            break;
        };
        let name = tail[1..end].trim();
        match resolve(name) {
            Ok(field) => {
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Field(field));
            }
            Err(e) => errors.push(format!("unknown placeholder `{{{name}}}`: {e}")),
        }
        rest = &tail[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    if errors.is_empty() {
        Ok(Template { pieces })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(name: &str) -> Result<Field, String> {
        match name {
            "as_of" => Ok(Field::AsOf),
            _ => Err("no such field".into()),
        }
    }

    #[test]
    fn splits_text_and_fields_and_unescapes_braces() {
        let t = parse("at {as_of} {{literal}}", resolve).unwrap();
        assert_eq!(
            t.pieces,
            vec![
                Piece::Text("at ".into()),
                Piece::Field(Field::AsOf),
                Piece::Text(" {literal}".into())
            ]
        );
    }

    #[test]
    fn reports_every_bad_placeholder() {
        let errs = parse("{nope} and {other} and {", resolve).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("`{nope}`"));
    }
}
