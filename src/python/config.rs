//! Interpreter settings (`rust_python_*`), checked at configuration time.
//!
//! A Python home is either a virtualenv (it has `pyvenv.cfg`) or a Python
//! installation prefix (it has the standard library). Either way it must be
//! for the Python this module embeds: a mismatch is caught by `nginx -t`
//! with a message that says so, instead of surfacing in the worker as
//! "No module named 'encodings'".

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use nginx_sys::{ngx_command_t, ngx_conf_t};

use crate::nginx::conf::{args, conf_error, field_of, full_path, ConfResult, CONF_OK};

/// The Python this module was built against ("3.11").
pub const PYTHON_VERSION: &str = env!("RGW_PYTHON_VERSION");
/// Its executable, for `sys.executable` when no home is set.
pub const PYTHON_EXECUTABLE: &str = env!("RGW_PYTHON_EXECUTABLE");

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PythonSettings {
    pub home: Option<Home>,
    /// Put first on sys.path, in this order.
    pub path: Vec<PathBuf>,
    /// Set in os.environ before any app is imported.
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Home {
    /// A virtualenv: Python starts as its `bin/python`, so `sys.prefix` is
    /// the venv and its site-packages are importable.
    Venv { root: PathBuf, executable: PathBuf },
    /// A Python installation prefix (what PYTHONHOME names).
    Prefix { root: PathBuf },
}

impl Home {
    /// Recognises `path` as a virtualenv or prefix for this module's Python.
    pub fn inspect(path: &Path) -> Result<Home, String> {
        Self::inspect_for(path, PYTHON_VERSION)
    }

    fn inspect_for(path: &Path, version: &str) -> Result<Home, String> {
        let shown = path.display();
        if !path.is_dir() {
            return Err(format!("\"{shown}\" does not exist or is not a directory"));
        }
        let stdlib = format!("lib/python{version}");
        match std::fs::read_to_string(path.join("pyvenv.cfg")) {
            Ok(cfg) => {
                let made_for = pyvenv_version(&cfg);
                if made_for.as_deref() != Some(version) {
                    let made_for = made_for.map_or("an unknown Python version".into(), |v| format!("Python {v}"));
                    return Err(format!(
                        "the virtualenv \"{shown}\" was made for {made_for}, but this module embeds Python {version}; \
                         recreate it with python{version} -m venv {shown}"
                    ));
                }
                let executable = ["bin/python", "bin/python3"]
                    .iter()
                    .map(|name| path.join(name))
                    .find(|p| p.exists())
                    .ok_or_else(|| format!("the virtualenv \"{shown}\" has no bin/python"))?;
                if !path.join(&stdlib).join("site-packages").is_dir() {
                    return Err(format!("the virtualenv \"{shown}\" has no {stdlib}/site-packages"));
                }
                Ok(Home::Venv { root: path.to_path_buf(), executable })
            }
            Err(_) if path.join(&stdlib).join("os.py").is_file() => Ok(Home::Prefix { root: path.to_path_buf() }),
            Err(_) => Err(format!(
                "\"{shown}\" is neither a virtualenv (no pyvenv.cfg) nor a Python {version} installation \
                 (no {stdlib}/os.py); give a virtualenv made with python{version} -m venv"
            )),
        }
    }
}

/// "3.11" from pyvenv.cfg's `version` (venv) or `version_info` (virtualenv).
fn pyvenv_version(cfg: &str) -> Option<String> {
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if !matches!(key.trim(), "version" | "version_info") {
            return None;
        }
        let mut parts = value.trim().split('.');
        Some(format!("{}.{}", parts.next()?, parts.next()?))
    })
}

/// `rust_python_home /path/to/venv;`
pub(crate) unsafe extern "C" fn rust_python_home(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed, this module's
    // main conf and the command, whose offset is that of its
    // PythonSettings.
    let (cf_ref, settings) = unsafe { (&*cf, field_of::<PythonSettings>(conf, cmd)) };
    if settings.home.is_some() {
        return conf_error(cf, "\"rust_python_home\" is duplicate");
    }
    let path = full_path(cf_ref, Path::new(&*String::from_utf8_lossy(args(cf_ref)[1].as_bytes())));
    match Home::inspect(&path) {
        Ok(home) => {
            settings.home = Some(home);
            CONF_OK
        }
        Err(problem) => conf_error(cf, &format!("\"rust_python_home\": {problem}")),
    }
}

/// `rust_python_path dir ...;`
pub(crate) unsafe extern "C" fn rust_python_path(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_python_home`.
    let (cf_ref, settings) = unsafe { (&*cf, field_of::<PythonSettings>(conf, cmd)) };
    for arg in &args(cf_ref)[1..] {
        let dir = full_path(cf_ref, Path::new(&*String::from_utf8_lossy(arg.as_bytes())));
        if !dir.is_dir() {
            return conf_error(
                cf,
                &format!("\"rust_python_path\": \"{}\" is not a directory; give directories to put on sys.path", dir.display()),
            );
        }
        settings.path.push(dir);
    }
    CONF_OK
}

/// `rust_python_env NAME value;`
pub(crate) unsafe extern "C" fn rust_python_env(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: as in `rust_python_home`.
    let (cf_ref, settings) = unsafe { (&*cf, field_of::<PythonSettings>(conf, cmd)) };
    let name = String::from_utf8_lossy(args(cf_ref)[1].as_bytes()).into_owned();
    let value = String::from_utf8_lossy(args(cf_ref)[2].as_bytes()).into_owned();
    if name.is_empty() || name.contains('=') {
        return conf_error(cf, &format!("\"rust_python_env\": \"{name}\" is not a valid environment variable name"));
    }
    settings.env.retain(|(n, _)| *n != name);
    settings.env.push((name, value));
    CONF_OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rgw-home-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn venv(name: &str, cfg: &str) -> PathBuf {
        let d = dir(name);
        fs::write(d.join("pyvenv.cfg"), cfg).unwrap();
        fs::create_dir_all(d.join("bin")).unwrap();
        fs::write(d.join("bin/python"), "").unwrap();
        fs::create_dir_all(d.join("lib/python3.11/site-packages")).unwrap();
        d
    }

    #[test]
    fn a_matching_venv_is_accepted() {
        let d = venv("ok", "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n");
        assert_eq!(Home::inspect_for(&d, "3.11"), Ok(Home::Venv { root: d.clone(), executable: d.join("bin/python") }));
    }

    #[test]
    fn virtualenv_version_info_is_understood() {
        let d = venv("vinfo", "home = /usr/bin\nversion_info = 3.11.2.final.0\n");
        assert!(Home::inspect_for(&d, "3.11").is_ok());
    }

    #[test]
    fn a_venv_for_another_python_is_refused_with_the_reason() {
        let d = venv("other", "version = 3.12.1\n");
        let err = Home::inspect_for(&d, "3.11").unwrap_err();
        assert!(err.contains("was made for Python 3.12, but this module embeds Python 3.11"), "{err}");
        assert!(err.contains("python3.11 -m venv"), "{err}");
    }

    #[test]
    fn missing_and_unrecognised_homes_are_refused() {
        let missing = Home::inspect_for(Path::new("/nonexistent/venv"), "3.11").unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        let d = dir("empty");
        let empty = Home::inspect_for(&d, "3.11").unwrap_err();
        assert!(empty.contains("neither a virtualenv"), "{empty}");
    }

    #[test]
    fn a_python_prefix_is_accepted() {
        let d = dir("prefix");
        fs::create_dir_all(d.join("lib/python3.11")).unwrap();
        fs::write(d.join("lib/python3.11/os.py"), "").unwrap();
        assert_eq!(Home::inspect_for(&d, "3.11"), Ok(Home::Prefix { root: d }));
    }
}
