//! What an agent wants to be notified of on this device: which events, with sound or not, and
//! quiet hours. Kept in the device's cache (the `settings` table, never replaced by a snapshot);
//! the type is the protocol's, since the hub applies the same settings to pushes.

pub use baton_protocol::prefs::*;
