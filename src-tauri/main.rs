// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // First, while this is the only thread: it may set environment variables.
    #[cfg(target_os = "linux")]
    baton_app::window_gl::prepare();
    baton_app::allocator::start();
    baton_app::run()
}
