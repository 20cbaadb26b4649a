//! One reading of the shared tables, and its two forms: JSON and the
//! Prometheus text format (metric names and labels as README.md lists
//! them).

use std::fmt::Write;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

use serde::Serialize;

use crate::core::metrics::{self, escape_label, prometheus_family, BUCKETS_MS};
use crate::pool::worker::status::{self as pools, PoolStatus};

#[derive(Serialize)]
pub struct Page {
    workers: Vec<WorkerStatus>,
    apps: Vec<AppStatus>,
    cgi: CgiStatus,
    pools: Vec<PoolStatus>,
}

#[derive(Serialize)]
struct WorkerStatus {
    pid: u32,
    uptime_ms: u64,
    /// WSGI's Python threads; None where the worker runs none.
    python_threads: Option<Threads>,
    /// The ASGI event loop; None where the worker runs none.
    asgi_loop: Option<Loop>,
    /// WebSockets open through this worker: to its own loop or to a pool.
    websockets: u32,
    /// CGI programs this worker runs.
    cgi_running: u32,
}

#[derive(Serialize)]
struct Threads {
    total: u32,
    busy: u32,
    idle: u32,
    /// Requests waiting for a thread, and the wait of the oldest.
    queued: u64,
    longest_wait_ms: u64,
}

#[derive(Serialize)]
struct Loop {
    /// Readings so far (one per second).
    ticks: u64,
    tasks: u32,
    lag_ms: f64,
}

#[derive(Serialize)]
struct AppStatus {
    app: String,
    /// wsgi, asgi, cgi or fastcgi.
    interface: String,
    /// The pool that runs it, or "" (embedded, CGI).
    pool: String,
    requests: u64,
    /// "1xx" to "5xx"; a request the client left before its status has
    /// none.
    responses: std::collections::BTreeMap<&'static str, u64>,
    timeouts: u64,
    /// Time in the app, in seconds: cumulative buckets by upper bound
    /// (as Prometheus has them), their sum and count.
    duration_buckets: Vec<(String, u64)>,
    duration_sum_s: f64,
    duration_count: u64,
    reloads: u64,
    reload_failures: u64,
}

#[derive(Serialize, Default)]
struct CgiStatus {
    /// Over the live workers.
    running: u64,
    spawned: u64,
    /// CGI requests that ran past their timeout (summed over the CGI apps).
    timed_out: u64,
    killed_groups: u64,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn le(i: usize) -> String {
    match BUCKETS_MS.get(i) {
        Some(&ms) => format!("{}", ms as f64 / 1000.0),
        None => "+Inf".into(),
    }
}

impl Page {
    pub fn now() -> Page {
        let now = crate::os::monotonic_ms();
        let mut page = Page { workers: Vec::new(), apps: Vec::new(), cgi: CgiStatus::default(), pools: pools::pools() };
        let Some(table) = metrics::table() else { return page };
        for w in metrics::workers(table) {
            let total = w.threads.load(Relaxed);
            let busy = w.busy.load(Relaxed).min(total);
            let (queued, wait) = w.queue(now);
            page.workers.push(WorkerStatus {
                pid: w.pid.load(Relaxed),
                uptime_ms: now.saturating_sub(w.started_ms.load(Relaxed)),
                python_threads: (total > 0).then_some(Threads { total, busy, idle: total - busy, queued, longest_wait_ms: wait }),
                asgi_loop: (w.loop_running.load(Relaxed) != 0).then(|| Loop {
                    ticks: w.ticks.load(Acquire),
                    tasks: w.tasks.load(Relaxed),
                    lag_ms: w.loop_lag_ms(now),
                }),
                websockets: w.websockets.load(Relaxed),
                cgi_running: w.cgi_running.load(Relaxed),
            });
        }
        page.workers.sort_by_key(|w| w.pid);
        for app in &table.apps {
            let Some((label, interface, pool)) = app.key() else { continue };
            let mut cumulative = 0;
            let duration_buckets = app
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    cumulative += b.load(Relaxed);
                    (le(i), cumulative)
                })
                .collect();
            let timeouts = app.timeouts.load(Relaxed);
            if interface == "cgi" {
                page.cgi.timed_out += timeouts;
            }
            page.apps.push(AppStatus {
                app: label,
                interface,
                pool,
                requests: app.requests.load(Relaxed),
                responses: CLASSES.iter().zip(&app.classes).map(|(&name, n)| (name, n.load(Relaxed))).collect(),
                timeouts,
                duration_buckets,
                duration_sum_s: app.sum_ms.load(Relaxed) as f64 / 1000.0,
                duration_count: cumulative,
                reloads: app.reloads.load(Relaxed),
                reload_failures: app.reload_failures.load(Relaxed),
            });
        }
        page.cgi.running = page.workers.iter().map(|w| u64::from(w.cgi_running)).sum();
        page.cgi.spawned = table.cgi.spawned.load(Relaxed);
        page.cgi.killed_groups = table.cgi.killed_groups.load(Relaxed);
        page
    }

    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn prometheus(&self) -> String {
        let mut text = String::new();
        let out = &mut text;
        let pid = |w: &WorkerStatus| format!("pid=\"{}\"", w.pid);

        let threads: Vec<(String, &Threads)> = self.workers.iter().filter_map(|w| Some((pid(w), w.python_threads.as_ref()?))).collect();
        let help = "WSGI Python threads of an nginx worker, busy with a request or idle.";
        let samples = threads.iter().flat_map(|(l, t)| [(format!("{l},state=\"busy\""), f64::from(t.busy)), (format!("{l},state=\"idle\""), f64::from(t.idle))]);
        prometheus_family(out, "rust_python_threads", "gauge", help, samples);
        let help = "Requests waiting for a WSGI Python thread of an nginx worker.";
        prometheus_family(out, "rust_python_queued_requests", "gauge", help, threads.iter().map(|(l, t)| (l.clone(), t.queued as f64)));
        let help = "How long the oldest waiting request has waited for a thread.";
        let samples = threads.iter().map(|(l, t)| (l.clone(), t.longest_wait_ms as f64 / 1000.0));
        prometheus_family(out, "rust_python_queue_oldest_wait_seconds", "gauge", help, samples);

        let loops: Vec<(String, &Loop)> = self.workers.iter().filter_map(|w| Some((pid(w), w.asgi_loop.as_ref()?))).collect();
        let help = "asyncio tasks on an nginx worker's ASGI event loop.";
        prometheus_family(out, "rust_asgi_loop_tasks", "gauge", help, loops.iter().map(|(l, lp)| (l.clone(), f64::from(lp.tasks))));
        let help = "WebSockets open through an nginx worker (to its loop or to a pool).";
        prometheus_family(out, "rust_asgi_open_websockets", "gauge", help, self.workers.iter().map(|w| (pid(w), f64::from(w.websockets))));
        let help = "How late the event loop ran its last timer (more while it is overdue).";
        prometheus_family(out, "rust_asgi_loop_lag_seconds", "gauge", help, loops.iter().map(|(l, lp)| (l.clone(), lp.lag_ms / 1000.0)));

        // Each app's labels, escaped once for all its families.
        let apps: Vec<(String, &AppStatus)> = self
            .apps
            .iter()
            .map(|a| (format!("app=\"{}\",interface=\"{}\",pool=\"{}\"", escape_label(&a.app), escape_label(&a.interface), escape_label(&a.pool)), a))
            .collect();
        let help = "Requests an app served (ended), over all nginx workers.";
        prometheus_family(out, "rust_app_requests_total", "counter", help, apps.iter().map(|(l, a)| (l.clone(), a.requests as f64)));
        let samples = apps.iter().flat_map(|(l, a)| a.responses.iter().map(move |(class, n)| (format!("{l},class=\"{class}\""), *n as f64)));
        prometheus_family(out, "rust_app_responses_total", "counter", "Responses by status class.", samples);
        let help = "Requests that ran past their read timeout or total time.";
        prometheus_family(out, "rust_app_timeouts_total", "counter", help, apps.iter().map(|(l, a)| (l.clone(), a.timeouts as f64)));
        let help = "Time in the app: from a thread or process taking the request to its end.";
        prometheus_family(out, "rust_app_duration_seconds", "histogram", help, []);
        for (l, a) in &apps {
            for (le, n) in &a.duration_buckets {
                let _ = writeln!(out, "rust_app_duration_seconds_bucket{{{l},le=\"{le}\"}} {n}");
            }
            let _ = writeln!(out, "rust_app_duration_seconds_sum{{{l}}} {}", a.duration_sum_s);
            let _ = writeln!(out, "rust_app_duration_seconds_count{{{l}}} {}", a.duration_count);
        }
        let help = "Reloads after the app's code changed.";
        prometheus_family(out, "rust_app_reloads_total", "counter", help, apps.iter().map(|(l, a)| (l.clone(), a.reloads as f64)));
        let help = "Reloads that failed (the previous version kept serving).";
        prometheus_family(out, "rust_app_reload_failures_total", "counter", help, apps.iter().map(|(l, a)| (l.clone(), a.reload_failures as f64)));

        let cgi: [(&str, &str, &str, f64); 4] = [
            ("rust_cgi_programs_running", "gauge", "CGI programs running now.", self.cgi.running as f64),
            ("rust_cgi_spawned_total", "counter", "CGI programs started.", self.cgi.spawned as f64),
            ("rust_cgi_timeouts_total", "counter", "CGI requests that ran past their timeout.", self.cgi.timed_out as f64),
            ("rust_cgi_killed_groups_total", "counter", "CGI process groups that outlived their grace and got SIGKILL.", self.cgi.killed_groups as f64),
        ];
        for (name, kind, help, value) in cgi {
            prometheus_family(out, name, kind, help, [(String::new(), value)]);
        }

        pools::prometheus(&self.pools, out);
        text
    }
}
