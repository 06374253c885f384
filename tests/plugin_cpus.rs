//! `plugin_cpus`: the plugins' threads run on the CPUs configured, and a CPU out of reach is refused at
//! start. A test binary of its own: it finds the plugin threads among the process's threads by name,
//! and another test's runtime would add its own.

mod common;

use common::built_plugin_dir;

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_threads_run_on_the_configured_cpus_and_a_cpu_out_of_reach_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let sim = avs_sim::Sim::start(avs_sim::SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim")))
        .await
        .unwrap();
    let mut config = common::device_config(&sim, &dir, built_plugin_dir());
    let cpu = *avs_core::process::allowed_cpus().last().unwrap();
    config.plugin_cpus = vec![cpu];
    let runtime = avs_core::runtime::Runtime::start(config.clone(), common::test_options()).await.unwrap();
    // Each plugin thread's CPU list, as the kernel has it.
    let mut pinned = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.starts_with("plugin-") {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
            pinned.push((comm.trim().to_string(), cpus));
        }
    }
    assert_eq!(pinned.len(), 4, "a thread per plugin of the template: {pinned:?}");
    assert!(pinned.iter().all(|(_, cpus)| *cpus == cpu.to_string()), "all on CPU {cpu}: {pinned:?}");
    runtime.shutdown().await;

    config.plugin_cpus = vec![OUT_OF_REACH];
    let error = avs_core::runtime::Runtime::start(config, common::test_options()).await.err().expect("must refuse");
    assert!(error.to_string().contains(&format!("plugin_cpus lists CPU {OUT_OF_REACH}")), "{error}");
    sim.shutdown().await;
}

#[cfg(target_os = "linux")]
/// Past the kernel's CPU set (1,024 CPUs): no process is allowed on it.
const OUT_OF_REACH: usize = 1024;
