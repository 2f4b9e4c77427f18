//! The short table a person at a terminal sees after the summary line: requests per outcome
//! and the reasons given most often. Rendered to a `String` here; only `main` prints it, and
//! only to a terminal (a nightly log gets the one summary line).

use super::Summary;
use super::svg::group;

/// The outcomes with requests (and their total) and the top reasons, as aligned text.
pub fn render(summary: &Summary) -> String {
    let total: u64 = summary.outcomes.iter().map(|(_, n)| n).sum();
    let mut rows: Vec<(&str, String, String)> = summary
        .outcomes
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(o, n)| (*o, group(*n), percent(*n, total)))
        .collect();
    rows.push(("total", group(total), percent(total, total)));
    let reasons: Vec<(&str, String)> = summary
        .top_reasons
        .iter()
        .map(|(id, n)| (id.as_str(), group(*n)))
        .collect();
    // One width for both tables, so their numbers line up.
    let name_w = rows
        .iter()
        .map(|r| r.0)
        .chain(reasons.iter().map(|r| r.0))
        .chain(["outcome", "top reasons"])
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0);
    let num_w = rows
        .iter()
        .map(|r| &r.1)
        .chain(reasons.iter().map(|r| &r.1))
        .map(String::len)
        .chain([8])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(format!("  {:<name_w$}  {:>num_w$}", "outcome", "requests"));
    for (name, n, pct) in &rows {
        line(format!("  {name:<name_w$}  {n:>num_w$}  {pct:>6}"));
    }
    if !reasons.is_empty() {
        line(String::new());
        line(format!(
            "  {:<name_w$}  {:>num_w$}",
            "top reasons", "requests"
        ));
        for (id, n) in &reasons {
            line(format!("  {id:<name_w$}  {n:>num_w$}"));
        }
    }
    out
}

/// `n` as a share of `total`, one decimal: `52.5%`.
fn percent(n: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    format!("{:.1}%", n as f64 * 100.0 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(outcomes: &[(&'static str, u64)], reasons: &[(&str, u64)]) -> Summary {
        Summary {
            json: serde_json::Value::Null,
            line: String::new(),
            outcomes: outcomes.to_vec(),
            top_reasons: reasons.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn lists_outcomes_with_requests_then_the_top_reasons() {
        let s = summary(
            &[
                ("issued", 42),
                ("eligible", 0),
                ("already_issued", 3),
                ("not_required", 4),
                ("denied", 21),
                ("invalid", 10),
            ],
            &[
                ("not-expired", 5),
                ("public-ip", 5),
                ("three-months-left", 5),
                ("owner-account", 4),
                ("mainland-region", 4),
            ],
        );
        let want = [
            "  outcome            requests",
            "  issued                   42   52.5%",
            "  already_issued            3    3.8%",
            "  not_required              4    5.0%",
            "  denied                   21   26.2%",
            "  invalid                  10   12.5%",
            "  total                    80  100.0%",
            "",
            "  top reasons        requests",
            "  not-expired               5",
            "  public-ip                 5",
            "  three-months-left         5",
            "  owner-account             4",
            "  mainland-region           4",
        ]
        .map(|l| format!("{l}\n"))
        .concat();
        assert_eq!(render(&s), want);
    }

    #[test]
    fn an_empty_batch_has_a_total_and_no_reasons() {
        let s = summary(&[("issued", 0), ("denied", 0)], &[]);
        assert_eq!(
            render(&s),
            "  outcome      requests\n  total               0\n"
        );
    }

    #[test]
    fn large_counts_are_grouped_and_aligned() {
        let s = summary(&[("issued", 1_234_567)], &[("public-ip", 89)]);
        let text = render(&s);
        assert!(
            text.contains("  issued       1,234,567  100.0%\n"),
            "{text}"
        );
        assert!(text.contains("  public-ip           89\n"), "{text}");
    }
}
