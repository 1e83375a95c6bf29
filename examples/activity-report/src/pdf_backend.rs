//! A `plotters` drawing backend that draws into a PDF page's content
//! stream (`pdf-writer`), as vector graphics and text in the standard
//! Helvetica fonts: the chart stays sharp at any zoom, and the file embeds
//! no font and no bitmap.
//!
//! `plotters` lays a chart out in pixels, y down; the backend maps them to
//! points, y up, inside the rectangle it was given, at [`PIXELS_PER_POINT`]
//! (so that layout rounding stays below a quarter of a point). Text is
//! measured with Helvetica's own advance widths, so labels centre and align
//! as they are drawn; it is drawn upright whatever its transform (this
//! chart rotates none).

use std::convert::Infallible;

use pdf_writer::{Content, Name, Str};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind, FontStyle,
};

/// The page resource name of Helvetica.
pub const REGULAR: Name<'static> = Name(b"F1");
/// The page resource name of Helvetica-Bold.
pub const BOLD: Name<'static> = Name(b"F2");

/// Layout pixels per PDF point.
pub const PIXELS_PER_POINT: f32 = 4.0;

/// Draws into `content`, inside the rectangle at `origin` (bottom left, in
/// points) of `size` points.
pub struct PdfBackend<'a> {
    content: &'a mut Content,
    origin: (f32, f32),
    size: (f32, f32),
}

impl<'a> PdfBackend<'a> {
    /// A backend over `content` for the rectangle at `origin` of `size`.
    pub fn new(content: &'a mut Content, origin: (f32, f32), size: (f32, f32)) -> Self {
        PdfBackend { content, origin, size }
    }

    /// The point on the page of the layout pixel `(x, y)`.
    fn point(&self, (x, y): BackendCoord) -> (f32, f32) {
        (
            self.origin.0 + x as f32 / PIXELS_PER_POINT,
            self.origin.1 + self.size.1 - y as f32 / PIXELS_PER_POINT,
        )
    }

    /// Starts a path through `points` (layout pixels, at least one).
    fn trace(&mut self, points: &[BackendCoord]) {
        let (first, rest) = points.split_first().expect("a path has a point");
        let (x, y) = self.point(*first);
        self.content.move_to(x, y);
        for &point in rest {
            let (x, y) = self.point(point);
            self.content.line_to(x, y);
        }
    }

    fn fill(&mut self, color: BackendColor) {
        let (r, g, b) = rgb(color);
        self.content.set_fill_rgb(r, g, b);
    }

    fn stroke<S: BackendStyle>(&mut self, style: &S) {
        let (r, g, b) = rgb(style.color());
        self.content
            .set_stroke_rgb(r, g, b)
            .set_line_width(style.stroke_width().max(1) as f32 / PIXELS_PER_POINT);
    }
}

fn rgb(color: BackendColor) -> (f32, f32, f32) {
    let (r, g, b) = color.rgb;
    (f32::from(r) / 255.0, f32::from(g) / 255.0, f32::from(b) / 255.0)
}

impl DrawingBackend for PdfBackend<'_> {
    type ErrorType = Infallible;

    fn get_size(&self) -> (u32, u32) {
        (
            (self.size.0 * PIXELS_PER_POINT) as u32,
            (self.size.1 * PIXELS_PER_POINT) as u32,
        )
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Infallible>> {
        Ok(())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Infallible>> {
        Ok(())
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), DrawingErrorKind<Infallible>> {
        if color.alpha > 0.0 {
            let (x, y) = self.point(point);
            let side = 1.0 / PIXELS_PER_POINT;
            self.fill(color);
            self.content.rect(x, y - side, side, side).fill_nonzero();
        }
        Ok(())
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Infallible>> {
        self.draw_path([from, to], style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Infallible>> {
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        let (left, top) = self.point(upper_left);
        let (right, bottom) = self.point(bottom_right);
        if fill {
            self.fill(style.color());
            self.content
                .rect(left, bottom, right - left, top - bottom)
                .fill_nonzero();
        } else {
            self.stroke(style);
            self.content.rect(left, bottom, right - left, top - bottom).stroke();
        }
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Infallible>> {
        let points: Vec<BackendCoord> = path.into_iter().collect();
        if style.color().alpha > 0.0 && !points.is_empty() {
            self.stroke(style);
            self.trace(&points);
            self.content.stroke();
        }
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vertices: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Infallible>> {
        let points: Vec<BackendCoord> = vertices.into_iter().collect();
        if style.color().alpha > 0.0 && !points.is_empty() {
            self.fill(style.color());
            self.trace(&points);
            self.content.close_path().fill_nonzero();
        }
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Infallible>> {
        // A 32-gon: closer than a pixel at any radius a chart uses.
        let ring = (0..32).map(|i| {
            let angle = f64::from(i) * std::f64::consts::TAU / 32.0;
            (
                center.0 + (f64::from(radius) * angle.cos()).round() as i32,
                center.1 + (f64::from(radius) * angle.sin()).round() as i32,
            )
        });
        if fill {
            self.fill_polygon(ring, style)
        } else {
            let mut closed: Vec<BackendCoord> = ring.collect();
            closed.push(closed[0]);
            self.draw_path(closed, style)
        }
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Infallible>> {
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        let size = style.size() as f32 / PIXELS_PER_POINT;
        let width = text_width(text, size);
        let (x, y) = self.point(pos);
        let x = match style.anchor().h_pos {
            HPos::Left => x,
            HPos::Center => x - width / 2.0,
            HPos::Right => x - width,
        };
        // Helvetica's capitals stand 0.72 em above the baseline.
        let baseline = match style.anchor().v_pos {
            VPos::Top => y - 0.72 * size,
            VPos::Center => y - 0.36 * size,
            VPos::Bottom => y,
        };
        let font = if matches!(style.style(), FontStyle::Bold) {
            BOLD
        } else {
            REGULAR
        };
        self.fill(style.color());
        show(self.content, font, size, (x, baseline), text);
        Ok(())
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), DrawingErrorKind<Infallible>> {
        let size = style.size() as f32;
        Ok((text_width(text, size).ceil() as u32, size.ceil() as u32))
    }
}

/// Writes `line` at `at` (its baseline's left end) in `font` at `size`
/// points, encoded as the fonts are: WinAnsiEncoding.
pub fn show(content: &mut Content, font: Name<'_>, size: f32, at: (f32, f32), line: &str) {
    content
        .begin_text()
        .set_font(font, size)
        .next_line(at.0, at.1)
        .show(Str(&win_ansi(line)))
        .end_text();
}

/// `line` in WinAnsiEncoding (Windows-1252): Latin-1 letters, the euro
/// sign, dashes, curly quotes and the ellipsis as themselves; any other
/// character as `?`.
pub fn win_ansi(line: &str) -> Vec<u8> {
    line.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            _ => b'?',
        })
        .collect()
}

/// Helvetica's advance widths for ' ' to '~', in thousandths of an em (from
/// its Adobe font metrics); other characters count as a digit's width.
const HELVETICA_WIDTHS: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' ' to '/'
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // digits
    278, 278, 584, 584, 584, 556, 1015, // ':' to '@'
    667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, // 'A' to 'M'
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, // 'N' to 'Z'
    278, 278, 278, 469, 556, 333, // '[' to '`'
    556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, // 'a' to 'm'
    556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, // 'n' to 'z'
    334, 260, 334, 584, // '{' to '~'
];

/// The width of `text` in Helvetica at `size` (in the unit of `size`).
pub fn text_width(text: &str, size: f32) -> f32 {
    let thousandths: u32 = text
        .chars()
        .map(|c| match c {
            ' '..='~' => u32::from(HELVETICA_WIDTHS[c as usize - 32]),
            _ => 556,
        })
        .sum();
    thousandths as f32 / 1000.0 * size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_pixels_map_to_points_y_up_inside_the_rectangle() {
        let mut content = Content::new();
        let backend = PdfBackend::new(&mut content, (50.0, 100.0), (200.0, 80.0));
        assert_eq!(backend.get_size(), (800, 320));
        assert_eq!(backend.point((0, 0)), (50.0, 180.0), "top left");
        assert_eq!(backend.point((800, 320)), (250.0, 100.0), "bottom right");
        assert_eq!(backend.point((400, 160)), (150.0, 140.0), "centre");
    }

    #[test]
    fn helvetica_widths_measure_text() {
        assert_eq!(text_width("", 10.0), 0.0);
        assert!((text_width("Mar", 10.0) - (8.33 + 5.56 + 3.33)).abs() < 1e-4);
        // 'i' is narrower than 'm' in Helvetica, unlike a fixed-width guess.
        assert!(text_width("iii", 10.0) < text_width("mmm", 10.0) / 3.0);
        assert_eq!(HELVETICA_WIDTHS[usize::from(b'~' - b' ')], 584);
    }

    #[test]
    fn text_is_encoded_as_win_ansi() {
        assert_eq!(win_ansi("Café – 5 €"), b"Caf\xe9 \x96 5 \x80");
        assert_eq!(win_ansi("月"), b"?");
    }
}
