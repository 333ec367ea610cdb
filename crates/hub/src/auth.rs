//! Agent credentials: passwords hashed with Argon2id, bearer tokens that are random and stored only
//! as their SHA-256, and the [`SignedIn`] extractor that handlers take to require a signed-in agent.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use baton_protocol::Agent;
use rand::RngCore;
use rusqlite::OptionalExtension;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::store::{get_entity, Entity, StoreError};
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

/// What the database keeps instead of a secret. Looking rows up by this hash means comparing a
/// guess never leaks how many leading characters were right.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The agent a bearer token belongs to, if it is valid and the agent is enabled.
pub fn agent_for_token(hub: &Hub, token: &str) -> Result<Option<Agent>, StoreError> {
    let hash = secret_hash(token);
    hub.store().read(|conn| {
        let agent_id: Option<String> = conn
            .prepare_cached(
                "SELECT t.agent_id FROM tokens t JOIN agents a ON a.id = t.agent_id
                 WHERE t.token_hash = ?1 AND a.disabled = 0",
            )?
            .query_row([hash], |r| r.get(0))
            .optional()?;
        match agent_id {
            Some(id) => get_entity(conn, Entity::Agent, &id),
            None => Ok(None),
        }
    })
}

/// Extracts the signed-in agent from `Authorization: Bearer <token>`, or answers 401.
pub struct SignedIn(pub Agent);

impl FromRequestParts<Hub> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?
            .to_string();
        let hub2 = hub.clone();
        let agent = tokio::task::spawn_blocking(move || agent_for_token(&hub2, &token))
            .await
            .map_err(|_| ApiError::Internal(StoreError::Poisoned))??;
        let agent = agent.ok_or(ApiError::Unauthorized)?;
        hub.touch(&agent.id);
        Ok(SignedIn(agent))
    }
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
    fn secrets_are_long_and_different_each_time() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
