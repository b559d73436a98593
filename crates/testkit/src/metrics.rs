//! Reading Prometheus text exposition in tests: the value of one series, and the metric names
//! a text or a file (alert rules, a dashboard) uses.

use std::collections::BTreeSet;

/// The value of the series written exactly as `series` (the name, and its labels in the order
/// the exposition writes them: sorted by label name), or `None` when the text has no such line.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
}

/// The sum of every series of metric `name` whose labels contain each of `labels` (`k="v"`).
pub fn sum_of(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels_text, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let matches = labels
                .iter()
                .all(|label| labels_text.split(',').any(|pair| pair.trim() == *label));
            matches.then(|| value.trim().parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Every `pubhook_…` identifier in `text` (a query, an alert rule, a dashboard).
pub fn names_used(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("pubhook_") {
        let start = at + found;
        let before_ok = start == 0 || !is_name_byte(bytes[start - 1]);
        let mut end = start;
        while end < bytes.len() && is_name_byte(bytes[end]) {
            end += 1;
        }
        if before_ok {
            names.insert(text[start..end].to_owned());
        }
        at = end.max(start + 1);
    }
    names
}

/// The series names an exposition text has samples of (`_bucket`, `_sum` and `_count` of
/// histograms included, as they are written).
pub fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            line[..end].to_owned()
        })
        .collect()
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP pubhook_x_total A.\n# TYPE pubhook_x_total counter\n\
        pubhook_x_total{kind=\"a\",outcome=\"ok\"} 2\npubhook_x_total{kind=\"b\",outcome=\"ok\"} 3\n\
        pubhook_g 7\n";

    #[test]
    fn series_are_read_by_their_exact_labels_or_summed() {
        assert_eq!(
            series_value(TEXT, "pubhook_x_total{kind=\"a\",outcome=\"ok\"}"),
            Some(2.0)
        );
        assert_eq!(series_value(TEXT, "pubhook_g"), Some(7.0));
        assert_eq!(series_value(TEXT, "pubhook_x"), None);
        assert_eq!(sum_of(TEXT, "pubhook_x_total", &["outcome=\"ok\""]), 5.0);
        assert_eq!(sum_of(TEXT, "pubhook_x_total", &["kind=\"b\""]), 3.0);
    }

    #[test]
    fn names_are_found_in_queries_and_exposition() {
        let used = names_used("rate(pubhook_x_total[5m]) > 0 and on() pubhook_g{a=\"b\"}");
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            ["pubhook_g", "pubhook_x_total"]
        );
        let exposed = exposed_names(TEXT);
        assert!(exposed.contains("pubhook_x_total") && exposed.contains("pubhook_g"));
    }
}
