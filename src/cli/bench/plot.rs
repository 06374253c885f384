//! `--plot FILE.svg`: throughput and dispatch latency over the run, one point per 100 ms step.

use std::path::Path;

use anyhow::anyhow;
use avs_core::directives::stats::{SeriesStep, SERIES_STEP};
use plotters::prelude::*;

pub fn draw(path: &Path, series: &[SeriesStep], title: &str) -> anyhow::Result<()> {
    let step_s = SERIES_STEP.as_secs_f64();
    let at = |i: usize| i as f64 * step_s;
    let throughput: Vec<(f64, f64)> =
        series.iter().enumerate().map(|(i, s)| (at(i), s.completed as f64 / step_s)).collect();
    // Steps in which nothing completed have no latency to show.
    let latency = |f: fn(&SeriesStep) -> f64| -> Vec<(f64, f64)> {
        series.iter().enumerate().filter(|(_, s)| s.completed > 0).map(|(i, s)| (at(i), f(s))).collect()
    };
    let mean_us = latency(|s| s.total_ns as f64 / s.completed as f64 / 1000.0);
    let max_us = latency(|s| s.max_ns as f64 / 1000.0);
    let seconds = at(series.len()).max(step_s);
    let top = |points: &[(f64, f64)]| points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let fail = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());

    let root = SVGBackend::new(path, (1000, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root.titled(title, ("sans-serif", 18)).map_err(|e| fail(&e))?;
    let (upper, lower) = root.split_vertically(330);

    let mut chart = ChartBuilder::on(&upper)
        .caption("directives/s (per 100 ms)", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..seconds, 0.0..top(&throughput))
        .map_err(|e| fail(&e))?;
    chart.configure_mesh().x_desc("seconds").y_desc("directives/s").draw().map_err(|e| fail(&e))?;
    chart.draw_series(LineSeries::new(throughput, &BLUE)).map_err(|e| fail(&e))?;

    let mut chart = ChartBuilder::on(&lower)
        .caption("dispatch latency, arrival of the part → plugin's return (µs)", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..seconds, 0.0..top(&max_us))
        .map_err(|e| fail(&e))?;
    chart.configure_mesh().x_desc("seconds").y_desc("µs").draw().map_err(|e| fail(&e))?;
    chart
        .draw_series(LineSeries::new(max_us, &RED))
        .map_err(|e| fail(&e))?
        .label("max")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart
        .draw_series(LineSeries::new(mean_us, &BLUE))
        .map_err(|e| fail(&e))?
        .label("mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
