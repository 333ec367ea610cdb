//! On Linux machines without a GPU, the window's process loads no OpenGL.
//!
//! WebKitGTK's window process opens an EGL display and GTK a GLX one, to composite what the web
//! process draws. Without a GPU (no DRM render node: virtual machines, remote desktops, Xvfb) both
//! land on Mesa's software rasteriser, which maps LLVM: about 55 MB resident in the window's
//! process, a third of it, to composite in software what WebKit then paints from shared memory
//! anyway. There the window's process keeps OpenGL out: GDK is told not to use it, and libglvnd's
//! EGL is made to load its (empty) vendor list now, before WebKit asks it for a display. The web
//! process, which draws the page, starts with the environment as it was and keeps its own GL.
//!
//! `BATON_WINDOW_GL=on` keeps the default on any machine; `off` leaves GL out on any machine.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

/// What was decided at start, logged once logging is up.
static CHOICE: OnceLock<&'static str> = OnceLock::new();

/// libglvnd reads this once, when EGL is first used, to find its vendors (Mesa's among them).
const EGL_VENDOR_DIRS: &str = "__EGL_VENDOR_LIBRARY_DIRS";

/// Decides, and applies, whether this process keeps OpenGL out of the window. Must run first in
/// `main`, before any other thread exists: it sets environment variables.
pub fn prepare() {
    let choice = match std::env::var("BATON_WINDOW_GL").as_deref() {
        Ok("on") => "on (BATON_WINDOW_GL=on)",
        Ok("off") => leave_gl_out("off (BATON_WINDOW_GL=off)"),
        _ if has_render_node() => "on (this machine has a GPU)",
        _ => leave_gl_out("off (no GPU: software OpenGL would only cost memory)"),
    };
    let _ = CHOICE.set(choice);
}

/// Logs what [`prepare`] decided.
pub fn log_choice() {
    if let Some(choice) = CHOICE.get() {
        tracing::info!("the window's OpenGL: {choice}");
    }
}

fn leave_gl_out(why: &'static str) -> &'static str {
    // GTK reads GDK_GL when it starts; inherited by the web process, it changes nothing there
    // (that process draws through EGL, not GDK).
    std::env::set_var("GDK_GL", "disable");
    let theirs = std::env::var_os(EGL_VENDOR_DIRS);
    std::env::set_var(EGL_VENDOR_DIRS, "/nonexistent/baton-no-egl-vendors");
    let loaded = load_egl_vendors();
    // The web process and anything else started later see the environment as it was.
    match theirs {
        Some(dirs) => std::env::set_var(EGL_VENDOR_DIRS, dirs),
        None => std::env::remove_var(EGL_VENDOR_DIRS),
    }
    if loaded {
        why
    } else {
        "off for GTK only (no EGL library to prepare)"
    }
}

/// Whether the machine has a GPU that Mesa (or another driver) can render on.
fn has_render_node() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// Makes libglvnd's EGL read its vendor list now. The library stays loaded (WebKit links it too),
/// so the list it read is the one WebKit's display will find.
fn load_egl_vendors() -> bool {
    const EGL_EXTENSIONS: c_int = 0x3055;
    type QueryString = unsafe extern "C" fn(*mut c_void, c_int) -> *const c_char;
    let name = c"libEGL.so.1";
    // SAFETY: dlopen/dlsym with valid C strings; the handle is deliberately never closed.
    let query = unsafe {
        let egl = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if egl.is_null() {
            return false;
        }
        libc::dlsym(egl, c"eglQueryString".as_ptr())
    };
    if query.is_null() {
        return false;
    }
    // SAFETY: eglQueryString has this signature in every EGL; with EGL_NO_DISPLAY (null) it
    // answers the client extensions, which makes libglvnd load its vendors. The answer itself
    // (empty, with no vendor) is not needed.
    unsafe {
        let query: QueryString = std::mem::transmute::<*mut c_void, QueryString>(query);
        query(std::ptr::null_mut(), EGL_EXTENSIONS);
    }
    true
}
