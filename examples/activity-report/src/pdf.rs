//! The report as a one-page PDF: a title, the year's totals, a bar chart of
//! the monthly totals ([`chart`](crate::chart), laid out by `plotters`) and
//! a table of every month, written with `pdf-writer` (vector graphics and
//! the standard Helvetica fonts, so nothing is embedded and the file stays
//! a few kilobytes whatever the input's size).

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref};

use crate::aggregate::Activity;
use crate::chart::{self, MONTHS};
use crate::pdf_backend::{show, BOLD, REGULAR as FONT};
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
    // The backend cannot fail (its error type is `Infallible`), and a
    // layout `plotters` refuses would be a bug in `chart::draw`'s bounds.
    chart::draw(&mut content, activity, (50.0, 470.0), (495.0, 260.0)).expect("the chart's layout fits its box");
    table(&mut content, activity, 430.0);
    pdf.stream(content_id, &content.finish());
    pdf.finish()
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
    content.set_fill_rgb(0.0, 0.0, 0.0);
    show(content, font, size, (x, y), line);
}

/// An amount with two decimals.
fn amount(value: f64) -> String {
    format!("{value:.2}")
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
    fn latin_text_is_written_in_the_fonts_encoding_and_the_rest_replaced() {
        let pdf = render("Café — 2025 月", 2025, &Activity::default());
        // Not ASCII, so pdf-writer writes the WinAnsi bytes as a hex string.
        let hex: String = b"Caf\xe9 \x97 2025 ?".iter().map(|b| format!("{b:02X}")).collect();
        let text = String::from_utf8_lossy(&pdf).to_uppercase();
        assert!(text.contains(&format!("<{hex}>")), "{hex} missing");
    }
}
