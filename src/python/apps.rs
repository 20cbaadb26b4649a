//! The apps `rust_wsgi` names, loaded once per worker.
//!
//! An app is a Python file and the name of a callable in it, like
//! mod_wsgi's WSGIScriptAlias: the file is imported as a module with a
//! stable private name (the same in every worker, so pickled references to
//! its classes work across workers), and its directory goes first on
//! sys.path so the app can import its neighbours.
//!
//! If the import fails, the traceback is logged once and the app's requests
//! answer 500. A later request tries again only when the file has changed,
//! so fixing the file fixes the location without restarting nginx.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;

use super::errors;

/// `rust_wsgi /path/app.py:callable` as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub path: PathBuf,
    pub callable: String,
}

pub const DEFAULT_CALLABLE: &str = "application";

impl AppSpec {
    /// Splits `PATH[:CALLABLE]`. The part after the last colon is taken as
    /// the callable only if it is a Python identifier (dots allowed, for an
    /// attribute of an object in the module).
    pub fn parse(arg: &str) -> Result<AppSpec, String> {
        let (path, callable) = match arg.rsplit_once(':') {
            Some((path, name)) if !name.contains('/') => {
                if !is_dotted_identifier(name) {
                    return Err(format!("\"{name}\" is not a valid Python name for the callable"));
                }
                (path, name)
            }
            _ => (arg, DEFAULT_CALLABLE),
        };
        if path.is_empty() {
            return Err("the app path is empty".into());
        }
        Ok(AppSpec { path: PathBuf::from(path), callable: callable.to_owned() })
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

/// Why an app's callable is not available.
pub enum LoadError {
    /// The import failed just now: a header line and the traceback.
    Failed(Vec<String>),
    /// It failed before and the file has not changed since.
    StillBroken,
}

pub struct App {
    pub spec: AppSpec,
    loaded: OnceLock<Py<PyAny>>,
    /// Serialises loading; holds the file's mtime at the last failure.
    loading: Mutex<Option<Option<SystemTime>>>,
}

impl App {
    pub fn new(spec: AppSpec) -> App {
        App { spec, loaded: OnceLock::new(), loading: Mutex::new(None) }
    }

    /// The app's callable, importing the file on first use.
    pub fn callable<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyAny>, LoadError> {
        if let Some(app) = self.loaded.get() {
            return Ok(app.bind(py).clone());
        }
        // Waits for the lock without the GIL: the thread holding it needs
        // the GIL to finish importing.
        let mut last_failure = self.loading.lock_py_attached(py).unwrap_or_else(PoisonError::into_inner);
        if let Some(app) = self.loaded.get() {
            return Ok(app.bind(py).clone());
        }
        let mtime = modified(&self.spec.path);
        if let Some(failed_at) = *last_failure {
            if failed_at == mtime {
                return Err(LoadError::StillBroken);
            }
        }
        match self.import(py) {
            Ok(app) => {
                let _ = self.loaded.set(app.clone().unbind());
                *last_failure = None;
                Ok(app)
            }
            Err(err) => {
                *last_failure = Some(mtime);
                let header = format!(
                    "rust_wsgi: cannot load \"{}\" (callable \"{}\"); traceback follows",
                    self.spec.path.display(),
                    self.spec.callable
                );
                Err(LoadError::Failed(errors::report(py, header, &err)))
            }
        }
    }

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
        let spec = util.call_method1("spec_from_file_location", (&name, &path))?;
        if spec.is_none() {
            return Err(pyo3::exceptions::PyImportError::new_err(format!(
                "{path} cannot be imported as a Python module (use a .py file)"
            )));
        }
        let module = util.call_method1("module_from_spec", (&spec,))?;
        let modules = sys.getattr("modules")?;
        modules.set_item(&name, &module)?;
        if let Err(err) = spec.getattr("loader")?.call_method1("exec_module", (&module,)) {
            let _ = modules.del_item(&name);
            return Err(err);
        }
        let mut target = module;
        for part in self.spec.callable.split('.') {
            target = target.getattr(part)?;
        }
        if !target.is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "\"{}\" in {path} is not callable",
                self.spec.callable
            )));
        }
        Ok(target)
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
        assert_eq!(spec, AppSpec { path: "/srv/app.py".into(), callable: "application".into() });
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
