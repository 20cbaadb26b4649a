//! The CGI environment (RFC 3875 §4.1, plus what real programs expect).
//!
//! The child gets these variables and nothing else from nginx's own
//! environment but an explicit allow-list (PATH by default). Authorization
//! headers are withheld unless configured (like Apache's CGIPassAuth), and
//! a `Proxy` request header never becomes HTTP_PROXY, which programs would
//! take for their outgoing proxy ("httpoxy").

use std::ffi::CString;

use super::resolve::Script;
use crate::core::capture::RequestHead;
use crate::core::meta::{header, http_vars};

pub const GATEWAY_INTERFACE: &str = "CGI/1.1";

/// What the environment is built from, besides the request head.
pub struct Context<'a> {
    pub script: &'a Script,
    /// The body length, when the request had a body.
    pub content_length: Option<u64>,
    /// The user an nginx auth module authenticated.
    pub user: Option<&'a [u8]>,
    pub pass_authorization: bool,
    pub server_software: &'a str,
    /// Allowed variables from nginx's own environment.
    pub inherited: &'a [(String, Vec<u8>)],
}

/// A `rust_cgi_param`, evaluated for this request.
pub struct Param {
    pub name: String,
    pub value: Vec<u8>,
    /// Drop the variable when the value is empty (`if_not_empty`).
    pub if_not_empty: bool,
}

#[derive(Debug, Default)]
pub struct Env(Vec<(String, Vec<u8>)>);

impl Env {
    pub fn build(head: &RequestHead, cx: &Context<'_>) -> Env {
        let mut env = Env::default();
        for (name, value) in cx.inherited {
            env.set(name, value.clone());
        }
        let script = cx.script;
        if let Some(user) = cx.user {
            let scheme = header(&head.headers, "authorization")
                .and_then(|v| v.split(|&c| c == b' ').next())
                .unwrap_or(b"Basic");
            env.set("AUTH_TYPE", scheme.to_vec());
            env.set("REMOTE_USER", user.to_vec());
        }
        if let Some(length) = cx.content_length {
            env.set("CONTENT_LENGTH", length.to_string().into_bytes());
        }
        if let Some(content_type) = header(&head.headers, "content-type") {
            env.set("CONTENT_TYPE", content_type.to_vec());
        }
        env.set("GATEWAY_INTERFACE", GATEWAY_INTERFACE.into());
        if !script.path_info.is_empty() {
            env.set("PATH_INFO", script.path_info.clone());
            let mut translated = script.document_root.clone();
            translated.extend_from_slice(&script.path_info);
            env.set("PATH_TRANSLATED", translated);
        }
        env.set("QUERY_STRING", head.query.clone());
        env.set("REMOTE_ADDR", head.remote_addr.clone());
        // No DNS lookups: RFC 3875 lets REMOTE_HOST be the address.
        env.set("REMOTE_HOST", head.remote_addr.clone());
        if let Some(port) = head.remote_port {
            env.set("REMOTE_PORT", port.to_string().into_bytes());
        }
        env.set("REQUEST_METHOD", head.method.clone());
        env.set("SCRIPT_NAME", script.script_name.clone());
        let server_name: &[u8] = if head.server_name.is_empty() { b"localhost" } else { &head.server_name };
        env.set("SERVER_NAME", server_name.to_vec());
        let port = head.server_port.unwrap_or(if head.https { 443 } else { 80 });
        env.set("SERVER_PORT", port.to_string().into_bytes());
        env.set("SERVER_PROTOCOL", head.protocol.clone());
        env.set("SERVER_SOFTWARE", cx.server_software.into());
        env.set("DOCUMENT_ROOT", script.document_root.clone());
        env.set("SCRIPT_FILENAME", script.filename.as_os_str().as_encoded_bytes().to_vec());
        env.set("REQUEST_URI", head.raw_uri.clone());
        if head.https {
            env.set("HTTPS", b"on".to_vec());
        }
        // PHP's php-cgi refuses to run without it (cgi.force_redirect).
        env.set("REDIRECT_STATUS", b"200".to_vec());
        for (name, value) in http_vars(&head.headers) {
            let withheld = name == "HTTP_PROXY"
                || (!cx.pass_authorization && (name == "HTTP_AUTHORIZATION" || name == "HTTP_PROXY_AUTHORIZATION"));
            if !withheld {
                env.set(&name, value);
            }
        }
        env
    }

    /// Sets or replaces a variable.
    pub fn set(&mut self, name: &str, value: Vec<u8>) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }

    /// `rust_cgi_param` overrides and `rust_cgi_param_drop` removals.
    pub fn apply(&mut self, params: Vec<Param>, drops: &[String]) {
        for param in params {
            if param.if_not_empty && param.value.is_empty() {
                self.remove(&param.name);
            } else {
                self.set(&param.name, param.value);
            }
        }
        for name in drops {
            self.remove(name);
        }
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// `NAME=value` strings for execve. A value with a NUL byte cannot be
    /// passed and is left out.
    pub fn to_c(&self) -> Vec<CString> {
        self.0
            .iter()
            .filter_map(|(name, value)| {
                let mut entry = Vec::with_capacity(name.len() + 1 + value.len());
                entry.extend_from_slice(name.as_bytes());
                entry.push(b'=');
                entry.extend_from_slice(value);
                CString::new(entry).ok()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn head() -> RequestHead {
        let h = |n: &str, v: &str| (n.as_bytes().to_vec(), v.as_bytes().to_vec());
        RequestHead {
            method: b"POST".to_vec(),
            raw_uri: b"/cgi-bin/env.sh/extra?q=a%20b&x".to_vec(),
            path: b"/cgi-bin/env.sh/extra".to_vec(),
            query: b"q=a%20b&x".to_vec(),
            protocol: b"HTTP/1.1".to_vec(),
            headers: vec![
                h("Host", "example.test"),
                h("Content-Type", "text/plain"),
                h("Authorization", "Basic dXNlcjpwdw=="),
                h("Proxy", "http://evil/"),
                h("X-Thing", "1"),
            ],
            remote_addr: b"10.1.2.3".to_vec(),
            remote_port: Some(5555),
            server_name: b"example.test".to_vec(),
            server_port: Some(8080),
            https: false,
            location: Some(b"/cgi-bin/".to_vec()),
            has_body: true,
            user: None,
            params: Vec::new(),
        }
    }

    fn script() -> Script {
        Script {
            program: PathBuf::from("/srv/cgi-bin/env.sh"),
            args: vec![],
            filename: PathBuf::from("/srv/cgi-bin/env.sh"),
            script_name: b"/cgi-bin/env.sh".to_vec(),
            path_info: b"/extra".to_vec(),
            document_root: b"/srv".to_vec(),
            dir: PathBuf::from("/srv/cgi-bin"),
            nph: false,
        }
    }

    fn build(pass_authorization: bool, user: Option<&[u8]>) -> Env {
        let script = script();
        let inherited = vec![("PATH".to_string(), b"/usr/bin:/bin".to_vec())];
        let cx = Context {
            script: &script,
            content_length: Some(11),
            user,
            pass_authorization,
            server_software: "test/1",
            inherited: &inherited,
        };
        Env::build(&head(), &cx)
    }

    #[test]
    fn the_rfc_meta_variables() {
        let env = build(false, None);
        let get = |n| env.get(n).map(|v| String::from_utf8_lossy(v).into_owned());
        assert_eq!(get("GATEWAY_INTERFACE").as_deref(), Some("CGI/1.1"));
        assert_eq!(get("REQUEST_METHOD").as_deref(), Some("POST"));
        assert_eq!(get("SCRIPT_NAME").as_deref(), Some("/cgi-bin/env.sh"));
        assert_eq!(get("PATH_INFO").as_deref(), Some("/extra"));
        assert_eq!(get("PATH_TRANSLATED").as_deref(), Some("/srv/extra"));
        assert_eq!(get("QUERY_STRING").as_deref(), Some("q=a%20b&x"));
        assert_eq!(get("CONTENT_LENGTH").as_deref(), Some("11"));
        assert_eq!(get("CONTENT_TYPE").as_deref(), Some("text/plain"));
        assert_eq!(get("REMOTE_ADDR").as_deref(), Some("10.1.2.3"));
        assert_eq!(get("REMOTE_HOST").as_deref(), Some("10.1.2.3"));
        assert_eq!(get("REMOTE_PORT").as_deref(), Some("5555"));
        assert_eq!(get("SERVER_NAME").as_deref(), Some("example.test"));
        assert_eq!(get("SERVER_PORT").as_deref(), Some("8080"));
        assert_eq!(get("SERVER_PROTOCOL").as_deref(), Some("HTTP/1.1"));
        assert_eq!(get("SERVER_SOFTWARE").as_deref(), Some("test/1"));
        assert_eq!(get("DOCUMENT_ROOT").as_deref(), Some("/srv"));
        assert_eq!(get("SCRIPT_FILENAME").as_deref(), Some("/srv/cgi-bin/env.sh"));
        assert_eq!(get("REQUEST_URI").as_deref(), Some("/cgi-bin/env.sh/extra?q=a%20b&x"));
        assert_eq!(get("REDIRECT_STATUS").as_deref(), Some("200"));
        assert_eq!(get("HTTP_X_THING").as_deref(), Some("1"));
        assert_eq!(get("PATH").as_deref(), Some("/usr/bin:/bin"));
        assert_eq!(get("HTTPS"), None);
        assert_eq!(get("HTTP_CONTENT_TYPE"), None);
        assert_eq!(get("AUTH_TYPE"), None);
        assert_eq!(get("REMOTE_USER"), None);
    }

    #[test]
    fn authorization_is_withheld_unless_passed_and_proxy_never_passes() {
        let env = build(false, None);
        assert_eq!(env.get("HTTP_AUTHORIZATION"), None);
        assert_eq!(env.get("HTTP_PROXY"), None);
        let env = build(true, None);
        assert_eq!(env.get("HTTP_AUTHORIZATION"), Some(&b"Basic dXNlcjpwdw=="[..]));
        assert_eq!(env.get("HTTP_PROXY"), None);
    }

    #[test]
    fn an_authenticated_user_sets_remote_user_and_auth_type() {
        let env = build(false, Some(b"user"));
        assert_eq!(env.get("REMOTE_USER"), Some(&b"user"[..]));
        assert_eq!(env.get("AUTH_TYPE"), Some(&b"Basic"[..]));
    }

    #[test]
    fn params_override_add_empty_and_drop() {
        let mut env = build(false, None);
        env.apply(
            vec![
                Param { name: "PATH_INFO".into(), value: b"/from/param".to_vec(), if_not_empty: false },
                Param { name: "EMPTY".into(), value: vec![], if_not_empty: false },
                Param { name: "GONE_IF_EMPTY".into(), value: vec![], if_not_empty: true },
                Param { name: "QUERY_STRING".into(), value: vec![], if_not_empty: true },
            ],
            &["SERVER_SOFTWARE".to_string()],
        );
        assert_eq!(env.get("PATH_INFO"), Some(&b"/from/param"[..]));
        assert_eq!(env.get("EMPTY"), Some(&b""[..]));
        assert_eq!(env.get("GONE_IF_EMPTY"), None);
        assert_eq!(env.get("QUERY_STRING"), None);
        assert_eq!(env.get("SERVER_SOFTWARE"), None);
    }

    #[test]
    fn c_strings_skip_values_with_nul() {
        let mut env = Env::default();
        env.set("A", b"1".to_vec());
        env.set("B", b"x\0y".to_vec());
        let c = env.to_c();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].as_bytes(), b"A=1");
    }
}
