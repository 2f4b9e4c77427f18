//! The policy-test file as written (serde structures with `deny_unknown_fields`, so a typo is an
//! error with its YAML line and column), and its expansion into `Case`s: the file's base
//! instance merged into each case, the request and ledger defaults filled in, one case per
//! policy it runs under. Nothing here evaluates anything.

use super::{Case, Cells, Expect};
use crate::schema::{Schema, fold};
use crate::time::{self, Time};
use serde::{Deserialize, Deserializer};
use serde_yaml::{Mapping, Value};

/// The policy the test file names by this word, or that applies when it names none.
pub const BUILT_IN: &str = "built-in";

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a test file: a mapping with cases (and policy, as_of, instance)"
)]
pub struct RawFile {
    /// The policy (or policies) every case runs under; default: the built-in policy.
    #[serde(default)]
    pub policy: Option<Policies>,
    /// The default as-of time of the cases.
    #[serde(default, deserialize_with = "some_time")]
    pub as_of: Option<Time>,
    /// The base inventory row that each case's `instance` is merged onto.
    #[serde(default)]
    pub instance: Option<Mapping>,
    pub cases: Vec<RawCase>,
}

/// One policy path, or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Policies {
    One(String),
    Many(Vec<String>),
}

impl Policies {
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Policies::One(p) => vec![p.as_str()],
            Policies::Many(ps) => ps.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a test case: a mapping with name and expect (and the other keys of a case)"
)]
pub struct RawCase {
    pub name: String,
    /// Free text for the reader: why the case exists.
    #[serde(default)]
    #[allow(dead_code)]
    pub note: Option<String>,
    #[serde(default)]
    pub policy: Option<Policies>,
    #[serde(default, deserialize_with = "some_time")]
    pub as_of: Option<Time>,
    /// Absent: the file's base instance (or none); `null`: no inventory row.
    #[serde(default, deserialize_with = "some")]
    pub instance: Option<Option<Mapping>>,
    #[serde(default)]
    pub request: Option<Mapping>,
    #[serde(default)]
    pub ledger: Option<Vec<Mapping>>,
    #[serde(default)]
    pub codes_held: Option<u32>,
    pub expect: Expect,
}

/// Present, even as `null`: tells `instance: null` from no `instance` key at all.
fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn some_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
    let text = String::deserialize(d)?;
    time::parse(&text)
        .map(|t| Some(time::whole_micros(t)))
        .map_err(serde::de::Error::custom)
}

/// Parses the text; a syntax error or unknown key comes back with its line and column.
pub fn parse(text: &str) -> Result<RawFile, (Option<(usize, usize)>, String)> {
    serde_yaml::from_str(text).map_err(|e| {
        let place = e.location().map(|l| (l.line(), l.column()));
        let msg = e.to_string();
        // serde_yaml appends " at line L column C"; the caller puts the place up front.
        let msg = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        // A repeated key is placed at the repeat, not at the mapping that holds it.
        match crate::policy::locate::repeated_key(text, &msg) {
            Some((at, said)) => (Some(at), said),
            None => (place, msg),
        }
    })
}

/// Puts back the spelling of every unquoted number and boolean in the rows of `raw` (the base
/// instance, and each case's instance, request and ledger rows), as `text` writes them: YAML
/// reads `0x1F` as 31, `1.50` as 1.5 and `1e1` as 10.0, where the CSV cell a case stands for
/// holds the text as written, as a policy's literals keep theirs.
pub fn keep_spelling(raw: &mut RawFile, written: &crate::policy::locate::Locations) {
    let fix = |map: &mut Mapping, path: &str| {
        for (key, value) in map.iter_mut() {
            let Some(key) = key.as_str() else { continue };
            let at = format!("{path}.{key}");
            match value {
                Value::Sequence(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        respell(item, written.written(&format!("{at}[{i}]")));
                    }
                }
                v => respell(v, written.written(&at)),
            }
        }
    };
    if let Some(base) = raw.instance.as_mut() {
        fix(base, "instance");
    }
    for (i, case) in raw.cases.iter_mut().enumerate() {
        let at = format!("cases[{i}]");
        if let Some(Some(instance)) = case.instance.as_mut() {
            fix(instance, &format!("{at}.instance"));
        }
        if let Some(request) = case.request.as_mut() {
            fix(request, &format!("{at}.request"));
        }
        for (j, row) in case.ledger.iter_mut().flatten().enumerate() {
            fix(row, &format!("{at}.ledger[{j}]"));
        }
    }
}

/// A number or boolean `value` as the text it was written as, when that is known.
fn respell(value: &mut Value, written: Option<&str>) {
    if let (Value::Number(_) | Value::Bool(_), Some(text)) = (&*value, written) {
        *value = Value::String(text.to_string());
    }
}

/// A case before it is paired with a policy: everything but the policy is settled.
pub struct Draft {
    pub name: String,
    pub as_of: Time,
    pub instance: Option<Cells>,
    pub request: Cells,
    pub ledger: Vec<Cells>,
    pub expect: Expect,
}

impl Draft {
    /// The case under one policy.
    pub fn under(&self, file: &str, name: String, policy: usize) -> Case {
        Case {
            file: file.to_string(),
            name,
            policy,
            as_of: self.as_of,
            instance: self.instance.clone(),
            request: self.request.clone(),
            ledger: self.ledger.clone(),
            expect: self.expect.clone(),
        }
    }
}

/// Settles one case against the file's defaults; `Err` is a message about the case.
pub fn draft(file: &RawFile, case: &RawCase) -> Result<Draft, String> {
    let as_of = case
        .as_of
        .or(file.as_of)
        .ok_or("no `as_of`: give it in the case or at the top of the file")?;
    let instance = match &case.instance {
        Some(None) => None,
        Some(Some(own)) => Some(merge(file.instance.as_ref(), own)?),
        None => file
            .instance
            .as_ref()
            .map(|b| cells(b, "instance"))
            .transpose()?,
    };
    if let Some(row) = &instance {
        require_columns(row)?;
    }
    let request = request(case.request.as_ref(), instance.as_ref(), as_of)?;
    let ledger = match (&case.ledger, case.codes_held) {
        (Some(_), Some(_)) => return Err("give `ledger` or `codes_held`, not both".into()),
        (Some(rows), None) => rows
            .iter()
            .enumerate()
            .map(|(i, r)| ledger_row(r, i, &request))
            .collect::<Result<_, _>>()?,
        (None, Some(n)) => (0..n as usize)
            .map(|i| ledger_row(&Mapping::new(), i, &request))
            .collect::<Result<_, _>>()?,
        (None, None) => Vec::new(),
    };
    Ok(Draft {
        name: case.name.clone(),
        as_of,
        instance,
        request,
        ledger,
        expect: case.expect.clone(),
    })
}

/// A mapping's cells as CSV text, in the order written: scalars as text, `null` as an empty
/// cell, a list as `;`-separated items (for `operation_locks`).
fn cells(map: &Mapping, what: &str) -> Result<Cells, String> {
    let row: Cells = map
        .iter()
        .map(|(k, v)| {
            let key = k
                .as_str()
                .ok_or_else(|| format!("`{what}`: column names are strings"))?;
            let text = match v {
                Value::Sequence(items) => items
                    .iter()
                    .map(|i| {
                        scalar(i).ok_or_else(|| format!("`{what}.{key}`: list items are scalars"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(";"),
                v => scalar(v).ok_or_else(|| format!("`{what}.{key}`: give a scalar or a list"))?,
            };
            Ok((key.to_string(), text))
        })
        .collect::<Result<_, String>>()?;
    // Two keys naming one column (`instance_id` and `InstanceId`) contradict each other: a run
    // refuses a file whose header names a column twice, and which one the case meant cannot be
    // told.
    let names: Vec<Option<String>> = row.iter().map(|(k, _)| column_named(what, k)).collect();
    for (i, name) in names.iter().enumerate() {
        let Some(name) = name else { continue };
        if let Some(j) = names[i + 1..].iter().position(|n| n.as_ref() == Some(name)) {
            return Err(format!(
                "`{what}`: `{}` and `{}` name one column",
                row[i].0,
                row[i + 1 + j].0
            ));
        }
    }
    Ok(row)
}

/// The column a key of an `instance`, `request` or `ledger` mapping names, as its file's header
/// cell would name it (trimmed as header cells are); `None` for a key that names no column (an
/// empty header cell, or `_`).
fn column_named(what: &str, key: &str) -> Option<String> {
    let key = key.trim();
    if fold(key).is_empty() {
        return None;
    }
    Some(match what {
        "instance" => column_of(&Schema::instances(), key),
        "request" => column_of(&Schema::requests(), key),
        _ => crate::schema::ledger_key(key),
    })
}

/// The file's base `instance` row, checked as a case's own is.
pub fn base_instance(base: &Mapping) -> Result<Cells, String> {
    cells(base, "instance")
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The column a cell's key names in `schema` (any spelling), or the key folded.
fn column_of(schema: &Schema, key: &str) -> String {
    schema
        .columns
        .iter()
        .find(|c| c.matches_header(key))
        .map_or_else(|| fold(key), |c| c.name.clone())
}

/// The case's instance cells over the base's: a key in any spelling replaces the base's cell
/// for the same column, in place; new keys follow.
fn merge(base: Option<&Mapping>, own: &Mapping) -> Result<Cells, String> {
    let schema = Schema::instances();
    let mut row = base
        .map(|b| cells(b, "instance"))
        .transpose()?
        .unwrap_or_default();
    for (key, text) in cells(own, "instance")? {
        let col = column_of(&schema, &key);
        match row.iter_mut().find(|(k, _)| column_of(&schema, k) == col) {
            Some(cell) => *cell = (key, text),
            None => row.push((key, text)),
        }
    }
    Ok(row)
}

/// A row without a required column would refuse the whole inventory, which is never what a
/// case means: an empty cell (a malformed row) is written as `column: ""`.
fn require_columns(row: &Cells) -> Result<(), String> {
    let schema = Schema::instances();
    let missing: Vec<&str> = schema
        .columns
        .iter()
        .filter(|c| c.required && !row.iter().any(|(k, _)| c.matches_header(k)))
        .map(|c| c.name.as_str())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the instance has no {} (write `column: \"\"` for an empty cell)",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// The value of a column in a row, by any spelling.
pub fn cell<'r>(row: &'r Cells, schema: &Schema, column: &str) -> Option<&'r str> {
    let col = schema.columns.iter().find(|c| c.name == column)?;
    row.iter()
        .find(|(k, _)| col.matches_header(k))
        .map(|(_, v)| v.as_str())
}

/// The request row: what the case gives, then the defaults for the four columns it leaves out.
fn request(
    given: Option<&Mapping>,
    instance: Option<&Cells>,
    as_of: Time,
) -> Result<Cells, String> {
    let schema = Schema::requests();
    let inventory = Schema::instances();
    let mut row = given
        .map(|m| cells(m, "request"))
        .transpose()?
        .unwrap_or_default();
    let from_instance = |column: &str, absent: &str| {
        instance
            .and_then(|i| cell(i, &inventory, column))
            .unwrap_or(absent)
            .to_string()
    };
    let defaults = [
        ("request_id", "t1".to_string()),
        ("account_id", from_instance("account_id", "requester")),
        (
            "instance_id",
            from_instance("instance_id", "no-such-instance"),
        ),
        ("requested_at", time::format(as_of)),
    ];
    for (column, value) in defaults {
        if cell(&row, &schema, column).is_none() {
            row.push((column.to_string(), value));
        }
    }
    Ok(row)
}

/// A ledger row: the case's cells, then `code` (`code-N`), `instance_id` and `account_id` (the
/// request's) and `status` (`issued`) where it leaves them out.
fn ledger_row(given: &Mapping, i: usize, request: &Cells) -> Result<Cells, String> {
    let mut row = cells(given, "ledger")?;
    let requests = Schema::requests();
    let of_request = |c: &str| cell(request, &requests, c).unwrap_or_default().to_string();
    let defaults = [
        ("code", format!("code-{}", i + 1)),
        ("instance_id", of_request("instance_id")),
        ("account_id", of_request("account_id")),
        ("status", "issued".to_string()),
    ];
    for (column, value) in defaults {
        if !row
            .iter()
            .any(|(k, _)| crate::schema::ledger_key(k) == column)
        {
            row.push((column.to_string(), value));
        }
    }
    Ok(row)
}
