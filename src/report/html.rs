//! `report.html`: a self-contained page for people, readable on a laptop and printable. The
//! run's header, totals per outcome, charts (outcomes, refusals per rule, refusals per region),
//! the remedies that would unblock the most requests and the waivers applied. Inline CSS and
//! inline SVG only: no script, no font, no image, no link, so opening it makes no request.
//! Every value is escaped.

use super::Facts;
use super::counts::{Counts, READING_ORDER, RegionCount, RemedyCount, rule_order};
use super::svg::{Bar, bar_chart, group};
use super::tables::Remedies;
use crate::eval::Outcome;
use crate::input::FileInfo;
use crate::policy::{Policy, Refusal};
use crate::time;
use std::fmt::Write;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // A control character (one in a file name, say) is an error in an HTML page, even
            // as a reference: it is shown as U+FFFD. Tabs and line ends are text.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = include_str!("report.css");

/// Colours of the outcomes, of reasons by what they lead to.
const ISSUED: &str = "#2e7d32";
const ELIGIBLE: &str = "#66bb6a";
const ALREADY: &str = "#1565c0";
const NOT_REQUIRED: &str = "#90a4ae";
const DENIED: &str = "#c62828";
const INVALID: &str = "#ef6c00";

/// How many regions and remedies the page lists; the rest are summed up.
const TOP_REGIONS: usize = 20;
const TOP_REMEDIES: usize = 10;

fn colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Issued => ISSUED,
        Outcome::Eligible => ELIGIBLE,
        Outcome::AlreadyIssued => ALREADY,
        Outcome::NotRequired => NOT_REQUIRED,
        Outcome::Denied => DENIED,
        Outcome::Invalid => INVALID,
    }
}

fn meaning(o: Outcome) -> &'static str {
    match o {
        Outcome::Issued => "a new code was issued",
        Outcome::Eligible => "would get a code (dry run)",
        Outcome::AlreadyIssued => "the ledger already holds its code",
        Outcome::NotRequired => "no ICP filing is needed",
        Outcome::Denied => "refused by a policy rule",
        Outcome::Invalid => "an input row is at fault",
    }
}

pub fn render(facts: &Facts<'_>, counts: &Counts<'_>, remedies: &Remedies) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>ICP service code audit, as of {}</title><style>{STYLE}</style></head><body>\n",
        time::format(facts.as_of)
    );
    banner(&mut h, facts);
    h.push_str("<main>\n");
    run_facts(&mut h, facts);
    outcomes(&mut h, counts);
    rules(&mut h, facts.policy, counts, remedies);
    regions(&mut h, &counts.regions);
    top_remedies(&mut h, &counts.remedies);
    let listed: Vec<(String, u64)> = facts
        .waivers
        .list
        .iter()
        .zip(facts.waived)
        .map(|(w, n)| {
            let state = super::summary::waiver_state(facts, w, *n);
            (format!("{} ({state})", w.describe()), *n)
        })
        .collect();
    waivers(&mut h, &listed);
    let _ = writeln!(
        h,
        "</main><footer>Written by icp-audit {} from the files above; \
         the rows behind every number are in <code>decisions.csv</code> and \
         <code>denials.csv</code>{}.</footer></body></html>",
        escape(env!("CARGO_PKG_VERSION")),
        if facts.waivers.source.is_empty() {
            ""
        } else {
            ", and those behind each waiver in <code>waived.csv</code>"
        }
    );
    h
}

/// The page's banner: when, under which policy, and whether codes were issued.
fn banner(h: &mut String, f: &Facts<'_>) {
    let mode = if f.dry_run {
        "<span class=\"badge dry\">dry run: no code issued, ledger untouched</span>"
    } else {
        "<span class=\"badge\">run: codes issued, ledger updated</span>"
    };
    let _ = writeln!(
        h,
        "<header class=\"run\"><h1>ICP service code audit</h1>\
         <p class=\"lead\">As of <strong>{}</strong> under policy <strong>{}</strong> {mode}</p>\
         </header>",
        time::format(f.as_of),
        escape(&f.policy.name),
    );
}

/// The run's header: what was decided, when, by which policy, on which files.
fn run_facts(h: &mut String, f: &Facts<'_>) {
    let file = |what: &str, info: &FileInfo| {
        format!(
            "<tr><th scope=\"row\">{what}</th><td><code>{}</code></td><td class=\"n\">{}</td>\
             <td><code class=\"hash\">{}</code></td></tr>",
            escape(&info.path),
            group(info.rows),
            escape(if info.sha256.is_empty() {
                "(no file)"
            } else {
                &info.sha256
            })
        )
    };
    let _ = writeln!(
        h,
        "<section class=\"facts\"><h2>The run</h2><dl>\
         <dt>As of</dt><dd>{}</dd>\
         <dt>Policy</dt><dd>{} <span class=\"muted\">from</span> <code>{}</code><br>\
         <span class=\"muted\">SHA-256</span> <code class=\"hash\">{}</code></dd>\
         <dt>Ledger rows</dt><dd>{} before, {} after{}</dd>\
         <dt>Dry run</dt><dd>{}</dd><dt>Version</dt><dd>icp-audit {}</dd></dl>\
         <table class=\"files\"><thead><tr><th>Input</th><th>Path</th><th class=\"n\">Rows</th>\
         <th>SHA-256</th></tr></thead><tbody>{}{}{}</tbody></table></section>",
        time::format(f.as_of),
        escape(&f.policy.name),
        escape(&f.policy.source),
        escape(&f.policy.sha256),
        group(f.ledger.rows),
        group(f.ledger_after),
        match &f.ledger_out {
            Some(path) => format!(
                " <span class=\"muted\">in</span> <code>{}</code>",
                escape(path)
            ),
            None => String::new(),
        },
        if f.dry_run { "yes" } else { "no" },
        escape(env!("CARGO_PKG_VERSION")),
        file("Instances", f.instances),
        file("Requests", f.requests),
        file("Ledger", f.ledger),
    );
}

/// Totals per outcome, as cards and as a chart.
fn outcomes(h: &mut String, counts: &Counts<'_>) {
    let total: u64 = counts.outcomes.values().sum();
    let _ = write!(
        h,
        "<section><h2>Outcomes</h2><p>{} requests, one decision each.</p><div class=\"cards\">",
        group(total)
    );
    for o in READING_ORDER {
        let n = counts.outcome(o);
        let _ = write!(
            h,
            "<div class=\"card\" style=\"border-top-color:{}\"><div class=\"num\">{}</div>\
             <div class=\"name\">{}</div><div class=\"muted\">{}</div></div>",
            colour(o),
            group(n),
            escape(o.name()),
            escape(meaning(o))
        );
    }
    h.push_str("</div>\n");
    let bars: Vec<Bar<'_>> = READING_ORDER
        .iter()
        .map(|&o| Bar {
            label: o.name(),
            segments: vec![(counts.outcome(o), colour(o))],
        })
        .collect();
    h.push_str(&bar_chart("Requests per outcome", "outcomes", &bars));
    h.push_str("</section>\n");
}

/// Refusals per rule, coloured by what the rule leads to, and the rules with their remedies.
fn rules(h: &mut String, policy: &Policy, counts: &Counts<'_>, remedies: &Remedies) {
    h.push_str("<section><h2>Refusals by rule</h2>");
    let order: Vec<&str> = rule_order(policy)
        .chain(counts.rules.keys().map(String::as_str))
        .filter(|id| counts.rules.get(*id).is_some_and(|n| *n > 0))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let order: Vec<&str> = order.into_iter().filter(|id| seen.insert(*id)).collect();
    if order.is_empty() {
        h.push_str("<p>No request was refused.</p></section>\n");
        return;
    }
    h.push_str(
        "<p>Every reason counts once: a request refused by three checks counts for each of them \
         (rows of <code>denials.csv</code>).</p>",
    );
    legend(
        h,
        &[
            (DENIED, "denied"),
            (NOT_REQUIRED, "not_required"),
            (INVALID, "invalid (built-in check of the input)"),
        ],
    );
    let bars: Vec<Bar<'_>> = order
        .iter()
        .map(|id| Bar {
            label: id,
            segments: vec![(counts.rules[*id], rule_colour(policy, id))],
        })
        .collect();
    h.push_str(&bar_chart("Refusals per rule", "rules", &bars));
    h.push_str(
        "<table class=\"rules\"><thead><tr><th>Rule</th><th>What it requires</th>\
         <th class=\"n\">Refusals</th><th>Most common remedy</th></tr></thead><tbody>",
    );
    for id in order {
        let remedy = remedies
            .get(id)
            .and_then(|m| m.iter().max_by_key(|(_, c)| **c))
            .map_or(String::new(), |(r, _)| escape(r));
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td>{remedy}</td></tr>",
            escape(id),
            escape(describe(policy, id)),
            group(counts.rules[id]),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn describe<'p>(policy: &'p Policy, id: &str) -> &'p str {
    let rule = policy.rules.iter().find(|r| r.id == id);
    let quota = policy.quotas.iter().find(|q| q.id == id);
    rule.map(|r| r.description.as_str())
        .or(quota.map(|q| q.description.as_str()))
        .unwrap_or("built-in check of the input")
}

fn rule_colour(policy: &Policy, id: &str) -> &'static str {
    match policy.rules.iter().find(|r| r.id == id) {
        Some(r) if r.refusal == Refusal::NotRequired => NOT_REQUIRED,
        Some(_) => DENIED,
        None if policy.quotas.iter().any(|q| q.id == id) => DENIED,
        None => INVALID,
    }
}

/// `denied` and `not_required` requests per region of the instance they were judged on.
fn regions(h: &mut String, regions: &[RegionCount<'_>]) {
    h.push_str("<section><h2>Denials by region</h2>");
    if regions.is_empty() {
        h.push_str("<p>No request was denied or found not to need a code.</p></section>\n");
        return;
    }
    h.push_str(
        "<p>Requests whose outcome is <code>denied</code> or <code>not_required</code>, by the \
         region of the inventory row they were judged on; <em>(no instance)</em>: the instance \
         is not in the inventory; <em>(no region)</em>: its row gives no region.</p>",
    );
    legend(h, &[(DENIED, "denied"), (NOT_REQUIRED, "not_required")]);
    let (shown, rest) = regions.split_at(regions.len().min(TOP_REGIONS));
    let other = format!("({} other regions)", rest.len());
    let mut bars: Vec<Bar<'_>> = shown
        .iter()
        .map(|r| Bar {
            label: match r.region {
                None => "(no instance)",
                // A damaged row without its region (refused by the owner gate, which decides
                // before the row's damage is told).
                Some("") => "(no region)",
                Some(region) => region,
            },
            segments: vec![(r.denied, DENIED), (r.not_required, NOT_REQUIRED)],
        })
        .collect();
    if !rest.is_empty() {
        let sum = |f: fn(&RegionCount<'_>) -> u64| rest.iter().map(f).sum::<u64>();
        bars.push(Bar {
            label: &other,
            segments: vec![
                (sum(|r| r.denied), DENIED),
                (sum(|r| r.not_required), NOT_REQUIRED),
            ],
        });
    }
    h.push_str(&bar_chart(
        "Denied and not_required requests per region",
        "regions",
        &bars,
    ));
    h.push_str("</section>\n");
}

/// The remedies that would unblock the most requests.
fn top_remedies(h: &mut String, remedies: &[RemedyCount<'_>]) {
    h.push_str("<section><h2>Top remedies</h2>");
    if remedies.is_empty() {
        h.push_str("<p>No request was denied or invalid: nothing to remedy.</p></section>\n");
        return;
    }
    h.push_str(
        "<p>For requests that were <code>denied</code> or <code>invalid</code>. \
         <strong>Would unblock</strong>: requests every one of whose reasons has this remedy, \
         so acting on it clears everything this run found against them (a refusing gate ends \
         the evaluation, so a later rule may still refuse). <strong>Refusals</strong>: reasons \
         with this remedy.</p>\
         <table class=\"remedies\"><thead><tr><th>Remedy</th><th class=\"n\">Would unblock</th>\
         <th class=\"n\">Refusals</th><th>Rules</th></tr></thead><tbody>",
    );
    for r in remedies.iter().take(TOP_REMEDIES) {
        let rules: Vec<String> = r
            .rules
            .iter()
            .map(|id| format!("<code>{}</code>", escape(id)))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&r.remedy),
            group(r.unblocks),
            group(r.addresses),
            rules.join(" ")
        );
    }
    h.push_str("</tbody></table>");
    if remedies.len() > TOP_REMEDIES {
        let _ = write!(
            h,
            "<p class=\"muted\">Remedies not shown: {} (every remedy is in \
             <code>denials.csv</code>).</p>",
            remedies.len() - TOP_REMEDIES
        );
    }
    h.push_str("</section>\n");
}

/// Every waiver of the run (applied, unused or expired) and how many requests it exempted.
pub fn waivers(h: &mut String, applied: &[(String, u64)]) {
    h.push_str("<section><h2>Waivers</h2>");
    if applied.is_empty() {
        h.push_str("<p>No waivers were given for this run.</p></section>\n");
        return;
    }
    h.push_str(
        "<table class=\"waivers\"><thead><tr><th>Waiver</th>\
         <th class=\"n\">Requests exempted</th></tr></thead><tbody>",
    );
    for (what, n) in applied {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(what),
            group(*n)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// A row of colour keys.
fn legend(h: &mut String, keys: &[(&str, &str)]) {
    h.push_str("<p class=\"legend\">");
    for (fill, what) in keys {
        let _ = write!(
            h,
            "<span><svg width=\"12\" height=\"12\" aria-hidden=\"true\">\
             <rect width=\"12\" height=\"12\" fill=\"{fill}\"/></svg> {}</span>",
            escape(what)
        );
    }
    h.push_str("</p>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            escape("L\u{1}\u{7f}\u{85}\t.csv\n"),
            "L\u{fffd}\u{fffd}\u{fffd}\t.csv\n"
        );
    }

    #[test]
    fn waivers_say_none_or_list_them_escaped() {
        let mut h = String::new();
        waivers(&mut h, &[]);
        assert!(h.contains("No waivers were given"));
        let mut h = String::new();
        waivers(&mut h, &[("T-1 <public-ip>".to_string(), 1234)]);
        assert!(h.contains("T-1 &lt;public-ip&gt;"));
        assert!(h.contains(">1,234<"));
    }
}
