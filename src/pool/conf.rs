//! `rust_pool` and the settings of one pool.
//!
//! Runs in nginx's master (and under `nginx -t`), while it reads the
//! configuration; the settings then travel to the supervisor in the plan.
//!
//! ```nginx
//! rust_pool NAME [app=PATH[:CALLABLE]] [processes=N] [min_processes=N] [idle_timeout=TIME] [threads=N] [spin=TIME]
//!                [home=DIR] [path=DIR]... [env=NAME=VALUE]...
//!                [max_requests=N] [max_requests_jitter=N] [max_lifetime=TIME] [max_rss=SIZE]
//!                [timeout=TIME] [queue_timeout=TIME] [user=USER[:GROUP]] [reload=script|off|DIR];
//! rust_pool NAME program=PATH [arg=ARG]... [cwd=DIR] [processes=N] [env=NAME=VALUE]...
//!                [max_requests=N] ... [user=USER[:GROUP]] [reload=script|off|DIR];
//! ```
//!
//! The second form is a program pool: its processes run any FastCGI
//! responder (php-cgi, fcgiwrap, a libfcgi or Perl FCGI program), and
//! locations send requests to it with `rust_fastcgi_pass NAME;` and
//! `rust_fastcgi_param`s, as nginx's `fastcgi_pass` and `fastcgi_param`.
//!
//! A pool is declared once in `http {}`, like `thread_pool` or
//! `proxy_cache_path`; locations send requests to it with
//! `rust_wsgi PATH pool=NAME;` (mod_wsgi's `process-group=`),
//! `rust_asgi PATH pool=NAME;`, or `rust_wsgi_pool NAME;` for the pool's
//! own `app=`. Everything here also runs under `nginx -t`: it only checks
//! and records.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use nginx_sys::{ngx_command_t, ngx_conf_t};
use serde::{Deserialize, Serialize};

use crate::core::conf::{param_args, push_param, Param};
use crate::nginx::conf::{args, conf_error, conf_warn, field_of, full_path, ConfResult, LocSlot, CONF_OK};
use crate::python::apps::{AppSpec, Reload};
use crate::python::config::{Home, PythonSettings};

/// One pool, as the supervisor receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    pub name: String,
    /// Every app the pool's processes import: its own `app=` first, then
    /// those of the locations that use it.
    pub apps: Vec<AppSpec>,
    /// Whether `apps[0]` came from `app=`.
    pub has_own_app: bool,
    /// The ASGI apps of locations that use the pool (`rust_asgi ... pool=`).
    #[serde(default)]
    pub asgi_apps: Vec<AppSpec>,
    /// Over all of nginx, not per worker: the most the pool runs.
    pub processes: u32,
    /// The fewest it runs (`min_processes=`; = `processes` when not
    /// given: a static pool). Between the two, processes start while
    /// requests wait and stop after `idle_timeout`; 0 starts the first on
    /// the first request (php-fpm's `pm = ondemand`).
    #[serde(default)]
    pub min_processes: u32,
    /// How long a process beyond `min_processes` may stay idle.
    #[serde(default)]
    pub idle_timeout_ms: u64,
    pub threads: u32,
    /// How long a thread that runs out of requests looks for the next
    /// before it sleeps (`rust_wsgi_spin`), in µs.
    pub spin_us: u64,
    /// `home=`, `path=`, `env=`, else the http block's `rust_python_*`.
    pub python: PythonSettings,
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    /// 0: no limit.
    pub max_lifetime_ms: u64,
    /// Bytes; 0: no limit.
    pub max_rss: u64,
    pub timeout_ms: u64,
    pub queue_timeout_ms: u64,
    pub user: Option<User>,
    pub reload: Reload,
    /// `program=`: the processes run this FastCGI program, not Python.
    #[serde(default)]
    pub program: Option<Program>,
    /// `listen=`: where the pool also takes FastCGI connections (a stock
    /// nginx's `fastcgi_pass`), and `allow=`: from whom.
    #[serde(default)]
    pub listen: Option<crate::pool::listen::Address>,
    #[serde(default)]
    pub allow: crate::pool::listen::AllowList,
}

/// A FastCGI program, started the way FastCGI says: its listening socket
/// on fd 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub path: PathBuf,
    /// `arg=`, in order: argv[1..].
    pub args: Vec<String>,
    /// `cwd=`; `/` by default, as php-fpm's `chdir`.
    pub cwd: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl PoolSpec {
    pub const DEFAULT_PROCESSES: u32 = 2;
    /// As `rust_wsgi_threads`.
    pub const DEFAULT_THREADS: u32 = 8;
    /// As `rust_wsgi_read_timeout`.
    pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
    pub const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 30_000;
    /// As php-fpm's `pm.process_idle_timeout`.
    pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 10_000;

    /// Whether the number of processes follows demand.
    pub fn scales(&self) -> bool {
        self.min_processes < self.processes
    }

    fn new(name: &str) -> PoolSpec {
        PoolSpec {
            name: name.to_owned(),
            apps: Vec::new(),
            has_own_app: false,
            asgi_apps: Vec::new(),
            processes: Self::DEFAULT_PROCESSES,
            min_processes: Self::DEFAULT_PROCESSES,
            idle_timeout_ms: Self::DEFAULT_IDLE_TIMEOUT_MS,
            threads: Self::DEFAULT_THREADS,
            spin_us: crate::wsgi::conf::WsgiMainConf::DEFAULT_SPIN_US,
            python: PythonSettings::default(),
            max_requests: 0,
            max_requests_jitter: 0,
            max_lifetime_ms: 0,
            max_rss: 0,
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            queue_timeout_ms: Self::DEFAULT_QUEUE_TIMEOUT_MS,
            user: None,
            reload: Reload::Script,
            program: None,
            listen: None,
            allow: Default::default(),
        }
    }

    /// The key a request names its app by.
    pub fn app_key(app: &AppSpec) -> String {
        format!("{}:{}", app.path.display(), app.callable)
    }

    /// The key a request names an ASGI app by (distinct from the same
    /// file served as WSGI).
    pub fn asgi_key(app: &AppSpec) -> String {
        format!("asgi:{}", Self::app_key(app))
    }

    /// Adds an app a location serves here; returns its key.
    pub fn add_app(&mut self, app: AppSpec, asgi: bool) -> String {
        let (key, list) = if asgi { (Self::asgi_key(&app), &mut self.asgi_apps) } else { (Self::app_key(&app), &mut self.apps) };
        if !list.contains(&app) {
            list.push(app);
        }
        key
    }

    /// What the status page and `$rust_app` call it.
    pub fn program_label(&self) -> String {
        self.program.as_ref().map(|p| p.path.display().to_string()).unwrap_or_default()
    }

    /// Every app file, WSGI and ASGI (for the code-change check).
    pub fn all_apps(&self) -> impl Iterator<Item = &AppSpec> {
        self.apps.iter().chain(&self.asgi_apps)
    }
}

/// Where a location sends its requests (`rust_wsgi ... pool=`,
/// `rust_wsgi_pool`); completed when the location is merged.
#[derive(Debug, Clone, Default)]
pub struct PoolTarget {
    pub name: String,
    /// The location's own app; None for the pool's `app=`.
    pub app: Option<AppSpec>,
    /// The app is ASGI (`rust_asgi ... pool=`).
    pub asgi: bool,
    /// `rust_fastcgi_pass`: the pool runs a FastCGI program, and the
    /// request goes as the location's `rust_fastcgi_param`s.
    pub program: bool,
    /// The key the pool process knows the app by.
    pub key: String,
    /// `$rust_app`.
    pub label: String,
    pub timeout_ms: u64,
    pub queue_timeout_ms: u64,
}

/// Where a request's location keeps the pool's settings.
pub static LOC: LocSlot<PoolLocConf> = LocSlot::new();

/// Per location.
#[derive(Default)]
pub struct PoolLocConf {
    /// `rust_wsgi ... pool=NAME`, `rust_asgi ... pool=NAME` or
    /// `rust_wsgi_pool NAME`: the location is served by that pool.
    pub target: Option<PoolTarget>,
    /// `rust_status prometheus;` (else JSON); here because the page began
    /// as the pools' `rust_pool_status`, whose conf this was.
    pub status_prometheus: bool,
    /// `rust_fastcgi_param`s; inherited only by levels that set none, like
    /// `fastcgi_param`.
    pub fastcgi_params: Option<Vec<Param>>,
}

impl PoolLocConf {
    pub fn merge(&mut self, prev: &PoolLocConf) {
        if self.fastcgi_params.is_none() {
            self.fastcgi_params = prev.fastcgi_params.clone();
        }
    }

    /// The `rust_fastcgi_param`s, evaluated for `r` (on nginx's thread), in
    /// order; an `if_not_empty` one with an empty value is left out.
    pub fn fastcgi_params(&self, r: crate::nginx::request::HttpRequest) -> Vec<(Vec<u8>, Vec<u8>)> {
        crate::core::conf::evaluate(self.fastcgi_params.as_deref().unwrap_or_default(), r)
    }
}

/// The http block's pools.
#[derive(Default)]
pub struct PoolMainConf {
    pub pools: Vec<PoolSpec>,
}

impl PoolMainConf {
    pub fn find_mut(&mut self, name: &str) -> Option<&mut PoolSpec> {
        self.pools.iter_mut().find(|p| p.name == name)
    }

    /// The pools as the supervisor gets them: those without
    /// `home=`/`path=`/`env=` take the http block's `rust_python_*`, as
    /// embedded apps do.
    pub fn with_python(&self, python: &PythonSettings) -> Vec<PoolSpec> {
        let mut pools = self.pools.clone();
        // A program pool's environment is its own env= only.
        for pool in pools.iter_mut().filter(|p| p.program.is_none()) {
            if pool.python.home.is_none() {
                pool.python.home = python.home.clone();
            }
            if pool.python.path.is_empty() {
                pool.python.path = python.path.clone();
            }
            for (name, value) in &python.env {
                if !pool.python.env.iter().any(|(n, _)| n == name) {
                    pool.python.env.push((name.clone(), value.clone()));
                }
            }
        }
        pools
    }

    /// Completes a location's target; the error names the fix.
    pub fn resolve(&mut self, target: &mut PoolTarget) -> Result<(), String> {
        let Some(pool) = self.find_mut(&target.name) else {
            return Err(format!("unknown pool \"{0}\"; declare it in the http block with rust_pool {0} ...", target.name));
        };
        match (target.program, &pool.program) {
            (true, None) => {
                return Err(format!(
                    "rust_fastcgi_pass {0}: the pool runs Python apps; serve them with rust_wsgi_pool {0} or rust_wsgi /path/to/app.py pool={0}",
                    target.name
                ))
            }
            (false, Some(program)) => {
                return Err(format!(
                    "the pool \"{0}\" runs the program {1}, not Python apps; send requests to it with rust_fastcgi_pass {0}",
                    target.name,
                    program.path.display()
                ))
            }
            (true, Some(program)) => {
                target.label = program.path.display().to_string();
                target.timeout_ms = pool.timeout_ms;
                target.queue_timeout_ms = pool.queue_timeout_ms;
                return Ok(());
            }
            (false, None) => {}
        }
        target.label = match &target.app {
            Some(app) => app.label(),
            None => pool.apps.first().map(AppSpec::label).unwrap_or_default(),
        };
        target.key = match target.app.clone() {
            Some(app) => pool.add_app(app, target.asgi),
            None if pool.has_own_app => PoolSpec::app_key(&pool.apps[0]),
            None => {
                return Err(format!(
                    "rust_wsgi_pool {0}: the pool has no app=; give it one, or write rust_wsgi /path/to/app.py pool={0}",
                    target.name
                ))
            }
        };
        target.timeout_ms = pool.timeout_ms;
        target.queue_timeout_ms = pool.queue_timeout_ms;
        Ok(())
    }
}

/// "30s", "500ms", "1h", "2d" in ms; a bare number is seconds, as in nginx.
pub fn parse_ms(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// "512k", "256m", "1g" in bytes, as nginx sizes.
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (number, scale) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1 << 10),
        'm' => (&lower[..lower.len() - 1], 1 << 20),
        'g' => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

/// Parses the options after the pool's name. `resolve` turns a path from
/// the configuration into an absolute one.
pub fn parse_options(name: &str, options: &[String], resolve: impl Fn(&str) -> PathBuf) -> Result<PoolSpec, String> {
    if name.is_empty() || name.len() > crate::pool::slots::NAME_MAX || name.contains(['=', '/', '"']) {
        return Err(format!("\"{name}\" is not a valid pool name; use letters, digits, - and _ (at most 64)"));
    }
    let mut spec = PoolSpec::new(name);
    let mut home = None;
    let (mut args, mut cwd) = (Vec::new(), None);
    let mut min_processes = None;
    // Options only a Python pool takes, as given.
    let mut python_only: Vec<&str> = Vec::new();
    for option in options {
        let Some((key, value)) = option.split_once('=') else {
            return Err(format!("unknown option \"{option}\"; options are written key=value"));
        };
        let number = || value.parse::<u64>().map_err(|_| format!("\"{option}\": {key} takes a whole number"));
        let time = || parse_ms(value).ok_or_else(|| format!("\"{option}\": {key} takes a time such as 30s, 500ms or 1h"));
        if matches!(key, "app" | "threads" | "spin" | "home" | "path") {
            python_only.push(key);
        }
        match key {
            "program" => {
                let path = resolve(value);
                crate::os::check_executable(&path).map_err(|problem| format!("\"{option}\": \"{}\" {problem}", path.display()))?;
                spec.program = Some(Program { path, args: Vec::new(), cwd: PathBuf::from("/") });
            }
            "arg" => args.push(value.to_owned()),
            "listen" => spec.listen = Some(crate::pool::listen::Address::parse(value).map_err(|e| format!("listen={e}"))?),
            "allow" => spec.allow.add(value).map_err(|e| format!("allow={e}"))?,
            "cwd" => {
                let dir = resolve(value);
                if !dir.is_dir() {
                    return Err(format!("\"{option}\": \"{}\" is not a directory", dir.display()));
                }
                cwd = Some(dir);
            }
            "app" => {
                let mut app = AppSpec::parse(value).map_err(|e| format!("\"{option}\": {e}"))?;
                app.path = resolve(&app.path.to_string_lossy());
                spec.apps.insert(0, app);
                spec.has_own_app = true;
            }
            "processes" => spec.processes = bounded(option, number()?, 1, 128)? as u32,
            "min_processes" => min_processes = Some(bounded(option, number()?, 0, 128)? as u32),
            "idle_timeout" => spec.idle_timeout_ms = time()?.max(1),
            "threads" => spec.threads = bounded(option, number()?, 1, 1024)? as u32,
            "spin" => {
                spec.spin_us = crate::wsgi::conf::parse_spin(value)
                    .ok_or_else(|| format!("\"{option}\": spin takes a time of at most 10ms, such as 100us, or 0 to turn it off"))?
            }
            "home" => home = Some(resolve(value)),
            "path" => {
                let dir = resolve(value);
                if !dir.is_dir() {
                    return Err(format!("\"{option}\": \"{}\" is not a directory", dir.display()));
                }
                spec.python.path.push(dir);
            }
            "env" => match value.split_once('=') {
                Some((n, v)) if !n.is_empty() => spec.python.env.push((n.to_owned(), v.to_owned())),
                _ => return Err(format!("\"{option}\": write env=NAME=VALUE")),
            },
            "max_requests" => spec.max_requests = number()?,
            "max_requests_jitter" => spec.max_requests_jitter = number()?,
            "max_lifetime" => spec.max_lifetime_ms = time()?,
            "max_rss" => {
                spec.max_rss = parse_size(value).ok_or_else(|| format!("\"{option}\": max_rss takes a size such as 256m or 1g"))?
            }
            "timeout" => spec.timeout_ms = time()?.max(1),
            "queue_timeout" => spec.queue_timeout_ms = time()?.max(1),
            "user" => spec.user = Some(lookup_user(value).map_err(|e| format!("\"{option}\": {e}"))?),
            "reload" => {
                spec.reload = match value {
                    "off" => Reload::Off,
                    "script" => Reload::Script,
                    dir => {
                        let dir = resolve(dir);
                        if !dir.is_dir() {
                            return Err(format!("\"{option}\": use reload=script, reload=off or reload=/path/to/code/directory"));
                        }
                        Reload::Directory(dir)
                    }
                }
            }
            _ => return Err(format!("unknown option \"{key}\"")),
        }
    }
    match spec.program.as_mut() {
        Some(program) => {
            if let Some(key) = python_only.first() {
                return Err(format!("{key}= is for Python pools; a program pool runs its program= as it is"));
            }
            program.args = args;
            if let Some(cwd) = cwd {
                program.cwd = cwd;
            }
        }
        None if !args.is_empty() || cwd.is_some() => {
            return Err("arg= and cwd= are for program pools; add program=/path/to/fastcgi-program".into());
        }
        None if spec.listen.is_some() && !spec.has_own_app => {
            return Err("listen= on a Python pool serves its own app=; give it one (requests from another nginx name no app)".into());
        }
        None => {}
    }
    if let Some(home) = home {
        spec.python.home = Some(Home::inspect(&home).map_err(|e| format!("home=: {e}"))?);
    }
    spec.min_processes = match min_processes {
        Some(min) if min > spec.processes => {
            return Err(format!("min_processes={min} is above processes={}, the most the pool runs", spec.processes))
        }
        Some(min) => min,
        None => spec.processes,
    };
    if spec.allow != Default::default() && !spec.listen.as_ref().is_some_and(|l| !l.is_unix()) {
        return Err("allow= is for a pool that listens on a TCP address (listen=); a unix socket is guarded by its file's permissions".into());
    }
    if spec.max_requests_jitter > 0 && spec.max_requests == 0 {
        return Err("max_requests_jitter needs max_requests".into());
    }
    Ok(spec)
}

fn bounded(option: &str, n: u64, low: u64, high: u64) -> Result<u64, String> {
    if (low..=high).contains(&n) {
        Ok(n)
    } else {
        Err(format!("\"{option}\": must be from {low} to {high}"))
    }
}

/// `USER[:GROUP]` to ids, with the user's own group by default.
fn lookup_user(value: &str) -> Result<User, String> {
    let (user, group) = match value.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (value, None),
    };
    let c = |s: &str| std::ffi::CString::new(s).map_err(|_| format!("\"{s}\" is not a valid name"));
    let user_c = c(user)?;
    // SAFETY: getpwnam/getgrnam return pointers into static storage that we
    // copy out of at once; configuration parsing is single-threaded.
    unsafe {
        let pw = libc::getpwnam(user_c.as_ptr());
        if pw.is_null() {
            return Err(format!("no user \"{user}\""));
        }
        let (uid, mut gid) = ((*pw).pw_uid, (*pw).pw_gid);
        if let Some(group) = group {
            let group_c = c(group)?;
            let gr = libc::getgrnam(group_c.as_ptr());
            if gr.is_null() {
                return Err(format!("no group \"{group}\""));
            }
            gid = (*gr).gr_gid;
        }
        Ok(User { name: user.to_owned(), uid, gid })
    }
}

/// `rust_pool NAME option=value ...;`
pub(crate) unsafe extern "C" fn rust_pool(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed, this module's
    // main conf and our command, whose offset is that of its PoolMainConf.
    let (cf_ref, pools) = unsafe { (&*cf, field_of::<PoolMainConf>(conf, cmd)) };
    let words: Vec<String> = args(cf_ref)[1..].iter().map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned()).collect();
    let name = &words[0];
    if pools.find_mut(name).is_some() {
        return conf_error(cf, &format!("\"rust_pool {name}\" is duplicate; each pool is declared once"));
    }
    if pools.pools.len() >= crate::pool::slots::MAX_POOLS {
        return conf_error(cf, &format!("too many pools; at most {} can be declared", crate::pool::slots::MAX_POOLS));
    }
    let resolve = |p: &str| full_path(cf_ref, Path::new(p));
    let spec = match parse_options(name, &words[1..], resolve) {
        Ok(spec) => spec,
        Err(problem) => return conf_error(cf, &format!("\"rust_pool {name}\": {problem}")),
    };
    if spec.user.is_some() && unsafe { libc::geteuid() } != 0 {
        conf_warn(cf, &format!("\"rust_pool {name}\": user= only works when nginx's master runs as root; ignored"));
    }
    let total: u32 = pools.pools.iter().map(|p| p.processes).sum::<u32>() + spec.processes;
    // Room for every pool to replace its processes one at a time.
    if (total as usize) * 2 > crate::pool::slots::MAX_SLOTS {
        return conf_error(cf, &format!("\"rust_pool {name}\": more than {} pool processes in all", crate::pool::slots::MAX_SLOTS / 2));
    }
    if let Some(address) = &spec.listen {
        // Opened by nginx like its own listen sockets: kept across reloads,
        // passed on to a new binary.
        // SAFETY: `cf` is the configuration being parsed.
        if let Err(problem) = unsafe { crate::pool::worker::listener::add_listening(cf, &spec, address) } {
            return conf_error(cf, &format!("\"rust_pool {name}\": listen={address}: {problem}"));
        }
    }
    pools.pools.push(spec);
    CONF_OK
}

/// `rust_fastcgi_param NAME value [if_not_empty];`
pub(crate) unsafe extern "C" fn rust_fastcgi_param(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes this module's location conf and our command,
    // whose offset is that of its PoolLocConf.
    let lcf = unsafe { field_of::<PoolLocConf>(conf, cmd) };
    match param_args(cf) {
        Ok(param) => {
            push_param(&mut lcf.fastcgi_params, param);
            CONF_OK
        }
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &[&str]) -> Result<PoolSpec, String> {
        let options: Vec<String> = options.iter().map(|s| s.to_string()).collect();
        parse_options("app", &options, |p| PathBuf::from("/prefix").join(p))
    }

    #[test]
    fn defaults() {
        let spec = parse(&[]).unwrap();
        assert_eq!((spec.processes, spec.threads, spec.spin_us), (2, 8, 100));
        assert_eq!((spec.timeout_ms, spec.queue_timeout_ms), (60_000, 30_000));
        assert_eq!(spec.reload, Reload::Script);
        assert!(spec.apps.is_empty());
    }

    #[test]
    fn options() {
        let spec = parse(&[
            "app=/srv/app.py:create",
            "processes=4",
            "threads=2",
            "spin=0",
            "max_requests=1000",
            "max_requests_jitter=50",
            "max_lifetime=1h",
            "max_rss=256m",
            "timeout=30s",
            "queue_timeout=500ms",
            "env=A=b=c",
            "reload=off",
        ])
        .unwrap();
        assert_eq!(spec.apps, vec![AppSpec { path: "/srv/app.py".into(), callable: "create".into(), explicit: true }]);
        assert!(spec.has_own_app);
        assert_eq!((spec.processes, spec.threads, spec.max_requests, spec.max_requests_jitter), (4, 2, 1000, 50));
        assert_eq!(spec.spin_us, 0);
        assert_eq!((spec.max_lifetime_ms, spec.max_rss, spec.timeout_ms, spec.queue_timeout_ms), (3_600_000, 256 << 20, 30_000, 500));
        assert_eq!(spec.python.env, vec![("A".to_string(), "b=c".to_string())]);
        assert_eq!(spec.reload, Reload::Off);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse(&["processes=0"]).unwrap_err().contains("from 1 to 128"));
        assert!(parse(&["threads=x"]).unwrap_err().contains("whole number"));
        assert!(parse(&["timeout=soon"]).unwrap_err().contains("time such as"));
        assert!(parse(&["spin=20ms"]).unwrap_err().contains("at most 10ms"));
        assert!(parse(&["spin=5"]).unwrap_err().contains("such as 100us"));
        assert!(parse(&["colour=red"]).unwrap_err().contains("unknown option \"colour\""));
        assert!(parse(&["processes"]).unwrap_err().contains("key=value"));
        assert!(parse(&["max_requests_jitter=5"]).unwrap_err().contains("needs max_requests"));
        assert!(parse(&["user=no-such-user-here"]).unwrap_err().contains("no user"));
        assert!(parse_options("a/b", &[], |p: &str| PathBuf::from(p)).unwrap_err().contains("not a valid pool name"));
    }

    #[test]
    fn scaling() {
        let spec = parse(&["processes=8"]).unwrap();
        assert_eq!((spec.min_processes, spec.scales()), (8, false));
        let spec = parse(&["processes=8", "min_processes=0", "idle_timeout=30s"]).unwrap();
        assert_eq!((spec.min_processes, spec.idle_timeout_ms, spec.scales()), (0, 30_000, true));
        assert_eq!(parse(&["processes=4", "min_processes=2"]).unwrap().idle_timeout_ms, 10_000);
        assert!(parse(&["processes=2", "min_processes=3"]).unwrap_err().contains("above processes=2"));
    }

    #[test]
    fn program_pools() {
        let spec = parse(&["program=/bin/sh", "arg=-c", "arg=exec sleep 1", "cwd=/tmp", "processes=3", "env=A=1"]).unwrap();
        let program = spec.program.unwrap();
        assert_eq!(program.path, PathBuf::from("/bin/sh"));
        assert_eq!(program.args, vec!["-c".to_string(), "exec sleep 1".to_string()]);
        assert_eq!(program.cwd, PathBuf::from("/tmp"));
        assert_eq!(spec.processes, 3);
        assert_eq!(parse(&["program=/bin/sh"]).unwrap().program.unwrap().cwd, PathBuf::from("/"));
        assert!(parse(&["program=/no/such/program"]).unwrap_err().contains("does not exist"));
        let plain = std::env::temp_dir().join(format!("rgw-not-executable-{}", std::process::id()));
        std::fs::write(&plain, "").unwrap();
        assert!(parse(&[&format!("program={}", plain.display())]).unwrap_err().contains("not executable"));
        let _ = std::fs::remove_file(&plain);
        assert!(parse(&["program=/bin/sh", "threads=4"]).unwrap_err().contains("threads= is for Python pools"));
        assert!(parse(&["arg=-x"]).unwrap_err().contains("add program="));
        assert!(parse(&["program=/bin/sh", "cwd=/no/such/dir"]).unwrap_err().contains("not a directory"));
    }

    #[test]
    fn times_and_sizes() {
        assert_eq!(parse_ms("30"), Some(30_000));
        assert_eq!(parse_ms("250ms"), Some(250));
        assert_eq!(parse_ms("2m"), Some(120_000));
        assert_eq!(parse_ms("x"), None);
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("m"), None);
    }
}
