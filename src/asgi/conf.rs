//! `rust_asgi` settings and its directive handler.

use std::ffi::c_void;

use nginx_sys::{ngx_command_t, ngx_conf_t, ngx_flag_t};

use crate::conf::{merge_flag, UNSET_FLAG};

use crate::conf::LocConf;
use crate::module::Module;
use ngx::http::HttpModuleMainConf;
use crate::nginx::conf::{conf_error, set_content_handler, ConfResult};
use crate::pool::conf::PoolTarget;
use crate::wsgi::conf::{app_directive, app_index, AppConf};

/// Per worker process.
#[derive(Default)]
pub struct AsgiMainConf {
    /// Every app named by `rust_asgi`, each once (see
    /// [`crate::wsgi::conf::WsgiMainConf::apps`]).
    pub apps: Vec<AppConf>,
}

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

/// `rust_asgi /path/to/app.py[:callable] [pool=NAME];`
pub(crate) unsafe extern "C" fn rust_asgi(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> ConfResult {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // location conf.
    let (cf_ref, lcf) = unsafe { (&*cf, &mut *(conf as *mut LocConf)) };
    let (spec, pool) = match app_directive(cf, lcf, "rust_asgi", "ASGI") {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    if let Some(name) = pool {
        lcf.wsgi.pool = Some(PoolTarget { name, app: Some(spec), asgi: true, ..Default::default() });
        return set_content_handler(cf, Some(crate::pool::client::content_handler));
    }
    let Some(mcf) = Module::main_conf_mut(cf_ref) else {
        return conf_error(cf, "\"rust_asgi\": no http configuration");
    };
    lcf.asgi.app = Some(app_index(&mut mcf.asgi.apps, spec));
    set_content_handler(cf, Some(super::content_handler))
}
