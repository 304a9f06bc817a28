//! The few operating-system facts the collector needs that std does not give.
#![allow(unsafe_code)] // reason: statvfs, getrusage and gethostname have no safe std equivalent

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn available_bytes(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated string and `st` points to writable memory of the
    // right type; statvfs fully initialises it when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: rc == 0, so statvfs initialised the struct.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The kernel's host name (`gethostname(2)`, the UTS name `uname -n` prints); `None` when it is
/// empty or the call fails. Unlike `/proc/sys/kernel/hostname` it needs no file system, so it
/// works under systemd's `ProcSubset=pid`.
pub fn hostname() -> Option<String> {
    // Linux allows 64 bytes (HOST_NAME_MAX); POSIX names are at most 255.
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    // A name that filled the buffer may lack its NUL: take what is there.
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// Makes glibc keep freed heap memory instead of unmapping it after every batch: each batch's
/// Arrow buffers otherwise cost fresh pages (page faults were 13% of backlog ingest time). Memory
/// is handed back with [`release_free_memory`] once the collector has caught up.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; any values are valid to pass.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// One heap for every thread, for a run that reads a backlog and exits (`--once`): a batch is
/// built on one thread, committed on another and written to Parquet on a third, and memory one
/// of them freed is reused by the others (with a heap per thread, each kept its own peak: about
/// 5 MB more at a backlog's peak). Follow mode keeps glibc's default: its resident memory while
/// following was not measured to gain from it. Called before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn share_heap() {
    // SAFETY: mallopt only changes allocator parameters; any values are valid to pass.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn share_heap() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}

/// Returns free heap memory to the kernel (after a large batch, once caught up).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only releases memory the allocator holds unused.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// Asks the kernel to reclaim the pages of this program's own file that are resident now.
///
/// Opening DuckDB touches most of its 25 MB of code and read-only data once (function catalog,
/// extensions, parser), and those file pages then count in the resident set for the life of the
/// process although following the log uses a few MB of them. `MADV_PAGEOUT` only reclaims: it
/// never changes memory contents (dirty private pages, such as relocated data, are left or
/// swapped), and a page used again is read back from the page cache or the file. Best effort;
/// errors are ignored.
#[cfg(target_os = "linux")]
pub fn release_program_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3);
        if path != exe.to_str() || perms.contains('w') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: the range is a whole mapping of this process, from /proc/self/maps; PAGEOUT is
        // advisory and never changes what the memory holds.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn release_program_pages() {}

/// CPU time (user + system) and peak resident set size of this process.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub max_rss_bytes: u64,
}

pub fn usage() -> Usage {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `ru` points to writable memory of the right type; getrusage initialises it on 0.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return Usage {
            cpu_seconds: 0.0,
            max_rss_bytes: 0,
        };
    }
    // SAFETY: rc == 0, so getrusage initialised the struct.
    let ru = unsafe { ru.assume_init() };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    Usage {
        cpu_seconds: secs(ru.ru_utime) + secs(ru.ru_stime),
        max_rss_bytes: (ru.ru_maxrss as u64) * 1024,
    }
}

/// What one benchmark phase cost, measured in the child process that ran it alone.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub rows: f64,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub max_rss_bytes: f64,
}

/// Child side of a benchmark phase: runs `load` (which returns the rows it stored) and prints
/// what it cost, for [`run_phase`] in the parent.
pub fn report_phase(load: impl FnOnce() -> u64) {
    let before = usage();
    let start = std::time::Instant::now();
    let rows = load();
    let wall = start.elapsed().as_secs_f64();
    let after = usage();
    println!(
        "{rows} {wall} {} {}",
        after.cpu_seconds - before.cpu_seconds,
        after.max_rss_bytes
    );
}

/// Parent side: runs the current executable again with `CREDTRAIL_BENCH_PHASE=phase` and `env`,
/// so the phase's CPU time and peak RSS are its own, and reads what [`report_phase`] printed.
pub fn run_phase(phase: &str, env: &[(&str, &Path)]) -> io::Result<Phase> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.env("CREDTRAIL_BENCH_PHASE", phase);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stderr(std::process::Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "phase {phase} failed: {}",
            out.status
        )));
    }
    let f: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    match f[..] {
        [rows, wall_seconds, cpu_seconds, max_rss_bytes, ..] => Ok(Phase {
            rows,
            wall_seconds,
            cpu_seconds,
            max_rss_bytes,
        }),
        _ => Err(io::Error::other(format!(
            "phase {phase} printed no measurement"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_free_space_and_usage() {
        assert!(super::available_bytes(std::path::Path::new("/")).unwrap() > 0);
        assert!(super::usage().max_rss_bytes > 0);
        assert!(super::available_bytes(std::path::Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn host_name_is_the_kernels() {
        let out = std::process::Command::new("uname")
            .arg("-n")
            .output()
            .unwrap();
        let expected = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert_eq!(super::hostname(), Some(expected));
    }
}
