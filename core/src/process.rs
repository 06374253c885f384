//! What the runtime reads about its own process from /proc: CPU time and resident memory — for the
//! control socket's status, the OTA memory figures and `avs bench`.

/// Linux reports utime and stime in USER_HZ ticks, which is 100 on every architecture it runs on.
const NS_PER_TICK: u64 = 10_000_000;

/// CPU time (user + system) of every thread of this process so far, in nanoseconds (10 ms resolution).
pub fn cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may contain spaces; the fields after it are space-separated. utime and stime are
    // fields 14 and 15, the 12th and 13th after the name.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) * NS_PER_TICK
}

/// Resident set size now (`VmRSS`), in bytes.
pub fn rss_bytes() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// The peak resident set size of this process (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// A `kB` field of /proc/self/status (0 where there is none).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_uses_cpu() {
        let before = cpu_ns();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_ns() > before);
        assert!(rss_bytes() > 0 && peak_rss_bytes() >= rss_bytes());
    }
}
