//! Pure helpers of the text output: durations, cut-down strings, aligned
//! tables. Nothing here talks to AWS, so all of it is unit-tested.

/// A duration in milliseconds as an operator reads it: `850ms`, `12s`,
/// `4m07s`, `2h05m`, `3d04h`. Negative durations (a clock ahead of ours)
/// read as `0s`.
pub fn human_duration(ms: i64) -> String {
    if ms < 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `text` on one line and at most `max` characters, ending in `…` when cut.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Rows as columns padded to their widest cell, two spaces apart; columns
/// whose index is in `right` are right-aligned (numbers). The last column
/// is not padded, so lines carry no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right.contains(&i) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_the_right_scale() {
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(0), "0ms");
        assert_eq!(human_duration(850), "850ms");
        assert_eq!(human_duration(12_300), "12s");
        assert_eq!(human_duration(247_000), "4m07s");
        assert_eq!(human_duration(3_600_000 * 2 + 5 * 60_000 + 59_000), "2h05m");
        assert_eq!(human_duration(86_400_000 * 3 + 4 * 3_600_000), "3d04h");
    }

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line("a\nb\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(one_line("héllo", 5), "héllo");
    }

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let text = table(
            &["queue", "visible", "note"],
            &[
                vec!["FastQueue".into(), "3".into(), "".into()],
                vec!["SlowDeadLetterQueue".into(), "120".into(), "x".into()],
            ],
            &[1],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "queue                visible  note");
        assert_eq!(lines[1], "FastQueue                  3");
        assert_eq!(lines[2], "SlowDeadLetterQueue      120  x");
    }
}
