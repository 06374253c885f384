//! What the runtime reads about its own process from /proc: CPU time and resident memory — for the
//! control socket's status, the OTA memory figures and `avs bench` — and the one thing it changes about
//! its memory: which code pages stay resident ([`trim_code_pages_of`], [`trim_executable_code`]).

use std::path::{Path, PathBuf};

/// Linux reports utime and stime in USER_HZ ticks, which is 100 on every architecture it runs on.
const NS_PER_TICK: u64 = 10_000_000;

/// CPU time (user + system) of every thread of this process so far, in nanoseconds (10 ms resolution).
pub fn cpu_ns() -> u64 {
    stat_cpu_ns("/proc/self/stat")
}

/// CPU time (user + system) of one thread of this process so far, by its kernel thread id, in
/// nanoseconds (10 ms resolution, as [`cpu_ns`], so that one can be taken from the other).
pub fn thread_cpu_ns(tid: i32) -> u64 {
    stat_cpu_ns(&format!("/proc/self/task/{tid}/stat"))
}

fn stat_cpu_ns(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
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

/// Leaves resident only the code and read-only data of `file` (a loaded library) that this process uses
/// from now on.
///
/// The kernel reads ahead around each fault and maps the cached pages around it, so loading a library
/// makes nearly all of it resident: each plugin library had 0.4–0.8 MiB resident, and every OTA swap
/// added about the size of the new file. This drops this process's pages of `file`'s read-only
/// mappings, drops the file's pages from the page cache where nothing maps them, and marks the
/// mappings for random access, so that a later fault reads the one page it needs. What is resident
/// afterwards is what runs; the price is a read from storage the first time a page is used.
///
/// It works best on pages in small folios ([`evict_file_pages`] before loading sees to that): a page
/// of a large folio that is mapped again keeps the whole folio in the cache, and the next fault maps
/// all of it. So between dropping the mappings and evicting, as little code as possible runs; what the
/// process's threads run in that moment stays resident in whole folios. That matters for the
/// executable, which exec reads in folios as large as the device's read-ahead allows.
///
/// Only read-only mappings without a copy-on-write page are dropped (their pages are the file's, so a
/// fault brings back the same bytes); relocated data stays as it is. Returns the bytes dropped. Linux
/// only; elsewhere it does nothing.
pub(crate) fn trim_code_pages_of(file: &Path) -> std::io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        linux::trim_code_pages(file)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Ok(0)
    }
}

/// Leaves resident only the executable's code that runs from now on, and none of `parked` (libraries
/// whose code runs no more: a version an OTA swap replaced). For when the runtime has just finished
/// something it does once in a long while: starting and connecting, an OTA swap.
///
/// Starting runs code that steady operation never runs again: configuration, SQLite's schema, plugin
/// loading and signature checks, compiling every schema, the TLS handshake and linking. The kernel
/// read ahead the whole executable at exec, so all of it stayed mapped: about 9 MiB of the 10 MiB of
/// code of a connected screen-device, of 22.6 MiB in all. Dropped once connected, what comes back is
/// what runs (README, Performance). Trimming sooner would be undone: the code runs only after `main`
/// starts, and read-ahead happens before it. A failed trim is logged and leaves the pages resident.
pub(crate) async fn trim_executable_code(parked: Vec<PathBuf>) {
    let trimmed = tokio::task::spawn_blocking(move || {
        for library in &parked {
            if let Err(e) = trim_code_pages_of(library) {
                tracing::warn!("{}: its code pages stay resident: {e}", library.display());
            }
        }
        trim_code_pages_of(&std::env::current_exe()?)
    })
    .await
    .map_err(std::io::Error::other)
    .flatten();
    match trimmed {
        Ok(bytes) => tracing::debug!("{} KiB of the executable's code left memory until used", bytes / 1024),
        Err(e) => tracing::warn!("the executable's code pages stay resident: {e}"),
    }
}

/// Writes back and drops `file`'s pages from the page cache, except those someone maps. For a library
/// about to be loaded: a file written moments ago (an OTA artifact, a copy) sits in the cache in the
/// large folios it was written in, and one page of such a folio mapped keeps all of it resident; read
/// back from storage, its pages come in small folios that [`trim_code_pages_of`] can drop one by one.
pub(crate) fn evict_file_pages(file: &Path) -> std::io::Result<()> {
    drop_cached_pages(&open_written_back(file)?);
    Ok(())
}

/// `file` opened, its dirty pages written back: those cannot leave the page cache, written back they can.
/// The CPUs this process may run on (Linux; elsewhere every CPU).
pub fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_getaffinity fills the zeroed bitmap, of the size given, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            return (0..libc::CPU_SETSIZE as usize).filter(|cpu| libc::CPU_ISSET(*cpu, &set)).collect();
        }
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// Pins thread `tid` (`0`: the calling thread) to `cpus`. Linux only; elsewhere an `Unsupported` error.
pub fn pin_thread(tid: i32, cpus: &[usize]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the set is a plain bitmap initialised here, which sched_setaffinity only reads; an
        // unknown tid or a CPU out of range is an error return.
        let set = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for cpu in cpus.iter().filter(|cpu| **cpu < libc::CPU_SETSIZE as usize) {
                libc::CPU_SET(*cpu, &mut set);
            }
            set
        };
        match unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (tid, cpus);
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

fn open_written_back(file: &Path) -> std::io::Result<std::fs::File> {
    let opened = std::fs::File::open(file)?;
    let _ = opened.sync_data();
    Ok(opened)
}

/// Drops `opened`'s clean pages from the page cache, except those someone maps.
fn drop_cached_pages(opened: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: advice about a file descriptor we own; the page cache keeps pages someone maps.
        unsafe { libc::posix_fadvise(opened.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = opened;
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// One mapping of /proc/self/smaps.
    #[derive(Debug, Default)]
    pub(super) struct Mapping {
        pub start: usize,
        pub end: usize,
        pub writable: bool,
        /// `major:minor` of the file's device, as smaps writes it.
        pub device: String,
        pub inode: u64,
        pub rss_kib: u64,
        /// Copy-on-write pages: this mapping's bytes that are no longer the file's.
        pub anonymous_kib: u64,
    }

    /// The mappings listed in `smaps` (a header line per mapping, then its `Field: N kB` lines).
    pub(super) fn mappings(smaps: &str) -> Vec<Mapping> {
        let mut mappings: Vec<Mapping> = Vec::new();
        for line in smaps.lines() {
            let mut fields = line.split_ascii_whitespace();
            let Some(first) = fields.next() else { continue };
            if let Some(name) = first.strip_suffix(':') {
                let mut kib = || fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                match (name, mappings.last_mut()) {
                    ("Rss", Some(m)) => m.rss_kib = kib(),
                    ("Anonymous", Some(m)) => m.anonymous_kib = kib(),
                    _ => {}
                }
                continue;
            }
            let Some((start, end)) = first.split_once('-') else { continue };
            let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else {
                continue;
            };
            let perms = fields.next().unwrap_or("");
            let _offset = fields.next();
            let device = fields.next().unwrap_or("").to_string();
            let inode = fields.next().and_then(|i| i.parse().ok()).unwrap_or(0);
            mappings.push(Mapping { start, end, writable: perms.contains('w'), device, inode, ..Mapping::default() });
        }
        mappings
    }

    pub(super) fn trim_code_pages(file: &Path) -> std::io::Result<u64> {
        let opened = super::open_written_back(file)?;
        let meta = opened.metadata()?;
        let device = format!("{:02x}:{:02x}", libc::major(meta.dev()), libc::minor(meta.dev()));
        let smaps = std::fs::read_to_string("/proc/self/smaps")?;
        let ours: Vec<Mapping> =
            mappings(&smaps).into_iter().filter(|m| m.inode == meta.ino() && m.device == device).collect();
        // From here to the eviction, as little code as possible runs: a page of a large folio that is
        // mapped again in between keeps the whole folio in the cache, and a fault maps all of it.
        let mut dropped = 0;
        for m in &ours {
            let (start, len) = (m.start as *mut libc::c_void, m.end - m.start);
            // SAFETY: MADV_RANDOM only changes how later faults on this mapping of ours read ahead.
            unsafe { libc::madvise(start, len, libc::MADV_RANDOM) };
            // SAFETY: a read-only mapping of the file with no copy-on-write page holds exactly the
            // file's bytes; dropped, its pages fault back from the file unchanged. Writable and
            // relocated mappings are left alone.
            if !m.writable && m.anonymous_kib == 0 && unsafe { libc::madvise(start, len, libc::MADV_DONTNEED) } == 0 {
                dropped += m.rss_kib * 1024;
            }
        }
        super::drop_cached_pages(&opened);
        Ok(dropped)
    }
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
        // In this order: other tests' threads may fault pages in between, and the peak keeps up.
        let rss = rss_bytes();
        assert!(rss > 0 && peak_rss_bytes() >= rss);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn smaps_mappings_are_read_with_their_copy_on_write_pages() {
        let smaps = "\
7f0000000000-7f0000004000 r--p 00000000 fd:01 4242 /lib/libx.so
Size:                 16 kB
Rss:                  12 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
7f0000004000-7f0000005000 r--p 00004000 fd:01 4242 /lib/libx.so
Rss:                   4 kB
Anonymous:             4 kB
7f0000005000-7f0000006000 rw-p 00000000 00:00 0
Rss:                   4 kB
Anonymous:             4 kB
";
        let m = linux::mappings(smaps);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].start, m[0].end, m[0].writable), (0x7f0000000000, 0x7f0000004000, false));
        assert_eq!((m[0].device.as_str(), m[0].inode, m[0].rss_kib, m[0].anonymous_kib), ("fd:01", 4242, 12, 0));
        assert_eq!((m[1].rss_kib, m[1].anonymous_kib), (4, 4));
        assert!(m[2].writable && m[2].inode == 0);
    }

    /// `bytes` in a file beside the test binary, like a plugin library: on disk, where dropped pages
    /// leave memory (tmpfs pages are the file itself); opened for mapping.
    #[cfg(target_os = "linux")]
    fn file_on_disk(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, std::fs::File) {
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
        let path = dir.path().join("library.bin");
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        (dir, path, file)
    }

    /// The first `len` bytes of `file` mapped privately with protection `prot`; the caller unmaps them.
    #[cfg(target_os = "linux")]
    fn map_private(file: &std::fs::File, len: usize, prot: libc::c_int) -> *mut libc::c_void {
        // SAFETY: a new private mapping of a file the test owns, at an address the kernel picks.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_PRIVATE, std::os::fd::AsRawFd::as_raw_fd(file), 0)
        };
        assert_ne!(base, libc::MAP_FAILED);
        base
    }

    /// Resident KiB of this process's mappings that `keep` selects.
    #[cfg(target_os = "linux")]
    fn resident_kib(keep: impl Fn(&linux::Mapping) -> bool) -> u64 {
        linux::mappings(&std::fs::read_to_string("/proc/self/smaps").unwrap())
            .iter()
            .filter(|m| keep(m))
            .map(|m| m.rss_kib)
            .sum()
    }

    /// A file mapped and read through is resident; trimmed, only the pages used again come back, and
    /// they read what the file holds.
    #[cfg(target_os = "linux")]
    #[test]
    fn trimmed_pages_leave_and_come_back_unchanged() {
        const LEN: usize = 4 << 20;
        let bytes: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
        let (_dir, path, file) = file_on_disk(&bytes);
        let base = map_private(&file, LEN, libc::PROT_READ);
        // SAFETY: the mapping is LEN bytes long and stays mapped while the slice lives.
        let mapped = unsafe { std::slice::from_raw_parts(base as *const u8, LEN) };
        let sum = |step: usize| (0..LEN).step_by(step).map(|i| mapped[i] as u64).sum::<u64>();
        let expected = |step: usize| (0..LEN).step_by(step).map(|i| bytes[i] as u64).sum::<u64>();
        assert_eq!(sum(4096), expected(4096));
        let rss = || resident_kib(|m| m.start == base as usize);
        assert_eq!(rss(), (LEN / 1024) as u64);

        let dropped = trim_code_pages_of(&path).unwrap();
        assert_eq!(dropped, LEN as u64);
        assert_eq!(rss(), 0);
        // Every 16th page used again: those come back, their neighbours do not, and the bytes are the file's.
        assert_eq!(sum(16 * 4096), expected(16 * 4096));
        let used = (LEN / 16 / 1024) as u64;
        assert!((used..=2 * used).contains(&rss()), "{} KiB resident for {used} KiB used", rss());
        // SAFETY: base..base+LEN is the mapping made above, no longer borrowed.
        unsafe { libc::munmap(base, LEN) };
    }

    /// The executable's code that ran before (test harness, earlier tests) leaves memory, and so does
    /// a parked library; what the threads of this process run afterwards comes back.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_executables_code_and_parked_libraries_leave_memory() {
        use std::os::unix::fs::MetadataExt;
        const LEN: usize = 1 << 20;
        let (_dir, parked, file) = file_on_disk(&[7; LEN]);
        let library = map_private(&file, LEN, libc::PROT_READ);
        // SAFETY: the mapping is LEN bytes long; read a byte of each page to make it resident.
        let touched: u64 = (0..LEN).step_by(4096).map(|i| unsafe { *(library as *const u8).add(i) } as u64).sum();
        assert_eq!(touched, 7 * (LEN / 4096) as u64);
        let library_kib = || resident_kib(|m| m.start == library as usize);
        assert_eq!(library_kib(), (LEN / 1024) as u64);

        let exe = std::fs::metadata(std::env::current_exe().unwrap()).unwrap();
        let code_kib = || resident_kib(|m| m.inode == exe.ino() && !m.writable && m.anonymous_kib == 0);
        let before = code_kib();
        trim_executable_code(vec![parked]).await;
        let after = code_kib();
        assert_eq!(library_kib(), 0, "the parked library's pages left memory");
        // Not all of it: a page of a large folio that runs again brings its whole folio back, and on
        // a test binary read in large folios, that is a sizeable part.
        assert!(after < before, "{after} KiB of the executable resident after the trim, {before} KiB before");
        // SAFETY: the mapping made above, no longer read.
        unsafe { libc::munmap(library, LEN) };
    }

    /// Relocated data: written through a private mapping, then made read-only (as the loader does with
    /// RELRO). Its bytes are no longer the file's, and trimming must leave them.
    #[cfg(target_os = "linux")]
    #[test]
    fn copy_on_write_pages_survive_a_trim() {
        const LEN: usize = 64 << 10;
        let (_dir, path, file) = file_on_disk(&[0; LEN]);
        let base = map_private(&file, LEN, libc::PROT_READ | libc::PROT_WRITE);
        // SAFETY: within the mapping; then read-only like RELRO after relocation.
        unsafe {
            *(base as *mut u8).add(100) = 42;
            assert_eq!(libc::mprotect(base, LEN, libc::PROT_READ), 0);
        }
        trim_code_pages_of(&path).unwrap();
        // SAFETY: still mapped.
        assert_eq!(unsafe { *(base as *const u8).add(100) }, 42, "the written byte is kept");
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(base, LEN) };
    }
}
