//! A JSON tree that keeps each value's source line and numbers as their literal text, so amounts
//! become `Decimal` exactly (no float on the way) and errors can name a line. Built on
//! `serde_json::value::RawValue` (serde_json validates syntax and bounds nesting at 128).

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::text::{line_of, parse_decimal, parse_json_number, Lines};
use super::ParseError;

#[derive(Debug)]
pub(crate) enum JVal<'a> {
    Null,
    Bool(bool),
    Num(&'a str),
    Str(String),
    Arr(Vec<JNode<'a>>),
    Obj(Vec<(String, JNode<'a>)>),
}

#[derive(Debug)]
pub(crate) struct JNode<'a> {
    pub line: usize,
    pub v: JVal<'a>,
}

struct Pairs<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some((k, raw)) = m.next_entry::<String, &'de RawValue>()? {
                    v.push((k, raw));
                }
                Ok(Pairs(v))
            }
        }
        d.deserialize_map(V)
    }
}

fn json_error(src: &str, e: serde_json::Error) -> ParseError {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(p) => msg[..p].to_string(),
        None => msg,
    };
    let line = if e.line() > 0 {
        Some(e.line())
    } else {
        Some(line_of(src, src.len()))
    };
    ParseError::new(format!("malformed JSON: {msg}")).line(line)
}

/// The source text of each element of the JSON array `array_text` (a bad receipt's extract: the
/// element alone, as the file wrote it).
pub(crate) fn element_texts(array_text: &str) -> Result<Vec<String>, ParseError> {
    let raw: Vec<&RawValue> = serde_json::from_str(array_text).map_err(|e| json_error(array_text, e))?;
    Ok(raw.into_iter().map(|r| r.get().to_string()).collect())
}

/// The source text of `key`'s value in the JSON object `object_text`, if it has that key.
pub(crate) fn member_text(object_text: &str, key: &str) -> Result<Option<String>, ParseError> {
    let Pairs(pairs) = serde_json::from_str(object_text).map_err(|e| json_error(object_text, e))?;
    Ok(pairs
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.get().to_string()))
}

/// Parse a whole JSON document.
pub(crate) fn parse(src: &str) -> Result<JNode<'_>, ParseError> {
    let raw: &RawValue = serde_json::from_str(src).map_err(|e| json_error(src, e))?;
    let lines = Lines::new(src);
    build(raw, src, &lines).map_err(|e| json_error(src, e))
}

fn build<'a>(raw: &'a RawValue, base: &'a str, lines: &Lines) -> Result<JNode<'a>, serde_json::Error> {
    let s = raw.get().trim();
    let off = (s.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
    let line = lines.line(off);
    let v = match s.as_bytes().first() {
        Some(b'{') => {
            let Pairs(pairs) = serde_json::from_str(s)?;
            JVal::Obj(
                pairs
                    .into_iter()
                    .map(|(k, r)| Ok((k, build(r, base, lines)?)))
                    .collect::<Result<_, serde_json::Error>>()?,
            )
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(s)?;
            JVal::Arr(
                items
                    .into_iter()
                    .map(|r| build(r, base, lines))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(b'"') => JVal::Str(serde_json::from_str(s)?),
        Some(b't') => JVal::Bool(true),
        Some(b'f') => JVal::Bool(false),
        Some(b'n') => JVal::Null,
        _ => JVal::Num(s),
    };
    Ok(JNode { line, v })
}

impl<'a> JNode<'a> {
    pub fn get(&self, key: &str) -> Option<&JNode<'a>> {
        match &self.v {
            JVal::Obj(p) => p.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Present and not `null`.
    pub fn some(&self, key: &str) -> Option<&JNode<'a>> {
        self.get(key).filter(|n| !matches!(n.v, JVal::Null))
    }

    pub fn kind(&self) -> &'static str {
        match self.v {
            JVal::Null => "null",
            JVal::Bool(_) => "a boolean",
            JVal::Num(_) => "a number",
            JVal::Str(_) => "a string",
            JVal::Arr(_) => "an array",
            JVal::Obj(_) => "an object",
        }
    }

    fn show(&self) -> String {
        match &self.v {
            JVal::Num(n) => n.to_string(),
            JVal::Str(s) => s.clone(),
            JVal::Bool(b) => b.to_string(),
            _ => self.kind().to_string(),
        }
    }

    pub fn err(&self, field: &str, msg: impl Into<String>) -> ParseError {
        ParseError::new(msg).line(self.line).field(field).value(&self.show())
    }

    /// A string; numbers are accepted as their literal text (`"receiptNumber": 17`).
    pub fn as_text(&self, field: &str) -> Result<String, ParseError> {
        match &self.v {
            JVal::Str(s) => Ok(s.clone()),
            JVal::Num(n) => Ok(n.to_string()),
            _ => Err(self.err(field, format!("expected a string, found {}", self.kind()))),
        }
    }

    /// A decimal: a JSON number (its literal text) or a string (`"12.90"`).
    pub fn as_decimal(&self, field: &str) -> Result<Decimal, ParseError> {
        let d = match &self.v {
            JVal::Num(n) => parse_json_number(n),
            JVal::Str(s) => parse_decimal(s, Some('.')),
            _ => return Err(self.err(field, format!("expected a number, found {}", self.kind()))),
        };
        d.ok_or_else(|| self.err(field, "not a number (or out of range)"))
    }

    pub fn as_bool(&self, field: &str) -> Result<bool, ParseError> {
        match &self.v {
            JVal::Bool(b) => Ok(*b),
            JVal::Str(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            JVal::Str(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(self.err(field, format!("expected true or false, found {}", self.kind()))),
        }
    }

    pub fn as_array(&self, field: &str) -> Result<&[JNode<'a>], ParseError> {
        match &self.v {
            JVal::Arr(a) => Ok(a),
            _ => Err(self.err(field, format!("expected an array, found {}", self.kind()))),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = (&str, &JNode<'a>)> {
        let pairs: &[(String, JNode<'a>)] = match &self.v {
            JVal::Obj(p) => p,
            _ => &[],
        };
        pairs.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn is_object(&self) -> bool {
        matches!(self.v, JVal::Obj(_))
    }
}

/// For [`super::sniff`]: protocol JSON vs eKasa JSON by their keys.
pub(crate) fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let (s, _) = super::text::decode(bytes, encoding_rs::UTF_8).ok()?;
    let root = parse(&s).ok()?;
    let first = match &root.v {
        JVal::Arr(a) => a.first()?,
        _ => &root,
    };
    let obj = match first.some("request") {
        Some(r) if r.is_object() => r,
        _ => first,
    };
    if obj.get("pos_receipt_no").is_some() {
        return Some("json");
    }
    // A Square order: its location with items or a total, or (an export that left the location
    // out) items beside a total in Square's Money shape `{"amount": …}`.
    let money = |o: &JNode, k: &str| o.some(k).is_some_and(|m| m.get("amount").is_some());
    let square_order = |o: &JNode| {
        o.is_object()
            && ((o.get("location_id").is_some() && (o.get("line_items").is_some() || o.get("total_money").is_some()))
                || (o.get("line_items").is_some() && money(o, "total_money")))
    };
    let listed = match first.some("orders").map(|l| &l.v) {
        Some(JVal::Arr(a)) => a.first(),
        _ => None,
    };
    if first.some("order").is_some_and(square_order) || listed.is_some_and(square_order) || square_order(first) {
        return Some("square");
    }
    if ["receiptType", "paragonNumber", "cashRegisterCode", "receiptNumber"]
        .iter()
        .any(|k| obj.get(k).is_some())
    {
        return Some("ekasa");
    }
    None
}
