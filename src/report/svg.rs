//! Horizontal bar charts as inline SVG, for `report.html`: a label, a bar (optionally split
//! into coloured segments) and the count on each line. No script, no font, no link: the chart
//! is drawn by the page itself. Every text is escaped.

use super::html::escape;
use std::fmt::Write;

/// One line of a chart: a label and its segments (count, fill colour), drawn end to end.
pub struct Bar<'a> {
    pub label: &'a str,
    pub segments: Vec<(u64, &'static str)>,
}

impl Bar<'_> {
    fn total(&self) -> u64 {
        self.segments.iter().map(|s| s.0).sum()
    }
}

const WIDTH: f64 = 720.0;
const ROW: f64 = 26.0;
const BAR: f64 = 18.0;
/// Room on the right for the count.
const COUNT: f64 = 90.0;
/// Roughly how wide a character of the 13px label font is.
const CHAR: f64 = 7.2;
/// Labels longer than this are cut (the whole label stays in the tooltip).
const MAX_LABEL: usize = 34;

/// An accessible SVG bar chart titled `title`; `class` names it for styling and tests.
pub fn bar_chart(title: &str, class: &str, bars: &[Bar<'_>]) -> String {
    let max = bars.iter().map(Bar::total).max().unwrap_or(0).max(1);
    let longest = bars.iter().map(|b| b.label.chars().count()).max();
    let label_w = (longest.unwrap_or(0).min(MAX_LABEL + 1) as f64 * CHAR + 16.0).max(80.0);
    let track = WIDTH - label_w - COUNT;
    let height = ROW * bars.len() as f64 + 8.0;
    let mut s = String::with_capacity(512 + bars.len() * 400);
    let _ = write!(
        s,
        "<svg class=\"chart {class}\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" \
         height=\"{height}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        class = escape(class),
        t = escape(title),
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        line(&mut s, bar, y, label_w, track, max);
    }
    s.push_str("</svg>");
    s
}

/// One labelled bar at height `y`.
fn line(s: &mut String, bar: &Bar<'_>, y: f64, label_w: f64, track: f64, max: u64) {
    let total = bar.total();
    let mid = y + BAR / 2.0;
    let _ = write!(
        s,
        "<g class=\"row\"><title>{}: {}</title>\
         <text class=\"label\" x=\"{:.1}\" y=\"{mid:.1}\" text-anchor=\"end\" \
         dominant-baseline=\"central\" font-size=\"13\">{}</text>\
         <rect class=\"track\" x=\"{label_w:.1}\" y=\"{y:.1}\" width=\"{track:.1}\" \
         height=\"{BAR}\" fill=\"#eef0f3\"/>",
        escape(bar.label),
        group(total),
        label_w - 8.0,
        escape(&shorten(bar.label)),
    );
    let mut x = label_w;
    for &(n, fill) in bar.segments.iter().filter(|seg| seg.0 > 0) {
        // A non-zero count always shows, however small next to the largest.
        let w = (n as f64 / max as f64 * track).max(2.0);
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{BAR}\" \
             fill=\"{fill}\"/>"
        );
        x += w;
    }
    let _ = write!(
        s,
        "<text class=\"count\" x=\"{:.1}\" y=\"{mid:.1}\" dominant-baseline=\"central\" \
         font-size=\"13\">{}</text></g>",
        x + 6.0,
        group(total)
    );
}

/// A label cut to `MAX_LABEL` characters, with an ellipsis when cut.
fn shorten(label: &str) -> std::borrow::Cow<'_, str> {
    match label.char_indices().nth(MAX_LABEL) {
        Some((cut, _)) => format!("{}…", &label[..cut]).into(),
        None => label.into(),
    }
}

/// A count with thousands separators: 1234567 → `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn draws_one_row_per_bar_and_escapes_labels() {
        let bars = [
            Bar {
                label: "<b>&\"x\"",
                segments: vec![(3, "#c62828")],
            },
            Bar {
                label: "zero",
                segments: vec![(0, "#c62828")],
            },
        ];
        let svg = bar_chart("a <chart>", "t", &bars);
        assert_eq!(svg.matches("<g class=\"row\">").count(), 2);
        assert_eq!(svg.matches("class=\"bar\"").count(), 1, "no bar for 0");
        assert!(svg.contains("&lt;b&gt;&amp;&quot;x&quot;"));
        assert!(svg.contains("<title>a &lt;chart&gt;</title>"));
        assert!(!svg.contains("<b>"));
    }

    #[test]
    fn long_labels_are_cut_but_kept_in_the_tooltip() {
        let long = "é".repeat(50);
        let bars = [Bar {
            label: &long,
            segments: vec![(1, "#000")],
        }];
        let svg = bar_chart("t", "t", &bars);
        assert!(svg.contains(&format!("{}…", "é".repeat(MAX_LABEL))));
        assert!(svg.contains(&format!("<title>{long}: 1</title>")));
    }

    #[test]
    fn bars_scale_to_the_largest() {
        let bars = [
            Bar {
                label: "a",
                segments: vec![(10, "#000")],
            },
            Bar {
                label: "b",
                segments: vec![(5, "#000"), (5, "#111")],
            },
        ];
        let svg = bar_chart("t", "t", &bars);
        let widths: Vec<&str> = svg
            .split("class=\"bar\"")
            .skip(1)
            .map(|r| {
                r.split("width=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            })
            .collect();
        let w: Vec<f64> = widths.iter().map(|w| w.parse().unwrap()).collect();
        assert_eq!(w.len(), 3);
        assert!((w[0] - (w[1] + w[2])).abs() < 0.2, "{w:?}");
    }
}
