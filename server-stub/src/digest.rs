//! Content hashes used for dedupe (payloads, tokens, idempotency keys).

use protocol::v1::SyncPayload;
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The program's contact lookup key: the previous snapshot's, else 32 fresh random bytes (hex).
/// Kept across program versions so the tills' cached contact keys stay valid.
pub fn lookup_key_for(previous: Option<&protocol::rules::RulesSnapshot>) -> String {
    previous
        .and_then(|s| s.lookup_key.clone())
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 32]>()))
}

/// Hash of an item's payload in its canonical (re-serialised) form: dedupe compares these.
pub fn payload_hash(payload: &SyncPayload) -> String {
    sha256_hex(&serde_json::to_vec(payload).expect("wire types serialise"))
}
