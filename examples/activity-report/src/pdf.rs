//! The report as a one-page PDF: a title, the year's totals, a bar chart of
//! the monthly totals and a table of every month, drawn with `pdf-writer`
//! (vector graphics and the standard Helvetica font, so nothing is embedded
//! and the file stays a few kilobytes whatever the input's size).

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use crate::aggregate::Activity;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const FONT: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");
/// A4 in points.
const PAGE: (f32, f32) = (595.0, 842.0);

/// The PDF bytes of `activity`'s report for `year`, headed `title`.
pub fn render(title: &str, year: u16, activity: &Activity) -> Vec<u8> {
    let (catalog, tree, page, content_id, font, bold) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
    );
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page]).count(1);
    let mut page_writer = pdf.page(page);
    page_writer
        .parent(tree)
        .media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1))
        .contents(content_id);
    page_writer.resources().fonts().pair(FONT, font).pair(BOLD, bold);
    page_writer.finish();
    pdf.type1_font(font)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));

    let mut content = Content::new();
    let counted: u64 = activity.months.iter().map(|m| m.count).sum();
    let total: f64 = activity.months.iter().map(|m| m.total).sum();
    text(&mut content, BOLD, 20.0, 50.0, 790.0, title);
    text(
        &mut content,
        FONT,
        11.0,
        50.0,
        768.0,
        &format!(
            "{year}: {counted} records, total {}; {} records of other years skipped",
            amount(total),
            activity.other_years
        ),
    );
    chart(&mut content, activity, (50.0, 470.0), (495.0, 260.0));
    table(&mut content, activity, 430.0);
    pdf.stream(content_id, &content.finish());
    pdf.finish()
}

/// Monthly totals as bars from `origin` (bottom left), `size` wide and high.
fn chart(content: &mut Content, activity: &Activity, origin: (f32, f32), size: (f32, f32)) {
    let (x0, y0) = origin;
    let (width, height) = size;
    let highest = activity.months.iter().map(|m| m.total.max(0.0)).fold(0.0, f64::max);
    let slot = width / 12.0;
    content.set_stroke_rgb(0.2, 0.2, 0.2).set_line_width(0.8);
    content.move_to(x0, y0).line_to(x0 + width, y0).stroke();
    content.move_to(x0, y0).line_to(x0, y0 + height).stroke();
    for (i, month) in activity.months.iter().enumerate() {
        let x = x0 + slot * i as f32 + slot * 0.15;
        let bar = if highest > 0.0 {
            (month.total.max(0.0) / highest) as f32 * (height - 20.0)
        } else {
            0.0
        };
        content
            .set_fill_rgb(0.16, 0.42, 0.70)
            .rect(x, y0, slot * 0.7, bar)
            .fill_nonzero();
        content.set_fill_rgb(0.0, 0.0, 0.0);
        text(content, FONT, 8.0, x, y0 - 12.0, MONTHS[i]);
        text(content, FONT, 7.0, x, y0 + bar + 4.0, &short(month.total));
    }
}

/// Every month's count and total, from `top` down.
fn table(content: &mut Content, activity: &Activity, top: f32) {
    text(content, BOLD, 10.0, 50.0, top, "Month");
    text(content, BOLD, 10.0, 200.0, top, "Records");
    text(content, BOLD, 10.0, 350.0, top, "Total");
    for (i, month) in activity.months.iter().enumerate() {
        let y = top - 18.0 * (i as f32 + 1.0);
        text(content, FONT, 10.0, 50.0, y, MONTHS[i]);
        text(content, FONT, 10.0, 200.0, y, &month.count.to_string());
        text(content, FONT, 10.0, 350.0, y, &amount(month.total));
    }
}

fn text(content: &mut Content, font: Name<'_>, size: f32, x: f32, y: f32, line: &str) {
    let latin: Vec<u8> = line
        .chars()
        .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
        .collect();
    content
        .begin_text()
        .set_font(font, size)
        .next_line(x, y)
        .show(Str(&latin))
        .end_text();
}

/// An amount with two decimals.
fn amount(value: f64) -> String {
    format!("{value:.2}")
}

/// An amount in three significant figures or so, for a bar's label.
fn short(value: f64) -> String {
    match value.abs() {
        v if v >= 1e9 => format!("{:.1}G", value / 1e9),
        v if v >= 1e6 => format!("{:.1}M", value / 1e6),
        v if v >= 1e3 => format!("{:.1}k", value / 1e3),
        _ => format!("{value:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Month;

    #[test]
    fn the_report_is_a_pdf_that_names_the_year_its_totals_and_every_month() {
        let mut activity = Activity::default();
        activity.months[2] = Month {
            count: 3,
            total: 1234.5,
        };
        activity.other_years = 4;
        let pdf = render("Shop activity", 2025, &activity);
        assert!(pdf.starts_with(b"%PDF-"), "{:?}", &pdf[..8]);
        assert!(String::from_utf8_lossy(&pdf[pdf.len() - 8..]).contains("%%EOF"));
        let text = String::from_utf8_lossy(&pdf);
        for expected in [
            "(Shop activity)",
            "(2025: 3 records, total 1234.50; 4 records of other years skipped)",
            "(Mar)",
            "(Dec)",
            "(1.2k)",
        ] {
            assert!(text.contains(expected), "{expected} missing");
        }
    }

    #[test]
    fn text_outside_ascii_is_replaced_not_dropped() {
        let pdf = render("Café — 2025", 2025, &Activity::default());
        assert!(String::from_utf8_lossy(&pdf).contains("(Caf? ? 2025)"));
    }
}
