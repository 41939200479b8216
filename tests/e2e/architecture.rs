//! Architecture invariants that a program can check, read from the sources (no build needed):
//! - no import cycle between the modules (files) of a crate;
//! - `cfg(windows|unix|target_os…)` only in the platform modules;
//! - protocol does no IO; server-stub never depends on till-agent, till-agent never on
//!   server-stub, protocol on neither;
//! - in the agent only `sync/client.rs` speaks HTTP (names `reqwest`, but for `reqwest::Url`);
//! - no floats where money or points are computed;
//! - the server's storage and domain layers know no HTTP, and only its store touches SQLite.
//! - the card-input decisions (detector, payload, keys) are pure: no IO, threads or clocks;
//! - the server mounts an operation only together with its OpenAPI entry;
//! - every "Architecture invariant:" of ARCHITECTURE.md names the tests that check it, and each
//!   name is a function of the workspace.
//!
//! The module graph is built at file granularity: a module is a `.rs` file (a folder's `mod.rs`
//! is the folder's module). An edge A → B is any path in A that names an item of B:
//! `use crate::…`, `crate::x::y` in code, `super::…`, `self::…` and, in `use` lines, a child
//! module's name. Inline modules (`mod tests { … }`) belong to their file. A folder module that
//! names its own submodules (a facade: `pub use self::csv::CsvSpec`) owns them: that edge is not
//! counted, the children's `super::ParseError` is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use e2e::repo_root;

/// One crate's sources: file module path (segments) → (file path, source text).
struct Crate {
    name: String,
    files: BTreeMap<Vec<String>, (PathBuf, String)>,
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Loads `src/` of a crate with `root` as crate root file (lib.rs or main.rs). Other crate roots
/// in the same folder (main.rs beside lib.rs) are left out: they are their own crates.
fn load_crate(name: &str, src: &Path, root: &str) -> Crate {
    let mut all = Vec::new();
    rs_files(src, &mut all);
    let mut files = BTreeMap::new();
    for p in all {
        let rel = p.strip_prefix(src).unwrap();
        let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let last = segs.pop().unwrap();
        if segs.is_empty() && (last == "lib.rs" || last == "main.rs") && last != root {
            continue;
        }
        if segs.first().is_some_and(|s| s == "bin") {
            continue;
        }
        if !(segs.is_empty() && last == root) && last != "mod.rs" {
            segs.push(last.trim_end_matches(".rs").to_string());
        }
        let text = std::fs::read_to_string(&p).unwrap();
        files.insert(segs, (p, text));
    }
    Crate {
        name: name.into(),
        files,
    }
}

/// Source with comments, string and char literals blanked (kept the same length per line so
/// that line numbers hold).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_ident(&b, i) {
            // raw string r"…" / r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                if b[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            for &ch in &b[i..(j + 1).min(b.len())] {
                out.push(blank(ch));
            }
            i = j + 1;
        } else if c == '\'' {
            // char literal ('a', '\n', '\u{..}') or lifetime ('a)
            let len = if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                j + 1 - i
            } else if b.get(i + 2) == Some(&'\'') {
                3
            } else {
                1
            };
            for &ch in &b[i..(i + len).min(b.len())] {
                out.push(if len == 1 { ch } else { blank(ch) });
            }
            i += len;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    ColCol,
    Open,  // {
    Close, // }
    Comma,
    Semi,
    Other(char),
}

fn tokens(s: &str) -> Vec<(Tok, usize)> {
    let b: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let st = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(b[st..i].iter().collect()), line));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push((Tok::ColCol, line));
            i += 2;
        } else {
            out.push((
                match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    ';' => Tok::Semi,
                    o => Tok::Other(o),
                },
                line,
            ));
            i += 1;
        }
    }
    out
}

/// A reference found in a file: the module it is written in (file module + inline modules), the
/// path as written and the line.
struct Ref {
    scope: Vec<String>,
    path: Vec<String>,
    line: usize,
    in_use: bool,
}

/// Expands a `use` tree starting at `toks[i]` (after `use`), with `prefix` so far.
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: Vec<String>, out: &mut Vec<(Vec<String>, usize)>) {
    let mut path = prefix;
    let line = toks.get(*i).map(|t| t.1).unwrap_or(0);
    loop {
        match toks.get(*i).map(|t| &t.0) {
            Some(Tok::Ident(id)) => {
                path.push(id.clone());
                *i += 1;
                if toks.get(*i).map(|t| &t.0) == Some(&Tok::ColCol) {
                    *i += 1;
                    continue;
                }
                // `as alias`
                if let Some(Tok::Ident(a)) = toks.get(*i).map(|t| &t.0) {
                    if a == "as" {
                        *i += 2;
                    }
                }
                out.push((path, line));
                return;
            }
            Some(Tok::Other('*')) => {
                *i += 1;
                out.push((path, line));
                return;
            }
            Some(Tok::Open) => {
                *i += 1;
                loop {
                    match toks.get(*i).map(|t| &t.0) {
                        Some(Tok::Close) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Comma) => *i += 1,
                        None => return,
                        _ => use_tree(toks, i, path.clone(), out),
                    }
                }
            }
            _ => {
                if !path.is_empty() {
                    out.push((path, line));
                }
                return;
            }
        }
    }
}

fn refs_of(file_mod: &[String], text: &str) -> Vec<Ref> {
    let toks = tokens(&strip(text));
    let mut refs = Vec::new();
    // inline module stack: (name, brace depth at which it opened)
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut pending_mod: Option<String> = None;
    let mut i = 0;
    let scope_of = |inline: &[(String, usize)]| {
        let mut s = file_mod.to_vec();
        s.extend(inline.iter().map(|(n, _)| n.clone()));
        s
    };
    while i < toks.len() {
        let (t, line) = &toks[i];
        match t {
            Tok::Open => {
                depth += 1;
                if let Some(m) = pending_mod.take() {
                    inline.push((m, depth));
                }
                i += 1;
            }
            Tok::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Semi => {
                pending_mod = None;
                i += 1;
            }
            Tok::Ident(id) if id == "mod" => {
                if let Some(Tok::Ident(n)) = toks.get(i + 1).map(|t| &t.0) {
                    pending_mod = Some(n.clone());
                    i += 2;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(id) if id == "use" => {
                i += 1;
                let mut paths = Vec::new();
                if toks.get(i).map(|t| &t.0) == Some(&Tok::ColCol) {
                    i += 1; // `use ::std…`: extern
                }
                use_tree(&toks, &mut i, Vec::new(), &mut paths);
                let scope = scope_of(&inline);
                for (p, l) in paths {
                    refs.push(Ref {
                        scope: scope.clone(),
                        path: p,
                        line: l,
                        in_use: true,
                    });
                }
            }
            Tok::Ident(id) if id == "crate" || id == "super" || id == "self" => {
                // a path in code: only when followed by `::` and not part of a longer path
                let after_colcol = i > 0 && toks[i - 1].0 == Tok::ColCol;
                if after_colcol || toks.get(i + 1).map(|t| &t.0) != Some(&Tok::ColCol) {
                    i += 1;
                    continue;
                }
                let mut path = vec![id.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::ColCol) {
                    match toks.get(j + 1).map(|t| &t.0) {
                        Some(Tok::Ident(n)) => {
                            path.push(n.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                refs.push(Ref {
                    scope: scope_of(&inline),
                    path,
                    line: *line,
                    in_use: false,
                });
                i = j;
            }
            _ => i += 1,
        }
    }
    refs
}

/// Resolves a reference to the file module it names, if it names one of this crate.
fn resolve(krate: &Crate, r: &Ref) -> Option<Vec<String>> {
    let mut abs: Vec<String> = Vec::new();
    let mut rest = r.path.iter().peekable();
    match rest.peek().map(|s| s.as_str()) {
        Some("crate") => {
            rest.next();
        }
        Some("super") | Some("self") => {
            abs = r.scope.clone();
            while let Some(s) = rest.peek() {
                match s.as_str() {
                    "super" => {
                        abs.pop();
                        rest.next();
                    }
                    "self" => {
                        rest.next();
                    }
                    _ => break,
                }
            }
        }
        Some(first) if r.in_use => {
            // 2018 paths: a child module of the current scope by name
            let mut child = r.scope.clone();
            child.push(first.to_string());
            if krate.files.keys().any(|k| k.starts_with(&child)) {
                abs = r.scope.clone();
            } else {
                return None;
            }
        }
        _ => return None,
    }
    abs.extend(rest.cloned());
    // longest prefix that is a file module
    (0..=abs.len())
        .rev()
        .map(|n| abs[..n].to_vec())
        .find(|p| krate.files.contains_key(p))
}

type Graph = BTreeMap<Vec<String>, BTreeMap<Vec<String>, usize>>;

fn module_graph(krate: &Crate) -> Graph {
    let mut g: Graph = BTreeMap::new();
    for (m, (_, text)) in &krate.files {
        let edges = g.entry(m.clone()).or_default();
        for r in refs_of(m, text) {
            if let Some(target) = resolve(krate, &r) {
                // A module naming its own submodules (declaring, re-exporting, dispatching: a
                // facade) owns them; that is structure, not a dependency that can form a loop.
                if !target.starts_with(m) {
                    edges.entry(target).or_insert(r.line);
                }
            }
        }
    }
    g
}

fn show(krate: &Crate, m: &[String]) -> String {
    let (p, _) = &krate.files[m];
    p.strip_prefix(repo_root()).unwrap_or(p).display().to_string()
}

/// Tarjan's strongly connected components; each component with more than one module is a cycle.
fn cycles(g: &Graph) -> Vec<Vec<Vec<String>>> {
    struct St<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        on: BTreeSet<&'a Vec<String>>,
        stack: Vec<&'a Vec<String>>,
        n: usize,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(st: &mut St<'a>, v: &'a Vec<String>) {
        st.index.insert(v, st.n);
        st.low.insert(v, st.n);
        st.n += 1;
        st.stack.push(v);
        st.on.insert(v);
        for w in st.g[v].keys() {
            if !st.g.contains_key(w) {
                continue;
            }
            let w = st.g.get_key_value(w).unwrap().0;
            if !st.index.contains_key(w) {
                visit(st, w);
                let l = st.low[v].min(st.low[w]);
                st.low.insert(v, l);
            } else if st.on.contains(w) {
                let l = st.low[v].min(st.index[w]);
                st.low.insert(v, l);
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = st.stack.pop().unwrap();
                st.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                st.out.push(comp);
            }
        }
    }
    let mut st = St {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: Vec::new(),
        n: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !st.index.contains_key(v) {
            visit(&mut st, v);
        }
    }
    st.out
}

/// One concrete loop inside a component (BFS from its first module back to itself), as
/// "a.rs:12 → b.rs:40 → a.rs" with the line of the first reference of each step.
fn one_loop(krate: &Crate, g: &Graph, comp: &[Vec<String>]) -> String {
    let inside: BTreeSet<&Vec<String>> = comp.iter().collect();
    let start = &comp[0];
    let mut prev: BTreeMap<&Vec<String>, &Vec<String>> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut end = None;
    'bfs: while let Some(v) = queue.pop_front() {
        for w in g[v].keys() {
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                end = Some(v);
                break 'bfs;
            }
            if !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut path = vec![start.clone()];
    let mut v = end.expect("a component has a loop");
    let mut back = vec![v.clone()];
    while v != start {
        v = prev[v];
        back.push(v.clone());
    }
    back.pop();
    back.reverse();
    path.extend(back);
    path.push(start.clone());
    path.windows(2)
        .map(|w| format!("{}:{}", show(krate, &w[0]), g[&w[0]][&w[1]]))
        .chain(std::iter::once(show(krate, start)))
        .collect::<Vec<_>>()
        .join(" → ")
}

fn cycle_report(krate: &Crate) -> Vec<String> {
    let g = module_graph(krate);
    cycles(&g)
        .iter()
        .map(|comp| {
            format!(
                "{}: import cycle among {} modules [{}]; one loop: {}",
                krate.name,
                comp.len(),
                comp.iter().map(|m| show(krate, m)).collect::<Vec<_>>().join(", "),
                one_loop(krate, &g, comp)
            )
        })
        .collect()
}

fn assert_no_cycles(krate: Crate) {
    assert!(krate.files.len() > 1, "{}: no sources found", krate.name);
    let report = cycle_report(&krate);
    assert!(report.is_empty(), "\n{}\n", report.join("\n"));
}

#[test]
fn no_import_cycles_in_protocol() {
    assert_no_cycles(load_crate("protocol", &repo_root().join("protocol/src"), "lib.rs"));
}

#[test]
fn no_import_cycles_in_agent() {
    let src = repo_root().join("agent/src");
    assert_no_cycles(load_crate("till-agent", &src, "lib.rs"));
}

#[test]
fn no_import_cycles_in_server_stub() {
    assert_no_cycles(load_crate(
        "server-stub",
        &repo_root().join("server-stub/src"),
        "lib.rs",
    ));
}

#[test]
fn the_cycle_check_finds_a_planted_cycle() {
    // The checker itself, on a crate written here: a → b (use), b → c (path in code), c → a (super).
    let mut files = BTreeMap::new();
    let mut add = |m: &[&str], text: &str| {
        let segs: Vec<String> = m.iter().map(|s| s.to_string()).collect();
        let name = if segs.is_empty() { "lib".into() } else { segs.join("/") };
        files.insert(segs, (PathBuf::from(format!("{name}.rs")), text.to_string()));
    };
    add(&[], "pub mod a; pub mod x;");
    add(
        &["a"],
        "use crate::x::b::{Thing, other::{More}};\n// crate::never::here\nfn f() {}",
    );
    add(&["x"], "pub mod b; pub mod c; pub use self::b::Thing as T;");
    add(
        &["x", "b"],
        "fn g() -> u8 { let s = \"crate::a::nope\"; crate::x::c::h() }",
    );
    add(
        &["x", "c"],
        "pub fn h() -> u8 { super::super::a::f(); 1 }\n#[cfg(test)] mod tests { use super::*; }",
    );
    let k = Crate {
        name: "planted".into(),
        files,
    };
    let report = cycle_report(&k);
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(
        report[0].contains("among 3 modules [a.rs, x/b.rs, x/c.rs]"),
        "{}",
        report[0]
    );
    assert!(
        report[0].contains("one loop: a.rs:1 → x/b.rs:1 → x/c.rs:1 → a.rs"),
        "{}",
        report[0]
    );
}

/// Files where platform `cfg`s are allowed (relative to the repo root).
const PLATFORM_MODULES: &[&str] = &[
    "agent/src/os/",
    "agent/src/input/oskbd/",
    "agent/src/ui/platform/",
    "server-stub/src/os.rs",
    "agent/build.rs",
];

/// The one platform attribute that must stay where it is: the exe's subsystem is a crate
/// attribute of the binary's root.
const ALLOWED_CFG_LINES: &[(&str, &str)] = &[("agent/src/main.rs", "windows_subsystem")];

fn platform_cfg_lines(text: &str) -> Vec<(usize, String)> {
    let stripped = strip(text);
    let mut out = Vec::new();
    for (n, line) in stripped.lines().enumerate() {
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        let mut rest = compact.as_str();
        while let Some(p) = rest.find("cfg") {
            let tail = &rest[p + 3..];
            let attr = tail
                .strip_prefix('(')
                .or_else(|| tail.strip_prefix("!("))
                .or_else(|| tail.strip_prefix("_attr("));
            if let Some(args) = attr {
                // the condition part (up to the matching paren is enough at line granularity)
                if [
                    "windows",
                    "unix",
                    "target_os",
                    "target_family",
                    "target_env",
                    "target_vendor",
                ]
                .iter()
                .any(|w| {
                    args.match_indices(w).any(|(i, _)| {
                        let before = args[..i].chars().last();
                        let after = args[i + w.len()..].chars().next();
                        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    })
                }) {
                    out.push((n + 1, text.lines().nth(n).unwrap_or("").trim().to_string()));
                    break;
                }
            }
            rest = tail;
        }
    }
    out
}

fn platform_cfg_violations(root: &Path, crates: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for c in crates {
        let mut files = Vec::new();
        rs_files(&root.join(c), &mut files);
        for f in files {
            let rel = f.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            if PLATFORM_MODULES.iter().any(|p| rel.starts_with(p)) {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            for (line, code) in platform_cfg_lines(&text) {
                if ALLOWED_CFG_LINES
                    .iter()
                    .any(|(f, what)| rel == *f && code.contains(what))
                {
                    continue;
                }
                bad.push(format!("{rel}:{line}: {code}"));
            }
        }
    }
    bad
}

#[test]
fn platform_cfg_only_in_platform_modules() {
    let bad = platform_cfg_violations(&repo_root(), &["agent/src", "protocol/src", "server-stub/src"]);
    assert!(
        bad.is_empty(),
        "platform cfg outside the platform modules ({}):\n{}",
        PLATFORM_MODULES.join(", "),
        bad.join("\n")
    );
}

#[test]
fn the_platform_cfg_check_sees_every_form() {
    let t = "#[cfg(windows)]\nfn a() {}\n#[cfg(not(unix))]\nlet x = cfg!(target_os = \"linux\");\n\
             #[cfg_attr(windows, allow(x))]\n#[cfg(test)]\n#[cfg(feature = \"gui\")]\n// #[cfg(windows)]\n\
             let s = \"cfg(unix)\";\nlet wind = cfg!(windowsish);";
    let lines: Vec<usize> = platform_cfg_lines(t).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lines, [1, 3, 4, 5]);
}

/// Names of crates and modules that do IO; protocol must use none of them.
const IO_PATHS: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "tokio",
    "reqwest",
    "rusqlite",
    "hyper",
    "axum",
];

fn io_violations(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mut files = Vec::new();
    rs_files(&root.join("src"), &mut files);
    for f in files {
        let text = strip(&std::fs::read_to_string(&f).unwrap());
        for (n, line) in text.lines().enumerate() {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            for p in IO_PATHS {
                if compact.match_indices(p).any(|(i, _)| {
                    let before = compact[..i].chars().last();
                    let after = compact[i + p.len()..].chars().next();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                }) {
                    bad.push(format!("{}:{}: uses {p}", f.display(), n + 1));
                }
            }
        }
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for line in manifest.lines() {
        let key = line.split(['=', '.']).next().unwrap_or("").trim();
        if ["tokio", "reqwest", "rusqlite", "hyper", "axum"].contains(&key) {
            bad.push(format!("{}/Cargo.toml: depends on {key}", root.display()));
        }
    }
    bad
}

#[test]
fn protocol_does_no_io() {
    let bad = io_violations(&repo_root().join("protocol"));
    assert!(bad.is_empty(), "protocol must stay pure (no IO):\n{}", bad.join("\n"));
}

#[test]
fn the_io_check_sees_a_planted_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/lib.rs"),
        "// std::fs is fine in a comment\nfn f() { std :: fs::read(\"x\"); }",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[dependencies]\nserde = \"1\"\ntokio.workspace = true\n",
    )
    .unwrap();
    let bad = io_violations(dir.path());
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].ends_with("lib.rs:2: uses std::fs"), "{bad:?}");
    assert!(bad[1].ends_with("Cargo.toml: depends on tokio"), "{bad:?}");
}

fn depends_on_agent(manifest: &str) -> bool {
    depends_on(manifest, &["till-agent", "till_agent"], "../agent")
}

/// True when a Cargo manifest names one of `names` as a dependency key or a path dependency on `dir`.
fn depends_on(manifest: &str, names: &[&str], dir: &str) -> bool {
    manifest.lines().any(|l| {
        let key = l.split(['=', '.']).next().unwrap_or("").trim();
        let compact: String = l.chars().filter(|c| !c.is_whitespace()).collect();
        names.contains(&key) || compact.contains(&format!("path=\"{dir}\""))
    })
}

#[test]
fn server_stub_never_depends_on_the_agent() {
    let root = repo_root().join("server-stub");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        !depends_on_agent(&manifest),
        "server-stub/Cargo.toml depends on till-agent"
    );
    let mut files = Vec::new();
    rs_files(&root.join("src"), &mut files);
    for f in files {
        let text = strip(&std::fs::read_to_string(&f).unwrap());
        assert!(!text.contains("till_agent"), "{} names till_agent", f.display());
    }
    assert!(depends_on_agent(
        "[dependencies]\ntill-agent = { path = \"../agent\" }\n"
    ));
}

#[test]
fn the_agent_never_depends_on_the_server_and_protocol_on_neither() {
    let root = repo_root();
    let agent = std::fs::read_to_string(root.join("agent/Cargo.toml")).unwrap();
    assert!(
        !depends_on(&agent, &["server-stub", "server_stub"], "../server-stub"),
        "agent/Cargo.toml depends on server-stub"
    );
    let protocol = std::fs::read_to_string(root.join("protocol/Cargo.toml")).unwrap();
    assert!(
        !depends_on(&protocol, &["server-stub", "server_stub"], "../server-stub") && !depends_on_agent(&protocol),
        "protocol/Cargo.toml depends on a program"
    );
    let bad = naming_violations(&root, "agent/src", &["server_stub"], &[], &[]);
    assert!(
        bad.is_empty(),
        "the agent names the server's crate:\n{}",
        bad.join("\n")
    );
    let bad = naming_violations(&root, "protocol/src", &["server_stub", "till_agent"], &[], &[]);
    assert!(bad.is_empty(), "protocol names a program's crate:\n{}", bad.join("\n"));
    // the checker sees a planted dependency
    assert!(depends_on(
        "[dependencies]\nserver-stub = { path = \"../server-stub\" }\n",
        &["server-stub"],
        "../server-stub"
    ));
    assert!(depends_on(
        "[dev-dependencies]\nx = { path = \"../server-stub\" }\n",
        &[],
        "../server-stub"
    ));
}

/// Lines of `.rs` files under `root/dir` (files starting with an `allowed` prefix, relative to
/// `root`, left out) where an identifier of `names` appears in code (comments and strings
/// ignored), unless it starts one of the `except` paths (`reqwest::Url`).
fn naming_violations(root: &Path, dir: &str, names: &[&str], allowed: &[&str], except: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rs_files(&root.join(dir), &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        if allowed.iter().any(|a| rel.starts_with(a)) {
            continue;
        }
        let toks = tokens(&strip(&std::fs::read_to_string(&f).unwrap()));
        for (i, (t, line)) in toks.iter().enumerate() {
            let Tok::Ident(id) = t else { continue };
            if !names.contains(&id.as_str()) {
                continue;
            }
            let path_here = match (toks.get(i + 1), toks.get(i + 2)) {
                (Some((Tok::ColCol, _)), Some((Tok::Ident(n), _))) => format!("{id}::{n}"),
                _ => id.clone(),
            };
            if except.contains(&path_here.as_str()) {
                continue;
            }
            bad.push(format!("{rel}:{line}: names {path_here}"));
        }
    }
    bad
}

/// Where the agent may name `reqwest`: the one server client. `reqwest::Url` (URL syntax, no
/// request) is allowed anywhere (config validates `server_url` with it).
const HTTP_CLIENT: &[&str] = &["agent/src/sync/client.rs"];

fn http_violations(root: &Path) -> Vec<String> {
    naming_violations(
        root,
        "agent/src",
        &["reqwest", "hyper", "ureq"],
        HTTP_CLIENT,
        &["reqwest::Url"],
    )
}

#[test]
fn only_the_server_client_speaks_http() {
    let bad = http_violations(&repo_root());
    assert!(
        bad.is_empty(),
        "HTTP outside the server client ({}): go through sync::ServerClient\n{}",
        HTTP_CLIENT.join(", "),
        bad.join("\n")
    );
}

/// Sources where money, points or turnover are computed: no `f32`/`f64` (nor `as_f64`,
/// `to_f64`, `from_f32` …) in them.
const MONEY_CODE: &[&str] = &[
    "protocol/src",
    "agent/src/formats",
    "agent/src/sync",
    "agent/src/quote.rs",
    "agent/src/cache.rs",
    "agent/src/enrol.rs",
    "server-stub/src/service.rs",
    "server-stub/src/store",
    "server-stub/src/reports.rs",
];

fn float_violations(root: &Path, paths: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for p in paths {
        let full = root.join(p);
        let mut files = Vec::new();
        if full.is_dir() {
            rs_files(&full, &mut files);
        } else {
            files.push(full);
        }
        for f in files {
            let rel = f.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            let toks = tokens(&strip(&std::fs::read_to_string(&f).unwrap()));
            for (t, line) in toks {
                let Tok::Ident(id) = t else { continue };
                let float = ["f32", "f64"]
                    .iter()
                    .any(|w| id == *w || id.starts_with(&format!("{w}_")) || id.ends_with(&format!("_{w}")));
                if float {
                    bad.push(format!("{rel}:{line}: {id}"));
                }
            }
        }
    }
    bad
}

#[test]
fn no_floats_where_money_is_computed() {
    let bad = float_violations(&repo_root(), MONEY_CODE);
    assert!(
        bad.is_empty(),
        "floats in money code (use rust_decimal::Decimal):\n{}",
        bad.join("\n")
    );
}

/// Server modules below the HTTP layer: they never reach `http/` nor name a web crate.
const SERVER_BELOW_HTTP: &[&str] = &["store", "error", "service", "reports", "identity"];

fn server_layer_violations(krate: &Crate) -> Vec<String> {
    let g = module_graph(krate);
    let mut bad = Vec::new();
    for (m, edges) in &g {
        if !m.first().is_some_and(|f| SERVER_BELOW_HTTP.contains(&f.as_str())) {
            continue;
        }
        for (target, line) in edges {
            if target.first().is_some_and(|t| t == "http") {
                bad.push(format!("{}:{line}: uses {}", show(krate, m), show(krate, target)));
            }
        }
        let toks = tokens(&strip(&krate.files[m].1));
        for (t, line) in toks {
            if let Tok::Ident(id) = t {
                if ["axum", "hyper", "tower", "tower_http", "reqwest"].contains(&id.as_str()) {
                    bad.push(format!("{}:{line}: names {id}", show(krate, m)));
                }
            }
        }
    }
    bad.sort();
    bad
}

#[test]
fn the_server_storage_and_domain_know_no_http() {
    let krate = load_crate("server-stub", &repo_root().join("server-stub/src"), "lib.rs");
    let bad = server_layer_violations(&krate);
    assert!(
        bad.is_empty(),
        "HTTP below the server's http layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_the_server_store_touches_sqlite() {
    // error.rs converts `rusqlite::Error` into `StoreError` / `ApiError`: no SQL there.
    let bad = naming_violations(
        &repo_root(),
        "server-stub/src",
        &["rusqlite"],
        &["server-stub/src/store/sqlite.rs", "server-stub/src/error.rs"],
        &[],
    );
    assert!(
        bad.is_empty(),
        "SQLite outside server-stub/src/store/sqlite.rs:\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_the_server_store_touches_postgresql() {
    // error.rs converts `postgres::Error` into `StoreError`, as it does for SQLite.
    let bad = naming_violations(
        &repo_root(),
        "server-stub/src",
        &["postgres", "r2d2", "r2d2_postgres", "tokio_postgres"],
        &["server-stub/src/store/pg.rs", "server-stub/src/error.rs"],
        &[],
    );
    assert!(
        bad.is_empty(),
        "PostgreSQL outside server-stub/src/store/pg.rs:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_naming_checks_see_planted_violations() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let w = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("agent/src/sync/client.rs", "fn c() { reqwest::Client::new(); }");
    w(
        "agent/src/config.rs",
        "// reqwest::get is fine in a comment\nfn ok(u: &str) -> bool { reqwest::Url::parse(u).is_ok() }",
    );
    w(
        "agent/src/status.rs",
        "fn s() {\n    let _ = reqwest :: get(\"reqwest\");\n}",
    );
    w("agent/src/ui/x.rs", "use reqwest::{Client};");
    assert_eq!(
        http_violations(root),
        [
            "agent/src/status.rs:2: names reqwest::get",
            "agent/src/ui/x.rs:1: names reqwest"
        ]
    );

    w(
        "protocol/src/money.rs",
        "fn m(x: Decimal) -> f64 { x.to_f64().unwrap() }\n// f64 in a comment",
    );
    w(
        "protocol/src/ok.rs",
        "fn n() -> &'static str { \"f64\" } fn f64ish() {}",
    );
    w("agent/src/ui/gui.rs", "fn g() -> f32 { 1.0 }");
    assert_eq!(
        float_violations(root, &["protocol/src", "agent/src/sync"]),
        ["protocol/src/money.rs:1: f64", "protocol/src/money.rs:1: to_f64"]
    );

    let mut files = BTreeMap::new();
    let mut add = |m: &[&str], path: &str, text: &str| {
        files.insert(
            m.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            (PathBuf::from(path), text.to_string()),
        );
    };
    add(&[], "lib.rs", "pub mod http; pub mod store; pub mod service;");
    add(&["http"], "http/mod.rs", "use crate::service::run; use axum::Router;");
    add(&["store"], "store/mod.rs", "use crate::http::problem::Problem;");
    add(
        &["service"],
        "service.rs",
        "fn f() -> axum::http::StatusCode { todo!() }",
    );
    let k = Crate {
        name: "planted".into(),
        files,
    };
    assert_eq!(
        server_layer_violations(&k),
        ["service.rs:1: names axum", "store/mod.rs:1: uses http/mod.rs"]
    );
}

/// The card-input decisions that are pure: the scan detector and what it is tested with, the
/// payload decoder, key tables and the hook watchdog's comparison. OS key sources live in
/// `input/oskbd/`, threads in `input/run.rs` and `input/serial.rs`.
const PURE_INPUT: &[&str] = &[
    "agent/src/input/detect.rs",
    "agent/src/input/payload.rs",
    "agent/src/input/keys.rs",
    "agent/src/input/script.rs",
    "agent/src/input/hookwatch.rs",
];

/// What a pure module must not name: IO, threads, clocks, OS bindings.
const IMPURE: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::thread",
    "std::io",
    "Instant::now",
    "SystemTime::now",
    "Utc::now",
    "Local::now",
    "tokio",
    "serialport",
    "x11rb",
    "windows_sys",
    "rusqlite",
    "reqwest",
    "oskbd",
];

/// Lines of `text` before its `#[cfg(test)]` module (tests may read fixtures) naming an `IMPURE` path.
fn impure_lines(text: &str) -> Vec<String> {
    let stripped = strip(text);
    let code = stripped
        .find("#[cfg(test)]")
        .map_or(stripped.as_str(), |i| &stripped[..i]);
    let mut bad = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        for p in IMPURE {
            if compact.match_indices(p).any(|(i, _)| {
                let before = compact[..i].chars().last();
                let after = compact[i + p.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            }) {
                bad.push(format!("{}: {p}", n + 1));
            }
        }
    }
    bad
}

#[test]
fn the_scan_logic_is_pure() {
    let root = repo_root();
    let mut bad = Vec::new();
    for f in PURE_INPUT {
        let text = std::fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        bad.extend(impure_lines(&text).into_iter().map(|l| format!("{f}:{l}")));
    }
    assert!(
        bad.is_empty(),
        "IO, threads or clocks in pure input code:\n{}",
        bad.join("\n")
    );
    // the checker sees a planted violation, and lets tests read fixtures
    let planted = "use std::time::{Duration, Instant};\n// std::fs in a comment\nfn f() { let t = Instant::now(); }\n\
                   fn g() { std::thread::sleep(d) }\n#[cfg(test)]\nmod tests { fn r() { std::fs::read(\"x\"); } }";
    assert_eq!(impure_lines(planted), ["3: Instant::now", "4: std::thread"]);
}

/// What the session app (`session.rs`, run by every logged-on user) must never touch: the till
/// token, the outbox and cache databases, the server client. All of that is the service's.
const SESSION_FORBIDDEN: &[&str] = &[
    "credentials",
    "till_token",
    "keyring",
    "Outbox",
    "outbox",
    "Cache",
    "QuoteService",
    "ServerClient",
    "rusqlite",
    "reqwest",
];

fn session_violations(text: &str) -> Vec<String> {
    let stripped = strip(text);
    let code = stripped
        .find("#[cfg(test)]")
        .map_or(stripped.as_str(), |i| &stripped[..i]);
    tokens(code)
        .into_iter()
        .filter_map(|(t, line)| match t {
            Tok::Ident(id) if SESSION_FORBIDDEN.contains(&id.as_str()) => Some(format!("{line}: {id}")),
            _ => None,
        })
        .collect()
}

#[test]
fn the_session_app_holds_no_token_and_opens_no_database() {
    let f = "agent/src/session.rs";
    let text = std::fs::read_to_string(repo_root().join(f)).unwrap();
    let bad = session_violations(&text);
    assert!(
        bad.is_empty(),
        "{f} names what only the service may use (ask it over `ipc` instead):\n{}",
        bad.join("\n")
    );
    // …and the protocol between the two is pure
    let f = "agent/src/ipc.rs";
    let bad = impure_lines(&std::fs::read_to_string(repo_root().join(f)).unwrap());
    assert!(bad.is_empty(), "IO in {f}:\n{}", bad.join("\n"));
    // the checker sees planted uses, not comments or strings
    let planted =
        "// Outbox in a comment\nfn f() { let s = \"Cache\"; }\nfn g() { crate::credentials::till_token(c) }\n";
    assert_eq!(session_violations(planted), ["3: credentials", "3: till_token"]);
}

/// Router methods that mount a handler without its OpenAPI operation (`utoipa_axum`'s
/// `.routes(routes!(handler))` registers both in one call; these register the route alone).
const UNDOCUMENTED_MOUNTS: &[&str] = &["route", "route_service", "nest", "nest_service", "merge"];

/// Lines of `text` (comments and strings ignored) that call one of [`UNDOCUMENTED_MOUNTS`] as a
/// method: `.route(`.
fn undocumented_mounts(text: &str) -> Vec<String> {
    let toks = tokens(&strip(text));
    toks.windows(3)
        .filter_map(|w| match w {
            [(Tok::Other('.'), _), (Tok::Ident(m), line), (Tok::Other('('), _)]
                if UNDOCUMENTED_MOUNTS.contains(&m.as_str()) =>
            {
                Some(format!("{line}: .{m}("))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_server_mounts_an_operation_only_with_its_openapi_entry() {
    let root = repo_root();
    let mut files = Vec::new();
    rs_files(&root.join("server-stub/src"), &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        bad.extend(undocumented_mounts(&text).into_iter().map(|l| format!("{rel}:{l}")));
    }
    assert!(
        bad.is_empty(),
        "a route mounted without its OpenAPI operation (use `.routes(routes!(handler))` with a \
         `#[utoipa::path]` on the handler):\n{}",
        bad.join("\n")
    );
    // the checker sees a planted mount, not the documented form, a comment or a string
    let planted = "fn api() -> R {\n  r.routes(routes!(h::sync))\n   // .route(\"/x\", get(f))\n\
                   .route(\"/y\", get(g))\n  .merge(other); let s = \".nest(\";\n  route(1) }";
    assert_eq!(undocumented_mounts(planted), ["4: .route(", "5: .merge("]);
}

/// One "Architecture invariant:" of ARCHITECTURE.md: its first line and the test names inside its
/// "(checked: …)" (backticked identifiers).
#[derive(Debug, PartialEq)]
struct Invariant {
    line: usize,
    checked_by: Vec<String>,
}

/// The invariants of an ARCHITECTURE.md text. One starts at a line that begins (after an
/// optional list dash) with "Architecture invariant:" and runs to a blank line, a heading, the
/// next list item or the next invariant.
fn invariants(doc: &str) -> Vec<Invariant> {
    const MARK: &str = "Architecture invariant:";
    let lines: Vec<&str> = doc.lines().collect();
    let starts = |l: &str| l.trim_start().trim_start_matches("- ").starts_with(MARK);
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if !starts(l) {
            continue;
        }
        let mut text = l.to_string();
        for next in &lines[i + 1..] {
            let t = next.trim_start();
            if t.is_empty() || t.starts_with('#') || t.starts_with("- ") || starts(next) {
                break;
            }
            text.push(' ');
            text.push_str(t);
        }
        let mut checked_by = Vec::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("(checked:") {
            let group = &rest[at..];
            let end = group.find(')').unwrap_or(group.len());
            for (k, part) in group[..end].split('`').enumerate() {
                let name = part.rsplit("::").next().unwrap_or(part);
                if k % 2 == 1 && !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    checked_by.push(name.to_string());
                }
            }
            rest = &group[end..];
        }
        out.push(Invariant {
            line: i + 1,
            checked_by,
        });
    }
    out
}

/// Every `fn` name in the `.rs` files under `dirs` of `root`.
fn fn_names(root: &Path, dirs: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for d in dirs {
        let mut files = Vec::new();
        rs_files(&root.join(d), &mut files);
        for f in files {
            let toks = tokens(&strip(&std::fs::read_to_string(&f).unwrap()));
            for w in toks.windows(2) {
                if let [(Tok::Ident(kw), _), (Tok::Ident(name), _)] = w {
                    if kw == "fn" {
                        names.insert(name.clone());
                    }
                }
            }
        }
    }
    names
}

/// What is wrong with the invariants of `doc`, given the functions that exist.
fn unchecked_invariants(doc: &str, fns: &BTreeSet<String>) -> Vec<String> {
    let mut bad = Vec::new();
    for inv in invariants(doc) {
        if inv.checked_by.is_empty() {
            bad.push(format!(
                "line {}: names no test in \"(checked: `test_name`)\"",
                inv.line
            ));
        }
        for t in &inv.checked_by {
            if !fns.contains(t) {
                bad.push(format!("line {}: `{t}` is no function of the workspace", inv.line));
            }
        }
    }
    bad
}

#[test]
fn every_architecture_invariant_names_the_tests_that_check_it() {
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let fns = fn_names(
        &root,
        &["protocol", "agent", "server-stub", "tests", "fuzz/fuzz_targets"],
    );
    let found = invariants(&doc);
    assert!(
        found.len() >= 20,
        "ARCHITECTURE.md's invariants were not found: {found:?}"
    );
    let bad = unchecked_invariants(&doc, &fns);
    assert!(bad.is_empty(), "ARCHITECTURE.md:\n{}", bad.join("\n"));
    // the checker sees an invariant without a test and a test that does not exist; a list item
    // or a blank line ends an invariant, and a mention of the mark inside a sentence is none
    let planted = "Rules (\"Architecture invariant:\") below.\n\nArchitecture invariant: a is b.\n\
                   (checked: `it_is`, `mod_x::it_is_too`)\n\n- Architecture invariant: c is d\n- (checked: `it_is`)\n\n\
                   Architecture invariant: e. (checked: `gone`, in `lib.rs`)\n";
    let fns: BTreeSet<String> = ["it_is", "it_is_too"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        invariants(planted),
        [
            Invariant {
                line: 3,
                checked_by: vec!["it_is".into(), "it_is_too".into()]
            },
            Invariant {
                line: 6,
                checked_by: vec![]
            },
            Invariant {
                line: 9,
                checked_by: vec!["gone".into()]
            },
        ]
    );
    assert_eq!(
        unchecked_invariants(planted, &fns),
        [
            "line 6: names no test in \"(checked: `test_name`)\"",
            "line 9: `gone` is no function of the workspace"
        ]
    );
}
