//! Drawing a heatmap (ChartKind::Heatmap): cells in pixel coordinates on the
//! drawing area, coloured from pale (lowest) to dark red (highest, log
//! scale), each labelled with its latency where the cell has room for it.
//! A fleet's axes name every k-th node so that at most [`MAX_LABELS`]
//! names stand on an axis and none overlap.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::format;

/// Names per axis at most; beyond that every k-th node is named.
pub(super) const MAX_LABELS: usize = 25;
/// Below this cell width or height a latency written in the cell would
/// overlap its neighbours, so the colour alone tells it.
const MIN_TEXT_CELL: (i32, i32) = (70, 18);

/// Pixels a label of the 14 px font needs: along a row per character, and
/// between two rows' labels.
const LABEL_PX: (i32, i32) = (8, 16);

/// Every k-th of `n` names is drawn: no more than [`MAX_LABELS`], and no
/// closer than `needed_px` apart on cells `cell_px` wide.
fn label_step(n: usize, cell_px: i32, needed_px: i32) -> usize {
    let by_room = (needed_px.max(1) as usize).div_ceil(cell_px.max(1) as usize);
    n.div_ceil(MAX_LABELS).max(by_room).max(1)
}

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
    let cell_text = cell_w >= MIN_TEXT_CELL.0 && cell_h >= MIN_TEXT_CELL.1;
    // A 2 px gap frames a cell that has room; a fleet's cells touch, or
    // the gaps would be most of the picture.
    let gap = (i32::from(cell_w >= 10) * 2, i32::from(cell_h >= 10) * 2);
    let widest = cols.iter().map(|c| c.chars().count()).max().unwrap_or(0) as i32 + 4;
    let row_step = label_step(rows.len(), cell_h, LABEL_PX.1);
    let col_step = label_step(cols.len(), cell_w, widest * LABEL_PX.0);
    for (j, name) in cols.iter().enumerate().step_by(col_step) {
        let x = left + j as i32 * cell_w + 4;
        area.draw(&Text::new(
            format!("to {name}"),
            (x, top - 20),
            label.clone(),
        ))
        .map_err(|e| err(&e))?;
    }
    for (i, name) in rows.iter().enumerate() {
        if i % row_step == 0 {
            let y = top + i as i32 * cell_h + cell_h / 2 - 7;
            area.draw(&Text::new(format!("from {name}"), (4, y), label.clone()))
                .map_err(|e| err(&e))?;
        }
        for j in 0..cols.len() {
            let (x0, y0) = (left + j as i32 * cell_w, top + i as i32 * cell_h);
            let cell = values.get(i).and_then(|r| r.get(j)).copied().flatten();
            let fill = match cell {
                Some(v) => shade(v),
                None => RGBColor(240, 240, 240),
            };
            area.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell_w - gap.0, y0 + cell_h - gap.1)],
                fill.filled(),
            ))
            .map_err(|e| err(&e))?;
            if !cell_text {
                continue;
            }
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
