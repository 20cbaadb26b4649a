//! `rust_cgi`: CGI programs (RFC 3875), one process per request.
//!
//! Everything runs on the nginx thread, without blocking: the program's
//! stdin, stdout and stderr and its exit are fds in nginx's event loop.
//!
//! - [`resolve`]: which program a request runs, and refusals.
//! - [`env`](mod@env): the CGI environment.
//! - [`spawn`]: starting the program (vfork-style, clean fds and signals).
//! - [`process`]: one request's program: input, output, flow control.
//! - [`crate::core::cgi_head`]: the program's response head.
//! - [`children`]: every program of this worker until it is reaped.
//! - [`conf`]: the `rust_cgi*` directives.

pub mod children;
pub mod conf;
pub mod env;
pub mod process;
pub mod resolve;
pub mod spawn;

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use nginx_sys::{ngx_http_request_t, ngx_int_t, ngx_msec_t};

use self::conf::{CgiLocConf, Target};
use self::env::{Context, Env, Param};
use self::resolve::{Refused, Rules, Script};
use crate::core::capture::{Body, RequestHead};
use crate::core::served::{Label, Text};
use crate::core::engine::{self, Adapter, Refusal, Source};
use crate::core::meta::SERVER_SOFTWARE;
use crate::nginx::log::Level;
use crate::nginx::request::HttpRequest;

/// The variables `rust_cgi_pass_env` lets through from nginx's own
/// environment, read once per worker.
static INHERITED: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();

/// nginx clears its workers' environment, so PATH is usually absent; CGI
/// programs (and `#!/usr/bin/env` lines) need one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub struct Cgi;

pub struct Job {
    script: Script,
    params: Vec<Param>,
    conf: &'static CgiLocConf,
}

fn conf_of(r: HttpRequest) -> Option<&'static CgiLocConf> {
    conf::LOC.of(r)
}

impl Adapter for Cgi {
    const NAME: &'static str = "rust_cgi";
    const READ_TIMEOUT_DIRECTIVE: &'static str = "rust_cgi_timeout";
    const QUEUED: bool = false;
    type Job = Job;

    fn read_timeout(r: HttpRequest) -> ngx_msec_t {
        conf_of(r).map_or(CgiLocConf::DEFAULT_TIMEOUT, |c| c.timeout)
    }

    fn total_timeout(r: HttpRequest) -> Option<ngx_msec_t> {
        conf_of(r).map(|c| c.total_timeout).filter(|&ms| ms > 0)
    }


    fn label(job: &Job) -> Label {
        Label { app: Some(Text::Shared(job.script.filename.display().to_string().into())), pool: None }
    }

    fn prepare(r: HttpRequest) -> Result<Job, Refusal> {
        let conf = conf_of(r).ok_or_else(|| Refusal { status: 500, message: "no configuration".into() })?;
        let (path, root_len) = r.map_uri_to_path().ok_or_else(|| Refusal { status: 500, message: "cannot map the URI to a path".into() })?;
        let script = match &conf.target {
            Some(Target::Program(program)) => resolve::fixed(program, r.location_prefix(), r.uri(), &path[..root_len.min(path.len())]),
            Some(Target::Directory) => {
                let rules = Rules {
                    interpreters: conf.interpreters.as_deref().unwrap_or_default(),
                    allow_outside_symlinks: conf.allow_symlinks != 0,
                };
                resolve::in_directory(&path, root_len, r.uri(), &rules).map_err(|refused| match refused {
                    Refused::NotFound(message) => Refusal { status: 404, message },
                    Refused::Forbidden(message) => Refusal { status: 403, message },
                })?
            }
            None => return Err(Refusal { status: 500, message: "no CGI program is configured here".into() }),
        };
        let params = conf
            .params
            .iter()
            .flatten()
            .map(|p| Param {
                name: String::from_utf8_lossy(&p.name).into_owned(),
                value: r.complex_value(&p.value).unwrap_or_default(),
                if_not_empty: p.if_not_empty,
            })
            .collect();
        Ok(Job { script, params, conf })
    }

    fn start(job: Job, r: HttpRequest, head: RequestHead, body: Body) -> Result<Box<dyn Source>, Refusal> {
        let Job { script, params, conf } = job;
        let failed = |what: &str, e: std::io::Error| Refusal {
            status: 500,
            message: format!("cannot run \"{}\": {what}: {e}", script.filename.display()),
        };
        let mut env = Env::build(
            &head,
            &Context {
                script: &script,
                content_length: head.has_body.then(|| body.len()),
                user: r.authenticated_user(),
                pass_authorization: conf.pass_authorization != 0,
                server_software: SERVER_SOFTWARE,
                inherited: INHERITED.get().map(Vec::as_slice).unwrap_or_default(),
            },
        );
        // rust_param first: rust_cgi_param is the more specific.
        for (name, value) in &head.params {
            env.set(&String::from_utf8_lossy(name), value.clone());
        }
        env.apply(params, conf.param_drops.as_deref().unwrap_or_default());

        // Three pipes, as Apache and fcgiwrap give them: a program that
        // closes its stdout (`exec >&-`) has ended its output even while it
        // still holds its stdin, which one socket for both would keep open.
        let (stdin_read, stdin_write) = crate::os::input_pipe().map_err(|e| failed("pipe()", e))?;
        let (stdout_read, stdout_write) = crate::os::pipe().map_err(|e| failed("pipe()", e))?;
        let (stderr_read, stderr_write) = crate::os::pipe().map_err(|e| failed("pipe()", e))?;
        let command = spawn::Command {
            program: c_path(&script.program),
            argv: std::iter::once(&script.program).chain(&script.args).map(|p| c_path(p)).collect(),
            envp: env.to_c(),
            dir: c_path(&script.dir),
            stdin: stdin_read.as_raw_fd(),
            stdout: stdout_write.as_raw_fd(),
            stderr: stderr_write.as_raw_fd(),
        };
        let settings = children::Settings {
            script: script.filename.display().to_string(),
            stderr_level: conf.stderr_level.unwrap_or(Level::Error),
            kill_grace: conf.kill_grace,
            stdout: stdout_read.try_clone().map_err(|e| failed("dup()", e))?,
        };
        let (child, pid) = children::spawn(&command, stderr_read, settings, r).map_err(|e| failed("exec", e))?;
        // The child has its copies; ours would keep its stdin and our
        // stdout from ever reaching EOF.
        drop((stdin_read, stdout_write, stderr_write));
        let stdio = process::Stdio { stdin: stdin_write, stdout: stdout_read };
        let process = process::CgiProcess::start(r, (child, pid), script.filename.display().to_string(), stdio, body.reader(), script.nph, conf.header_limit)
            .map_err(|message| {
                children::detach(child, true);
                Refusal { status: 500, message }
            })?;
        Ok(process)
    }
}

/// The content handler `rust_cgi` and `rust_cgi_pass` install.
///
/// # Safety
/// Only nginx calls it, with a live request.
pub unsafe extern "C" fn content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    unsafe { engine::handle::<Cgi>(r) }
}

/// Worker start: reads the allowed variables of nginx's environment.
pub fn start(mcf: &conf::CgiMainConf) {
    let inherited = mcf
        .pass_env()
        .into_iter()
        .filter_map(|name| {
            let value = std::env::var_os(&name).map(|v| v.as_bytes().to_vec());
            let value = match (value, name.as_str()) {
                (Some(v), _) => v,
                (None, "PATH") => DEFAULT_PATH.as_bytes().to_vec(),
                (None, _) => return None,
            };
            Some((name, value))
        })
        .collect();
    let _ = INHERITED.set(inherited);
}

/// Worker exit: no program outlives it.
pub fn stop() {
    children::kill_all();
}

fn c_path(path: &std::path::Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}
