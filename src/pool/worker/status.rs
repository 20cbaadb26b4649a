//! The pools' part of the status page (`rust_status`, which the status
//! folder serves): every pool and its processes, from the shared table,
//! for JSON and for the Prometheus text format.
//!
//! Runs in nginx's workers.

use serde::Serialize;

use crate::core::metrics::{escape_label, prometheus_family};
use crate::pool::slots::{self, State, Table};

#[derive(Serialize)]
pub struct PoolStatus {
    name: String,
    /// Python threads per process; None for a program pool.
    threads: Option<u32>,
    /// In a crash loop: requests get 503.
    failing: bool,
    restarts: u64,
    /// Requests waiting in nginx's workers for a place in a process (a
    /// program pool's processes take a fixed number at once).
    waiting: u32,
    /// Scaling: the processes the supervisor wants now, between `min` and
    /// `max` (equal for a static pool); how many run (ready or draining),
    /// how many of those have requests and how many none; processes
    /// started for waiting requests, and stopped for being idle.
    wanted: u32,
    min: u32,
    max: u32,
    running: u32,
    busy: u32,
    idle: u32,
    scale_ups: u64,
    idle_stops: u64,
    processes: Vec<ProcessStatus>,
}

#[derive(Serialize)]
struct ProcessStatus {
    pid: u32,
    state: &'static str,
    requests: u64,
    active: u32,
    /// Requests it takes at once (a program's answer to FCGI_GET_VALUES);
    /// None: no limit (a Python process queues the rest for its threads).
    capacity: Option<u32>,
    /// The oldest running request and its age.
    current_request: Option<String>,
    current_request_age_ms: Option<u64>,
    rss_bytes: u64,
    uptime_ms: u64,
}

/// Every pool, now.
pub fn pools() -> Vec<PoolStatus> {
    slots::table().map(snapshot).unwrap_or_default()
}

fn snapshot(table: &Table) -> Vec<PoolStatus> {
    use std::sync::atomic::Ordering::Relaxed;
    let now = slots::unix_ms();
    let mut pools: Vec<PoolStatus> = Vec::new();
    for (index, entry) in table.pools.iter().enumerate() {
        let Some(name) = entry.name() else { continue };
        let processes: Vec<ProcessStatus> = table
            .slots
            .iter()
            .filter(|s| s.state() != State::Empty && s.pool.load(Relaxed) as usize == index)
            .map(|s| {
                let busy = s.busy_since_ms.load(Relaxed);
                ProcessStatus {
                    pid: s.pid.load(Relaxed),
                    state: s.state().name(),
                    requests: s.served.load(Relaxed),
                    active: s.active.load(Relaxed),
                    capacity: Some(s.capacity.load(Relaxed)).filter(|&c| c > 0),
                    current_request: (busy > 0).then(|| String::from_utf8_lossy(&s.uri()).into_owned()),
                    current_request_age_ms: (busy > 0).then(|| now.saturating_sub(busy)),
                    rss_bytes: s.rss.load(Relaxed),
                    uptime_ms: now.saturating_sub(s.started_ms.load(Relaxed)),
                }
            })
            .collect();
        let serving: Vec<&ProcessStatus> = processes.iter().filter(|p: &&ProcessStatus| p.state == "ready" || p.state == "draining").collect();
        let busy = serving.iter().filter(|p| p.active > 0).count() as u32;
        pools.push(PoolStatus {
            name: String::from_utf8_lossy(&name).into_owned(),
            threads: Some(entry.threads.load(Relaxed)).filter(|&t| t > 0),
            failing: entry.failing.load(Relaxed) != 0,
            restarts: entry.restarts.load(Relaxed),
            waiting: entry.waiting.load(Relaxed),
            wanted: entry.wanted.load(Relaxed),
            min: entry.min.load(Relaxed),
            max: entry.max.load(Relaxed),
            running: serving.len() as u32,
            busy,
            idle: serving.len() as u32 - busy,
            scale_ups: entry.scale_ups.load(Relaxed),
            idle_stops: entry.idle_stops.load(Relaxed),
            processes,
        });
    }
    pools
}

/// The pools' metrics, appended to `out`.
pub fn prometheus(pools: &[PoolStatus], out: &mut String) {
    let labels: Vec<String> = pools.iter().map(|p| format!("pool=\"{}\"", escape_label(&p.name))).collect();
    let per_pool: [(&str, &str, &str, fn(&PoolStatus) -> f64); 10] = [
        ("rust_pool_restarts_total", "counter", "Processes restarted after they died or were recycled.", |p| p.restarts as f64),
        ("rust_pool_failing", "gauge", "1 while the pool is in a crash loop.", |p| f64::from(u8::from(p.failing))),
        ("rust_pool_waiting_requests", "gauge", "Requests waiting for a place in a process.", |p| f64::from(p.waiting)),
        ("rust_pool_processes_wanted", "gauge", "Processes the supervisor wants now, between the pool's min and max.", |p| f64::from(p.wanted)),
        ("rust_pool_processes_min", "gauge", "The fewest processes the pool keeps (min_processes=).", |p| f64::from(p.min)),
        ("rust_pool_processes_max", "gauge", "The most processes the pool may run (processes=).", |p| f64::from(p.max)),
        ("rust_pool_processes_busy", "gauge", "Running processes that have requests.", |p| f64::from(p.busy)),
        ("rust_pool_processes_idle", "gauge", "Running processes that have none.", |p| f64::from(p.idle)),
        ("rust_pool_scale_ups_total", "counter", "Processes started because requests waited.", |p| p.scale_ups as f64),
        ("rust_pool_idle_stops_total", "counter", "Processes stopped because they were idle.", |p| p.idle_stops as f64),
    ];
    for (name, kind, help, value) in per_pool {
        prometheus_family(out, name, kind, help, pools.iter().zip(&labels).map(|(p, l)| (l.clone(), value(p))));
    }
    let per_process: [(&str, &str, &str, fn(&ProcessStatus) -> f64); 4] = [
        ("rust_pool_process_requests_total", "counter", "Requests a process has served.", |p| p.requests as f64),
        ("rust_pool_process_active_requests", "gauge", "Requests a process is serving now.", |p| f64::from(p.active)),
        ("rust_pool_process_resident_memory_bytes", "gauge", "Resident memory of a process.", |p| p.rss_bytes as f64),
        ("rust_pool_process_oldest_request_age_seconds", "gauge", "Age of a process's oldest running request.", |p| {
            p.current_request_age_ms.unwrap_or(0) as f64 / 1000.0
        }),
    ];
    for (name, kind, help, value) in per_process {
        let samples = pools.iter().zip(&labels).flat_map(|(pool, l)| {
            pool.processes.iter().map(move |p| (format!("{l},pid=\"{}\",state=\"{}\"", p.pid, p.state), value(p)))
        });
        prometheus_family(out, name, kind, help, samples);
    }
}
