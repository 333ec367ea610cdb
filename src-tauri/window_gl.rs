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

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// What was decided at start, logged once logging is up.
static CHOICE: OnceLock<&'static str> = OnceLock::new();

/// libglvnd reads these once, when EGL is first used, to find its vendors (Mesa's among them):
/// the list of files if set, else the directories.
const EGL_VENDOR_FILES: &str = "__EGL_VENDOR_LIBRARY_FILENAMES";
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
    // GTK reads GDK_GL when it starts. Inherited by the web process it changes nothing there (that
    // process draws through EGL, not GDK), nor in most programs the app starts (browsers do not
    // draw through GDK's GL); the few GTK programs that do would, on this machine, get software GL.
    std::env::set_var("GDK_GL", "disable");
    let theirs = [EGL_VENDOR_FILES, EGL_VENDOR_DIRS].map(|name| (name, std::env::var_os(name)));
    for (name, _) in &theirs {
        std::env::set_var(name, "/nonexistent/baton-no-egl-vendors");
    }
    let vendors = egl_vendors();
    // The web process and anything else started later see the environment as it was.
    for (name, value) in theirs {
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
    match vendors {
        Some(false) => why,
        // Not libglvnd's EGL (or none): its vendors are not ours to choose.
        Some(true) => "off for GTK only (this EGL found its driver anyway)",
        None => "off for GTK only (no EGL library)",
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

/// Makes libglvnd's EGL read its vendor list now, and answers whether it found a vendor (`None`:
/// no EGL). The library stays loaded (WebKit links it too), so the list it read is the one
/// WebKit's display will find.
fn egl_vendors() -> Option<bool> {
    const EGL_EXTENSIONS: c_int = 0x3055;
    type QueryString = unsafe extern "C" fn(*mut c_void, c_int) -> *const c_char;
    let name = c"libEGL.so.1";
    // SAFETY: dlopen/dlsym with valid C strings; the handle is deliberately never closed.
    let query = unsafe {
        let egl = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if egl.is_null() {
            return None;
        }
        libc::dlsym(egl, c"eglQueryString".as_ptr())
    };
    if query.is_null() {
        return None;
    }
    // SAFETY: eglQueryString has this signature in every EGL; with EGL_NO_DISPLAY (null) it
    // answers the client extensions, which makes libglvnd load its vendors. Without a vendor the
    // list is empty (libglvnd 1.6); a driver adds its own.
    let extensions = unsafe {
        let query: QueryString = std::mem::transmute::<*mut c_void, QueryString>(query);
        let answer = query(std::ptr::null_mut(), EGL_EXTENSIONS);
        if answer.is_null() {
            return Some(false);
        }
        CStr::from_ptr(answer).to_string_lossy().into_owned()
    };
    Some(!extensions.trim().is_empty())
}
