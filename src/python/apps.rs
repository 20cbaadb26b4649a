//! The apps `rust_wsgi`, `rust_asgi` and a pool name, loaded once per
//! process (a worker or a pool process) and reloaded when their file
//! changes.
//!
//! An app is a Python file and the name of a callable in it, like
//! mod_wsgi's WSGIScriptAlias: the file is imported as a module with a
//! stable private name (the same in every worker, so pickled references to
//! its classes work across workers), and its directory goes first on
//! sys.path so the app can import its neighbours.
//!
//! Loading is validated: a new version of the file replaces the running one
//! only once it imported cleanly. If it fails, the traceback is logged once,
//! and the old version keeps serving (or, if there is none yet, the app's
//! requests answer 500) until the file changes again. Requests that already
//! hold the old callable finish on it, so no request mixes two versions.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use pyo3::prelude::*;
use pyo3::sync::MutexExt;

use super::errors;
use crate::nginx::log::Level;

/// `rust_wsgi /path/app.py:callable` as configured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppSpec {
    pub path: PathBuf,
    pub callable: String,
    /// The callable was named in the configuration; otherwise it is the
    /// interface's default (see [`Interface::default_callables`]).
    #[serde(default)]
    pub explicit: bool,
}

pub const DEFAULT_CALLABLE: &str = "application";

impl AppSpec {
    /// Splits `PATH[:CALLABLE]`. The part after the last colon is taken as
    /// the callable only if it is a Python identifier (dots allowed, for an
    /// attribute of an object in the module).
    pub fn parse(arg: &str) -> Result<AppSpec, String> {
        let (path, callable, explicit) = match arg.rsplit_once(':') {
            Some((path, name)) if !name.contains('/') => {
                if !is_dotted_identifier(name) {
                    return Err(format!("\"{name}\" is not a valid Python name for the callable"));
                }
                (path, name, true)
            }
            _ => (arg, DEFAULT_CALLABLE, false),
        };
        if path.is_empty() {
            return Err("the app path is empty".into());
        }
        Ok(AppSpec { path: PathBuf::from(path), callable: callable.to_owned(), explicit })
    }

    /// How `$rust_app` names it: the file, and the callable when the
    /// configuration named one.
    pub fn label(&self) -> String {
        if self.explicit {
            format!("{}:{}", self.path.display(), self.callable)
        } else {
            self.path.display().to_string()
        }
    }

    /// The module name the file is imported under.
    pub fn module_name(&self) -> String {
        let path = self.path.to_string_lossy();
        let stem: String = path
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        // FNV-1a: stable across processes, unlike std's hasher.
        let hash = path.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
        format!("_rust_wsgi{stem}_{hash:016x}")
    }
}

fn is_dotted_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// `rust_wsgi_reload`: what happens when the app's code changes on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reload {
    /// Never look.
    Off,
    /// Re-import the app's file when it changes.
    Script,
    /// Recycle the worker when a `.py` file under the directory changes
    /// (handled by [`crate::core::watch`]).
    Directory(PathBuf),
}

/// Which protocol the app must speak. Checked at import, so an app given
/// to the wrong directive fails with a message that names the right one,
/// instead of with a confusing TypeError on its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Wsgi,
    Asgi,
}

impl Interface {
    pub fn directive(self) -> &'static str {
        match self {
            Interface::Wsgi => "rust_wsgi",
            Interface::Asgi => "rust_asgi",
        }
    }

    /// The names looked for when the configuration names none: mod_wsgi's
    /// `application` for WSGI; for ASGI also `app`, first, which is what
    /// FastAPI and Starlette apps are called (Django's asgi.py has
    /// `application`).
    pub fn default_callables(self) -> &'static [&'static str] {
        match self {
            Interface::Wsgi => &["application"],
            Interface::Asgi => &["app", "application"],
        }
    }

    fn check(self, py: Python<'_>, target: &Bound<'_, PyAny>, name: &str, path: &str) -> PyResult<()> {
        let inspect = py.import("inspect")?;
        let coroutine = |f: &Bound<'_, PyAny>| -> PyResult<bool> { inspect.call_method1("iscoroutinefunction", (f,))?.is_truthy() };
        let is_async = coroutine(target)? || (target.hasattr("__call__")? && coroutine(&target.getattr("__call__")?)?);
        let plain = inspect.call_method1("isfunction", (target,))?.is_truthy()? || inspect.call_method1("ismethod", (target,))?.is_truthy()?;
        let problem = match self {
            Interface::Wsgi if is_async => {
                format!("\"{name}\" in {path} is an ASGI app (its call is a coroutine); serve it with rust_asgi instead of rust_wsgi")
            }
            // Only a plain function can be told apart for sure: an object
            // may return an awaitable from an ordinary __call__.
            Interface::Asgi if !is_async && plain => format!(
                "\"{name}\" in {path} is not an ASGI app (it is not an async function); a WSGI app is served with rust_wsgi instead of rust_asgi"
            ),
            _ => return Ok(()),
        };
        Err(pyo3::exceptions::PyTypeError::new_err(problem))
    }
}

/// How often a changed script is looked for: one stat() per second per app,
/// whatever the request rate.
const CHECK_INTERVAL_MS: u64 = 1000;

/// Why an app's callable is not available.
pub enum LoadError {
    /// The import failed just now: a header line and the traceback.
    Failed(Vec<String>),
    /// It failed before, and no file it ran through has changed since.
    StillBroken,
}

/// The files a failed import ran through (the app's, each file in the
/// traceback, the file of a syntax error) and their mtimes then: the next
/// try waits until one of them changes, so that fixing the package that
/// broke, not only the app's own file, fixes the location.
struct Failure(Vec<(PathBuf, Option<SystemTime>)>);

impl Failure {
    fn of(py: Python<'_>, app: &Path, err: &PyErr) -> Failure {
        let mut files = vec![app.to_path_buf()];
        let mut tb = err.traceback(py).map(|t| t.into_any());
        while let Some(entry) = tb.filter(|t| !t.is_none()) {
            if let Ok(name) = entry.getattr("tb_frame").and_then(|f| f.getattr("f_code")).and_then(|c| c.getattr("co_filename")) {
                if let Ok(name) = name.extract::<String>() {
                    files.push(PathBuf::from(name));
                }
            }
            tb = entry.getattr("tb_next").ok();
        }
        if let Ok(Some(name)) = err.value(py).getattr("filename").and_then(|f| f.extract::<Option<String>>()) {
            files.push(PathBuf::from(name));
        }
        files.retain(|f| f.is_absolute());
        files.dedup();
        Failure(files.into_iter().map(|f| {
            let mtime = modified(&f);
            (f, mtime)
        }).collect())
    }

    fn unchanged(&self) -> bool {
        self.0.iter().all(|(file, mtime)| modified(file) == *mtime)
    }
}

struct Loaded {
    callable: Py<PyAny>,
    /// The file's mtime when this version was imported.
    mtime: Option<SystemTime>,
}

/// Where an app reports what belongs to no request (reloads): the worker's
/// error log, or a pool process's stderr (which its supervisor logs).
pub type Logger = Arc<dyn Fn(Level, String) + Send + Sync>;

pub struct App {
    pub spec: AppSpec,
    /// `$rust_app`.
    pub label: std::sync::Arc<str>,
    interface: Interface,
    reload: Reload,
    log: Logger,
    /// The version serving now. Only touched with the GIL held and never
    /// across a call that releases it, so the lock is never contended.
    current: Mutex<Option<Loaded>>,
    /// Serialises imports; holds what the last failure depended on.
    loading: Mutex<Option<Failure>>,
    /// When the file was last stat()ed, in ms since `epoch` (the app was
    /// created, which is when it is first imported).
    checked_at: AtomicU64,
    epoch: Instant,
    /// The app has answered a first call in this process (see
    /// [`App::first_call`]).
    warm: std::sync::atomic::AtomicBool,
    first: Mutex<()>,
}

/// Held while an app's first call runs; see [`App::first_call`].
pub struct FirstCall<'a>(Option<MutexGuard<'a, ()>>, &'a App);

impl Drop for FirstCall<'_> {
    fn drop(&mut self) {
        if self.0.is_some() {
            self.1.warm.store(true, Ordering::Release);
        }
    }
}

impl App {
    /// Until the app has answered one call in this process, calls run one
    /// at a time: the modules an app imports lazily on first use (Mercurial's
    /// demandimport, `importlib.util.LazyLoader`) are not safe to import
    /// from several threads at once, and the first requests are the ones
    /// that do. Afterwards, a check of one flag. The guard is dropped when
    /// the call has returned its iterable, so a long stream does not hold
    /// the others.
    pub fn first_call<'a>(&'a self, py: Python<'_>) -> FirstCall<'a> {
        if self.warm.load(Ordering::Acquire) {
            return FirstCall(None, self);
        }
        let guard = self.first.lock_py_attached(py).unwrap_or_else(PoisonError::into_inner);
        if self.warm.load(Ordering::Acquire) {
            return FirstCall(None, self);
        }
        FirstCall(Some(guard), self)
    }

    pub fn new(spec: AppSpec, interface: Interface, reload: Reload, log: Logger) -> App {
        App {
            label: spec.label().into(),
            spec,
            interface,
            reload,
            log,
            current: Mutex::new(None),
            loading: Mutex::new(None),
            checked_at: AtomicU64::new(0),
            epoch: Instant::now(),
            warm: std::sync::atomic::AtomicBool::new(false),
            first: Mutex::new(()),
        }
    }

    fn current(&self) -> MutexGuard<'_, Option<Loaded>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The app's callable: imported on first use, and re-imported first if
    /// the script changed (with `rust_wsgi_reload script`).
    pub fn callable<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyAny>, LoadError> {
        let loaded = self.current().as_ref().map(|l| (l.callable.clone_ref(py), l.mtime));
        match loaded {
            Some((callable, mtime)) => {
                if let Some(changed) = self.changed_since(mtime) {
                    return Ok(self.reload(py, changed).unwrap_or_else(|| callable.into_bound(py)));
                }
                Ok(callable.into_bound(py))
            }
            None => self.load(py),
        }
    }

    /// With script reloading on, at most once per interval: the file's new
    /// mtime if it differs from `loaded`.
    fn changed_since(&self, loaded: Option<SystemTime>) -> Option<Option<SystemTime>> {
        if self.reload != Reload::Script {
            return None;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.checked_at.load(Ordering::Relaxed);
        if now < last + CHECK_INTERVAL_MS
            || self.checked_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return None;
        }
        let mtime = modified(&self.spec.path);
        (mtime != loaded).then_some(mtime)
    }

    /// First import; until it succeeds, every call tries again only once
    /// the file has changed.
    fn load<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyAny>, LoadError> {
        // Waits for the lock without the GIL: the thread holding it needs
        // the GIL to finish importing.
        let mut last_failure = self.loading.lock_py_attached(py).unwrap_or_else(PoisonError::into_inner);
        if let Some(loaded) = self.current().as_ref() {
            return Ok(loaded.callable.bind(py).clone());
        }
        let mtime = modified(&self.spec.path);
        if last_failure.as_ref().is_some_and(Failure::unchanged) {
            return Err(LoadError::StillBroken);
        }
        match self.import(py) {
            Ok(callable) => {
                *last_failure = None;
                *self.current() = Some(Loaded { callable: callable.clone().unbind(), mtime });
                Ok(callable)
            }
            Err(err) => {
                *last_failure = Some(Failure::of(py, &self.spec.path, &err));
                Err(LoadError::Failed(self.report(py, "cannot load", &err)))
            }
        }
    }

    /// Imports the changed file and swaps it in if it imported cleanly.
    /// Returns the new callable, or None to keep serving the old one (a
    /// failure is logged once per version of the file).
    fn reload<'py>(&self, py: Python<'py>, mtime: Option<SystemTime>) -> Option<Bound<'py, PyAny>> {
        let mut last_failure = self.loading.lock_py_attached(py).unwrap_or_else(PoisonError::into_inner);
        if let Some(loaded) = self.current().as_ref() {
            if loaded.mtime == mtime {
                // Another thread reloaded it meanwhile.
                return Some(loaded.callable.bind(py).clone());
            }
        }
        if last_failure.as_ref().is_some_and(Failure::unchanged) {
            return None;
        }
        match self.import(py) {
            Ok(callable) => {
                *last_failure = None;
                *self.current() = Some(Loaded { callable: callable.clone().unbind(), mtime });
                let directive = self.interface.directive();
                (self.log)(Level::Notice, format!("{directive}: reloaded \"{}\" after it changed", self.spec.path.display()));
                crate::core::metrics::reloaded(&self.label, directive, true);
                Some(callable)
            }
            Err(err) => {
                *last_failure = Some(Failure::of(py, &self.spec.path, &err));
                crate::core::metrics::reloaded(&self.label, self.interface.directive(), false);
                for line in self.report(py, "cannot reload (the previous version keeps serving)", &err) {
                    (self.log)(Level::Error, line);
                }
                None
            }
        }
    }

    fn report(&self, py: Python<'_>, what: &str, err: &PyErr) -> Vec<String> {
        let callable = if self.spec.explicit {
            format!("\"{}\"", self.spec.callable)
        } else {
            self.interface.default_callables().iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(" or ")
        };
        let header = format!(
            "{}: {what} \"{}\" (callable {callable}); traceback follows",
            self.interface.directive(),
            self.spec.path.display(),
        );
        errors::report(py, header, err)
    }

    /// Executes the file as a fresh module object and returns its callable.
    /// sys.modules gets the new module only if it executed cleanly, so a
    /// failed reload leaves the old one in place. The packages the failure
    /// went through go too (see [`forget_failed_packages`]): one that failed
    /// halfway would otherwise stay half-initialised there, and the fixed
    /// file (or another app importing the same package) would find it.
    fn import<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let path = self.spec.path.to_string_lossy().into_owned();
        let name = self.spec.module_name();
        let sys = py.import("sys")?;
        if let Some(dir) = self.spec.path.parent().map(|d| d.to_string_lossy().into_owned()) {
            let sys_path = sys.getattr("path")?;
            if !sys_path.contains(&dir)? {
                sys_path.call_method1("insert", (0, dir))?;
            }
        }
        let util = py.import("importlib.util")?;
        // Python source whatever the suffix (app.wsgi, as mod_wsgi takes):
        // the suffix alone would find no loader.
        let loader = py.import("importlib.machinery")?.getattr("SourceFileLoader")?.call1((&name, &path))?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("loader", &loader)?;
        let spec = util.call_method("spec_from_file_location", (&name, &path), Some(&kwargs))?;
        let module = util.call_method1("module_from_spec", (&spec,))?;
        let modules = sys.getattr("modules")?;
        let previous = modules.get_item(&name).ok();
        let before: std::collections::HashSet<String> = modules.call_method0("keys")?.try_iter()?.filter_map(|k| k.ok()?.extract().ok()).collect();
        // The module must be in sys.modules while it executes (dataclasses,
        // pickle and relative lookups expect it).
        modules.set_item(&name, &module)?;
        let executed = spec.getattr("loader")?.call_method1("exec_module", (&module,));
        let callable = executed.and_then(|_| {
            let (name, target) = self.find_callable(&module, &path)?;
            if !target.is_callable() {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!("\"{name}\" in {path} is not callable")));
            }
            self.interface.check(py, &target, name, &path)?;
            Ok(target)
        });
        if callable.is_err() {
            match previous {
                Some(old) => modules.set_item(&name, old)?,
                None => {
                    let _ = modules.del_item(&name);
                }
            }
            if let Err(err) = &callable {
                forget_failed_packages(py, &modules, &before, err);
            }
        }
        callable
    }
}

impl App {
    /// The configured callable (a dotted name), or the first of the
    /// interface's default names that the module defines.
    fn find_callable<'s, 'py>(&'s self, module: &Bound<'py, PyAny>, path: &str) -> PyResult<(&'s str, Bound<'py, PyAny>)> {
        if !self.spec.explicit {
            let names = self.interface.default_callables();
            for name in names {
                if module.hasattr(*name)? {
                    return Ok((name, module.getattr(*name)?));
                }
            }
            let wanted = names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(" or ");
            return Err(pyo3::exceptions::PyAttributeError::new_err(format!(
                "{path} defines no {wanted}; name the callable: {} {path}:NAME",
                self.interface.directive()
            )));
        }
        let mut target = module.clone();
        for part in self.spec.callable.split('.') {
            target = target.getattr(part)?;
        }
        Ok((&self.spec.callable, target))
    }
}

/// After a failed import: takes out of sys.modules the packages the
/// failure went through that the import added, whole (`registry` and
/// `registry.*`, `django` and `django.*`), so that the next import runs
/// them afresh instead of finding them half-initialised. Only those: other
/// threads import too (the ASGI loop its own modules, apps their lazy
/// ones), and the standard library is never at fault and always shared.
fn forget_failed_packages(py: Python<'_>, modules: &Bound<'_, PyAny>, before: &std::collections::HashSet<String>, err: &PyErr) {
    let Failure(files) = Failure::of(py, Path::new(""), err);
    let files: Vec<PathBuf> = files.into_iter().map(|(f, _)| f).collect();
    let stdlib = py
        .import("sys")
        .and_then(|sys| sys.getattr("stdlib_module_names"))
        .and_then(|names| names.extract::<std::collections::HashSet<String>>())
        .unwrap_or_default();
    let Ok(keys) = modules.call_method0("keys").and_then(|k| k.try_iter().map(|it| it.filter_map(|k| k.ok()?.extract::<String>().ok()).collect::<Vec<_>>())) else {
        return;
    };
    let added: Vec<String> = keys.into_iter().filter(|k| !before.contains(k)).collect();
    let file_of = |key: &str| -> Option<PathBuf> {
        modules.get_item(key).ok()?.getattr("__file__").ok()?.extract::<Option<String>>().ok()?.map(PathBuf::from)
    };
    // A package is at fault when a file of the traceback lies in its
    // directory (or is its module's file).
    let mut failed_tops: Vec<String> = Vec::new();
    for key in &added {
        let top = key.split('.').next().unwrap_or(key).to_string();
        if stdlib.contains(&top) || failed_tops.contains(&top) {
            continue;
        }
        let Some(file) = file_of(key) else { continue };
        let home = if file.file_stem().is_some_and(|s| s == "__init__") { file.parent().map(Path::to_path_buf) } else { None };
        let at_fault = files.iter().any(|f| *f == file || home.as_ref().is_some_and(|h| f.starts_with(h)));
        if at_fault {
            failed_tops.push(top);
        }
    }
    for key in added {
        let top = key.split('.').next().unwrap_or(&key);
        if !failed_tops.iter().any(|t| t == top) {
            continue;
        }
        // One another thread is still importing stays: its import expects
        // to find it when it finishes.
        let initializing = modules
            .get_item(&key)
            .and_then(|m| m.getattr("__spec__"))
            .and_then(|s| s.getattr("_initializing"))
            .and_then(|i| i.is_truthy())
            .unwrap_or(false);
        if !initializing {
            let _ = modules.del_item(&key);
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_callable() {
        let spec = AppSpec::parse("/srv/app.py").unwrap();
        assert_eq!(spec, AppSpec { path: "/srv/app.py".into(), callable: "application".into(), explicit: false });
    }

    #[test]
    fn explicit_callable_and_attribute() {
        assert_eq!(AppSpec::parse("/srv/app.py:app").unwrap().callable, "app");
        assert_eq!(AppSpec::parse("/srv/app.py:factory.wsgi_app").unwrap().callable, "factory.wsgi_app");
        assert_eq!(AppSpec::parse("/srv/app.py:app").unwrap().path, PathBuf::from("/srv/app.py"));
    }

    #[test]
    fn bad_callables_are_refused() {
        assert!(AppSpec::parse("/srv/app.py:1app").is_err());
        assert!(AppSpec::parse("/srv/app.py:my-app").is_err());
        assert!(AppSpec::parse("/srv/app.py:").is_err());
        assert!(AppSpec::parse(":app").is_err());
        assert!(AppSpec::parse("").is_err());
    }

    #[test]
    fn colons_inside_the_path_stay_in_the_path() {
        let spec = AppSpec::parse("/srv/a:b/app.py").unwrap();
        assert_eq!(spec.path, PathBuf::from("/srv/a:b/app.py"));
        assert_eq!(spec.callable, "application");
    }

    #[test]
    fn module_names_are_stable_and_distinct() {
        let a = AppSpec::parse("/a/b_c.py").unwrap().module_name();
        let b = AppSpec::parse("/a/b/c.py").unwrap().module_name();
        assert_ne!(a, b);
        assert_eq!(a, AppSpec::parse("/a/b_c.py:other").unwrap().module_name());
        assert!(a.starts_with("_rust_wsgi_a_b_c_py_"));
    }
}
