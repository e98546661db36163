//! Processes: run a client as a child and take its CPU time and peak RSS from `wait4`, read
//! another process's CPU time from `/proc`.
//!
//! `wait4` and `getrusage` are plain libc calls on values this module owns; they are the only
//! `unsafe` in the package.
#![allow(unsafe_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Resource use of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub user_s: f64,
    pub sys_s: f64,
    /// Peak resident set size, bytes.
    pub max_rss: u64,
}

impl Usage {
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    fn from_rusage(r: &libc::rusage) -> Self {
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Self {
            user_s: secs(r.ru_utime),
            sys_s: secs(r.ru_stime),
            // Linux reports ru_maxrss in KiB.
            max_rss: (r.ru_maxrss.max(0) as u64) * 1024,
        }
    }
}

/// This process's own resource use so far.
pub fn rusage_self() -> Usage {
    // SAFETY: getrusage writes one `rusage` into the zeroed value we pass and keeps no pointer.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    if rc != 0 {
        return Usage::default();
    }
    Usage::from_rusage(&r)
}

/// How a child process ended.
#[derive(Debug)]
pub struct Finished {
    pub usage: Usage,
    /// Exit code, or `None` if it was killed by a signal (a timeout included).
    pub code: Option<i32>,
    pub timed_out: bool,
    pub wall: Duration,
    /// Everything it printed on stdout.
    pub stdout: String,
}

/// Runs `cmd` (stdout captured, stderr inherited) until it exits or `timeout` passes (then it is
/// killed), and reaps it with `wait4` to get its own rusage: CPU user + sys and peak RSS of that
/// process alone.
pub fn run_measured(mut cmd: Command, timeout: Duration) -> std::io::Result<Finished> {
    let started = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed `rusage` is a valid value; wait4 fills it in.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std's `Child` never waited for it);
        // `status` and `r` are live locals.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut r) };
        if rc == pid {
            break;
        }
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if started.elapsed() > timeout && !timed_out {
            timed_out = true;
            eprintln!("pkbench: child {pid} timed out after {timeout:?}; killing it");
            // Our own child, by its pid.
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    let stdout = reader.join().unwrap_or_default();
    let code = if libc::WIFEXITED(status) { Some(libc::WEXITSTATUS(status)) } else { None };
    Ok(Finished { usage: Usage::from_rusage(&r), code, timed_out, wall, stdout })
}

/// CPU seconds (user + sys) a live process has used, from `/proc/PID/stat`.
pub fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Peak RSS of a live process (`VmHWM` in `/proc/PID/status`), bytes.
pub fn proc_peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether `pid` is alive (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)).is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Sends SIGTERM to a process this harness started, then SIGKILL if it is still alive after
/// `grace`.
pub fn terminate(pid: u32, grace: Duration) {
    // SAFETY: kill(2) with a pid we started; no memory involved.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        // SAFETY: as above.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// Reads lines from a child's stdout until one starts with `prefix`.
pub fn read_line_with<R: Read>(r: &mut BufReader<R>, prefix: &str) -> Option<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(rest) = line.trim_end().strip_prefix(prefix) {
            return Some(rest.to_string());
        }
    }
}
