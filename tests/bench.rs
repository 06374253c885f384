//! `avs bench` end to end: the JSON report of a small run is complete and self-consistent, `--plot`
//! writes an SVG, and `--footprint` measures every device template. No speed is asserted here: speed
//! goals live in the benchmarks, never in tests.

mod common;

use std::process::Command;

use serde_json::Value;

fn avs_bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_avs"))
        .arg("bench")
        .args(args)
        .arg("--plugin-dir")
        .arg(common::built_plugin_dir())
        .arg("--json")
        .output()
        .expect("running avs bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "avs bench failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

fn number(report: &Value, field: &str) -> f64 {
    report[field].as_f64().unwrap_or_else(|| panic!("{field} missing or not a number in {report}"))
}

#[test]
fn a_small_run_reports_consistent_figures_and_plots_them() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("run.svg");
    let report = avs_bench(&["--directives", "2000", "--worker-threads", "2", "--plot", plot.to_str().unwrap()]);

    assert_eq!(report["directives"], 2000);
    assert_eq!(report["handled"], 2000, "every directive returned from its plugin: {report}");
    assert_eq!((report["failed"].as_u64(), report["dropped"].as_u64()), (Some(0), Some(0)), "{report}");
    let (dps, t, w, c) = (
        number(&report, "directives_per_sec"),
        number(&report, "transport_ceiling_per_sec"),
        number(&report, "work_ceiling_per_sec"),
        number(&report, "combined_ceiling_per_sec"),
    );
    assert!(dps > 0.0 && t > 0.0 && w > 0.0, "{report}");
    // The default mix causes events (VolumeChanged, SetAlertSucceeded): their round trips count in C.
    let (e, events_per_directive) = (number(&report, "event_ceiling_per_sec"), number(&report, "events_per_directive"));
    assert!(e > 0.0 && events_per_directive > 0.5, "{report}");
    let sampled = report["event_ceiling_events"].as_u64().unwrap();
    assert_eq!(
        sampled,
        report["events_queued"].as_u64().unwrap(),
        "E sends every event of a small run again: {report}"
    );
    let passes: Vec<f64> = report["event_ceiling_passes_per_sec"]
        .as_array()
        .unwrap_or_else(|| panic!("E's passes missing: {report}"))
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    assert!(passes.len() > 1 && passes.iter().all(|p| *p > 0.0), "{report}");
    assert_eq!(passes.iter().copied().fold(0.0, f64::max), e, "E is the fastest pass: {report}");
    let apart = &report["event_ceiling_cores"];
    let plugin_cpus = report["plugin_cpus"].as_array().unwrap_or_else(|| panic!("plugin_cpus missing: {report}"));
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        assert_eq!(plugin_cpus.len(), 1, "the plugins on one core of their own: {report}");
        let (client, sim) = (apart["client"].as_u64(), apart["sim"].as_u64());
        assert!(client.is_some() && client != sim, "E's client and the sim on cores of their own: {report}");
    } else {
        assert!(apart.is_null() && plugin_cpus.is_empty(), "one core cannot keep them apart: {report}");
    }
    assert_eq!(report["cores_kept_awake"], true, "a full-speed run keeps the cores awake: {report}");
    let directives_only = 1.0 / (1.0 / t + 1.0 / w);
    assert!(
        (number(&report, "directive_ceiling_per_sec") - directives_only).abs() <= directives_only * 1e-9,
        "{report}"
    );
    let expected = 1.0 / (1.0 / t + 1.0 / w + events_per_directive / e);
    assert!((c - expected).abs() <= c * 1e-9, "C = 1/(1/T + 1/W + e/E): {report}");
    assert!((number(&report, "ratio") - dps / c).abs() <= 1e-9 * (dps / c), "ratio = dps / C: {report}");
    let (p50, p99, p999) = (number(&report, "p50_us"), number(&report, "p99_us"), number(&report, "p999_us"));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{report}");
    assert!(number(&report, "cpu_ns_per_directive") >= 0.0);
    assert!(number(&report, "peak_rss_bytes") > 1e6, "{report}");
    assert!(report["mode"].as_str().unwrap().contains("two processes"), "{report}");
    assert_eq!(report["runtime_worker_threads"], 2, "the device's async runtime has the threads asked for: {report}");
    assert!(report["mix"].as_str().unwrap().contains("SetVolume"), "{report}");

    let svg = std::fs::read_to_string(&plot).expect("--plot wrote the file");
    assert!(svg.starts_with("<svg") && svg.contains("directives/s") && svg.contains("<polyline"), "{svg:.300}");
}

#[test]
fn a_paced_run_is_measured_on_cores_left_to_go_idle() {
    let report = avs_bench(&["--directives", "500", "--rate", "1000"]);
    assert_eq!(report["handled"], 500, "{report}");
    assert_eq!(report["rate_per_sec"], 1000.0, "{report}");
    assert_eq!(report["cores_kept_awake"], false, "spinning threads would delay the wake-ups it times: {report}");
}

#[test]
fn the_footprint_run_measures_every_template_each_swap_and_the_device_in_operation() {
    let report = avs_bench(&["--footprint", "--swaps", "2"]);
    let templates = report["templates"].as_array().expect("templates");
    let names: Vec<&str> = templates.iter().map(|t| t["template"].as_str().unwrap()).collect();
    assert_eq!(names, ["minimal", "headless-speaker", "screen-device"]);
    for template in templates {
        assert!(template["plugins"].as_u64().unwrap() >= 4, "{template}");
        assert!(template["rss_bytes"].as_u64().unwrap() > 1 << 20, "{template}");
        // Then in operation, after directives its plugins handled.
        assert_eq!(template["directives"], 2000, "{template}");
        assert!(template["rss_after_directives_bytes"].as_u64().unwrap() > 1 << 20, "{template}");
    }
    assert_eq!(templates[2]["plugins"], 15);
    assert_eq!(templates[2]["swaps"].as_array().unwrap().len(), 2);
}
