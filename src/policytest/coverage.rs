//! Which side of which rule the cases exercised, read off each decision and the engine's order
//! of evaluation (gates in policy order up to the first refusal, then every check, then the
//! quota rules). A rule's *refusing side* is exercised by a case whose reasons list it. Its
//! *passing side* is exercised by a case that shows the engine evaluated it and it passed:
//! - a gate, when the decision lists a later gate that is not confidential (a confidential gate
//!   is checked on its own before everything else, so its refusal shows nothing about the
//!   others), or lists no gate at all (the decision got past the gates);
//! - a check, when the decision got past the gates and does not list it;
//! - a quota rule, when the decision lists a later quota rule, or is `eligible`/`issued`.
//!
//! `invalid` and `already_issued` decisions are made before any rule and show nothing.

use super::{CaseResult, Got, Suite};
use crate::eval::Outcome;
use crate::policy::{Kind, Policy};

/// Both sides of one rule.
#[derive(Debug, Clone)]
pub struct RuleCoverage {
    pub id: String,
    pub refused: bool,
    pub passed: bool,
}

/// The coverage of one policy (policies with the same text count as one).
#[derive(Debug, Clone)]
pub struct Coverage {
    pub name: String,
    /// Where the policy was read from, each once.
    pub sources: Vec<String>,
    /// The cases that ran under it.
    pub cases: usize,
    /// Gates and checks in evaluation order, then the quota rules.
    pub rules: Vec<RuleCoverage>,
}

impl Coverage {
    fn new(policy: &Policy) -> Coverage {
        let ids = policy
            .rules
            .iter()
            .map(|r| &r.id)
            .chain(policy.quotas.iter().map(|q| &q.id));
        Coverage {
            name: policy.name.clone(),
            sources: vec![policy.source.clone()],
            cases: 0,
            rules: ids
                .map(|id| RuleCoverage {
                    id: id.clone(),
                    refused: false,
                    passed: false,
                })
                .collect(),
        }
    }

    /// `rule: refusing side` / `rule: passing side` for each side no case exercised.
    pub fn gaps(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.rules {
            if !r.refused {
                out.push(format!("{}: refusing side", r.id));
            }
            if !r.passed {
                out.push(format!("{}: passing side", r.id));
            }
        }
        out
    }

    /// A summary line, then one indented line per side not exercised.
    pub fn describe(&self) -> Vec<String> {
        let gaps = self.gaps();
        let head = format!(
            "coverage of policy `{}` from {}: {}, {}: ",
            self.name,
            self.sources.join(", "),
            crate::report::counted(self.rules.len(), "rule"),
            crate::report::counted(self.cases, "case")
        );
        if gaps.is_empty() {
            return vec![head + "every rule both refused and passed"];
        }
        let mut lines = vec![format!("{head}{} sides not exercised:", gaps.len())];
        lines.extend(gaps.into_iter().map(|g| format!("  not exercised: {g}")));
        lines
    }

    fn observe(&mut self, policy: &Policy, got: &Got) {
        self.cases += 1;
        if matches!(got.outcome, Outcome::Invalid | Outcome::AlreadyIssued) {
            return;
        }
        let listed = |id: &str| got.reasons.iter().any(|r| r == id);
        let gate = |i: usize| policy.rules[i].kind == Kind::Gate;
        if let Some(g) = (0..policy.rules.len()).find(|&i| gate(i) && listed(&policy.rules[i].id)) {
            self.rules[g].refused = true;
            if !policy.rules[g].confidential {
                // INVARIANT: compiled rules are the gates, then the checks.
                (0..g).for_each(|i| self.rules[i].passed = true);
            }
            return;
        }
        for (i, rule) in policy.rules.iter().enumerate() {
            if listed(&rule.id) {
                self.rules[i].refused = true;
            } else {
                self.rules[i].passed = true;
            }
        }
        if policy.rules.iter().any(|r| listed(&r.id)) {
            return; // a failing check: the quota is not looked at
        }
        let base = policy.rules.len();
        let refused = policy.quotas.iter().position(|q| listed(&q.id));
        let passed = refused.unwrap_or(policy.quotas.len());
        (0..passed).for_each(|q| self.rules[base + q].passed = true);
        if let Some(q) = refused {
            self.rules[base + q].refused = true;
        }
    }
}

/// The coverage of every policy the suite ran, in the order they were first named.
pub fn measure(suite: &Suite, results: &[CaseResult]) -> Vec<Coverage> {
    let mut out: Vec<(String, Coverage)> = Vec::new();
    let mut group_of = Vec::new();
    for policy in &suite.policies {
        let at = match out.iter().position(|(sha, _)| *sha == policy.sha256) {
            Some(at) => {
                out[at].1.sources.push(policy.source.clone());
                at
            }
            None => {
                out.push((policy.sha256.clone(), Coverage::new(policy)));
                out.len() - 1
            }
        };
        group_of.push(at);
    }
    for r in results {
        let case = &suite.cases[r.case];
        let coverage = &mut out[group_of[case.policy]].1;
        match &r.got {
            Ok(got) => coverage.observe(&suite.policies[case.policy], got),
            // A case the engine refused (a corrupt ledger, say) ran under the policy too; it
            // decided nothing, so it exercises no rule.
            Err(_) => coverage.cases += 1,
        }
    }
    out.into_iter().map(|(_, c)| c).collect()
}
