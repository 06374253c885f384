//! `avs demo --scenario all` as a device maker runs it: the binary, the screen-device template, every
//! avs-sim scenario from the user's request to the event that shows it came through, and the user's
//! follow-ups (stopping the timer, skipping and pausing the music).

use std::process::Command;

use avs_sim::SCENARIOS;

#[test]
fn every_scenario_runs_end_to_end_on_the_screen_device() {
    let output = Command::new(env!("CARGO_BIN_EXE_avs")).args(["demo", "--scenario", "all"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "avs demo failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("skipped"), "{stdout}");
    for scenario in SCENARIOS {
        let (namespace, name) = scenario.done_when;
        let started = stdout
            .find(&format!("scenario {}: the user says", scenario.name))
            .unwrap_or_else(|| panic!("{} never started:\n{stdout}", scenario.name));
        let rest = &stdout[started..];
        assert!(
            rest.contains(&format!("device → cloud: {namespace}.{name}"))
                || rest.contains(&format!("cloud → device: {namespace}.{name} handled")),
            "{}: no {namespace}.{name}:\n{stdout}",
            scenario.name
        );
    }
    // What the user saw and did along the way.
    for shown in ["Seattle", "Loopback Blues", "AlertStopped", "PlaybackStopped", "ConnectByDeviceIdsSucceeded"] {
        assert!(stdout.contains(shown), "no {shown:?} in:\n{stdout}");
    }
    assert!(stdout.contains("0 violations"), "{stdout}");
    assert!(!stdout.contains("FAILED") && !stdout.contains("dropped"), "{stdout}");
}
