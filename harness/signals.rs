//! SIGINT / SIGTERM cancel the running probes through their CancelToken, so
//! every probe cleans up its files, namespaces and rules on the way out. A
//! second signal gets the default action (the handler resets itself).

// sigaction has no std wrapper.
#![allow(unsafe_code)]

use std::sync::OnceLock;

use infraqual_probes::CancelToken;

static TOKEN: OnceLock<CancelToken> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    // Only atomic operations here: async-signal-safe.
    if let Some(token) = TOKEN.get() {
        token.cancel();
    }
}

/// Installs the handlers once and returns the process-wide token.
pub fn cancel_on_signals() -> CancelToken {
    let token = TOKEN.get_or_init(CancelToken::new).clone();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler and SA_RESETHAND is
        // a valid argument; the handler only touches atomics.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    token
}
