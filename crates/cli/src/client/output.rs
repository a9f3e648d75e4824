//! Printing answers: JSON as received, or tables that fit the terminal.
//!
//! The width is `COLUMNS` when set, else the terminal's when stdout is one; output to a pipe or
//! a file is not cut. Values are printed as the engine sends them (timestamps included).

use serde_json::Value;

/// Narrowest a column is cut to; below this a cell says nothing.
const MIN_COLUMN: usize = 6;
const GAP: &str = "  ";

/// Pretty-printed JSON on stdout.
pub fn json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// One cell: strings as they are, `-` for null or absent, anything else as compact JSON; on one
/// line.
pub fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.replace(['\n', '\r', '\t'], " ")
}

/// The width to fit, if any.
pub fn width() -> Option<usize> {
    if let Some(cols) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()) {
        return Some(cols).filter(|c| *c > 0);
    }
    console::Term::stdout().size_checked().map(|(_, cols)| usize::from(cols))
}

/// A table of `rows` under `headers`, cut to `max` columns when given.
pub fn table(headers: &[&str], rows: &[Vec<String>], max: Option<usize>) -> String {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    if let Some(max) = max {
        fit(&mut widths, max.saturating_sub(GAP.len() * n.saturating_sub(1)));
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = widths
            .iter()
            .zip(row.iter().map(String::as_str).chain(std::iter::repeat("")))
            .map(|(w, c)| pad(&cut(c, *w), *w))
            .collect();
        out.push_str(cells.join(GAP).trim_end());
        out.push('\n');
    }
    out
}

/// Narrows the widest columns, one character at a time, until they fit `budget`.
fn fit(widths: &mut [usize], budget: usize) {
    while widths.iter().sum::<usize>() > budget {
        let Some((i, w)) = widths.iter().copied().enumerate().max_by_key(|(_, w)| *w) else { return };
        if w <= MIN_COLUMN {
            return;
        }
        widths[i] = w - 1;
    }
}

/// `text` cut to `width` characters, the last one `…` when something was cut.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn pad(text: &str, width: usize) -> String {
    let len = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(len)))
}

/// `field: value` lines, values cut to fit `max`.
pub fn fields(pairs: &[(&str, String)], max: Option<usize>) -> String {
    let key_width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let room = max.map(|m| m.saturating_sub(key_width + 1).max(MIN_COLUMN));
    pairs
        .iter()
        .map(|(k, v)| {
            let v = room.map_or_else(|| v.clone(), |r| cut(v, r));
            format!("{}{v}\n", pad(&format!("{k}:"), key_width + 1))
        })
        .collect()
}

/// The cells of `item` at `keys`.
pub fn row(item: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| cell(&item[*k])).collect()
}

/// The elements of an array (none for anything else).
pub fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_the_width_by_cutting_the_widest_cells() {
        let rows = vec![vec!["a".to_string(), "x".repeat(50), "done".to_string()]];
        let t = table(&["ID", "ERROR", "STATUS"], &rows, Some(30));
        for line in t.lines() {
            assert!(line.chars().count() <= 30, "{line:?}");
        }
        assert!(t.contains('…'), "{t}");
        assert!(t.lines().nth(1).is_some_and(|l| l.ends_with("done")), "short columns are kept whole: {t}");
        let whole = table(&["ID", "ERROR"], &rows, None);
        assert!(whole.contains(&"x".repeat(50)), "no width, no cut: {whole}");
    }

    #[test]
    fn cells_are_one_line_and_nulls_show_as_dashes() {
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&serde_json::json!("a\nb")), "a b");
        assert_eq!(cell(&serde_json::json!(1_764_460_800_000_i64)), "1764460800000");
        assert_eq!(cell(&serde_json::json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(cut("abcdef", 4), "abc…");
    }
}
