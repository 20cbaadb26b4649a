//! `rust_asgi`'s own settings; what it shares with `rust_wsgi` is
//! [`crate::python::app_conf`]'s.

use nginx_sys::ngx_flag_t;

use crate::nginx::conf::{merge_flag, LocSlot, UNSET_FLAG};
use crate::python::app_conf::AppConf;

/// Per worker process.
#[derive(Default)]
pub struct AsgiMainConf {
    /// Every app named by `rust_asgi`, each once; locations refer to them
    /// by index.
    pub apps: Vec<AppConf>,
}

/// Where a request's location keeps `rust_asgi`'s settings.
pub static LOC: LocSlot<AsgiLocConf> = LocSlot::new();

pub struct AsgiLocConf {
    /// Index into [`AsgiMainConf::apps`] when `rust_asgi` is set here.
    pub app: Option<usize>,
    /// `rust_asgi_request_buffering`, NGX_CONF_UNSET until set.
    pub request_buffering: ngx_flag_t,
    /// `rust_asgi_websocket_compression`, NGX_CONF_UNSET until set.
    pub websocket_compression: ngx_flag_t,
}

impl Default for AsgiLocConf {
    fn default() -> Self {
        AsgiLocConf { app: None, request_buffering: UNSET_FLAG, websocket_compression: UNSET_FLAG }
    }
}

impl AsgiLocConf {
    pub fn merge(&mut self, prev: &Self) {
        // Like proxy_request_buffering: nginx reads the whole body first.
        merge_flag(&mut self.request_buffering, prev.request_buffering, true);
        // permessage-deflate when the client offers it, as uvicorn and
        // browsers' peers do by default.
        merge_flag(&mut self.websocket_compression, prev.websocket_compression, true);
    }
}
