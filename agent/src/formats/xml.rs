//! XML for the receipt formats, read with `roxmltree` (a maintained, read-only DOM that keeps each
//! node's byte range). [`El`] is a thin view over a `roxmltree::Node`: element and attribute names are
//! *local* names (POSLog and fiscal files come in several namespaces and vendor prefixes), and
//! [`El::line`] turns the node's byte offset into a 1-based line for errors.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::Reader;
use roxmltree::{Document, Node, ParsingOptions};

use super::text::Lines;
use super::ParseError;

/// Deeper nesting than this is refused (no receipt format comes close; keeps recursion bounded).
const MAX_DEPTH: usize = 128;
/// More nodes than this are refused (a receipt export of ~100 MB stays well below).
const MAX_NODES: u32 = 20_000_000;

/// A parsed document and its newline index.
pub(crate) struct Doc<'i> {
    doc: Document<'i>,
    lines: Lines,
}

impl<'i> Doc<'i> {
    pub fn root(&self) -> El<'_> {
        El {
            node: self.doc.root_element(),
            lines: &self.lines,
        }
    }
}

/// An element of a [`Doc`].
#[derive(Clone, Copy)]
pub(crate) struct El<'a> {
    node: Node<'a, 'a>,
    lines: &'a Lines,
}

impl std::fmt::Debug for El<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}> (line {})", self.name(), self.line())
    }
}

impl<'a> El<'a> {
    fn wrap(&self, node: Node<'a, 'a>) -> El<'a> {
        El {
            node,
            lines: self.lines,
        }
    }

    /// Local name (prefix and namespace dropped).
    pub fn name(&self) -> &'a str {
        self.node.tag_name().name()
    }

    /// 1-based line of the start tag.
    pub fn line(&self) -> usize {
        self.lines.line(self.node.range().start)
    }

    /// The element's text as a number with `.` as the decimal separator (XML schemas' decimal);
    /// an error names the element, its line and the text.
    pub fn decimal(&self) -> Result<rust_decimal::Decimal, ParseError> {
        let raw = self.text();
        let t = raw.trim();
        super::text::parse_decimal(t, Some('.')).ok_or_else(|| {
            ParseError::new("not a number")
                .line(self.line())
                .field(self.name().to_string())
                .value(t)
        })
    }

    /// The element's own text (its direct text and CDATA children, joined; entities resolved).
    pub fn text(&self) -> Cow<'a, str> {
        let mut texts = self.node.children().filter(|c| c.is_text()).filter_map(|c| c.text());
        match (texts.next(), texts.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(a), None) => Cow::Borrowed(a),
            (Some(a), Some(b)) => {
                let mut s = String::from(a);
                s.push_str(b);
                texts.for_each(|t| s.push_str(t));
                Cow::Owned(s)
            }
        }
    }

    /// Child elements in document order.
    pub fn children(&self) -> impl Iterator<Item = El<'a>> + 'a {
        let lines = self.lines;
        self.node
            .children()
            .filter(|c| c.is_element())
            .map(move |node| El { node, lines })
    }

    pub fn child(&self, name: &str) -> Option<El<'a>> {
        self.children().find(|c| c.name() == name)
    }

    pub fn children_named<'n>(&self, name: &'n str) -> impl Iterator<Item = El<'a>> + 'n
    where
        'a: 'n,
    {
        self.children().filter(move |c| c.name() == name)
    }

    pub fn attr(&self, name: &str) -> Option<&'a str> {
        self.node.attributes().find(|a| a.name() == name).map(|a| a.value())
    }

    /// Follow a path of child names.
    pub fn path(&self, path: &[&str]) -> Option<El<'a>> {
        let mut cur = *self;
        for p in path {
            cur = cur.child(p)?;
        }
        Some(cur)
    }

    /// Trimmed text at a path of child names.
    pub fn text_of(&self, path: &[&str]) -> Option<String> {
        self.path(path).map(|e| e.text().trim().to_string())
    }

    /// First element with this name in document order (self included).
    pub fn find(&self, name: &str) -> Option<El<'a>> {
        self.node
            .descendants()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .map(|n| self.wrap(n))
    }

    /// Every element with this name in document order (self included).
    pub fn find_all<'n>(&self, name: &'n str) -> impl Iterator<Item = El<'a>> + 'n
    where
        'a: 'n,
    {
        let this = *self;
        self.node
            .descendants()
            .filter(move |n| n.is_element() && n.tag_name().name() == name)
            .map(move |n| this.wrap(n))
    }

    /// Every element with one of these names, in document order (self included).
    pub fn find_all_of<'n>(&self, names: &'n [&'n str]) -> impl Iterator<Item = El<'a>> + 'n
    where
        'a: 'n,
    {
        let this = *self;
        self.node
            .descendants()
            .filter(move |n| n.is_element() && names.contains(&n.tag_name().name()))
            .map(move |n| this.wrap(n))
    }

    /// An element of this name encloses this one.
    pub fn has_ancestor(&self, name: &str) -> bool {
        self.node
            .ancestors()
            .skip(1)
            .any(|n| n.is_element() && n.tag_name().name() == name)
    }

    /// The element's source text, start tag to end tag.
    pub fn source(&self) -> &'a str {
        &self.node.document().input_text()[self.node.range()]
    }

    /// This element's start tag declaring every namespace in scope at `inner` (a descendant), so
    /// that `inner`'s source placed directly inside it parses on its own.
    fn open_tag_for(&self, inner: &El<'a>) -> String {
        let src = self.source();
        let qname: String = src[1..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        let mut tag = format!("<{qname}");
        for ns in inner.node.namespaces() {
            if ns.uri() == "http://www.w3.org/XML/1998/namespace" {
                continue;
            }
            let uri = ns
                .uri()
                .replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;");
            match ns.name() {
                Some(p) => tag.push_str(&format!(" xmlns:{p}=\"{uri}\"")),
                None => tag.push_str(&format!(" xmlns=\"{uri}\"")),
            }
        }
        tag.push('>');
        tag
    }

    /// The close tag matching [`open_tag_for`](Self::open_tag_for).
    pub fn close_tag(&self) -> String {
        let qname: String = self.source()[1..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        format!("</{qname}>")
    }

    /// One record of the document (`self`, an element of `root`'s document) as a file of its own that
    /// the same reader takes: the whole document when the record is its root, else the record
    /// directly inside `root`'s start tag, which declares the namespaces in scope at the record.
    pub fn standalone(&self, root: El<'a>) -> String {
        if self.node == root.node {
            return self.node.document().input_text().to_string();
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n{}\n{}\n",
            root.open_tag_for(self),
            self.source(),
            root.close_tag()
        )
    }

    pub fn flag(&self, name: &str) -> bool {
        self.attr(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
    }
}

/// Parse a whole document (already decoded to UTF-8). Errors name the line roxmltree reports.
pub(crate) fn parse(src: &str) -> Result<Doc<'_>, ParseError> {
    let opt = ParsingOptions {
        // Internal DTDs occur in old exports; roxmltree bounds entity expansion itself.
        allow_dtd: true,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(src, opt).map_err(|e| match e {
        roxmltree::Error::UnclosedRootNode => unclosed(src),
        e => {
            let pos = e.pos();
            let msg = e.to_string();
            let suffix = format!(" at {}:{}", pos.row, pos.col);
            let msg = msg.strip_suffix(&suffix).unwrap_or(&msg);
            ParseError::new(format!("malformed XML: {msg} (column {})", pos.col)).line(pos.row as usize)
        }
    })?;
    let lines = Lines::new(src);
    for n in doc.descendants().filter(|n| n.is_element()) {
        if n.ancestors().take(MAX_DEPTH + 2).count() > MAX_DEPTH + 1 {
            return Err(ParseError::new(format!("XML nested deeper than {MAX_DEPTH} elements"))
                .line(lines.line(n.range().start))
                .field(n.tag_name().name().to_string()));
        }
    }
    Ok(Doc { doc, lines })
}

fn local(name: &[u8]) -> String {
    let n = match name.iter().rposition(|b| *b == b':') {
        Some(p) => &name[p + 1..],
        None => name,
    };
    String::from_utf8_lossy(n).into_owned()
}

/// The element left open at the end of a truncated file (roxmltree only says "never closed").
fn unclosed(src: &str) -> ParseError {
    let lines = Lines::new(src);
    let mut r = Reader::from_str(src);
    let mut open: Vec<(String, usize)> = Vec::new();
    loop {
        let before = r.buffer_position() as usize;
        match r.read_event() {
            Ok(Event::Start(e)) => open.push((local(e.name().as_ref()), before)),
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    match open.last() {
        Some((name, off)) => {
            let at = src[*off..].find('<').map_or(*off, |p| off + p);
            ParseError::new(format!(
                "file ends before <{name}> (opened on line {}) is closed",
                lines.line(at)
            ))
            .line(lines.line(src.len()))
            .field(name.clone())
        }
        None => ParseError::new("malformed XML: the root element is never closed").line(lines.line(src.len())),
    }
}

/// The reader for an element name that only one receipt format uses (`Transaction` is not among
/// them: it is POSLog's only at the root or directly inside a SOAP body).
fn record_reader(name: &str) -> Option<&'static str> {
    Some(match name {
        "POSLog" => "poslog",
        "RacunZahtjev" | "RacunPDZahtjev" | "ProvjeraZahtjev" | "PromijeniNacPlacZahtjev" => "hr_fiscal",
        "RegisterReceiptRequest" => "ekasa",
        "dataPack" | "prodejka" => "pohoda",
        "Trzba" => "eet",
        _ => return None,
    })
}

/// The reader for an XML file, for [`super::sniff`]: by its root element, looking inside a SOAP
/// envelope; a root of another name (a POS's day log, an archive of sent messages) by the first
/// record element it holds (`<log><Trzba>…</Trzba><Trzba>…</Trzba></log>`, SOAP envelopes inside
/// included). Returns the reader and what decided it.
pub(crate) fn sniff_root(s: &str) -> Option<(&'static str, String)> {
    let mut r = Reader::from_str(s);
    let mut soap = 0usize;
    // An unknown root element, and how deep the reader is inside it.
    let mut wrapper: Option<(String, usize)> = None;
    loop {
        let (n, empty) = match r.read_event() {
            Ok(Event::Start(e)) => (local(e.name().as_ref()), false),
            Ok(Event::Empty(e)) => (local(e.name().as_ref()), true),
            Ok(Event::End(_)) => {
                if let Some((_, depth)) = &mut wrapper {
                    *depth -= 1;
                    if *depth == 0 {
                        return None;
                    }
                }
                continue;
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => continue,
        };
        if let Some((root, depth)) = &mut wrapper {
            if let Some(k) = record_reader(&n) {
                return Some((k, format!("XML whose root element <{root}> holds <{n}>")));
            }
            if !empty {
                *depth += 1;
            }
            continue;
        }
        if let Some(k) = record_reader(&n) {
            return Some((k, format!("XML with root element <{n}>")));
        }
        match n.as_str() {
            "Transaction" => return Some(("poslog", format!("XML with root element <{n}>"))),
            "Envelope" | "Body" | "Header" if soap < 8 => soap += 1,
            _ if soap == 0 && !empty => wrapper = Some((n, 1)),
            _ if soap == 0 => return None,
            _ => {}
        }
    }
}
