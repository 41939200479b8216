//! Content hashes used for dedupe (payloads, tokens, idempotency keys).

use protocol::v1::{Receipt, SyncPayload};
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

/// A receipt's JSON (its stored payload) and the [`payload_hash`] of it as a sync item
/// (`{"type":"receipt","body":<the receipt's JSON>}`). The JSON is `text` when given — the
/// receipt's text as it came in the request, which parsed as `r` (so it holds exactly `r`'s
/// fields) — else `r` serialised. The agent sends serde's serialisation, so its texts hash as
/// the canonical form; another layout of the same receipt is caught by [`same_receipt`].
pub fn receipt_payload(r: &Receipt, text: Option<&str>) -> (std::sync::Arc<str>, String) {
    // Shared: the stored receipt gets this text without another copy.
    let body: std::sync::Arc<str> = match text {
        Some(t) => t.into(),
        None => serde_json::to_string(r).expect("wire types serialise").into(),
    };
    let mut h = Sha256::new();
    h.update(br#"{"type":"receipt","body":"#);
    h.update(body.as_bytes());
    h.update(b"}");
    let hash = hex::encode(h.finalize());
    (body, hash)
}

/// Whether two receipts are the same content: equal in the canonical (serialised) form, so
/// `1.0` and `1.00` differ as they did when every hash was of that form.
pub fn same_receipt(a: &Receipt, b: &Receipt) -> bool {
    serde_json::to_vec(a).ok() == serde_json::to_vec(b).ok()
}
