//! `baton-core` is everything the Baton app does that is not pixels: sign in to a hub and keep the
//! token in the OS keychain ([`token`]), follow the hub's event log into a local SQLite cache
//! ([`cache`], [`sync`]) so every conversation can be read and searched offline ([`search`]), queue
//! every agent action in a local outbox that delivers it exactly once ([`outbox`]), and emit a typed
//! [`Update`] for what an agent should notice. [`Engine`] ties these together for a signed-in
//! device. No Tauri in here: the desktop app, the mobile app, the CLI and tests drive the same code.

pub mod cache;
pub mod client;
pub mod engine;
pub mod outbox;
pub use cache::search;
pub mod prefs;
pub mod sync;
pub mod token;
pub mod typescript;

pub use cache::{
    Backfill, Cache, CacheError, CustomerView, HandoffCounts, HandoffFilter, HandoffPage,
    HandoffSort, HandoffSummary, HandoffView, Incoming, UnreadableEvent,
};
pub use client::{ClientError, HubClient};
pub use engine::{Engine, Sending, Sent};
pub use outbox::{FailureClass, OutboxError, OutboxItem, OutboxState};
pub use search::{SearchHit, SearchQuery};
pub use sync::{ConnectionState, SyncEngine, Update};
pub use token::{TokenFile, TokenStore, TokenStoreError};
