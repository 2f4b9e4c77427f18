//! The JSON Schema (draft 2020-12) of the policy file, for editors to validate and complete it
//! (`icp-audit schema`). It mirrors the keys `raw` accepts and the condition grammar `compile`
//! checks; it can say less than the compiler (it knows no columns or sets) but never accepts a
//! key the loader refuses. A test keeps the schema, the loader and the README in agreement.

use super::compile::BUILT_IN_REASONS;
use crate::code::{MAX_SYMBOLS, MIN_RANDOM_BITS};
use serde_json::{Value, json};

/// The comparison operators, which take a literal or a field operand.
const COMPARISONS: [&str; 6] = ["eq", "ne", "lt", "le", "gt", "ge"];

/// The schema as pretty-printed JSON, ending in a line end.
pub fn text() -> String {
    serde_json::to_string_pretty(&json_schema()).expect("a JSON value prints") + "\n"
}

/// The schema of a policy file.
pub fn json_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "icp-audit policy",
        "description": "Who may receive an ICP Filing service code: the rules, the named sets, the extra columns they read and the code format.",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "code", "rules"],
        "properties": {
            "name": { "type": "string", "description": "The policy's name, written in summary.json." },
            "description": { "type": "string", "description": "What the policy is for, in words." },
            "columns": {
                "type": "array",
                "description": "Extra inventory or request columns the rules read, with their types.",
                "items": { "$ref": "#/$defs/column" }
            },
            "sets": {
                "type": "object",
                "description": "Named lists of strings, for `in: { set: NAME }` and `not_in`.",
                "additionalProperties": { "type": "array", "items": { "$ref": "#/$defs/scalar" } }
            },
            "code": { "$ref": "#/$defs/code" },
            "max_issue": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Refuse a run that would issue more codes than this (the --max-issue flag wins)."
            },
            "rules": {
                "type": "array",
                "minItems": 1,
                "description": "Gates (in order, the first refusal ends the evaluation), checks (every failure reported) and quota rules.",
                "items": { "$ref": "#/$defs/rule" }
            }
        },
        "$defs": defs()
    })
}

fn defs() -> Value {
    json!({
        "column": {
            "type": "object",
            "additionalProperties": false,
            "required": ["field", "type"],
            "properties": {
                "field": {
                    "type": "string",
                    "pattern": "^(instance|request)\\..+$",
                    "description": "`instance.COLUMN` or `request.COLUMN`."
                },
                "type": { "enum": ["string", "integer", "time", "list"] }
            }
        },
        "code": {
            "type": "object",
            "additionalProperties": false,
            "required": ["random_symbols", "group"],
            "description": "The format of new codes: Crockford Base32, grouped with hyphens, plus a check symbol.",
            "properties": {
                "prefix": { "type": "string", "pattern": "^[A-Za-z0-9]{0,16}$" },
                "random_symbols": {
                    "type": "integer",
                    "minimum": MIN_RANDOM_BITS.div_ceil(5),
                    "maximum": MAX_SYMBOLS - 1,
                    "description": "5 random bits each; at least 90 bits in all."
                },
                "group": { "type": "integer", "minimum": 1, "description": "Symbols between hyphens." }
            }
        },
        "rule": rule(),
        "quota": {
            "type": "object",
            "additionalProperties": false,
            "required": ["per", "max", "statuses"],
            "properties": {
                "per": { "enum": ["instance"] },
                "max": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                "statuses": {
                    "type": "array",
                    "description": "The ledger statuses that count towards the limit.",
                    "items": { "enum": ["issued", "in_use", "spent"] }
                }
            }
        },
        "condition": condition(),
        "field": {
            "type": "string",
            "pattern": "^(as_of|instance\\..+|request\\..+)$",
            "description": "`instance.COLUMN`, `request.COLUMN` or `as_of`.",
            "examples": [
                "as_of", "instance.instance_id", "instance.account_id", "instance.region_id",
                "instance.charge_type", "instance.expired_time", "instance.creation_time",
                "instance.status", "instance.internet_max_bandwidth_out", "instance.public_ip",
                "instance.eip_address", "instance.operation_locks", "request.request_id",
                "request.account_id", "request.instance_id", "request.requested_at"
            ]
        },
        "scalar": { "type": ["string", "number"] },
        "operand": {
            "description": "A literal of the field's type, or another field (times: shifted by calendar months).",
            "anyOf": [{ "$ref": "#/$defs/scalar" }, { "$ref": "#/$defs/field_operand" }]
        },
        "field_operand": {
            "type": "object",
            "additionalProperties": false,
            "required": ["field"],
            "properties": {
                "field": { "$ref": "#/$defs/field" },
                "plus_months": { "type": "integer", "minimum": -12000, "maximum": 12000 }
            }
        },
        "members": {
            "description": "A list of strings, or `{ set: NAME }`.",
            "anyOf": [
                { "type": "array", "items": { "$ref": "#/$defs/scalar" } },
                { "$ref": "#/$defs/set_operand" }
            ]
        },
        "set_operand": {
            "type": "object",
            "additionalProperties": false,
            "required": ["set"],
            "properties": { "set": { "type": "string", "description": "A name under `sets`." } }
        }
    })
}

fn rule() -> Value {
    let only_denied = json!({
        "confidential": { "const": false },
        "when_fails": { "const": "denied" }
    });
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "kind", "message", "remedy"],
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^[a-z0-9][a-z0-9-]*$",
                "not": { "enum": BUILT_IN_REASONS },
                "description": "Stable: reports, tests and scripts key on it."
            },
            "description": { "type": "string" },
            "kind": { "enum": ["gate", "check", "quota"] },
            "when_fails": {
                "enum": ["denied", "not_required"],
                "description": "What a refusal makes of the request (default denied; not_required for gates only)."
            },
            "confidential": {
                "type": "boolean",
                "description": "A gate checked first, on every inventory row; its refusal reveals nothing about the instance."
            },
            "require": { "$ref": "#/$defs/condition" },
            "quota": { "$ref": "#/$defs/quota" },
            "message": { "type": "string", "description": "A template: {field} placeholders, {{ and }} for braces." },
            "remedy": { "type": "string", "description": "A template, like message." }
        },
        "allOf": [
            {
                "if": { "required": ["kind"], "properties": { "kind": { "const": "quota" } } },
                "then": {
                    "required": ["quota"],
                    "properties": { "require": false, "confidential": { "const": false }, "when_fails": { "const": "denied" } }
                },
                "else": { "required": ["require"], "properties": { "quota": false } }
            },
            {
                "if": { "required": ["kind"], "properties": { "kind": { "const": "check" } } },
                "then": { "properties": only_denied }
            }
        ]
    })
}

/// Exactly one shape: a combinator, `exists`/`empty`, or `field` with one operator.
fn condition() -> Value {
    let mut properties = serde_json::Map::new();
    let list = json!({ "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/condition" } });
    properties.insert("all".into(), list.clone());
    properties.insert("any".into(), list);
    properties.insert("not".into(), json!({ "$ref": "#/$defs/condition" }));
    for key in ["exists", "empty", "field"] {
        properties.insert(key.into(), json!({ "$ref": "#/$defs/field" }));
    }
    for op in COMPARISONS {
        properties.insert(op.into(), json!({ "$ref": "#/$defs/operand" }));
    }
    for op in ["in", "not_in"] {
        properties.insert(op.into(), json!({ "$ref": "#/$defs/members" }));
    }
    properties.insert(
        "matches".into(),
        json!({ "type": "string", "description": "A glob: *, ? and [...]." }),
    );
    properties.insert(
        "contains".into(),
        json!({ "$ref": "#/$defs/scalar", "description": "A list field holds this value." }),
    );
    let alone = |key: &str| json!({ "required": [key], "maxProperties": 1 });
    let mut field_keys = vec!["field"];
    field_keys.extend(COMPARISONS);
    field_keys.extend(["in", "not_in", "matches", "contains"]);
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "oneOf": [
            alone("all"), alone("any"), alone("not"), alone("exists"), alone("empty"),
            {
                "required": ["field"],
                "minProperties": 2,
                "maxProperties": 2,
                "propertyNames": { "enum": field_keys }
            }
        ]
    })
}

/// What serde would refuse in the shape of a policy document, all of it where serde stops at
/// the first: every key the schema does not allow (`keys`, placed at the key), and every value
/// outside a list of words (`kind: gaet`; `values`, placed at the value), each with its path
/// (`rules[2].require.equals`) and a message. Follows `properties`, `items` and `$ref`;
/// operands are checked by the compiler.
#[derive(Default)]
pub struct ShapeProblems {
    pub keys: Vec<(String, String)>,
    pub values: Vec<(String, String)>,
}

impl ShapeProblems {
    pub fn of(doc: &serde_yaml::Value) -> ShapeProblems {
        let schema = json_schema();
        let mut out = ShapeProblems::default();
        walk(&schema, &schema, doc, "", &mut out);
        out
    }
}

/// The keys whose values serde reads as one of a list of words (`RawKind`, `RawOutcome`), and
/// so refuses at the first wrong one; other words (a column's type, a quota's statuses) are
/// checked by the compiler, which lists every wrong one.
const WORDS: [&str; 2] = ["kind", "when_fails"];

/// A `WORDS` value at `path` that is not one of its schema's words, worded as serde words it.
fn unknown_word(node: &Value, doc: &serde_yaml::Value, path: &str, out: &mut ShapeProblems) {
    if let (Some(words), Some(value)) = (node.get("enum").and_then(Value::as_array), doc.as_str())
        && !words.iter().any(|w| w.as_str() == Some(value))
    {
        out.values.push((
            path.to_string(),
            format!(
                "{path}: unknown variant `{value}`, expected one of {}",
                quoted_list(words.iter().filter_map(Value::as_str))
            ),
        ));
    }
}

/// `a`, `b`, `c`.
fn quoted_list<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words
        .into_iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn walk(root: &Value, node: &Value, doc: &serde_yaml::Value, path: &str, out: &mut ShapeProblems) {
    // As serde words it: `rules[0]: unknown field ...`, the path left out at the top.
    let where_ = if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    };
    if let Some(target) = node.get("$ref").and_then(Value::as_str) {
        let name = target.trim_start_matches("#/$defs/");
        if let Some(def) = root.get("$defs").and_then(|d| d.get(name)) {
            walk(root, def, doc, path, out);
        }
        return;
    }
    if let (Some(props), Some(map)) = (
        node.get("properties").and_then(Value::as_object),
        doc.as_mapping(),
    ) {
        let closed = node.get("additionalProperties") == Some(&Value::Bool(false));
        for (k, v) in map {
            let Some(key) = k.as_str() else { continue };
            let here = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            match props.get(key) {
                Some(sub) => {
                    if WORDS.contains(&key) {
                        unknown_word(sub, v, &here, out);
                    }
                    walk(root, sub, v, &here, out)
                }
                None if closed => {
                    let mut known: Vec<&str> = props.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    out.keys.push((
                        here,
                        format!(
                            "{where_}unknown field `{key}`, expected one of {}",
                            quoted_list(known)
                        ),
                    ));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(seq)) = (node.get("items"), doc.as_sequence()) {
        for (i, v) in seq.iter().enumerate() {
            walk(root, items, v, &format!("{path}[{i}]"), out);
        }
    }
}
