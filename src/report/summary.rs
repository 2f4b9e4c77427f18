//! `summary.json`: the run in numbers, for scripts and auditors; the one-line summary a
//! nightly log gets; and what the terminal table shows.

use super::counts::READING_ORDER;
use super::{Counts, Facts};
use crate::input::FileInfo;
use crate::policy::waivers::{Subject, Waiver};
use crate::time;
use serde_json::{Value, json};

pub struct Summary {
    pub json: Value,
    pub line: String,
    /// Requests per outcome, in reading order (issued first, invalid last).
    pub outcomes: Vec<(&'static str, u64)>,
    /// The reasons given most often (rule id, rows of `denials.csv`), at most five.
    pub top_reasons: Vec<(String, u64)>,
    /// What the operator must be told even with `--quiet` (stderr; `summary.json` has them too).
    pub warnings: Vec<String>,
}

fn file(info: &FileInfo) -> Value {
    json!({ "path": info.path, "rows": info.rows, "sha256": info.sha256 })
}

/// Every waiver with how often it applied and its state: `applied`, `unused` (in force but
/// matched nothing) or `expired` (its date is past), so stale exemptions get noticed.
fn waivers(facts: &Facts<'_>) -> Value {
    let list: Vec<Value> = facts
        .waivers
        .list
        .iter()
        .zip(facts.waived)
        .map(|(w, n)| {
            let (kind, who) = match &w.subject {
                Subject::Instance(i) => ("instance", i),
                Subject::Account(a) => ("account", a),
            };
            json!({
                "ticket": w.ticket,
                "check": w.check,
                kind: who,
                "until": time::format(w.until),
                "justification": w.justification,
                "applied": n,
                "state": waiver_state(facts, w, *n),
            })
        })
        .collect();
    json!({ "source": facts.waivers.source, "list": list })
}

/// `applied`, `expired` or `unused`.
pub fn waiver_state(facts: &Facts<'_>, w: &Waiver, applied: u64) -> &'static str {
    if facts.as_of >= w.until {
        "expired"
    } else if applied > 0 {
        "applied"
    } else {
        "unused"
    }
}

impl Summary {
    pub fn new(
        facts: &Facts<'_>,
        counts: &Counts,
        requests: usize,
        input_errors: usize,
    ) -> Summary {
        let mut ledger = file(facts.ledger);
        ledger["exists"] = json!(facts.ledger_exists);
        let json = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "as_of": time::format(facts.as_of),
            "dry_run": facts.dry_run,
            "policy": {
                "name": facts.policy.name,
                "description": facts.policy.description,
                "source": facts.policy.source,
                "sha256": facts.policy.sha256,
            },
            "inputs": {
                "instances": file(facts.instances),
                "requests": file(facts.requests),
                "ledger": ledger,
            },
            "ledger_rows": {
                "before": facts.ledger.rows,
                "after": facts.ledger_after,
                "written_to": facts.ledger_out,
            },
            "requests": requests,
            "outcomes": counts.outcomes,
            "rules": counts.rules,
            "input_errors": input_errors,
            "waivers": waivers(facts),
            "warnings": facts.warnings,
        });
        let outcomes: Vec<String> = counts
            .outcomes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(o, n)| format!("{o} {n}"))
            .collect();
        let line = format!(
            "icp-audit: {} requests as of {}{}: {}; ledger {} -> {} rows",
            requests,
            time::format(facts.as_of),
            if facts.dry_run { " (dry run)" } else { "" },
            if outcomes.is_empty() {
                "none".to_string()
            } else {
                outcomes.join(", ")
            },
            facts.ledger.rows,
            facts.ledger_after
        );
        Summary {
            json,
            line,
            outcomes: READING_ORDER
                .iter()
                .map(|o| (o.name(), counts.outcome(*o)))
                .collect(),
            top_reasons: counts
                .top_rules(5)
                .into_iter()
                .map(|(id, n)| (id.to_string(), n))
                .collect(),
            warnings: facts.warnings.clone(),
        }
    }
}
