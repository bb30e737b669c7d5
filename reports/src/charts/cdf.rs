//! Overlaid CDFs of one metric in two runs (compare.html): x the latency in
//! one display unit, y the fraction of samples at or below it. A log x axis
//! when the two distributions span more than a factor of 30. A few far
//! outliers would squeeze the whole body of the curve against the y axis, so
//! the axis ends at the largest p99.9 when the maximum lies well beyond it,
//! and the label says where the tail went.

use infraqual_probes::LatencyHistogram;

use super::{slug, Chart, ChartKind, Line};

/// At most this many points per line, so a page of many charts stays light.
const MAX_POINTS: usize = 400;

/// The tail is clipped only when the maximum exceeds the largest p99.9 by
/// more than this factor; otherwise the whole distribution is drawn.
const TAIL_CLIP_FACTOR: f64 = 1.5;

/// One chart per metric, lines labelled with the run labels.
pub fn chart(id: &str, title: &str, probe: &str, lines: &[(&str, &LatencyHistogram)]) -> Chart {
    let max_ns = lines.iter().map(|(_, h)| h.max()).max().unwrap_or(0) as f64;
    let p999_ns = lines
        .iter()
        .map(|(_, h)| h.value_at_quantile(0.999))
        .max()
        .unwrap_or(0) as f64;
    let ceiling_ns = (p999_ns > 0.0 && max_ns > p999_ns * TAIL_CLIP_FACTOR).then_some(p999_ns);
    let shown_max_ns = ceiling_ns.unwrap_or(max_ns);
    let min_ns = lines
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(_, h)| h.min())
        .min()
        .unwrap_or(0) as f64;
    let log_x = min_ns > 0.0 && shown_max_ns / min_ns > 30.0;
    // draw.rs labels a log axis with whole numbers: keep every x >= 1.
    let (div, unit) = crate::format::ns_unit(if log_x { min_ns } else { shown_max_ns });
    let x_label = match ceiling_ns {
        Some(_) => format!(
            "latency ({unit}); axis ends at p99.9, max {}",
            crate::format::duration_ns(max_ns)
        ),
        None => format!("latency ({unit})"),
    };
    Chart {
        id: slug(id),
        title: title.to_string(),
        probe: probe.to_string(),
        kind: ChartKind::Lines {
            x_label,
            y_label: "fraction of samples".into(),
            log_x,
            log_y: false,
            lines: lines
                .iter()
                .map(|(label, h)| Line {
                    label: label.to_string(),
                    points: cdf_points(h, div, ceiling_ns),
                })
                .collect(),
        },
    }
}

/// (value / div, cumulative fraction) at every recorded bucket up to
/// `ceiling_ns` (all of them without one), thinned to [`MAX_POINTS`] keeping
/// the first and last.
pub fn cdf_points(hist: &LatencyHistogram, div: f64, ceiling_ns: Option<f64>) -> Vec<(f64, f64)> {
    let total = hist.len();
    if total == 0 {
        return Vec::new();
    }
    let mut all = Vec::new();
    let mut seen = 0u64;
    for step in hist.inner().iter_recorded() {
        let value = step.value_iterated_to() as f64;
        if ceiling_ns.is_some_and(|ceiling| value > ceiling) {
            break;
        }
        seen += step.count_at_value();
        all.push((value / div, seen as f64 / total as f64));
    }
    if all.len() <= MAX_POINTS {
        return all;
    }
    let stride = all.len().div_ceil(MAX_POINTS);
    let last = all.len() - 1;
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| i % stride == 0 || *i == last)
        .map(|(_, p)| p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_rises_to_one_and_is_thinned() {
        let mut h = LatencyHistogram::new();
        for v in 1..=50_000u64 {
            h.record(v * 37);
        }
        let pts = cdf_points(&h, 1e3, None);
        assert!(pts.len() <= MAX_POINTS + 1, "{}", pts.len());
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(pts.last().unwrap().1, 1.0);
        let c = chart("fsync-fdatasync", "t", "fsync", &[("A", &h), ("B", &h)]);
        match c.kind {
            ChartKind::Lines {
                x_label,
                log_x,
                lines,
                ..
            } => {
                assert_eq!(x_label, "latency (ns)", "log axis: unit of the minimum");
                assert!(log_x, "37 ns .. 1.85 ms spans more than 30x");
                assert_eq!(lines[1].label, "B");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lone_far_outlier_is_clipped_and_named() {
        let mut h = LatencyHistogram::new();
        for v in 0..10_000u64 {
            h.record(26_000_000 + v * 100);
        }
        h.record(65_000_000);
        let c = chart("rtt", "t", "rtt", &[("native", &h)]);
        match c.kind {
            ChartKind::Lines { x_label, lines, .. } => {
                assert!(x_label.contains("axis ends at p99.9"), "{x_label}");
                assert!(x_label.contains("65"), "{x_label}");
                let last = lines[0].points.last().copied().unwrap_or_default();
                assert!(last.0 < 28.0, "clipped near p99.9 (27 ms), got {last:?}");
                assert!(last.1 > 0.99, "{last:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}
