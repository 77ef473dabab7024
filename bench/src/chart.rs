//! The PNG chart of an iSCSI run: for each workload and backing, tgt's and vds's median IOPS as
//! two bars scaled to the larger of the two, with the vds/tgt ratio beside them.
//!
//! Drawn into an RGB buffer with a built-in 5x7 bitmap font, so no system font or graphics
//! library is needed; the `png` crate encodes it.

use anyhow::Result;

use crate::iscsi::Row;

const SCALE: usize = 2;
const GLYPH_W: usize = 6 * SCALE; // 5 pixels and one of spacing
const LABEL_W: usize = 380;
const BAR_W: usize = 560;
const RIGHT_W: usize = 110;
const ROW_H: usize = 34;
const TOP: usize = 70;

const BG: [u8; 3] = [255, 255, 255];
const INK: [u8; 3] = [20, 20, 20];
const TGT: [u8; 3] = [150, 150, 150];
const VDS: [u8; 3] = [40, 100, 200];
const GOOD: [u8; 3] = [20, 130, 40];
const BAD: [u8; 3] = [190, 30, 30];

/// 5x7 glyphs, one byte per row, bit 4 = leftmost pixel. Lower case is drawn as upper case.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        _ => [0; 7],
    }
}

/// An RGB canvas.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        let mut px = vec![0u8; w * h * 3];
        for p in px.chunks_exact_mut(3) {
            p.copy_from_slice(&BG);
        }
        Canvas { w, h, px }
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..(y + h).min(self.h) {
            for xx in x..(x + w).min(self.w) {
                let i = (yy * self.w + xx) * 3;
                self.px[i..i + 3].copy_from_slice(&c);
            }
        }
    }

    fn text(&mut self, x: usize, y: usize, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        self.rect(
                            x + i * GLYPH_W + col * SCALE,
                            y + row * SCALE,
                            SCALE,
                            SCALE,
                            c,
                        );
                    }
                }
            }
        }
    }

    fn png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.w as u32, self.h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc.write_header()?;
            wr.write_image_data(&self.px)?;
        }
        Ok(out)
    }
}

/// The chart of `rows` as PNG bytes; `note` (machine, load) is printed under the title.
pub fn render(rows: &[Row], note: &str) -> Result<Vec<u8>> {
    let w = LABEL_W + BAR_W + RIGHT_W + 20;
    let h = TOP + rows.len() * ROW_H + 20;
    let mut c = Canvas::new(w, h);
    c.text(
        10,
        10,
        "vds vs tgt: median IOPS per workload (bars scaled per row)",
        INK,
    );
    c.rect(10, 38, 20, 12, TGT);
    c.text(36, 38, "tgt", INK);
    c.rect(100, 38, 20, 12, VDS);
    c.text(126, 38, "vds", INK);
    c.text(200, 38, note, [90, 90, 90]);
    c.text(LABEL_W + BAR_W + 10, 38, "vds/tgt", INK);
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + i * ROW_H;
        if i % 2 == 1 {
            c.rect(0, y - 3, w, ROW_H, [244, 244, 248]);
        }
        let label = format!("{} {}", r.workload.name, r.backing);
        c.text(10, y + 8, &label, INK);
        let (t, v) = (r.tgt_median.iops, r.vds_median.iops);
        let max = t.max(v);
        if max > 0.0 {
            let len = |x: f64| ((x / max) * BAR_W as f64).round() as usize;
            c.rect(LABEL_W, y, len(t), 12, TGT);
            c.rect(LABEL_W, y + 14, len(v), 12, VDS);
        }
        if let Some(ratio) = r.ratio {
            let color = if ratio >= 1.0 { GOOD } else { BAD };
            c.text(LABEL_W + BAR_W + 10, y + 8, &format!("{ratio:.2}x"), color);
        }
    }
    c.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_character_has_a_glyph() {
        for ch in "read write mix70 4k 128k 1m rand seq qd128 8sess lat null file vds/tgt 1.52x:()%"
            .chars()
            .filter(|c| *c != ' ')
        {
            assert_ne!(glyph(ch), [0; 7], "no glyph for {ch:?}");
        }
    }

    #[test]
    fn png_has_signature_and_size() {
        let c = Canvas::new(8, 4);
        let png = c.png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR width and height.
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 8);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 4);
    }
}
