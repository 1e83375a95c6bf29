//! The report's chart: the monthly totals as bars, laid out by `plotters`
//! (axes, ticks, gridlines, labels) and drawn into the page through
//! [`PdfBackend`].

use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, Pos, VPos};

use crate::aggregate::Activity;
use crate::pdf_backend::{PdfBackend, PIXELS_PER_POINT};

/// The months' names, as the chart and the table label them.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The bars' colour.
const BAR: RGBColor = RGBColor(41, 107, 178);

/// Draws `activity`'s monthly totals into `content`, in the rectangle at
/// `origin` (bottom left, in points) of `size` points. A month below zero
/// (refunds outweighing sales) gets a bar below the axis.
pub fn draw(
    content: &mut pdf_writer::Content,
    activity: &Activity,
    origin: (f32, f32),
    size: (f32, f32),
) -> Result<(), DrawingAreaErrorKind<std::convert::Infallible>> {
    let root = PdfBackend::new(content, origin, size).into_drawing_area();
    let px = |points: f32| (points * PIXELS_PER_POINT) as u32;
    let totals = activity.months.iter().map(|m| m.total);
    let highest = totals.clone().fold(0.0, f64::max);
    let lowest = totals.fold(0.0, f64::min);
    // Headroom above the tallest bar for its label; a year of nothing still
    // gets an axis from 0 to 1.
    let top = if highest > 0.0 { highest * 1.12 } else { 1.0 };
    let bottom = if lowest < 0.0 { lowest * 1.25 } else { 0.0 };

    let mut chart = ChartBuilder::on(&root)
        .margin(px(4.0))
        .x_label_area_size(px(16.0))
        .y_label_area_size(px(40.0))
        .build_cartesian_2d((0u32..11u32).into_segmented(), bottom..top)?;
    let label = ("sans-serif", px(8.0)).into_font();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(12)
        .x_label_formatter(&|segment| match segment {
            SegmentValue::CenterOf(i) => MONTHS.get(*i as usize).copied().unwrap_or("").to_owned(),
            _ => String::new(),
        })
        .y_labels(6)
        .y_label_formatter(&|value| short(*value))
        .label_style(label.clone())
        .axis_style(BLACK.stroke_width(px(0.8)))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(220, 220, 220).stroke_width(px(0.5)))
        .draw()?;
    chart.draw_series(
        Histogram::vertical(&chart)
            .style(BAR.filled())
            .margin(px(6.0))
            .data(activity.months.iter().enumerate().map(|(i, m)| (i as u32, m.total))),
    )?;
    // Each month's total at its bar's end: above a bar up, below one down.
    let above = label
        .clone()
        .into_text_style(&root)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let below = label.into_text_style(&root).pos(Pos::new(HPos::Center, VPos::Top));
    chart.draw_series(
        activity
            .months
            .iter()
            .enumerate()
            .filter(|(_, m)| m.count > 0)
            .map(|(i, m)| {
                let style = if m.total < 0.0 { below.clone() } else { above.clone() };
                Text::new(short(m.total), (SegmentValue::CenterOf(i as u32), m.total), style)
            }),
    )?;
    root.present()
}

/// An amount in three significant figures or so, for an axis or a bar.
pub fn short(value: f64) -> String {
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

    /// The filled rectangles of `content` (`x y w h re` then `f`), as written.
    fn filled_rects(content: &[u8]) -> Vec<[f32; 4]> {
        let text = String::from_utf8_lossy(content);
        let lines: Vec<&str> = text.lines().collect();
        lines
            .windows(2)
            .filter(|pair| pair[0].ends_with(" re") && pair[1] == "f")
            .map(|pair| {
                let n: Vec<f32> = pair[0].split(' ').take(4).map(|v| v.parse().unwrap()).collect();
                [n[0], n[1], n[2], n[3]]
            })
            .collect()
    }

    #[test]
    fn each_month_is_a_bar_as_tall_as_its_total_in_order() {
        let mut activity = Activity::default();
        activity.months[2] = Month { count: 1, total: 300.0 };
        activity.months[5] = Month { count: 2, total: 150.0 };
        activity.months[11] = Month { count: 1, total: 75.0 };
        let mut content = pdf_writer::Content::new();
        draw(&mut content, &activity, (50.0, 470.0), (495.0, 260.0)).unwrap();
        // plotters draws a histogram's bars in no set order: sort them by x.
        let mut bars: Vec<[f32; 4]> = filled_rects(&content.finish())
            .into_iter()
            .filter(|r| r[3].abs() > 1.0)
            .collect();
        bars.sort_by(|a, b| a[0].total_cmp(&b[0]));
        assert_eq!(bars.len(), 3, "{bars:?}");
        let heights: Vec<f32> = bars.iter().map(|r| r[3].abs()).collect();
        assert!((heights[0] / heights[1] - 2.0).abs() < 0.02, "{heights:?}");
        assert!((heights[0] / heights[2] - 4.0).abs() < 0.05, "{heights:?}");
        assert!(
            bars[0][0] < bars[1][0] && bars[1][0] < bars[2][0],
            "left to right: {bars:?}"
        );
        for bar in &bars {
            assert!(bar[0] >= 50.0 && bar[0] + bar[2] <= 545.0, "inside the chart: {bar:?}");
            assert!(bar[1].min(bar[1] + bar[3]) >= 470.0 - 0.5, "above its bottom: {bar:?}");
        }
    }

    #[test]
    fn an_empty_year_draws_axes_and_no_bars() {
        let mut content = pdf_writer::Content::new();
        draw(&mut content, &Activity::default(), (0.0, 0.0), (400.0, 200.0)).unwrap();
        let content = content.finish();
        assert!(filled_rects(&content).iter().all(|r| r[3].abs() <= 1.0));
        assert!(String::from_utf8_lossy(&content).contains("(Jan)"));
    }
}
