//! What the benchmark ran on, and how busy the CPUs were while it ran.
//!
//! On a small machine the load generator, the prepaid server and PostgreSQL all share
//! the same cores, so every cell records how much CPU the load generator itself used
//! and how much the rest of the machine used. That is what tells a reader whether a
//! figure is limited by the server or by the machine.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// The machine description printed at the top of the report.
#[derive(Clone, Debug)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub date: String,
    pub rustc: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| "unknown".to_owned());
        let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cpus,
            cpu_model,
            memory,
            kernel,
            date,
            rustc,
        }
    }
}

/// The file system a path lives on, from `/proc/mounts` (longest matching mount point),
/// as `device (type)`. Durability costs depend on it: an fsync on tmpfs is free.
pub fn filesystem_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(device), Some(mount), Some(kind)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if path.starts_with(mount) && best.as_ref().is_none_or(|(len, _)| mount.len() > *len) {
            best = Some((mount.len(), format!("{device} ({kind})")));
        }
    }
    best.map(|(_, s)| s).unwrap_or_else(|| "unknown".to_owned())
}

/// Clock ticks per second of `/proc` CPU counters (`USER_HZ`); 100 on every mainstream
/// Linux build, read from `getconf` when it is there.
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Which processes are "the server" of a cell, for CPU accounting.
#[derive(Clone, Debug)]
pub enum ServerProcs {
    /// One process (the prepaid server this program started).
    Pid(u32),
    /// Several processes (prepaid servers sharing one PostgreSQL database).
    Pids(Vec<u32>),
    /// Every process with this command name (PostgreSQL runs one backend per
    /// connection plus its writer processes, all named `postgres`).
    Named(&'static str),
    /// No server (the canned-answer server runs inside this process).
    None,
}

impl ServerProcs {
    /// The server processes' ids.
    fn pids(&self) -> Vec<u32> {
        match self {
            Self::Pid(pid) => vec![*pid],
            Self::Pids(pids) => pids.clone(),
            Self::Named(name) => {
                let Ok(dir) = std::fs::read_dir("/proc") else {
                    return Vec::new();
                };
                dir.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
                    .filter(|pid| {
                        read_stat(&format!("/proc/{pid}/stat"))
                            .is_some_and(|(comm, _)| comm == *name)
                    })
                    .collect()
            }
            Self::None => Vec::new(),
        }
    }
}

/// The command name and user plus system ticks from a `stat` file.
fn read_stat(path: &str) -> Option<(String, u64)> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| stat_cpu_ticks(&s))
}

/// A snapshot of CPU counters.
#[derive(Clone, Debug)]
pub struct CpuSample {
    at: Instant,
    /// User plus system ticks of this process (all threads).
    own_ticks: u64,
    /// User plus system ticks of each server process (dead threads included).
    server_ticks: HashMap<u32, u64>,
    /// User plus system ticks of each thread of the server processes.
    server_thread_ticks: HashMap<(u32, u32), u64>,
    /// Non-idle ticks of the whole machine, all CPUs.
    busy_ticks: u64,
}

impl CpuSample {
    pub fn take(server: &ServerProcs) -> Self {
        let own_ticks = read_stat("/proc/self/stat").map_or(0, |(_, t)| t);
        let mut server_ticks = HashMap::new();
        let mut server_thread_ticks = HashMap::new();
        for pid in server.pids() {
            let Some((_, ticks)) = read_stat(&format!("/proc/{pid}/stat")) else {
                continue;
            };
            server_ticks.insert(pid, ticks);
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for tid in tasks
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            {
                if let Some((_, ticks)) = read_stat(&format!("/proc/{pid}/task/{tid}/stat")) {
                    server_thread_ticks.insert((pid, tid), ticks);
                }
            }
        }
        Self {
            at: Instant::now(),
            own_ticks,
            server_ticks,
            server_thread_ticks,
            busy_ticks: machine_busy_ticks(),
        }
    }
}

/// The ticks each key gained between two snapshots; a key new in `end` counts whole.
fn gained<K: std::hash::Hash + Eq>(
    start: &HashMap<K, u64>,
    end: &HashMap<K, u64>,
) -> impl Iterator<Item = u64> {
    end.iter()
        .map(|(k, ticks)| ticks.saturating_sub(start.get(k).copied().unwrap_or(0)))
}

/// CPU use over an interval, in cores (1.0 = one core busy for the whole interval).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    /// The load generator (this process).
    pub load_generator_cores: f64,
    /// The server processes of the cell. A process that starts inside the window counts
    /// whole; one that exits inside it is missed (PostgreSQL's client backends outlive
    /// the window, its short-lived autovacuum workers may not).
    pub server_cores: f64,
    /// Everything else on the machine: kernel work outside these processes, other jobs.
    pub other_cores: f64,
    /// The one server thread that used the most CPU; near 1.0 means work serialised on
    /// one thread limits the server.
    pub busiest_server_thread_cores: Option<f64>,
}

impl CpuUse {
    pub fn between(start: &CpuSample, end: &CpuSample, ticks_per_second: f64) -> Self {
        let seconds = end.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / ticks_per_second / seconds;
        let own = cores(start.own_ticks, end.own_ticks);
        let server = gained(&start.server_ticks, &end.server_ticks).sum::<u64>() as f64
            / ticks_per_second
            / seconds;
        let busiest = gained(&start.server_thread_ticks, &end.server_thread_ticks).max();
        let busy = cores(start.busy_ticks, end.busy_ticks);
        Self {
            load_generator_cores: own,
            server_cores: server,
            other_cores: (busy - own - server).max(0.0),
            busiest_server_thread_cores: busiest.map(|t| t as f64 / ticks_per_second / seconds),
        }
    }

    pub fn busy_cores(&self) -> f64 {
        self.load_generator_cores + self.server_cores + self.other_cores
    }
}

/// The command name and user plus system ticks of one `/proc/<pid>/stat` line.
fn stat_cpu_ticks(stat: &str) -> (String, u64) {
    // The command name sits in parentheses and may hold spaces and parentheses; the
    // fields after the last ')' are fixed: utime and stime are fields 14 and 15 of the
    // whole line, i.e. the 12th and 13th after the name.
    let comm = stat
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map(|(c, _)| c.to_owned())
        .unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (comm, 0);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (comm, field(14) + field(15))
}

fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    // already inside user, and idle and iowait are not work.
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    at(0) + at(1) + at(2) + at(5) + at(6) + at(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_command_name_parses() {
        let line =
            "1234 (tokio (rt) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(stat_cpu_ticks(line), ("tokio (rt) x".to_owned(), 325));
    }
}
