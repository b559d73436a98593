//! The SVG plots: fan-out throughput over time, many-small latency distribution, requests in
//! flight at the receiver over time.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

/// Line colours, one per mode.
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];
/// Most points drawn per line.
const MAX_POINTS: usize = 2000;

/// Deliveries per second over time, one line per `(label, points)`.
pub fn throughput(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    over_time(
        path,
        title,
        "deliveries per second",
        SeriesLabelPosition::LowerRight,
        series,
    )
}

/// POSTs in flight at the receiver (or connections open to it) over time, one line per
/// `(label, points)`.
pub fn in_flight(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    // Upper right: the lines of a limit that works run along the bottom.
    over_time(
        path,
        title,
        "POSTs in flight / connections open",
        SeriesLabelPosition::UpperRight,
        series,
    )
}

/// Lines of `y_desc` against seconds since the first trigger.
fn over_time(
    path: &Path,
    title: &str,
    y_desc: &str,
    legend_at: SeriesLabelPosition,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let x_max = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0))
        .fold(0.1, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max * 1.02, 0.0..y_max)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first trigger")
        .y_desc(y_desc)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, (label, points)) in series.iter().enumerate() {
        draw_line(&mut chart, i, label, points)?;
    }
    legend(&mut chart, legend_at)?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// The cumulative distribution of latencies (ms, log scale), one line per `(label, samples)`.
pub fn latency_cdf(path: &Path, title: &str, series: &[(String, Vec<f64>)]) -> anyhow::Result<()> {
    let all = || {
        series
            .iter()
            .flat_map(|(_, samples)| samples.iter().copied())
    };
    let x_min = all().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    let x_max = all().fold(0.0, f64::max);
    let (x_min, x_max) = if x_min.is_finite() && x_max > x_min {
        (x_min * 0.9, x_max * 1.1)
    } else {
        (0.1, 1000.0)
    };
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..100.0)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("trigger → receipt latency, ms (log scale)")
        .y_desc("% of deliveries at or below")
        .x_label_formatter(&|v| trim_number(*v))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, (label, samples)) in series.iter().enumerate() {
        draw_line(&mut chart, i, label, &cdf(samples))?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Line `i` of a chart, in its colour, with its legend entry.
fn draw_line<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    i: usize,
    label: &str,
    points: &[(f64, f64)],
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let colour = COLOURS[i % COLOURS.len()];
    chart
        .draw_series(LineSeries::new(thin(points), colour.stroke_width(2)))
        .map_err(|e| anyhow!("{e}"))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))
}

/// A tick label without trailing zeros: `0.5`, `2`, `10`.
fn trim_number(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `(latency, % at or below)` for sorted samples.
fn cdf(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| *v > 0.0).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, v)| (v, 100.0 * (i + 1) as f64 / n))
        .collect()
}

/// At most [`MAX_POINTS`] evenly picked points, the last one kept.
fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let step = points.len().div_ceil(MAX_POINTS);
    let mut out: Vec<(f64, f64)> = points.iter().step_by(step).copied().collect();
    if let Some(last) = points.last() {
        out.push(*last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("pubhook-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let tp = dir.join("t.svg");
        throughput(
            &tp,
            "t",
            &[("standalone".to_owned(), vec![(0.0, 10.0), (0.1, 20.0)])],
        )
        .expect("plot");
        let lat = dir.join("l.svg");
        let samples: Vec<f64> = (1..5000).map(|i| f64::from(i) / 100.0).collect();
        latency_cdf(&lat, "l", &[("split".to_owned(), samples)]).expect("plot");
        let inf = dir.join("i.svg");
        in_flight(
            &inf,
            "i",
            &[("baseline".to_owned(), vec![(0.0, 8.0), (0.05, 16.0)])],
        )
        .expect("plot");
        for file in [tp, lat, inf] {
            let svg = std::fs::read_to_string(&file).expect("svg");
            assert!(svg.contains("<svg") && svg.contains("polyline"), "{svg}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_cdf_ends_at_100_and_long_lines_are_thinned() {
        let points = cdf(&[3.0, 1.0, 2.0, 0.0]);
        assert_eq!(
            points,
            vec![(1.0, 100.0 / 3.0), (2.0, 200.0 / 3.0), (3.0, 100.0)]
        );
        let long: Vec<(f64, f64)> = (0..10_000).map(|i| (f64::from(i), 0.0)).collect();
        let thinned = thin(&long);
        assert!(thinned.len() <= MAX_POINTS + 1);
        assert_eq!(thinned.last(), long.last());
    }
}
