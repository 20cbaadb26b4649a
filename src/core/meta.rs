//! CGI-style meta-variables, shared by every interface that speaks them
//! (WSGI's environ, CGI's environment, the pool's FastCGI params; ASGI's
//! scope splits its path the same way).

/// SERVER_SOFTWARE.
pub const SERVER_SOFTWARE: &str = concat!("ngx-rust-gateway/", env!("CARGO_PKG_VERSION"));

/// Splits a request path into SCRIPT_NAME (where the app is mounted) and
/// PATH_INFO (the rest), given the prefix of the location that took the
/// request. Only whole path segments count: location `/app` mounts `/app`
/// and `/app/x`, not `/apple`.
pub fn split_script_name<'a>(location: Option<&[u8]>, path: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let Some(location) = location else { return (&path[..0], path) };
    let prefix = location.strip_suffix(b"/").unwrap_or(location);
    let mounted = !prefix.is_empty()
        && path.starts_with(prefix)
        && (path.len() == prefix.len() || path[prefix.len()] == b'/');
    if mounted {
        path.split_at(prefix.len())
    } else {
        (&path[..0], path)
    }
}

/// The meta-variable for a request header: `X-Forwarded-For` becomes
/// `HTTP_X_FORWARDED_FOR`. None for Content-Type and Content-Length (they
/// have their own variables) and for names with an underscore, which would
/// be indistinguishable from the dash form and let a client spoof a header
/// that a proxy in front set (nginx drops them too unless
/// `underscores_in_headers` is on).
pub fn http_var_name(name: &[u8]) -> Option<String> {
    if name.contains(&b'_')
        || name.eq_ignore_ascii_case(b"content-type")
        || name.eq_ignore_ascii_case(b"content-length")
    {
        return None;
    }
    let mut var = String::with_capacity(5 + name.len());
    var.push_str("HTTP_");
    for &c in name {
        var.push(if c == b'-' { '_' } else { c.to_ascii_uppercase() as char });
    }
    Some(var)
}

/// Request headers as meta-variables, in order of first appearance.
/// Repeated headers become one value joined with ", " (RFC 9110's list
/// syntax), except Cookie, which joins with "; " as RFC 6265 requires.
pub fn http_vars(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut vars: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let Some(var) = http_var_name(name) else { continue };
        match vars.iter_mut().find(|(v, _)| *v == var) {
            Some((_, joined)) => {
                joined.extend_from_slice(if var == "HTTP_COOKIE" { b"; " } else { b", " });
                joined.extend_from_slice(value);
            }
            None => vars.push((var, value.clone())),
        }
    }
    vars
}

/// The value of the first header called `name`.
pub fn header<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_name_is_the_location_prefix() {
        assert_eq!(split_script_name(Some(b"/app/"), b"/app/x/y"), (&b"/app"[..], &b"/x/y"[..]));
        assert_eq!(split_script_name(Some(b"/app"), b"/app"), (&b"/app"[..], &b""[..]));
        assert_eq!(split_script_name(Some(b"/app"), b"/app/"), (&b"/app"[..], &b"/"[..]));
    }

    #[test]
    fn root_and_unmatched_locations_mount_nothing() {
        assert_eq!(split_script_name(Some(b"/"), b"/x"), (&b""[..], &b"/x"[..]));
        assert_eq!(split_script_name(Some(b"/app"), b"/apple"), (&b""[..], &b"/apple"[..]));
        assert_eq!(split_script_name(None, b"/x"), (&b""[..], &b"/x"[..]));
    }

    #[test]
    fn header_names_become_http_vars() {
        assert_eq!(http_var_name(b"X-Forwarded-For").as_deref(), Some("HTTP_X_FORWARDED_FOR"));
        assert_eq!(http_var_name(b"host").as_deref(), Some("HTTP_HOST"));
        assert_eq!(http_var_name(b"Content-Type"), None);
        assert_eq!(http_var_name(b"content-length"), None);
        assert_eq!(http_var_name(b"X_Spoof"), None);
    }

    #[test]
    fn repeated_headers_are_joined() {
        let h = |n: &str, v: &str| (n.as_bytes().to_vec(), v.as_bytes().to_vec());
        let vars = http_vars(&[h("Accept", "a"), h("Cookie", "x=1"), h("accept", "b"), h("Cookie", "y=2")]);
        assert_eq!(
            vars,
            vec![("HTTP_ACCEPT".to_string(), b"a, b".to_vec()), ("HTTP_COOKIE".to_string(), b"x=1; y=2".to_vec())]
        );
    }
}
