//! `icp-audit schema` keeps three things in agreement: the JSON Schema, the loader and the
//! README's policy language section. (a) At every level of the policy file, the keys the loader
//! accepts — read from the loader's own error for an unknown key — are the schema's
//! `properties`; (b) the shipped policies validate against the schema, and policies the loader
//! refuses do not; (c) every key of the schema is mentioned in the README.
//!
//! The validation is a small checker for the subset of JSON Schema the schema uses, rather than
//! the `jsonschema` crate: that crate brings in about 120 crates (an HTTP client and TLS by
//! default; big-number, regex and URL crates even without its default features), more than the
//! rest of the project, for a test. The checker panics on any keyword it does not implement,
//! so it cannot silently pass what it does not understand.

use crate::harness::Test;
use icp_audit::policy::{self, schema::json_schema};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn the_schema_command_prints_the_schema() {
    let ran = Test::new("schema-command").args(["schema"]).run().expect(0);
    let printed: Value = serde_json::from_str(&ran.stdout()).unwrap();
    assert_eq!(printed, json_schema());
    assert_eq!(
        printed["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

/// A policy with one of each level: a column, a set, a gate, a check with a field operand
/// and a quota rule.
const BASE: &str = "name: t
code: { random_symbols: 19, group: 4 }
columns: [ { field: instance.tier, type: string } ]
sets: { s: [a] }
rules:
  - { id: g, kind: gate, require: { field: instance.region_id, in: { set: s } }, message: m, remedy: r }
  - { id: c, kind: check, require: { field: instance.expired_time, ge: { field: as_of, plus_months: 3 } }, message: m, remedy: r }
  - { id: q, kind: quota, quota: { per: instance, max: 5, statuses: [issued] }, message: m, remedy: r }
";

/// Each level: its name, where an unknown key `zz` goes in `BASE`, and its schema.
const LEVELS: [(&str, &str, &str, &str); 8] = [
    ("policy", "name: t", "name: t\nzz: 1", ""),
    ("code", "group: 4 }", "group: 4, zz: 1 }", "code"),
    (
        "column",
        "type: string }",
        "type: string, zz: 1 }",
        "column",
    ),
    ("rule", "id: c,", "id: c, zz: 1,", "rule"),
    ("quota", "[issued] }", "[issued], zz: 1 }", "quota"),
    (
        "condition",
        "{ field: instance.region_id,",
        "{ zz: 1, field: instance.region_id,",
        "condition",
    ),
    (
        "field operand",
        "plus_months: 3 }",
        "plus_months: 3, zz: 1 }",
        "field_operand",
    ),
    (
        "set operand",
        "{ set: s }",
        "{ set: s, zz: 1 }",
        "set_operand",
    ),
];

/// The keys the loader's message lists after "expected": `a`, `b` … or `{set: NAME}`.
fn expected_keys(message: &str) -> BTreeSet<String> {
    let tail = &message[message.find("expected").expect("an expected list")..];
    tail.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|token| match token.strip_prefix('{') {
            Some(map) => map
                .trim_end_matches('}')
                .split(',')
                .map(|kv| kv.split(':').next().unwrap().trim().to_string())
                .collect(),
            None => vec![token.to_string()],
        })
        .collect()
}

fn schema_at(def: &str) -> Value {
    let root = json_schema();
    if def.is_empty() {
        root
    } else {
        root["$defs"][def].clone()
    }
}

fn property_names(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn at_every_level_the_schema_has_exactly_the_keys_the_loader_accepts() {
    policy::compile_text(BASE, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    for (level, from, to, def) in LEVELS {
        assert!(BASE.contains(from), "{level}");
        let text = BASE.replacen(from, to, 1);
        let err = policy::compile_text(&text, "t.yaml").expect_err(level);
        assert!(
            err.message.contains("zz") || level == "set operand",
            "{level}: {err}"
        );
        let loader = expected_keys(&err.message);
        let schema = property_names(&schema_at(def));
        assert_eq!(loader, schema, "{level}: the loader's keys vs the schema's");
        assert_eq!(schema_at(def)["additionalProperties"], false, "{level}");
    }
}

fn shipped_policies() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    assert!(out.len() >= 2);
    out
}

fn schema_errors(policy_text: &str) -> Vec<String> {
    let doc: Value = serde_yaml::from_str(policy_text).expect("YAML");
    let root = json_schema();
    let mut errors = Vec::new();
    Checker { root: &root }.check(&root, &doc, "", &mut errors);
    errors
}

#[test]
fn the_shipped_policies_validate_against_the_schema() {
    for (path, text) in shipped_policies() {
        assert_eq!(schema_errors(&text), Vec::<String>::new(), "{path}");
    }
    assert_eq!(schema_errors(BASE), Vec::<String>::new());
}

/// Policies the loader refuses are refused by the schema too.
#[test]
fn what_the_loader_refuses_the_schema_refuses() {
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/icp-service-code.yaml"),
    )
    .unwrap();
    let edits: [(&str, &str); 16] = [
        ("eq: PrePaid }", "eq: PrePaid, ne: PostPaid }"),
        (
            "{ field: instance.charge_type, eq: PrePaid }",
            "{ eq: PrePaid }",
        ),
        (
            "{ field: instance.charge_type, eq: PrePaid }",
            "{ field: instance.charge_type }",
        ),
        (
            "{ exists: instance.instance_id }",
            "{ exists: instance.instance_id, empty: instance.public_ip }",
        ),
        ("when_fails: not_required", "when_fail: not_required"),
        (
            "kind: quota\n",
            "kind: quota\n    require: { exists: as_of }\n",
        ),
        (
            "kind: check\n    require: { field: instance.charge_type",
            "kind: check\n    when_fails: not_required\n    require: { field: instance.charge_type",
        ),
        (
            "kind: check\n    require: { field: instance.charge_type",
            "kind: check\n    confidential: true\n    require: { field: instance.charge_type",
        ),
        ("random_symbols: 19", "random_symbols: 17"),
        ("plus_months: 3 }", "plus_month: 3 }"),
        (
            "{ set: mainland }",
            "{ set: mainland, also: [cn-hongkong] }",
        ),
        ("id: public-ip", "id: Public-IP"),
        ("id: public-ip", "id: -public-ip"),
        ("id: public-ip", "id: malformed-request"),
        (
            "    remedy: \"Buy a new ECS instance for another website.\"\n",
            "",
        ),
        (
            "{ field: instance.charge_type, eq: PrePaid }",
            "{ all: [] }",
        ),
    ];
    for (from, to) in edits {
        assert!(good.contains(from), "{from}");
        let bad = good.replacen(from, to, 1);
        assert!(
            policy::compile_text(&bad, "p.yaml").is_err(),
            "the loader accepts {to}"
        );
        assert!(!schema_errors(&bad).is_empty(), "the schema accepts {to}");
    }
}

/// Every key anywhere in the schema, with the level it is a property of.
fn all_keys(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            map.values().for_each(|v| all_keys(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| all_keys(v, out)),
        _ => {}
    }
}

#[test]
fn every_key_of_the_schema_is_in_the_readme_policy_language_section() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("## The policy language")
        .expect("a policy language section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut keys = BTreeSet::new();
    all_keys(&json_schema(), &mut keys);
    assert!(keys.len() > 30, "{keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !section.contains(&format!("`{k}`")) && !section.contains(&format!("{k}:")))
        .collect();
    assert!(
        missing.is_empty(),
        "keys of the schema the README's policy language section never mentions: {missing:?}"
    );
}

/// A checker for the subset of JSON Schema 2020-12 that `icp-audit schema` emits.
struct Checker<'s> {
    root: &'s Value,
}

impl Checker<'_> {
    fn check(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let map = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return errors.push(format!("{at}: not allowed here")),
            Value::Object(map) => map,
            other => panic!("not a schema: {other}"),
        };
        for (key, arg) in map {
            let before = errors.len();
            self.keyword(map, key, arg, v, at, errors);
            if errors.len() > before && key == "$ref" {
                break;
            }
        }
    }

    fn valid(&self, schema: &Value, v: &Value, at: &str) -> bool {
        let mut errors = Vec::new();
        self.check(schema, v, at, &mut errors);
        errors.is_empty()
    }

    fn keyword(
        &self,
        map: &serde_json::Map<String, Value>,
        key: &str,
        arg: &Value,
        v: &Value,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        let mut fail = |what: String| errors.push(format!("{at}: {what}"));
        let obj = v.as_object();
        match key {
            "$schema" | "$defs" | "title" | "description" | "examples" | "then" | "else" => {}
            "$ref" => {
                let name = arg.as_str().unwrap().strip_prefix("#/$defs/").unwrap();
                let target = &self.root["$defs"][name];
                assert!(!target.is_null(), "no $defs/{name}");
                self.check(target, v, at, errors);
            }
            "type" => {
                let types: Vec<&str> = match arg {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
                    _ => panic!("type"),
                };
                if !types.iter().any(|t| has_type(v, t)) {
                    fail(format!("expected {types:?}, found {v}"));
                }
            }
            "enum" => {
                if !arg.as_array().unwrap().contains(v) {
                    fail(format!("{v} is not one of {arg}"));
                }
            }
            "const" => {
                if arg != v {
                    fail(format!("{v} is not {arg}"));
                }
            }
            "properties" => {
                for (k, sub) in arg.as_object().unwrap() {
                    if let Some(x) = obj.and_then(|o| o.get(k)) {
                        self.check(sub, x, &format!("{at}.{k}"), errors);
                    }
                }
            }
            "additionalProperties" => {
                let declared = map.get("properties").and_then(Value::as_object);
                for (k, x) in obj.into_iter().flatten() {
                    if !declared.is_some_and(|d| d.contains_key(k)) {
                        self.check(arg, x, &format!("{at}.{k}"), errors);
                    }
                }
            }
            "propertyNames" => {
                for k in obj.into_iter().flat_map(|o| o.keys()) {
                    self.check(arg, &Value::String(k.clone()), &format!("{at}.{k}"), errors);
                }
            }
            "required" => {
                for k in arg.as_array().unwrap() {
                    if obj.is_some_and(|o| !o.contains_key(k.as_str().unwrap())) {
                        fail(format!("missing {k}"));
                    }
                }
            }
            "minProperties" | "maxProperties" => {
                let bound = arg.as_u64().unwrap() as usize;
                if let Some(o) = obj
                    && ((key == "minProperties" && o.len() < bound)
                        || (key == "maxProperties" && o.len() > bound))
                {
                    fail(format!("{} keys ({key} {bound})", o.len()));
                }
            }
            "items" => {
                for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                    self.check(arg, x, &format!("{at}[{i}]"), errors);
                }
            }
            "minItems" => {
                if v.as_array()
                    .is_some_and(|a| (a.len() as u64) < arg.as_u64().unwrap())
                {
                    fail(format!("fewer than {arg} items"));
                }
            }
            "minimum" | "maximum" => {
                if let (Some(n), Some(b)) = (v.as_f64(), arg.as_f64())
                    && ((key == "minimum" && n < b) || (key == "maximum" && n > b))
                {
                    fail(format!("{n} is out of range ({key} {b})"));
                }
            }
            "pattern" => {
                if let Some(s) = v.as_str()
                    && !matches_pattern(arg.as_str().unwrap(), s)
                {
                    fail(format!("`{s}` does not match {arg}"));
                }
            }
            "anyOf" | "oneOf" => {
                let n = arg
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| self.valid(s, v, at))
                    .count();
                if n == 0 || (key == "oneOf" && n > 1) {
                    fail(format!("{key}: {n} alternatives match"));
                }
            }
            "allOf" => {
                for s in arg.as_array().unwrap() {
                    self.check(s, v, at, errors);
                }
            }
            "not" => {
                if self.valid(arg, v, at) {
                    fail(format!("{v} matches what is excluded"));
                }
            }
            "if" => {
                let branch = if self.valid(arg, v, at) {
                    "then"
                } else {
                    "else"
                };
                if let Some(s) = map.get(branch) {
                    self.check(s, v, at, errors);
                }
            }
            other => panic!("the checker does not implement the keyword `{other}`"),
        }
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("type {other}"),
    }
}

/// The schema's patterns, each written out here (no regex engine in the project).
fn matches_pattern(pattern: &str, s: &str) -> bool {
    let dotted = |prefixes: &[&str]| {
        prefixes
            .iter()
            .any(|p| s.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
    };
    match pattern {
        "^(instance|request)\\..+$" => dotted(&["instance.", "request."]),
        "^(as_of|instance\\..+|request\\..+)$" => {
            s == "as_of" || dotted(&["instance.", "request."])
        }
        "^[a-z0-9][a-z0-9-]*$" => {
            s.bytes().next().is_some_and(|b| b != b'-')
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }
        "^[A-Za-z0-9]{0,16}$" => s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphanumeric()),
        other => panic!("the checker does not know the pattern {other}"),
    }
}
