#![allow(dead_code)] // each test binary uses a different subset
//! A small PromQL scanner shared by the rule and dashboard tests: it finds the metric names an
//! expression selects and the range windows it uses. It is not a parser; it only has to be
//! exact for the expressions this repository ships, and it errs on the side of reporting
//! unknown identifiers (so a typo fails a test instead of passing silently).

use std::collections::BTreeSet;

/// PromQL keywords and binary operators written as words.
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"];
/// Words followed by a parenthesised list of label names.
const LABEL_LIST_WORDS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// Replace string literals, label matchers `{...}` and range/subquery selectors `[...]` with
/// spaces, keeping the range selectors' text aside.
fn strip(expr: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(expr.len());
    let mut ranges = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let quote = c;
                let mut escaped = false;
                for d in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' && quote != '`' {
                        escaped = true;
                    } else if d == quote {
                        break;
                    }
                }
                out.push(' ');
            }
            '{' => {
                let mut depth = 1;
                let mut in_string: Option<char> = None;
                for d in chars.by_ref() {
                    match (in_string, d) {
                        (Some(q), d) if d == q => in_string = None,
                        (Some(_), _) => {}
                        (None, '"' | '\'' | '`') => in_string = Some(d),
                        (None, '{') => depth += 1,
                        (None, '}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                out.push(' ');
            }
            '[' => {
                let mut range = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    range.push(d);
                }
                ranges.push(range);
                out.push(' ');
            }
            '#' => {
                // Comment to the end of the line.
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    (out, ranges)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names (and recording-rule names) an expression selects.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let (stripped, _) = strip(expr);
    let chars: Vec<char> = stripped.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            // A Grafana variable such as $job or $__rate_interval.
            i += 1;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            // A number, possibly 1e-9, 0x1F or a duration such as 5m.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !is_ident_start(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_ident_char(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let next = chars.get(j).copied();
        if LABEL_LIST_WORDS.contains(&word.as_str()) {
            if next == Some('(') {
                while j < chars.len() && chars[j] != ')' {
                    j += 1;
                }
                i = j + 1;
            }
            continue;
        }
        let rest: String = chars[j..].iter().take(8).collect();
        let grouped = ["by", "without"]
            .iter()
            .any(|kw| rest.starts_with(kw) && !rest[kw.len()..].chars().next().is_some_and(is_ident_char));
        if next == Some('(') || grouped || KEYWORDS.contains(&word.as_str()) {
            // An aggregation written `sum by (...) (...)`, a function call (its arguments are
            // scanned next) or a keyword.
            continue;
        }
        names.insert(word);
    }
    names
}

/// The range and subquery windows an expression uses, in seconds (`[5m]`, `[30m:1m]` → range
/// part). Grafana variables such as `$__rate_interval` are returned as `None`.
pub fn range_windows(expr: &str) -> Vec<(String, Option<u64>)> {
    let (_, ranges) = strip(expr);
    ranges
        .into_iter()
        .map(|r| {
            let range = r.split(':').next().unwrap_or("").trim().to_string();
            let secs = parse_duration(&range);
            (r, secs)
        })
        .collect()
}

/// Parse a Prometheus duration such as `5m`, `1h30m`, `90s`.
pub fn parse_duration(s: &str) -> Option<u64> {
    if s.is_empty() || s.starts_with('$') {
        return None;
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let factor_ms = match unit.as_str() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total += n * factor_ms;
    }
    if !number.is_empty() {
        return None;
    }
    Some(total / 1_000)
}

/// Every name a shipped query may select from the engine: the catalog's sample names, plus the
/// `_bucket`, `_sum` and `_count` series of histograms.
pub fn catalog_series_names() -> BTreeSet<String> {
    use compozy_telemetry::catalog::{CATALOG, Kind};
    let mut names = BTreeSet::new();
    for def in CATALOG {
        let name = def.sample_name("compozy");
        if def.kind == Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_names_and_skips_labels_functions_and_strings() {
        let expr = r#"sum by (job, path) (rate(compozy_http_requests_total{status_code=~"5..", metric="compozy_x"}[5m]))
            / on (job) group_left (path) (compozy:http_requests:rate5m > 0) or vector(0) # comment_name"#;
        let names: Vec<String> = metric_names(expr).into_iter().collect();
        assert_eq!(names, ["compozy:http_requests:rate5m", "compozy_http_requests_total"]);
        assert_eq!(range_windows(expr), vec![("5m".to_string(), Some(300))]);
        assert_eq!(
            metric_names("histogram_quantile(0.95, x_bucket) > 1e-9 and up == 0"),
            ["up", "x_bucket"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("$__rate_interval"), None);
    }
}
