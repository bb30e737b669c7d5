//! The one plotting backend: plotters, drawing the same chart to SVG (for
//! the HTML report) and PNG (for people and tickets). Text uses the bundled
//! DejaVu Sans through ab_glyph, so rendering never depends on system fonts.

use std::sync::Once;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Chart, ChartKind, Line, Reference};
use crate::error::ReportError;
use crate::format;

pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 480;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The bundled font is valid; a failure would only lose text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub fn svg(chart: &Chart) -> Result<String, ReportError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart).map_err(|message| chart_err(chart, message))?;
        root.present()
            .map_err(|e| chart_err(chart, e.to_string()))?;
    }
    Ok(out)
}

pub fn png(chart: &Chart) -> Result<Vec<u8>, ReportError> {
    register_font();
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart).map_err(|message| chart_err(chart, message))?;
        root.present()
            .map_err(|e| chart_err(chart, e.to_string()))?;
    }
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| chart_err(chart, e.to_string()))?;
        writer
            .write_image_data(&rgb)
            .map_err(|e| chart_err(chart, e.to_string()))?;
    }
    Ok(bytes)
}

fn chart_err(chart: &Chart, message: String) -> ReportError {
    ReportError::Chart {
        chart: chart.id.clone(),
        message,
    }
}

type DrawResult = Result<(), String>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> DrawResult {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    match &chart.kind {
        ChartKind::Percentiles {
            lines,
            references,
            rounds,
        } => {
            let x_max = lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.0))
                .fold(1.0f64, f64::max)
                .ceil();
            let marks: Vec<Marks> = rounds
                .iter()
                .map(|m| Marks {
                    line: m.line,
                    label: m.label.clone(),
                    points: m.points(x_max),
                })
                .collect();
            xy_chart(
                root,
                &chart.title,
                lines,
                references,
                &marks,
                Axis::Percentile { max: x_max },
                YAxis::Latency,
            )
        }
        ChartKind::Timeline {
            y_label,
            lines,
            references,
        } => xy_chart(
            root,
            &chart.title,
            lines,
            references,
            &[],
            Axis::Seconds,
            YAxis::from_label(y_label),
        ),
        ChartKind::Heatmap {
            rows,
            cols,
            values_ns,
        } => super::heatmap::draw(root, &chart.title, rows, cols, values_ns),
        ChartKind::Lines {
            x_label,
            y_label,
            log_x,
            log_y,
            lines,
        } => {
            let y = YAxis::from_label(y_label);
            xy_chart(
                root,
                &chart.title,
                lines,
                &[],
                &[],
                Axis::Numeric {
                    label: x_label.clone(),
                    log: *log_x,
                },
                if *log_y { y.logarithmic() } else { y },
            )
        }
    }
}

/// The y axis: latencies (ns, shown in a scaled unit) or plain values,
/// optionally on a log scale.
enum YAxis {
    Latency,
    Value(String),
    Log(Box<YAxis>),
}

impl YAxis {
    fn logarithmic(self) -> Self {
        YAxis::Log(Box::new(self))
    }

    fn from_label(label: &str) -> Self {
        if label == "latency" || label.ends_with("(ns)") {
            YAxis::Latency
        } else {
            YAxis::Value(label.to_string())
        }
    }
}

enum Axis {
    /// log10(1/(1-q)) with percentile tick labels.
    Percentile {
        max: f64,
    },
    Seconds,
    Numeric {
        label: String,
        log: bool,
    },
}

/// An axis over `lo..hi`. Log axes are drawn in log10 space, where plotters'
/// own ticks would fall on values such as 25, 40, 63 and 158: their ticks
/// are put on 1-2-5 values (grid lines on every whole multiple) instead.
struct TickedAxis {
    linear: RangedCoordf64,
    log: bool,
}

fn axis_range(lo: f64, hi: f64, log: bool) -> TickedAxis {
    TickedAxis {
        linear: RangedCoordf64::from(lo..hi),
        log,
    }
}

impl Ranged for TickedAxis {
    // Labels always come from the chart's own formatters.
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if !self.log {
            return self.linear.key_points(hint);
        }
        let range = self.linear.range();
        let (lo, hi) = (range.start, range.end);
        let n = hint.max_num_points();
        if hint.weight().allow_light_points() {
            let ticks = log_ticks(lo, hi, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
            return if ticks.len() <= n { ticks } else { Vec::new() };
        }
        let fits = |ticks: &Vec<f64>| ticks.len() <= n.max(2);
        let one_two_five = log_ticks(lo, hi, &[1.0, 2.0, 5.0]);
        if one_two_five.len() >= 5 && fits(&one_two_five) {
            return one_two_five;
        }
        // Less than a decade and a half: 3s keep the axis labelled.
        [
            &[1.0, 2.0, 3.0, 5.0][..],
            &[1.0, 2.0, 5.0][..],
            &[1.0, 3.0][..],
            &[1.0][..],
        ]
        .iter()
        .map(|multiples| log_ticks(lo, hi, multiples))
        .find(fits)
        .unwrap_or_default()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.linear.range()
    }
}

/// The value at log10 position `t`, without the trailing `.0` a 1-2-5 tick
/// would otherwise carry.
fn log_tick_label(t: f64) -> String {
    let v = 10f64.powf(t);
    if v >= 1.0 && (v - v.round()).abs() < 1e-6 * v {
        format!("{}", v.round())
    } else {
        format::three_significant(v)
    }
}

/// log10 of every `multiple x 10^k` inside `lo..=hi` (both log10 values).
fn log_ticks(lo: f64, hi: f64, multiples: &[f64]) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi - lo > 300.0 {
        return Vec::new();
    }
    let eps = 1e-9;
    let mut ticks = Vec::new();
    for decade in (lo.floor() as i32)..=(hi.ceil() as i32) {
        for m in multiples {
            let t = f64::from(decade) + m.log10();
            if t >= lo - eps && t <= hi + eps {
                ticks.push(t);
            }
        }
    }
    ticks
}

fn percentile_label(x: f64) -> String {
    let q = 1.0 - 10f64.powf(-x);
    let pct = q * 100.0;
    if x < 0.5 {
        "0%".into()
    } else {
        let digits = (x.round() as usize).saturating_sub(2);
        format!("{pct:.digits$}%")
    }
}

/// Points without a line, in the colour of line `line` (hollow, so the
/// line beneath shows): each round's percentiles beside the merged curve.
struct Marks {
    line: usize,
    label: String,
    points: Vec<(f64, f64)>,
}

fn xy_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    lines: &[Line],
    references: &[Reference],
    marks: &[Marks],
    x_axis: Axis,
    y_axis: YAxis,
) -> DrawResult {
    let log_y = matches!(y_axis, YAxis::Log(_));
    let base_axis = match &y_axis {
        YAxis::Log(inner) => inner.as_ref(),
        other => other,
    };
    let y_is_ns = matches!(base_axis, YAxis::Latency);
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let mut y_max = all().map(|p| p.1).fold(0.0f64, f64::max);
    for r in references {
        y_max = y_max.max(r.value * 1.05);
    }
    let (y_div, y_unit) = if y_is_ns {
        crate::format::ns_unit(y_max)
    } else {
        (1.0, "")
    };
    // On a log axis values are drawn as log10; the labels undo it.
    let transform_y = |y: f64| {
        let v = y / y_div;
        if log_y {
            v.max(1e-9).log10()
        } else {
            v
        }
    };
    let (y_bottom, y_top) = if log_y {
        let lo = all()
            .map(|p| transform_y(p.1))
            .fold(f64::INFINITY, f64::min);
        let hi = all()
            .map(|p| transform_y(p.1))
            .fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi.is_finite() {
            (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
        } else {
            (0.0, 1.0)
        }
    } else {
        (0.0, (y_max / y_div * 1.08).max(1e-9))
    };
    let log_x = matches!(x_axis, Axis::Numeric { log: true, .. });
    let transform_x = |x: f64| if log_x { x.max(1e-9).log10() } else { x };
    let (x_min, x_max) = match &x_axis {
        Axis::Percentile { max } => (0.0, *max),
        _ => {
            let lo = all()
                .map(|p| transform_x(p.0))
                .fold(f64::INFINITY, f64::min);
            let hi = all()
                .map(|p| transform_x(p.0))
                .fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() && hi > lo {
                (lo, hi)
            } else if lo.is_finite() {
                (lo - 0.5, lo + 0.5)
            } else {
                (0.0, 1.0)
            }
        }
    };
    let x_desc = match &x_axis {
        Axis::Percentile { .. } => "percentile".to_string(),
        Axis::Seconds => "seconds since start".to_string(),
        Axis::Numeric { label, log } => {
            if *log {
                format!("{label} (log scale)")
            } else {
                label.clone()
            }
        }
    };

    let mut ctx = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .margin_right(36)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(
            axis_range(x_min, x_max, log_x),
            axis_range(y_bottom, y_top, log_y),
        )
        .map_err(|e| err(&e))?;

    let x_fmt = |x: &f64| match &x_axis {
        Axis::Percentile { .. } => percentile_label(*x),
        Axis::Numeric { log: true, .. } => log_tick_label(*x),
        _ => format::three_significant(*x),
    };
    let y_fmt = |y: &f64| {
        if log_y {
            format!("{}{}", log_tick_label(*y), y_unit)
        } else if *y == 0.0 {
            "0".to_string()
        } else {
            format!("{}{}", format::three_significant(*y), y_unit)
        }
    };
    let x_ticks = match &x_axis {
        Axis::Percentile { max } => (*max as usize) + 1,
        _ => 10,
    };
    ctx.configure_mesh()
        .x_desc(x_desc)
        .y_desc(match base_axis {
            YAxis::Latency => "latency".to_string(),
            YAxis::Value(label) if log_y => format!("{label} (log scale)"),
            YAxis::Value(label) => label.clone(),
            YAxis::Log(_) => String::new(),
        })
        .x_labels(x_ticks)
        .y_labels(8)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| err(&e))?;

    for (i, line) in lines.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = line
            .points
            .iter()
            .map(|(x, y)| (transform_x(*x), transform_y(*y)))
            .collect();
        let series = ctx
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| err(&e))?;
        series
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        if pts.len() <= 40 {
            ctx.draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    for m in marks {
        let c = color(m.line);
        let pts: Vec<(f64, f64)> = m
            .points
            .iter()
            .map(|(x, y)| (transform_x(*x), transform_y(*y)))
            .collect();
        ctx.draw_series(pts.iter().map(|p| Circle::new(*p, 5, c.stroke_width(2))))
            .map_err(|e| err(&e))?
            .label(m.label.clone())
            .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.stroke_width(2)));
    }
    for r in references {
        let y = transform_y(r.value);
        let c = if r.fail {
            RGBColor(200, 0, 0)
        } else {
            RGBColor(230, 140, 0)
        };
        let shown = if y_is_ns {
            format::duration_ns(r.value)
        } else {
            format::three_significant(r.value)
        };
        ctx.draw_series(LineSeries::new(
            vec![(x_min, y), (x_max, y)],
            c.stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label(format!("{} ({shown})", r.label))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(1)));
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charts::percentiles::percentile_points;
    use infraqual_probes::LatencyHistogram;

    fn chart() -> Chart {
        let mut h = LatencyHistogram::new();
        for v in 1..=2000u64 {
            h.record(100_000 + v * 50);
        }
        Chart {
            id: "fsync-fdatasync".into(),
            title: "fsync: fdatasync latency by percentile".into(),
            probe: "fsync".into(),
            kind: ChartKind::Percentiles {
                lines: vec![Line {
                    label: "local".into(),
                    points: percentile_points(&h),
                }],
                references: vec![Reference {
                    value: 10_000_000.0,
                    label: "p99 fail".into(),
                    fail: true,
                }],
                rounds: Vec::new(),
            },
        }
    }

    #[test]
    fn svg_has_text_lines_and_threshold() {
        let s = svg(&chart()).unwrap();
        assert!(s.starts_with("<svg"), "{}", &s[..40]);
        assert!(s.contains("fdatasync latency by percentile"));
        assert!(s.contains("99.9%"), "percentile tick labels");
        assert!(
            s.contains("p99 fail (10.0 ms)"),
            "the threshold line is labelled"
        );
        assert!(s.contains("<polyline"));
    }

    #[test]
    fn png_is_a_real_png_with_ink() {
        let bytes = png(&chart()).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = ::png::Decoder::new(bytes.as_slice());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut buf).unwrap();
        let non_white = buf.chunks(3).filter(|p| p != &[255, 255, 255]).count();
        assert!(non_white > 1000, "chart has drawn pixels: {non_white}");
    }

    #[test]
    fn log_ticks_fall_on_one_two_five() {
        // 25 us .. 700 us, in log10 space.
        let (lo, hi) = (25f64.log10(), 700f64.log10());
        let values: Vec<f64> = log_ticks(lo, hi, &[1.0, 2.0, 5.0])
            .into_iter()
            .map(|t| (10f64.powf(t) * 1e6).round() / 1e6)
            .collect();
        assert_eq!(values, vec![50.0, 100.0, 200.0, 500.0]);
        assert!(log_ticks(f64::NAN, 1.0, &[1.0]).is_empty());
        let bold = axis_range(lo, hi, true).key_points(plotters::coord::ranged1d::BoldPoints(10));
        let labels: Vec<String> = bold.iter().map(|t| log_tick_label(*t)).collect();
        assert_eq!(labels, ["30", "50", "100", "200", "300", "500"]);
        assert_eq!(log_tick_label(0.5f64.log10()), "0.50");
        let linear = axis_range(0.0, 10.0, false).key_points(6);
        assert_eq!(linear, RangedCoordf64::from(0.0..10.0).key_points(6));
    }

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
    }
}
