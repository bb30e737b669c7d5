//! Overlaid CDFs of one metric in two runs (compare.html): x the latency in
//! one display unit, y the fraction of samples at or below it. A log x axis
//! when the two distributions span more than a factor of 30.

use infraqual_probes::LatencyHistogram;

use super::{slug, Chart, ChartKind, Line};

/// At most this many points per line, so a page of many charts stays light.
const MAX_POINTS: usize = 400;

/// One chart per metric, lines labelled with the run labels.
pub fn chart(id: &str, title: &str, probe: &str, lines: &[(&str, &LatencyHistogram)]) -> Chart {
    let max_ns = lines.iter().map(|(_, h)| h.max()).max().unwrap_or(0) as f64;
    let min_ns = lines
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(_, h)| h.min())
        .min()
        .unwrap_or(0) as f64;
    let log_x = min_ns > 0.0 && max_ns / min_ns > 30.0;
    // draw.rs labels a log axis with whole numbers: keep every x >= 1.
    let (div, unit) = crate::format::ns_unit(if log_x { min_ns } else { max_ns });
    Chart {
        id: slug(id),
        title: title.to_string(),
        probe: probe.to_string(),
        kind: ChartKind::Lines {
            x_label: format!("latency ({unit})"),
            y_label: "fraction of samples".into(),
            log_x,
            log_y: false,
            lines: lines
                .iter()
                .map(|(label, h)| Line {
                    label: label.to_string(),
                    points: cdf_points(h, div),
                })
                .collect(),
        },
    }
}

/// (value / div, cumulative fraction) at every recorded bucket, thinned to
/// [`MAX_POINTS`] keeping the first and last.
pub fn cdf_points(hist: &LatencyHistogram, div: f64) -> Vec<(f64, f64)> {
    let total = hist.len();
    if total == 0 {
        return Vec::new();
    }
    let mut all = Vec::new();
    let mut seen = 0u64;
    for step in hist.inner().iter_recorded() {
        seen += step.count_at_value();
        all.push((
            step.value_iterated_to() as f64 / div,
            seen as f64 / total as f64,
        ));
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
        let pts = cdf_points(&h, 1e3);
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
}
