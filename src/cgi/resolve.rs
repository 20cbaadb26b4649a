//! Which program a request runs.
//!
//! In a script directory (`rust_cgi`), the URI is mapped through the
//! location's `root` or `alias`, like Apache's ScriptAlias: walking the path
//! from the root, the first regular file is the script and the rest of the
//! path is PATH_INFO. With `rust_cgi_pass`, one program serves every request
//! in the location.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::core::meta::split_script_name;

/// A program to run and what the CGI environment says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// What is executed: the script itself, or its interpreter.
    pub program: PathBuf,
    /// Arguments after `argv[0]` (the script, when an interpreter runs it).
    pub args: Vec<PathBuf>,
    /// SCRIPT_FILENAME.
    pub filename: PathBuf,
    /// SCRIPT_NAME: the part of the URI that names the script.
    pub script_name: Vec<u8>,
    /// PATH_INFO: the rest of the URI.
    pub path_info: Vec<u8>,
    /// DOCUMENT_ROOT.
    pub document_root: Vec<u8>,
    /// The program runs in its script's directory.
    pub dir: PathBuf,
    /// "nph-" scripts write their own status line and headers.
    pub nph: bool,
}

/// Why a request cannot run a script: 404 or 403, with the reason for the
/// log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NotFound(String),
    Forbidden(String),
}

/// How scripts in a directory are checked and run.
pub struct Rules<'a> {
    /// File extension (".py") to interpreter.
    pub interpreters: &'a [(String, PathBuf)],
    /// Follow symlinks that point outside the script root.
    pub allow_outside_symlinks: bool,
}

/// Resolves a request in a script directory. `fs_path` is what nginx's
/// `root`/`alias` made of the URI, `root_len` the length of its root part,
/// `uri` the decoded URI.
pub fn in_directory(fs_path: &[u8], root_len: usize, uri: &[u8], rules: &Rules<'_>) -> Result<Script, Refused> {
    let root_len = root_len.min(fs_path.len());
    let root = trim_slash(&fs_path[..root_len]);
    let rest = &fs_path[root_len..];
    let mut current = PathBuf::from(OsStr::from_bytes(root));
    let mut at = 0;
    loop {
        // Skip slashes, take the next component.
        while rest.get(at) == Some(&b'/') {
            at += 1;
        }
        if at >= rest.len() {
            return Err(Refused::Forbidden(format!("\"{}\" is a directory, not a script", current.display())));
        }
        let end = rest[at..].iter().position(|&c| c == b'/').map_or(rest.len(), |i| at + i);
        let component = &rest[at..end];
        if component == b"." || component == b".." {
            return Err(Refused::Forbidden(format!("\"{}\" leaves the script directory", show(rest))));
        }
        current.push(OsStr::from_bytes(component));
        at = end;
        match std::fs::metadata(&current) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(meta) if meta.is_file() => break,
            Ok(_) => return Err(Refused::Forbidden(format!("\"{}\" is not a regular file", current.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Refused::NotFound(format!("\"{}\" does not exist", current.display())))
            }
            Err(e) => return Err(Refused::Forbidden(format!("\"{}\": {e}", current.display()))),
        }
    }
    if !rules.allow_outside_symlinks {
        check_inside(Path::new(OsStr::from_bytes(root)), &current)?;
    }
    let path_info = rest[at..].to_vec();
    let script_name = match uri.strip_suffix(path_info.as_slice()) {
        Some(name) => name.to_vec(),
        None => uri.to_vec(),
    };
    let filename = current;
    let interpreter = rules
        .interpreters
        .iter()
        .find(|(ext, _)| filename.as_os_str().as_bytes().ends_with(ext.as_bytes()))
        .map(|(_, interpreter)| interpreter.clone());
    let (program, args) = match interpreter {
        Some(interpreter) => {
            if !accessible(&filename, libc::R_OK) {
                return Err(Refused::Forbidden(format!("\"{}\" is not readable", filename.display())));
            }
            (interpreter, vec![filename.clone()])
        }
        None => {
            if !accessible(&filename, libc::X_OK) {
                return Err(Refused::Forbidden(format!(
                    "\"{}\" is not executable (chmod +x it, or map its extension with rust_cgi_interpreter)",
                    filename.display()
                )));
            }
            (filename.clone(), Vec::new())
        }
    };
    Ok(Script {
        nph: is_nph(&filename),
        dir: filename.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
        program,
        args,
        filename,
        script_name,
        path_info,
        document_root: root.to_vec(),
    })
}

/// `rust_cgi_pass program`: the location's prefix is SCRIPT_NAME and the
/// rest of the URI is PATH_INFO (both can be overridden with
/// `rust_cgi_param`).
pub fn fixed(program: &Path, location: Option<&[u8]>, uri: &[u8], document_root: &[u8]) -> Script {
    let (script_name, path_info) = split_script_name(location, uri);
    Script {
        program: program.to_path_buf(),
        args: Vec::new(),
        filename: program.to_path_buf(),
        script_name: script_name.to_vec(),
        path_info: path_info.to_vec(),
        document_root: trim_slash(document_root).to_vec(),
        dir: program.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
        nph: is_nph(program),
    }
}

/// Refuses a script whose real path (symlinks resolved) is outside the
/// real script root.
fn check_inside(root: &Path, script: &Path) -> Result<(), Refused> {
    let real_root = std::fs::canonicalize(root).map_err(|e| Refused::Forbidden(format!("\"{}\": {e}", root.display())))?;
    let real = std::fs::canonicalize(script).map_err(|e| Refused::Forbidden(format!("\"{}\": {e}", script.display())))?;
    if real.starts_with(&real_root) {
        Ok(())
    } else {
        Err(Refused::Forbidden(format!(
            "\"{}\" is a symlink to \"{}\", outside the script directory (rust_cgi_allow_symlinks on allows it)",
            script.display(),
            real.display()
        )))
    }
}

fn accessible(path: &Path, mode: i32) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: access() only reads the NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

fn is_nph(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name.as_bytes().starts_with(b"nph-"))
}

fn trim_slash(path: &[u8]) -> &[u8] {
    match path {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        _ => path,
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str) -> Tree {
            let dir = std::env::temp_dir().join(format!("rgw-cgi-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("cgi-bin/sub")).unwrap();
            for (file, mode) in [("cgi-bin/run.sh", 0o755), ("cgi-bin/sub/deep.sh", 0o755), ("cgi-bin/plain.txt", 0o644), ("cgi-bin/app.py", 0o644), ("cgi-bin/nph-raw", 0o755)] {
                fs::write(dir.join(file), "#!/bin/sh\n").unwrap();
                fs::set_permissions(dir.join(file), fs::Permissions::from_mode(mode)).unwrap();
            }
            Tree(dir)
        }

        fn resolve(&self, uri: &str, rules: &Rules<'_>) -> Result<Script, Refused> {
            let root = self.0.to_string_lossy().into_owned();
            let path = format!("{root}{uri}");
            in_directory(path.as_bytes(), root.len(), uri.as_bytes(), rules)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const PLAIN: Rules<'static> = Rules { interpreters: &[], allow_outside_symlinks: false };

    #[test]
    fn the_first_file_on_the_path_is_the_script_and_the_rest_is_path_info() {
        let t = Tree::new("walk");
        let s = t.resolve("/cgi-bin/sub/deep.sh/extra/path", &PLAIN).unwrap();
        assert_eq!(s.filename, t.0.join("cgi-bin/sub/deep.sh"));
        assert_eq!(s.script_name, b"/cgi-bin/sub/deep.sh");
        assert_eq!(s.path_info, b"/extra/path");
        assert_eq!(s.dir, t.0.join("cgi-bin/sub"));
        assert_eq!(s.document_root, t.0.to_string_lossy().as_bytes());
        assert_eq!((s.program, s.args), (t.0.join("cgi-bin/sub/deep.sh"), vec![]));
    }

    #[test]
    fn no_path_info() {
        let t = Tree::new("nopi");
        let s = t.resolve("/cgi-bin/run.sh", &PLAIN).unwrap();
        assert_eq!((s.script_name.as_slice(), s.path_info.as_slice()), (&b"/cgi-bin/run.sh"[..], &b""[..]));
    }

    #[test]
    fn refusals() {
        let t = Tree::new("refuse");
        assert!(matches!(t.resolve("/cgi-bin/missing.sh", &PLAIN), Err(Refused::NotFound(_))));
        assert!(matches!(t.resolve("/cgi-bin/plain.txt", &PLAIN), Err(Refused::Forbidden(m)) if m.contains("not executable")));
        assert!(matches!(t.resolve("/cgi-bin/sub/", &PLAIN), Err(Refused::Forbidden(m)) if m.contains("is a directory")));
        assert!(matches!(t.resolve("/cgi-bin/../cgi-bin/run.sh", &PLAIN), Err(Refused::Forbidden(m)) if m.contains("leaves")));
    }

    #[test]
    fn interpreters_by_extension_need_only_read_access() {
        let t = Tree::new("interp");
        let map = [(".py".to_string(), PathBuf::from("/usr/bin/python3"))];
        let rules = Rules { interpreters: &map, allow_outside_symlinks: false };
        let s = t.resolve("/cgi-bin/app.py/x", &rules).unwrap();
        assert_eq!(s.program, PathBuf::from("/usr/bin/python3"));
        assert_eq!(s.args, vec![t.0.join("cgi-bin/app.py")]);
        assert_eq!(s.path_info, b"/x");
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused_unless_allowed() {
        let t = Tree::new("links");
        let outside = std::env::temp_dir().join(format!("rgw-cgi-{}-outside.sh", std::process::id()));
        fs::write(&outside, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&outside, t.0.join("cgi-bin/escape.sh")).unwrap();
        std::os::unix::fs::symlink(t.0.join("cgi-bin/run.sh"), t.0.join("cgi-bin/inside.sh")).unwrap();
        assert!(matches!(t.resolve("/cgi-bin/escape.sh", &PLAIN), Err(Refused::Forbidden(m)) if m.contains("outside the script directory")));
        assert!(t.resolve("/cgi-bin/inside.sh", &PLAIN).is_ok());
        let allow = Rules { interpreters: &[], allow_outside_symlinks: true };
        assert!(t.resolve("/cgi-bin/escape.sh", &allow).is_ok());
        fs::remove_file(outside).unwrap();
    }

    #[test]
    fn nph_scripts_are_recognised() {
        let t = Tree::new("nph");
        assert!(t.resolve("/cgi-bin/nph-raw", &PLAIN).unwrap().nph);
        assert!(!t.resolve("/cgi-bin/run.sh", &PLAIN).unwrap().nph);
    }

    #[test]
    fn a_fixed_program_takes_the_location_as_script_name() {
        let s = fixed(Path::new("/usr/lib/git-core/git-http-backend"), Some(b"/git/"), b"/git/repo.git/info/refs", b"/srv/www/");
        assert_eq!(s.script_name, b"/git");
        assert_eq!(s.path_info, b"/repo.git/info/refs");
        assert_eq!(s.document_root, b"/srv/www");
        assert_eq!(s.dir, PathBuf::from("/usr/lib/git-core"));
    }
}
