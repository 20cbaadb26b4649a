//! Forwards what nginx-sys learned about the nginx it built against into
//! cfg values, the same contract as the ngx crate's own build script. This
//! only works because nginx-sys is a direct dependency: cargo passes
//! `DEP_NGINX_*` variables to direct dependents only.
use std::env;

fn main() {
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES_CHECK");
    println!(
        "cargo::rustc-check-cfg=cfg(ngx_feature, values({}))",
        env::var("DEP_NGINX_FEATURES_CHECK").unwrap_or_else(|_| "any()".into())
    );
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES");
    for feature in env::var("DEP_NGINX_FEATURES").unwrap_or_default().split(',') {
        let feature = feature.trim();
        if !feature.is_empty() {
            println!("cargo::rustc-cfg=ngx_feature=\"{feature}\"");
        }
    }

    println!("cargo::rerun-if-env-changed=DEP_NGINX_OS_CHECK");
    println!(
        "cargo::rustc-check-cfg=cfg(ngx_os, values({}))",
        env::var("DEP_NGINX_OS_CHECK").unwrap_or_else(|_| "any()".into())
    );
    println!("cargo::rerun-if-env-changed=DEP_NGINX_OS");
    if let Ok(os) = env::var("DEP_NGINX_OS") {
        println!("cargo::rustc-cfg=ngx_os=\"{os}\"");
    }

    // The nginx version the bindings came from, for the few places where the
    // C structures differ between 1.22 and 1.28.
    println!("cargo::rustc-check-cfg=cfg(nginx1_23_0)");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    if let Some(version) = env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        if version >= 1_023_000 {
            println!("cargo::rustc-cfg=nginx1_23_0");
        }
    }

    // The Python this module embeds (PYO3_PYTHON): its version, to check
    // virtualenvs at configuration time, and its executable, for
    // sys.executable.
    let python = pyo3_build_config::get();
    println!("cargo::rustc-env=RGW_PYTHON_VERSION={}.{}", python.version.major, python.version.minor);
    println!(
        "cargo::rustc-env=RGW_PYTHON_EXECUTABLE={}",
        python.executable.as_deref().unwrap_or("/usr/bin/python3")
    );

    // ci/build.sh copies the matching nginx binary out of this directory.
    println!("cargo::rerun-if-env-changed=DEP_NGINX_BUILD_DIR");
    if let Ok(dir) = env::var("DEP_NGINX_BUILD_DIR") {
        println!("cargo::rustc-env=DEP_NGINX_BUILD_DIR={dir}");
    }
}
