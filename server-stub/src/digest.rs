//! Content hashes used for dedupe (payloads, tokens, idempotency keys).

use protocol::v1::SyncPayload;
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hash of an item's payload in its canonical (re-serialised) form: dedupe compares these.
pub fn payload_hash(payload: &SyncPayload) -> String {
    sha256_hex(&serde_json::to_vec(payload).expect("wire types serialise"))
}
