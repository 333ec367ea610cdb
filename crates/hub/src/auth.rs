//! Agent credentials: passwords hashed with Argon2id, bearer tokens that are random and stored only
//! as their SHA-256, and the [`SignedIn`] extractor that handlers take to require a signed-in agent.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use baton_protocol::Agent;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::store::StoreError;
use crate::Hub;

pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh unguessable secret: 256 random bits, hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The token of an `Authorization: Bearer <token>` header, if the request has a non-empty one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The cookie a browser's session lives in (see `web_app`).
pub const SESSION_COOKIE: &str = "baton_session";

/// The session token of a browser's `baton_session` cookie, if the request has one.
pub fn cookie_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|t| !t.is_empty())
}

/// Whether a request that a browser sent with the session cookie came from the hub's own pages.
/// `SameSite=Strict` already keeps the cookie off other sites' requests; this holds even for a
/// browser that ignores it, and for WebSocket handshakes, which other sites' pages can start.
pub fn from_own_pages(headers: &axum::http::HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site" || site == "same-site")
    {
        return false;
    }
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        // Browsers send an Origin with every cross-origin request, and with every POST and
        // WebSocket handshake: a request without one is a same-origin read.
        return true;
    };
    let Some(authority) = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, a)| a)
    else {
        return false;
    };
    // Behind a proxy the Host the hub sees may be its own address; the proxy's is forwarded.
    ["x-forwarded-host", "host"].iter().any(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|host| host.eq_ignore_ascii_case(authority))
    })
}

/// What the database keeps instead of a secret. Looking rows up by this hash means comparing a
/// guess never leaks how many leading characters were right.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// What a bearer token is worth: the agent it signs in, and the token's hash (how the hub names it
/// when revoking it).
#[derive(Debug, Clone)]
pub struct Session {
    pub agent: Agent,
    pub token_hash: String,
}

/// How often a token's last use is written back (its idle expiry only needs minutes' precision).
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The session a bearer token opens: none if the token is unknown, revoked, expired (idle past
/// the hub's `token_idle_timeout`, or older than its `token_max_age`), or its agent is disabled.
pub fn session_for_token(hub: &Hub, token: &str) -> Result<Option<Session>, StoreError> {
    session_for_hash(hub, secret_hash(token))
}

/// [`session_for_token`] by the token's hash (what an open stream keeps to re-check itself).
pub fn session_for_hash(hub: &Hub, hash: String) -> Result<Option<Session>, StoreError> {
    let now = hub.now();
    let Some(token) = hub.store().reader()?.token(&hash)? else {
        return Ok(None);
    };
    let (agent, created) = (token.agent, token.created_at.unwrap_or(now));
    let used = token.last_used_at.unwrap_or(created);
    let config = hub.config();
    let max_age =
        chrono::TimeDelta::from_std(config.token_max_age).unwrap_or(chrono::TimeDelta::MAX);
    let idle =
        chrono::TimeDelta::from_std(config.token_idle_timeout).unwrap_or(chrono::TimeDelta::MAX);
    if now - created > max_age || now - used > idle {
        tracing::info!(agent = %agent.id, "a token past its lifetime or idle limit was refused");
        return Ok(None);
    }
    // Written back often enough that a short idle limit never ends a session in use.
    let touch_every = TOUCH_EVERY.min(idle / 2);
    if now - used > touch_every {
        hub.store().write(|txn| txn.touch_token(&hash, now))?;
    }
    Ok(Some(Session {
        agent,
        token_hash: hash,
    }))
}

/// The agent a bearer token belongs to, if the token is valid (see [`session_for_token`]).
pub fn agent_for_token(hub: &Hub, token: &str) -> Result<Option<Agent>, StoreError> {
    Ok(session_for_token(hub, token)?.map(|s| s.agent))
}

/// Deletes tokens past their lifetime or idle limit; returns how many.
pub fn delete_expired_tokens(hub: &Hub) -> Result<usize, StoreError> {
    let now = hub.now();
    let config = hub.config();
    let before = |limit: std::time::Duration| {
        chrono::TimeDelta::from_std(limit)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
    };
    let (born_before, used_before) = (
        before(config.token_max_age),
        before(config.token_idle_timeout),
    );
    hub.store()
        .write(|txn| txn.remove_expired_tokens(born_before, used_before))
}

/// Extracts the signed-in agent from `Authorization: Bearer <token>`, or answers 401.
pub struct SignedIn(pub Agent);

impl FromRequestParts<Hub> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, hub).await?;
        Ok(SignedIn(session.agent))
    }
}

impl FromRequestParts<Hub> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let token = match bearer_token(parts) {
            Some(token) => token.to_string(),
            None => {
                let token = cookie_token(parts).ok_or(ApiError::Unauthorized)?;
                if !from_own_pages(&parts.headers) {
                    tracing::warn!(
                        origin = ?parts.headers.get(axum::http::header::ORIGIN),
                        "a request with the session cookie came from another site; refused"
                    );
                    return Err(ApiError::Forbidden(
                        "this session belongs to the hub's own pages".into(),
                    ));
                }
                token.to_string()
            }
        };
        let hub2 = hub.clone();
        let session = tokio::task::spawn_blocking(move || session_for_token(&hub2, &token))
            .await
            .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
        let session = session.ok_or(ApiError::Unauthorized)?;
        hub.touch(&session.agent.id);
        Ok(session)
    }
}

/// The address a request came from, when the hub serves over a socket (not in-process tests).
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Failed sign-ins, per account and per address: after a few, further tries wait (429 with
/// `Retry-After`), the wait doubling with each failure, so guessing passwords is slow.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: std::collections::HashMap<String, Failures>,
    addresses: std::collections::HashMap<std::net::IpAddr, Failures>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: chrono::DateTime<chrono::Utc>,
}

/// Failures an account may have before it waits; an address (shared by a whole office) gets more.
const ACCOUNT_FREE_TRIES: u32 = 5;
const ADDRESS_FREE_TRIES: u32 = 20;
/// The first wait, doubled per further failure up to [`MAX_WAIT_SECS`].
const FIRST_WAIT_SECS: u64 = 30;
const MAX_WAIT_SECS: u64 = 15 * 60;
/// Failures this old are forgotten.
pub(crate) const FORGET_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl Failures {
    fn wait(&self, free: u32, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
        if self.count < free || now - self.last > FORGET_AFTER {
            return None;
        }
        let secs = FIRST_WAIT_SECS
            .saturating_mul(1u64 << (self.count - free).min(16))
            .min(MAX_WAIT_SECS);
        let until = self.last + chrono::TimeDelta::seconds(secs as i64);
        (until > now).then(|| (until - now).num_seconds().max(1) as u64)
    }
}

impl LoginThrottle {
    /// How long this email and address must wait before trying again, if at all.
    pub fn wait(
        &self,
        email: &str,
        addr: Option<std::net::IpAddr>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<u64> {
        let account = self
            .accounts
            .get(&email.to_lowercase())
            .and_then(|f| f.wait(ACCOUNT_FREE_TRIES, now));
        let address = addr
            .and_then(|a| self.addresses.get(&a))
            .and_then(|f| f.wait(ADDRESS_FREE_TRIES, now));
        account.max(address)
    }

    pub fn failed(
        &mut self,
        email: &str,
        addr: Option<std::net::IpAddr>,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        // Bounded memory: a flood of made-up emails drops the old entries.
        if self.accounts.len() > 10_000 {
            self.accounts.retain(|_, f| now - f.last < FORGET_AFTER);
        }
        if self.addresses.len() > 10_000 {
            self.addresses.retain(|_, f| now - f.last < FORGET_AFTER);
        }
        let bump = |f: &mut Failures| {
            if now - f.last > FORGET_AFTER {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
        };
        let fresh = Failures {
            count: 0,
            last: now,
        };
        bump(self.accounts.entry(email.to_lowercase()).or_insert(fresh));
        if let Some(addr) = addr {
            bump(self.addresses.entry(addr).or_insert(fresh));
        }
    }

    pub fn succeeded(&mut self, email: &str) {
        self.accounts.remove(&email.to_lowercase());
    }

    /// The keys a sign-in's failures are counted under in a store several hubs share.
    pub fn keys(email: &str, addr: Option<std::net::IpAddr>) -> Vec<String> {
        let mut keys = vec![Self::account_key(email)];
        keys.extend(addr.map(|a| format!("address:{a}")));
        keys
    }

    pub fn account_key(email: &str) -> String {
        format!("account:{}", email.to_lowercase())
    }

    /// Takes in what every instance counted (see [`Self::keys`]): each count becomes the larger
    /// of this instance's and the shared one.
    pub fn merge(&mut self, shared: &[(String, u32, chrono::DateTime<chrono::Utc>)]) {
        let take = |mine: &mut Failures, count: u32, last| {
            if count > mine.count || (count == mine.count && last > mine.last) {
                *mine = Failures { count, last };
            }
        };
        for (key, count, last) in shared {
            let fresh = Failures {
                count: 0,
                last: *last,
            };
            if let Some(email) = key.strip_prefix("account:") {
                take(
                    self.accounts.entry(email.to_string()).or_insert(fresh),
                    *count,
                    *last,
                );
            } else if let Some(addr) = key
                .strip_prefix("address:")
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            {
                take(self.addresses.entry(addr).or_insert(fresh), *count, *last);
            }
        }
    }
}

/// A hash no password matches, verified when the email is unknown so that an unknown email costs
/// the same time as a wrong password and timing does not tell which emails exist.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_secret()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("Correct horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn repeated_failures_make_an_account_wait_longer_each_time_and_success_clears_it() {
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let addr = Some(std::net::IpAddr::from([10, 0, 0, 1]));
        let mut throttle = LoginThrottle::default();
        for _ in 0..ACCOUNT_FREE_TRIES - 1 {
            throttle.failed("Ana@x", addr, t0);
        }
        assert_eq!(throttle.wait("ana@x", addr, t0), None);
        throttle.failed("ana@x", addr, t0);
        assert_eq!(throttle.wait("ana@x", addr, t0), Some(FIRST_WAIT_SECS));
        throttle.failed("ana@x", addr, t0);
        assert_eq!(throttle.wait("ana@x", addr, t0), Some(2 * FIRST_WAIT_SECS));
        let later = t0 + chrono::TimeDelta::seconds(2 * FIRST_WAIT_SECS as i64);
        assert_eq!(throttle.wait("ana@x", addr, later), None);
        throttle.succeeded("ana@x");
        assert_eq!(throttle.wait("ana@x", None, t0), None);
    }

    #[test]
    fn one_address_guessing_many_accounts_is_slowed_too() {
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let addr = Some(std::net::IpAddr::from([10, 0, 0, 2]));
        let mut throttle = LoginThrottle::default();
        for i in 0..ADDRESS_FREE_TRIES {
            throttle.failed(&format!("user{i}@x"), addr, t0);
        }
        assert!(throttle.wait("someone-new@x", addr, t0).is_some());
        assert_eq!(throttle.wait("someone-new@x", None, t0), None);
    }

    #[test]
    fn secrets_are_long_and_different_each_time() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
