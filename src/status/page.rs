//! One reading of the shared tables, and its two forms: JSON and the
//! Prometheus text format (metric names and labels as README.md lists
//! them).

use std::fmt::Write;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

use serde::Serialize;

use crate::core::metrics::{self, escape_label, BUCKETS_MS};
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
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };

        family(&mut out, "rust_python_threads", "gauge", "WSGI Python threads of an nginx worker, busy with a request or idle.");
        for (w, t) in self.workers.iter().filter_map(|w| w.python_threads.as_ref().map(|t| (w, t))) {
            let _ = writeln!(out, "rust_python_threads{{pid=\"{}\",state=\"busy\"}} {}", w.pid, t.busy);
            let _ = writeln!(out, "rust_python_threads{{pid=\"{}\",state=\"idle\"}} {}", w.pid, t.idle);
        }
        family(&mut out, "rust_python_queued_requests", "gauge", "Requests waiting for a WSGI Python thread of an nginx worker.");
        for (w, t) in self.workers.iter().filter_map(|w| w.python_threads.as_ref().map(|t| (w, t))) {
            let _ = writeln!(out, "rust_python_queued_requests{{pid=\"{}\"}} {}", w.pid, t.queued);
        }
        family(&mut out, "rust_python_queue_oldest_wait_seconds", "gauge", "How long the oldest waiting request has waited for a thread.");
        for (w, t) in self.workers.iter().filter_map(|w| w.python_threads.as_ref().map(|t| (w, t))) {
            let _ = writeln!(out, "rust_python_queue_oldest_wait_seconds{{pid=\"{}\"}} {}", w.pid, t.longest_wait_ms as f64 / 1000.0);
        }
        let loops: Vec<(&WorkerStatus, &Loop)> = self.workers.iter().filter_map(|w| w.asgi_loop.as_ref().map(|l| (w, l))).collect();
        family(&mut out, "rust_asgi_loop_tasks", "gauge", "asyncio tasks on an nginx worker's ASGI event loop.");
        for (w, l) in &loops {
            let _ = writeln!(out, "rust_asgi_loop_tasks{{pid=\"{}\"}} {}", w.pid, l.tasks);
        }
        family(&mut out, "rust_asgi_open_websockets", "gauge", "WebSockets open through an nginx worker (to its loop or to a pool).");
        for w in &self.workers {
            let _ = writeln!(out, "rust_asgi_open_websockets{{pid=\"{}\"}} {}", w.pid, w.websockets);
        }
        family(&mut out, "rust_asgi_loop_lag_seconds", "gauge", "How late the event loop ran its last timer (more while it is overdue).");
        for (w, l) in &loops {
            let _ = writeln!(out, "rust_asgi_loop_lag_seconds{{pid=\"{}\"}} {}", w.pid, l.lag_ms / 1000.0);
        }

        let labels = |a: &AppStatus| {
            format!("app=\"{}\",interface=\"{}\",pool=\"{}\"", escape_label(&a.app), escape_label(&a.interface), escape_label(&a.pool))
        };
        family(&mut out, "rust_app_requests_total", "counter", "Requests an app served (ended), over all nginx workers.");
        for a in &self.apps {
            let _ = writeln!(out, "rust_app_requests_total{{{}}} {}", labels(a), a.requests);
        }
        family(&mut out, "rust_app_responses_total", "counter", "Responses by status class.");
        for a in &self.apps {
            for (class, n) in &a.responses {
                let _ = writeln!(out, "rust_app_responses_total{{{},class=\"{class}\"}} {n}", labels(a));
            }
        }
        family(&mut out, "rust_app_timeouts_total", "counter", "Requests that ran past their read timeout or total time.");
        for a in &self.apps {
            let _ = writeln!(out, "rust_app_timeouts_total{{{}}} {}", labels(a), a.timeouts);
        }
        family(&mut out, "rust_app_duration_seconds", "histogram", "Time in the app: from a thread or process taking the request to its end.");
        for a in &self.apps {
            let l = labels(a);
            for (le, n) in &a.duration_buckets {
                let _ = writeln!(out, "rust_app_duration_seconds_bucket{{{l},le=\"{le}\"}} {n}");
            }
            let _ = writeln!(out, "rust_app_duration_seconds_sum{{{l}}} {}", a.duration_sum_s);
            let _ = writeln!(out, "rust_app_duration_seconds_count{{{l}}} {}", a.duration_count);
        }
        family(&mut out, "rust_app_reloads_total", "counter", "Reloads after the app's code changed.");
        for a in &self.apps {
            let _ = writeln!(out, "rust_app_reloads_total{{{}}} {}", labels(a), a.reloads);
        }
        family(&mut out, "rust_app_reload_failures_total", "counter", "Reloads that failed (the previous version kept serving).");
        for a in &self.apps {
            let _ = writeln!(out, "rust_app_reload_failures_total{{{}}} {}", labels(a), a.reload_failures);
        }

        let cgi: [(&str, &str, &str, f64); 4] = [
            ("rust_cgi_programs_running", "gauge", "CGI programs running now.", self.cgi.running as f64),
            ("rust_cgi_spawned_total", "counter", "CGI programs started.", self.cgi.spawned as f64),
            ("rust_cgi_timeouts_total", "counter", "CGI requests that ran past their timeout.", self.cgi.timed_out as f64),
            ("rust_cgi_killed_groups_total", "counter", "CGI process groups that outlived their grace and got SIGKILL.", self.cgi.killed_groups as f64),
        ];
        for (name, kind, help, value) in cgi {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }

        pools::prometheus(&self.pools, &mut out);
        out
    }
}
