//! A tiny element tree over quick-xml for the XML receipt formats. Element and attribute names are
//! *local* names (namespace prefixes dropped: POSLog and fiscal files come in several namespaces).
//! Each element remembers its byte offset so errors can name a line.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::text::Lines;
use super::ParseError;

/// Deeper nesting than this is refused (no receipt format comes close; protects the stack).
const MAX_DEPTH: usize = 128;

#[derive(Debug, Default)]
pub(crate) struct El {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<El>,
    /// 1-based line of the start tag.
    pub line: usize,
}

impl El {
    pub fn child(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Follow a path of child names.
    pub fn path(&self, path: &[&str]) -> Option<&El> {
        let mut cur = self;
        for p in path {
            cur = cur.child(p)?;
        }
        Some(cur)
    }

    pub fn text_of(&self, path: &[&str]) -> Option<&str> {
        self.path(path).map(|e| e.text.trim())
    }

    /// First element with this name in document order (self included).
    pub fn find(&self, name: &str) -> Option<&El> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    pub fn flag(&self, name: &str) -> bool {
        self.attr(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
    }
}

fn local(name: &[u8]) -> String {
    let n = match name.iter().rposition(|b| *b == b':') {
        Some(p) => &name[p + 1..],
        None => name,
    };
    String::from_utf8_lossy(n).into_owned()
}

fn start(lines: &Lines, e: &BytesStart<'_>, offset: usize) -> Result<El, ParseError> {
    let line = lines.line(offset);
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| {
            ParseError::new(format!("malformed XML attribute: {err}"))
                .line(line)
                .field(local(e.name().as_ref()))
        })?;
        let key = a.key.as_ref();
        if key.starts_with(b"xmlns") {
            continue;
        }
        let v = a.unescape_value().map_err(|err| {
            ParseError::new(format!("malformed XML attribute value: {err}"))
                .line(line)
                .field(local(key))
        })?;
        attrs.push((local(key), v.into_owned()));
    }
    Ok(El {
        name: local(e.name().as_ref()),
        attrs,
        text: String::new(),
        children: Vec::new(),
        line,
    })
}

/// Parse a whole document (already decoded to UTF-8) and return its root element.
pub(crate) fn parse(src: &str) -> Result<El, ParseError> {
    let lines = Lines::new(src);
    let line_of = |_: &str, off: usize| lines.line(off);
    let mut r = Reader::from_str(src);
    r.config_mut().trim_text(true);
    let mut stack: Vec<El> = Vec::new();
    let mut root: Option<El> = None;
    loop {
        let offset = r.buffer_position() as usize;
        let ev = r.read_event().map_err(|e| {
            let pos = r.error_position() as usize;
            ParseError::new(format!("malformed XML: {e}")).line(line_of(src, pos))
        })?;
        match ev {
            Event::Start(e) => {
                // `<` + name/attributes + `>`: the tag's own offset, not the whitespace before it.
                let offset = (r.buffer_position() as usize).saturating_sub(e.len() + 2);
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::new(format!("XML nested deeper than {MAX_DEPTH} elements"))
                        .line(line_of(src, offset)));
                }
                if root.is_some() && stack.is_empty() {
                    return Err(ParseError::new("more than one root element")
                        .line(line_of(src, offset))
                        .field(local(e.name().as_ref())));
                }
                stack.push(start(&lines, &e, offset)?);
            }
            Event::Empty(e) => {
                let offset = (r.buffer_position() as usize).saturating_sub(e.len() + 3);
                let el = start(&lines, &e, offset)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => {
                        return Err(ParseError::new("more than one root element")
                            .line(el.line)
                            .field(el.name))
                    }
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| ParseError::new("unexpected closing tag").line(line_of(src, offset)))?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t
                    .unescape()
                    .map_err(|e| ParseError::new(format!("malformed XML text: {e}")).line(line_of(src, offset)))?;
                match stack.last_mut() {
                    Some(p) => p.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => {
                        return Err(ParseError::new("text outside the root element")
                            .line(line_of(src, offset))
                            .value(&s))
                    }
                }
            }
            Event::CData(t) => {
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(ParseError::new(format!(
            "file ends before <{}> (opened on line {}) is closed",
            open.name, open.line
        ))
        .line(line_of(src, src.len()))
        .field(open.name.clone()));
    }
    root.ok_or_else(|| ParseError::new("no XML element in the file"))
}

/// Root element's local name, looking inside a SOAP envelope. For [`super::sniff`].
pub(crate) fn sniff_root(s: &str) -> Option<&'static str> {
    let mut r = Reader::from_str(s);
    let mut depth = 0usize;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let n = local(e.name().as_ref());
                match n.as_str() {
                    "POSLog" | "Transaction" => return Some("poslog"),
                    "RacunZahtjev" => return Some("hr_fiscal"),
                    "RegisterReceiptRequest" => return Some("ekasa"),
                    "Envelope" | "Body" | "Header" if depth < 8 => depth += 1,
                    _ if depth == 0 => return None,
                    _ => {}
                }
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
