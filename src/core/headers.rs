//! What nginx's upstream module reads in an upstream's response head, read
//! the same way in an app's: the `X-Accel-*` instructions
//! (`ngx_http_upstream_process_headers`), and which headers survive an
//! `X-Accel-Redirect`. Pure logic; [`super::respond`] applies it.

use super::conf::{ignore, UpstreamConf};
use super::head::ResponseHead;

/// The instructions an app gave nginx in its head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accel<'a> {
    /// `X-Accel-Redirect`: a URI (with its arguments) or `@name`.
    pub redirect: Option<&'a [u8]>,
    /// `X-Accel-Limit-Rate`, bytes per second.
    pub limit_rate: Option<usize>,
    /// `X-Accel-Buffering`: `yes` lets nginx's filters gather the body,
    /// `no` passes every chunk on at once (the default here).
    pub buffering: Option<bool>,
    /// `X-Accel-Charset`: what nginx's charset filter recodes to.
    pub charset: Option<&'a [u8]>,
}

/// Reads the `X-Accel-*` headers `conf` does not ignore. Invalid values
/// are ignored, as nginx ignores them.
pub fn accel<'a>(head: &'a ResponseHead, conf: &UpstreamConf) -> Accel<'a> {
    let mut accel = Accel::default();
    for (name, value) in head.headers() {
        let Some(what) = strip_prefix_ignore_case(name, b"x-accel-") else { continue };
        let is = |known: &str| what.eq_ignore_ascii_case(known.as_bytes());
        if is("redirect") && !conf.ignored(ignore::XA_REDIRECT) && !value.is_empty() {
            accel.redirect = Some(value);
        } else if is("limit-rate") && !conf.ignored(ignore::XA_LIMIT_RATE) {
            if let Some(rate) = std::str::from_utf8(value).ok().and_then(|v| v.parse::<usize>().ok()) {
                accel.limit_rate = Some(rate);
            }
        } else if is("buffering") && !conf.ignored(ignore::XA_BUFFERING) {
            if value.eq_ignore_ascii_case(b"yes") {
                accel.buffering = Some(true);
            } else if value.eq_ignore_ascii_case(b"no") {
                accel.buffering = Some(false);
            }
        } else if is("charset") && !conf.ignored(ignore::XA_CHARSET) {
            accel.charset = Some(value);
        }
        // X-Accel-Expires sets how long nginx's cache keeps a response;
        // there is no cache here, so it is only hidden.
    }
    accel
}

/// Whether an app's header still applies when `X-Accel-Redirect` hands the
/// request elsewhere: the ones nginx marks `redirect` in its table, so a
/// protected download keeps the app's Content-Type and
/// Content-Disposition, and the app's cookies and caching headers.
pub fn survives_redirect(name: &[u8]) -> bool {
    ["content-type", "set-cookie", "content-disposition", "cache-control", "expires", "accept-ranges"]
        .iter()
        .any(|h| h.len() == name.len() && h.as_bytes().eq_ignore_ascii_case(name))
}

/// Whether the app says its bytes can be served in ranges.
pub fn accepts_ranges(head: &ResponseHead) -> bool {
    head.headers()
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case(b"accept-ranges") && v.eq_ignore_ascii_case(b"bytes"))
}

fn strip_prefix_ignore_case<'a>(name: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    // Most names fail on their first letter.
    let first = (name.len() > prefix.len()).then(|| name[0].to_ascii_lowercase() == prefix[0])?;
    (first && name[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &name[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&str, &str)]) -> ResponseHead {
        let headers = pairs.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
        ResponseHead::new(b"200 OK", headers).unwrap()
    }

    fn merged() -> UpstreamConf {
        let mut conf = UpstreamConf::default();
        conf.merge(&UpstreamConf::default());
        conf
    }

    #[test]
    fn reads_every_instruction() {
        let h = head(&[
            ("X-Accel-Redirect", "/protected/a.bin?x=1"),
            ("x-accel-limit-rate", "1024"),
            ("X-Accel-Buffering", "YES"),
            ("X-Accel-Charset", "koi8-r"),
            ("X-Accel-Expires", "60"),
        ]);
        let accel = accel(&h, &merged());
        assert_eq!(
            accel,
            Accel {
                redirect: Some(b"/protected/a.bin?x=1"),
                limit_rate: Some(1024),
                buffering: Some(true),
                charset: Some(b"koi8-r"),
            }
        );
    }

    #[test]
    fn bad_values_are_ignored() {
        let h = head(&[("X-Accel-Limit-Rate", "fast"), ("X-Accel-Buffering", "maybe"), ("X-Accel-Redirect", "")]);
        assert_eq!(accel(&h, &merged()), Accel::default());
    }

    #[test]
    fn headers_without_instructions_cost_one_look() {
        let h = head(&[("Content-Type", "text/plain"), ("X-Accel", "1")]);
        assert_eq!(accel(&h, &merged()), Accel::default());
    }

    #[test]
    fn ranges_and_redirect_survivors() {
        assert!(accepts_ranges(&head(&[("Accept-Ranges", "bytes")])));
        assert!(!accepts_ranges(&head(&[("Accept-Ranges", "none")])));
        assert!(survives_redirect(b"Content-Disposition"));
        assert!(!survives_redirect(b"ETag"));
    }
}
