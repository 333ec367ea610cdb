//! Memory freed after a burst goes back to the system.
//!
//! glibc keeps what was freed in its arenas, for reuse, unless it happens to sit at the very top of
//! one. After a burst (thousands of handoffs into the built-in hub, the window reading long lists)
//! the app stayed about 25 MB larger than it needed to be, for as long as it ran. `malloc_trim`
//! hands those free pages back. It runs once the desk has been quiet for a moment after work, not
//! on a timer, so an idle desk never wakes for it. (Limiting glibc to fewer arenas saved as much,
//! but slowed a customer's message on its way to the screen by about 15 ms: the built-in hub's
//! threads and the window's then wait on each other's arena.)

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long the desk stays quiet before freed memory is handed back.
const QUIET: Duration = Duration::from_secs(1);

/// When work was last noted, if it has not been trimmed after yet.
struct Quiet {
    since_work: Mutex<Option<Instant>>,
    woken: Condvar,
}

static QUIET_STATE: OnceLock<Quiet> = OnceLock::new();

/// Starts the thread that trims after work (glibc only). Does nothing if already started.
pub fn start() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    if QUIET_STATE
        .set(Quiet {
            since_work: Mutex::new(None),
            woken: Condvar::new(),
        })
        .is_err()
    {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("trim-after-work".into())
        .spawn(trim_after_work);
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the thread that returns freed memory");
    }
}

/// Notes that the desk did something that allocates (an update applied, a list read).
pub fn worked() {
    let Some(quiet) = QUIET_STATE.get() else {
        return;
    };
    if let Ok(mut since) = quiet.since_work.lock() {
        let was_idle = since.is_none();
        *since = Some(Instant::now());
        if was_idle {
            quiet.woken.notify_one();
        }
    }
}

fn trim_after_work() {
    let Some(quiet) = QUIET_STATE.get() else {
        return;
    };
    let Ok(mut since) = quiet.since_work.lock() else {
        return;
    };
    loop {
        match *since {
            None => {
                since = match quiet.woken.wait(since) {
                    Ok(guard) => guard,
                    Err(_) => return,
                };
            }
            Some(last) if last.elapsed() < QUIET => {
                let left = QUIET.saturating_sub(last.elapsed());
                since = match quiet.woken.wait_timeout(since, left) {
                    Ok((guard, _)) => guard,
                    Err(_) => return,
                };
            }
            Some(_) => {
                *since = None;
                drop(since);
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: malloc_trim only returns free pages; it is safe from any thread.
                unsafe {
                    libc::malloc_trim(0);
                }
                since = match quiet.since_work.lock() {
                    Ok(guard) => guard,
                    Err(_) => return,
                };
            }
        }
    }
}
