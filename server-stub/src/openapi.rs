//! The OpenAPI 3.1 document, derived from the handlers and the wire types (see `crate::http`).
//! A renamed field in `protocol` changes the document, and the test `openapi_json_is_current`
//! fails until `server-stub/openapi.json` is regenerated:
//!
//! ```sh
//! cargo run -p server-stub -- openapi > server-stub/openapi.json
//! ```

use serde_json::Value;

/// The whole document.
pub fn document() -> Value {
    crate::http::openapi_document()
}

pub fn document_pretty() -> String {
    let mut s = serde_json::to_string_pretty(&document()).expect("document serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::samples;
    use protocol::v1::{ChangeFeed, ErrorBody, Quote, SyncBatch};

    /// Fails when `server-stub/openapi.json` no longer matches the code. Regenerate with
    /// `cargo run -p server-stub -- openapi > server-stub/openapi.json`.
    #[test]
    fn openapi_json_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        let current: Value = document();
        let stored: Value = serde_json::from_str(&checked_in).unwrap_or(Value::Null);
        assert!(
            stored == current,
            "{} is stale; regenerate with `cargo run -p server-stub -- openapi > server-stub/openapi.json`",
            path.display()
        );
    }

    #[test]
    fn every_operation_answers_errors_as_problem_details() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 15, "{}", paths.len());
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("200"), "{method} {path}");
                for (status, r) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            r["content"]["application/problem+json"].is_object(),
                            "{method} {path} {status}: {r}"
                        );
                    }
                }
            }
        }
        // Required fields and tagged unions are in the schemas.
        let q = &doc["components"]["schemas"]["Receipt"];
        assert!(q["required"].as_array().unwrap().iter().any(|f| f == "id"), "{q}");
        let quotes = samples("Quote");
        let kinds: Vec<&str> = quotes.iter().map(|q| q["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["customer", "unknown_card", "blocked", "replaced"]);
    }

    #[test]
    fn samples_round_trip_through_the_wire_types() {
        serde_json::from_value::<SyncBatch>(samples("SyncBatch").remove(0)).unwrap();
        serde_json::from_value::<ChangeFeed>(samples("ChangeFeed").remove(0)).unwrap();
        serde_json::from_value::<ErrorBody>(samples("ErrorBody").remove(0)).unwrap();
        for q in samples("Quote") {
            serde_json::from_value::<Quote>(q).unwrap();
        }
    }
}
