//! The body of `POST /v1/sync`, read once. The usual batch (receipts only, as the agent sends
//! them) takes a fast path: one typed parse of each receipt straight from the request bytes, with
//! what the published schema says beyond the types checked in that same parse
//! ([`protocol::wire::strictly`]: decimals and card numbers are strings of a pattern, the parts
//! are objects), with no JSON tree built and no generic schema walk. Anything the fast path does
//! not take — another item type, a number where the contract wants a string, any error at all —
//! goes the general way (`extract::parse_json` + the schema check
//! of the OpenAPI document), which answers exactly as before. So the fast path only ever accepts
//! a body the general way accepts too, giving the same `SyncBatch`; it never refuses anything.
//! The fast path also keeps where each receipt's text is in the body: the service stores and
//! hashes that text as it came instead of serialising the parsed receipt again.

use axum::extract::{FromRequest, Request};
use protocol::v1::{Receipt, SyncBatch, SyncItem, SyncPayload};
use protocol::{StoreId, TillId};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::extract::{parse_checked, read_json_bytes, Contract};
use crate::error::ApiError;

/// A sync batch; see the module doc.
pub struct SyncBody {
    pub batch: SyncBatch,
    /// The request body, and where each item's receipt text is in it (fast path only).
    bytes: axum::body::Bytes,
    spans: Vec<std::ops::Range<usize>>,
}

impl SyncBody {
    /// Each item's receipt as the request's text, by item index (empty when the general way
    /// parsed the body).
    pub fn texts(&self) -> Vec<Option<&str>> {
        let Ok(text) = std::str::from_utf8(&self.bytes) else {
            return Vec::new();
        };
        self.spans.iter().map(|r| text.get(r.clone())).collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for SyncBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let contract = req.extensions().get::<std::sync::Arc<Contract>>().cloned();
        let bytes = read_json_bytes(req, state).await?;
        if let Some((batch, spans)) = fast_batch(&bytes) {
            return Ok(SyncBody { batch, bytes, spans });
        }
        Ok(SyncBody {
            batch: parse_checked(&bytes, contract.as_deref())?,
            bytes: Default::default(),
            spans: Vec::new(),
        })
    }
}

/// A JSON object's members, values unparsed. Only an object reads as this (serde's derived
/// structs also take an array, the schema does not); keys and values are borrowed from the
/// request, so an escaped key fails here (the general way takes it).
struct Obj<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Obj<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Obj<'de>, A::Error> {
                let mut out = Vec::with_capacity(12);
                while let Some(kv) = m.next_entry::<&'de str, &'de RawValue>()? {
                    out.push(kv);
                }
                Ok(Obj(out))
            }
        }
        d.deserialize_map(Members)
    }
}

impl<'a> Obj<'a> {
    /// The members if their keys are exactly `keys` (each once, any order).
    fn exactly<const N: usize>(&self, keys: [&str; N]) -> Option<[&'a RawValue; N]> {
        if self.0.len() != N {
            return None;
        }
        let mut out: [Option<&'a RawValue>; N] = [None; N];
        for (k, v) in &self.0 {
            let i = keys.iter().position(|x| x == k)?;
            if out[i].replace(v).is_some() {
                return None;
            }
        }
        Some(out.map(|v| v.expect("every key seen once")))
    }
}

/// A batch's envelope in one pass: its members each once, no other, the items' members unparsed.
struct Envelope<'a> {
    version: &'a RawValue,
    store_id: &'a RawValue,
    till_id: &'a RawValue,
    items: Vec<Obj<'a>>,
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sync batch object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Envelope<'de>, A::Error> {
                use serde::de::Error;
                let (mut version, mut store_id, mut till_id, mut items) = (None, None, None, None);
                while let Some(k) = m.next_key::<&'de str>()? {
                    let seen = match k {
                        "version" => version.replace(m.next_value()?).is_some(),
                        "store_id" => store_id.replace(m.next_value()?).is_some(),
                        "till_id" => till_id.replace(m.next_value()?).is_some(),
                        "items" => items.replace(m.next_value()?).is_some(),
                        other => return Err(A::Error::unknown_field(other, &[])),
                    };
                    if seen {
                        return Err(A::Error::custom(format_args!("{k} twice")));
                    }
                }
                let missing = |name| A::Error::missing_field(name);
                Ok(Envelope {
                    version: version.ok_or_else(|| missing("version"))?,
                    store_id: store_id.ok_or_else(|| missing("store_id"))?,
                    till_id: till_id.ok_or_else(|| missing("till_id"))?,
                    items: items.ok_or_else(|| missing("items"))?,
                })
            }
        }
        d.deserialize_map(Members)
    }
}

/// The batch and where each item's receipt text is in `bytes`, if the fast path takes it (see
/// the module doc), else None.
pub fn fast_batch(bytes: &[u8]) -> Option<(SyncBatch, Vec<std::ops::Range<usize>>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let Envelope {
        version,
        store_id,
        till_id,
        items: raw_items,
    } = serde_json::from_str(text).ok()?;
    let mut items = Vec::with_capacity(raw_items.len());
    let mut spans = Vec::with_capacity(raw_items.len());
    for it in &raw_items {
        let (item, body) = fast_item(it)?;
        // Where the receipt's text is: its offset in the body (it is borrowed from `text`).
        let start = body.get().as_ptr() as usize - text.as_ptr() as usize;
        items.push(item);
        spans.push(start..start + body.get().len());
    }
    let batch = SyncBatch {
        version: serde_json::from_str(version.get()).ok()?,
        store_id: serde_json::from_str::<StoreId>(store_id.get()).ok()?,
        till_id: serde_json::from_str::<TillId>(till_id.get()).ok()?,
        items,
    };
    Some((batch, spans))
}

/// One item of the fast path: a receipt, parsed once with the contract's checks on
/// ([`protocol::wire::strictly`]: decimals and the card strings of their patterns, the body and its
/// parts objects), and its text.
fn fast_item<'a>(it: &Obj<'a>) -> Option<(SyncItem, &'a RawValue)> {
    let [item_id, kind, body] = it.exactly(["item_id", "type", "body"])?;
    if kind.get() != "\"receipt\"" || !body.get().starts_with('{') {
        return None;
    }
    let receipt = protocol::wire::strictly(|| serde_json::from_str::<Receipt>(body.get())).ok()?;
    let item = SyncItem {
        item_id: serde_json::from_str(item_id.get()).ok()?,
        payload: SyncPayload::Receipt(receipt),
    };
    Some((item, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn contract() -> &'static Contract {
        static C: std::sync::OnceLock<Contract> = std::sync::OnceLock::new();
        C.get_or_init(|| Contract::new(&crate::http::openapi_document(), &["SyncBatch"]))
    }

    /// A batch of receipts as the agent sends them, with every optional part present.
    fn batch() -> Value {
        json!({"version": "v1", "store_id": "CZ-PRG-01", "till_id": "T1", "items": [
            {"item_id": "2be804bbdac84863d97a95790b358ab6", "type": "receipt", "body": {
                "id": "2be804bbdac84863d97a95790b358ab6", "store_id": "CZ-PRG-01", "till_id": "T1",
                "pos_receipt_no": "000123", "issued_at": "2026-11-23T10:15:00+01:00", "currency": "CZK",
                "total": "-1234.50", "card": "1900 0000-0000'0017",
                "original": {"receipt_id": "0123456789abcdef0123456789abcdef", "pos_receipt_no": "000100"},
                "lines": [
                    {"sku": "8594001234567", "name": "Šampon", "category": "drogerie", "quantity": "0.350",
                     "unit_price": "129.90", "line_total": "45.47", "vat_rate": "21", "kind": "sale"},
                    {"sku": null, "name": "Sleva", "category": null, "quantity": "1", "unit_price": "-10",
                     "line_total": "-10", "vat_rate": null, "kind": "discount"}
                ],
                "vat": [{"rate": "21", "base": "100.00", "amount": "21.00"}]
            }},
            {"type": "receipt", "body": {
                "id": "3be804bbdac84863d97a95790b358ab6", "store_id": "CZ-PRG-01", "till_id": "T1",
                "pos_receipt_no": "000124", "issued_at": "2026-11-23T10:16:00Z", "currency": "CZK",
                "total": "0", "card": null, "original": null
            }, "item_id": "3be804bbdac84863d97a95790b358ab6"}
        ]})
    }

    fn general(v: &Value) -> Result<SyncBatch, ApiError> {
        parse_checked(&serde_json::to_vec(v).unwrap(), Some(contract()))
    }

    #[test]
    fn the_agents_batches_take_the_fast_path_with_the_same_result() {
        let v = batch();
        let bytes = serde_json::to_vec(&v).unwrap();
        let (fast, spans) = fast_batch(&bytes).expect("fast path taken");
        assert_eq!(fast, general(&v).expect("valid"));
        // Each span is that item's receipt text: it parses to the item's receipt.
        assert_eq!(spans.len(), fast.items.len());
        for (span, item) in spans.iter().zip(&fast.items) {
            let text = std::str::from_utf8(&bytes[span.clone()]).unwrap();
            assert!(text.starts_with('{') && text.ends_with('}'), "{text}");
            let SyncPayload::Receipt(r) = &item.payload else {
                panic!("a receipt")
            };
            assert_eq!(&serde_json::from_str::<Receipt>(text).unwrap(), r);
        }
        // The agent's own serialisation of that batch too.
        let again = serde_json::to_vec(&fast).unwrap();
        assert_eq!(fast_batch(&again).expect("fast path taken").0, fast);
    }

    #[test]
    fn a_big_batch_is_the_same_both_ways_and_one_bad_item_anywhere_leaves_it_to_the_general_way() {
        let mut v = batch();
        let items = v["items"].as_array().unwrap().clone();
        let many: Vec<Value> = (0..48).map(|i| items[i % 2].clone()).collect();
        v["items"] = Value::Array(many);
        let bytes = serde_json::to_vec(&v).unwrap();
        let (fast, spans) = fast_batch(&bytes).expect("fast path taken");
        assert_eq!(fast, general(&v).expect("valid"));
        assert_eq!((fast.items.len(), spans.len()), (48, 48));
        for (span, item) in spans.iter().zip(&fast.items) {
            let SyncPayload::Receipt(r) = &item.payload else {
                panic!("a receipt")
            };
            assert_eq!(
                &serde_json::from_str::<Receipt>(std::str::from_utf8(&bytes[span.clone()]).unwrap()).unwrap(),
                r
            );
        }
        // A number where the contract wants a decimal string, near the start, at the end.
        for bad in [1, 48 - 1] {
            let mut w = v.clone();
            w["items"][bad]["body"]["total"] = json!(12.5);
            assert!(fast_batch(&serde_json::to_vec(&w).unwrap()).is_none(), "item {bad}");
        }
    }

    /// Each string, number or null in the batch replaced by values at the edges of the schema
    /// and of serde: the fast path either leaves the body to the general way or gives what the
    /// general way gives — never accepts what the general way refuses.
    #[test]
    fn the_fast_path_never_takes_what_the_general_way_refuses() {
        let odd: Vec<Value> = [
            json!(1),
            json!(1.5),
            json!(true),
            json!(null),
            json!(""),
            json!("1e3"),
            json!("+1"),
            json!(".5"),
            json!("5."),
            json!(" 1"),
            json!("1 "),
            json!("1_000"),
            json!("0x10"),
            json!("1234567890123456"),
            json!("1.1234567890123"),
            json!("-0"),
            json!("\u{0031}"),
            json!("1\n"),
            json!("abc"),
            json!("1900a"),
            json!("\t1900000000000017"),
            json!("ß-/."),
            json!("2026-11-23 10:15:00+01:00"),
            json!("2026-11-23t10:15:00z"),
            json!("2026-11-23T10:15:00+0100"),
            json!("SALE"),
            json!("czk"),
            json!([]),
            json!({}),
        ]
        .into();
        let mut paths = Vec::new();
        leaves(&batch(), String::new(), &mut paths);
        assert!(paths.len() > 40, "{paths:?}");
        let (mut fast_taken, mut tried) = (0, 0);
        for p in &paths {
            for o in &odd {
                let mut v = batch();
                *v.pointer_mut(p).unwrap() = o.clone();
                tried += 1;
                let bytes = serde_json::to_vec(&v).unwrap();
                if let Some((fast, _)) = fast_batch(&bytes) {
                    fast_taken += 1;
                    match general(&v) {
                        Ok(g) => assert_eq!(fast, g, "{p} = {o}"),
                        Err(e) => panic!("{p} = {o}: fast path took what the general way refuses: {e:?}"),
                    }
                }
            }
        }
        assert!(fast_taken > 0 && fast_taken < tried, "{fast_taken} of {tried}");
        // Added, removed and escaped parts.
        let mut cases = Vec::new();
        for p in [
            "",
            "/items/0",
            "/items/0/body",
            "/items/0/body/lines/0",
            "/items/0/body/vat/0",
            "/items/0/body/original",
        ] {
            // The object written as an array of its values (serde's structs take that).
            let mut v = batch();
            let values: Vec<Value> = v.pointer(p).unwrap().as_object().unwrap().values().cloned().collect();
            *v.pointer_mut(p).unwrap() = Value::Array(values);
            cases.push(serde_json::to_vec(&v).unwrap());
            let mut v = batch();
            v.pointer_mut(p)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert("extra".into(), json!("1"));
            cases.push(serde_json::to_vec(&v).unwrap());
            let mut v = batch();
            let keys: Vec<String> = v.pointer(p).unwrap().as_object().unwrap().keys().cloned().collect();
            for k in keys {
                let mut w = v.clone();
                w.pointer_mut(p).unwrap().as_object_mut().unwrap().remove(&k);
                cases.push(serde_json::to_vec(&w).unwrap());
            }
            v.pointer_mut(p).unwrap().as_object_mut().unwrap().clear();
            cases.push(serde_json::to_vec(&v).unwrap());
        }
        let text = String::from_utf8(serde_json::to_vec(&batch()).unwrap()).unwrap();
        cases.push(text.replace("\"129.90\"", "\"\\u0031\"").into_bytes());
        cases.push(text.replace("\"129.90\"", "129.90").into_bytes());
        cases.push(
            text.replace("\"item_id\":\"2be", "\"item_id\":\"x\",\"item_id\":\"2be")
                .into_bytes(),
        );
        cases.push(
            text.replace("\"total\":\"0\"", "\"total\":\"0\",\"total\":\"1\"")
                .into_bytes(),
        );
        cases.push(format!("{text} ").into_bytes());
        cases.push(format!("{text}x").into_bytes());
        cases.push(
            text.replace("\"type\":\"receipt\"", "\"type\":\"registration\"")
                .into_bytes(),
        );
        for bytes in cases {
            if let Some((fast, _)) = fast_batch(&bytes) {
                let g = parse_checked::<SyncBatch>(&bytes, Some(contract()));
                assert_eq!(Some(&fast), g.as_ref().ok(), "{}", String::from_utf8_lossy(&bytes));
            }
        }
    }

    fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, x)| leaves(x, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| leaves(x, format!("{at}/{i}"), out)),
            _ => out.push(at),
        }
    }
}
