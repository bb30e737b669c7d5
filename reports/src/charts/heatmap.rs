//! Drawing a heatmap (ChartKind::Heatmap): cells in pixel coordinates on the
//! drawing area, coloured from pale (lowest) to dark red (highest, log
//! scale), each labelled with its latency.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::format;

pub(super) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[String],
    cols: &[String],
    values: &[Vec<Option<f64>>],
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let area = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| err(&e))?;
    let (w, h) = area.dim_in_pixel();
    let (left, top, right, bottom) = (130i32, 40i32, 20i32, 20i32);
    let n_rows = rows.len().max(1) as i32;
    let n_cols = cols.len().max(1) as i32;
    let cell_w = ((w as i32 - left - right) / n_cols).max(1);
    let cell_h = ((h as i32 - top - bottom) / n_rows).max(1);
    let present: Vec<f64> = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = present.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = present.iter().copied().fold(0.0f64, f64::max);
    let shade = |v: f64| -> RGBColor {
        let t = if hi > lo {
            (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            0.5
        };
        let t = t.clamp(0.0, 1.0);
        let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
        RGBColor(mix(255.0, 165.0), mix(237.0, 15.0), mix(160.0, 21.0))
    };
    let label = ("sans-serif", 14).into_font();
    for (j, name) in cols.iter().enumerate() {
        let x = left + j as i32 * cell_w + 4;
        area.draw(&Text::new(
            format!("to {name}"),
            (x, top - 20),
            label.clone(),
        ))
        .map_err(|e| err(&e))?;
    }
    for (i, name) in rows.iter().enumerate() {
        let y = top + i as i32 * cell_h + cell_h / 2 - 7;
        area.draw(&Text::new(format!("from {name}"), (4, y), label.clone()))
            .map_err(|e| err(&e))?;
        for j in 0..cols.len() {
            let (x0, y0) = (left + j as i32 * cell_w, top + i as i32 * cell_h);
            let cell = values.get(i).and_then(|r| r.get(j)).copied().flatten();
            let fill = match cell {
                Some(v) => shade(v),
                None => RGBColor(240, 240, 240),
            };
            area.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell_w - 2, y0 + cell_h - 2)],
                fill.filled(),
            ))
            .map_err(|e| err(&e))?;
            let text = cell.map_or_else(|| "-".to_string(), format::duration_ns);
            area.draw(&Text::new(
                text,
                (x0 + 8, y0 + cell_h / 2 - 7),
                label.clone(),
            ))
            .map_err(|e| err(&e))?;
        }
    }
    Ok(())
}
