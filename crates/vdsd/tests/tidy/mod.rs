//! The source side of the tidy checks in `architecture.rs`: a small Rust tokenizer (enough to
//! tell code from comments, string and char literals, raw strings and lifetimes), the removal of
//! `#[cfg(test)]` items, and the walk of a crate's module tree that tells production sources
//! from test modules.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ident,
    Lifetime,
    Punct,
    Literal,
}

#[derive(Debug, Clone)]
pub(crate) struct Tok {
    pub(crate) kind: Kind,
    pub(crate) text: String,
    pub(crate) line: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Comment {
    pub(crate) text: String,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Lexed {
    pub(crate) toks: Vec<Tok>,
    pub(crate) comments: Vec<Comment>,
}

pub(crate) struct Lexer {
    c: Vec<char>,
    i: usize,
    line: usize,
    out: Lexed,
}

impl Lexer {
    fn at(&self, k: usize) -> char {
        self.c.get(self.i + k).copied().unwrap_or('\0')
    }

    /// Consumes one char, counting lines.
    fn bump(&mut self) -> char {
        let ch = self.at(0);
        if ch == '\n' {
            self.line += 1;
        }
        self.i += 1;
        ch
    }

    fn push(&mut self, kind: Kind, text: String, line: usize) {
        self.out.toks.push(Tok { kind, text, line });
    }

    fn comment(&mut self) {
        let (start, from) = (self.line, self.i);
        if self.at(1) == '/' {
            while self.i < self.c.len() && self.at(0) != '\n' {
                self.i += 1;
            }
        } else {
            // Block comments nest in Rust.
            self.i += 2;
            let mut depth = 1;
            while self.i < self.c.len() && depth > 0 {
                if self.at(0) == '/' && self.at(1) == '*' {
                    depth += 1;
                    self.i += 2;
                } else if self.at(0) == '*' && self.at(1) == '/' {
                    depth -= 1;
                    self.i += 2;
                } else {
                    self.bump();
                }
            }
        }
        let text: String = self.c[from..self.i.min(self.c.len())].iter().collect();
        self.out.comments.push(Comment {
            text,
            start,
            end: self.line,
        });
    }

    /// A `"..."` string (escapes honoured); the opening quote is at `self.i`.
    fn string(&mut self) {
        self.bump();
        while self.i < self.c.len() {
            match self.bump() {
                '\\' => {
                    self.bump();
                }
                '"' => break,
                _ => {}
            }
        }
    }

    /// A raw string `r#*"..."#*`; `self.i` is at the `r`.
    fn raw_string(&mut self) {
        self.i += 1;
        let mut hashes = 0;
        while self.at(0) == '#' {
            hashes += 1;
            self.i += 1;
        }
        self.bump(); // the opening quote
        while self.i < self.c.len() {
            if self.bump() == '"' && (0..hashes).all(|k| self.at(k) == '#') {
                self.i += hashes;
                break;
            }
        }
    }

    /// Is there a raw string starting at offset `k` (an `r`, hashes, a quote)?
    fn raw_string_at(&self, k: usize) -> bool {
        if self.at(k) != 'r' {
            return false;
        }
        let mut j = k + 1;
        while self.at(j) == '#' {
            j += 1;
        }
        self.at(j) == '"'
    }

    /// A char literal or a lifetime/label; `self.i` is at the quote.
    fn quote(&mut self) {
        let line = self.line;
        if self.at(1) == '\\' {
            self.i += 3; // quote, backslash, escaped char; `\u{..}` runs on to the quote
            while self.i < self.c.len() && self.at(0) != '\'' {
                self.i += 1;
            }
            self.i += 1;
            self.push(Kind::Literal, "'c'".into(), line);
        } else if self.at(2) == '\'' {
            self.bump();
            self.bump();
            self.i += 1;
            self.push(Kind::Literal, "'c'".into(), line);
        } else {
            self.i += 1;
            let from = self.i;
            while is_ident_char(self.at(0)) {
                self.i += 1;
            }
            let name: String = self.c[from..self.i].iter().collect();
            self.push(Kind::Lifetime, format!("'{name}"), line);
        }
    }

    fn ident_or_literal(&mut self) {
        let line = self.line;
        let from = self.i;
        let numeric = self.at(0).is_ascii_digit();
        while is_ident_char(self.at(0))
            || (numeric && self.at(0) == '.' && self.at(1).is_ascii_digit())
        {
            self.i += 1;
        }
        let text: String = self.c[from..self.i].iter().collect();
        self.push(
            if numeric { Kind::Literal } else { Kind::Ident },
            text,
            line,
        );
    }

    fn run(mut self) -> Lexed {
        while self.i < self.c.len() {
            let (ch, line) = (self.at(0), self.line);
            match ch {
                c if c.is_whitespace() => {
                    self.bump();
                }
                '/' if self.at(1) == '/' || self.at(1) == '*' => self.comment(),
                '"' => {
                    self.string();
                    self.push(Kind::Literal, "\"s\"".into(), line);
                }
                'r' if self.raw_string_at(0) => {
                    self.raw_string();
                    self.push(Kind::Literal, "\"s\"".into(), line);
                }
                'b' | 'c' if self.raw_string_at(1) => {
                    self.i += 1;
                    self.raw_string();
                    self.push(Kind::Literal, "\"s\"".into(), line);
                }
                'b' | 'c' if self.at(1) == '"' => {
                    self.i += 1;
                    self.string();
                    self.push(Kind::Literal, "\"s\"".into(), line);
                }
                'b' if self.at(1) == '\'' => {
                    self.i += 1;
                    self.quote();
                }
                'r' if self.at(1) == '#' && is_ident_start(self.at(2)) => {
                    self.i += 2; // raw identifier r#name: the name is the token
                    self.ident_or_literal();
                }
                '\'' => self.quote(),
                c if is_ident_start(c) || c.is_ascii_digit() => self.ident_or_literal(),
                ':' if self.at(1) == ':' => {
                    self.i += 2;
                    self.push(Kind::Punct, "::".into(), line);
                }
                c => {
                    self.i += 1;
                    self.push(Kind::Punct, c.to_string(), line);
                }
            }
        }
        self.out
    }
}

pub(crate) fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

pub(crate) fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Tokens and comments of `src`; string, char and number literals become one `Literal` token.
pub(crate) fn lex(src: &str) -> Lexed {
    Lexer {
        c: src.chars().collect(),
        i: 0,
        line: 1,
        out: Lexed::default(),
    }
    .run()
}

pub(crate) fn is(t: Option<&Tok>, text: &str) -> bool {
    t.is_some_and(|t| t.text == text && t.kind != Kind::Literal)
}

/// Index just past the bracketed group opening at `i` (`(`, `[` or `{`).
pub(crate) fn skip_group(toks: &[Tok], i: usize) -> usize {
    let mut depth = 0i32;
    for (k, t) in toks.iter().enumerate().skip(i) {
        if t.kind == Kind::Punct {
            match t.text.as_str() {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => {
                    depth -= 1;
                    if depth == 0 {
                        return k + 1;
                    }
                }
                _ => {}
            }
        }
    }
    toks.len()
}

/// Is an outer attribute `#[cfg(test)]` at `i`?
pub(crate) fn cfg_test_at(toks: &[Tok], i: usize) -> bool {
    let want = ["#", "[", "cfg", "(", "test", ")", "]"];
    want.iter().enumerate().all(|(k, w)| is(toks.get(i + k), w))
}

/// `toks` without the items marked `#[cfg(test)]` (test modules, test-only helpers): an item
/// runs from its attributes to its `;` or its closing brace at bracket depth 0.
pub(crate) fn strip_cfg_test(toks: &[Tok]) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if !cfg_test_at(toks, i) {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        i += 7;
        while is(toks.get(i), "#") && is(toks.get(i + 1), "[") {
            i = skip_group(toks, i + 1);
        }
        while i < toks.len() {
            match toks[i].text.as_str() {
                ";" if toks[i].kind == Kind::Punct => {
                    i += 1;
                    break;
                }
                "{" if toks[i].kind == Kind::Punct => {
                    i = skip_group(toks, i);
                    break;
                }
                "(" | "[" if toks[i].kind == Kind::Punct => i = skip_group(toks, i),
                _ => i += 1,
            }
        }
    }
    out
}

/// Out-of-line module declarations (`mod a;`) in `toks`, each as its path of inline module
/// names (`mod x { mod a; }` gives `["x", "a"]`).
pub(crate) fn mod_decls(toks: &[Tok]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate() {
        match (t.kind, t.text.as_str()) {
            (Kind::Punct, "{") => depth += 1,
            (Kind::Punct, "}") => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d > depth) {
                    inline.pop();
                }
            }
            (Kind::Ident, "mod") => {
                let Some(name) = toks.get(i + 1).filter(|n| n.kind == Kind::Ident) else {
                    continue;
                };
                if is(toks.get(i + 2), ";") {
                    let mut p: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
                    p.push(name.text.clone());
                    out.push(p);
                } else if is(toks.get(i + 2), "{") {
                    inline.push((name.text.clone(), depth + 1));
                }
            }
            _ => {}
        }
    }
    out
}

/// The file a module declaration in `file` refers to.
pub(crate) fn module_file(file: &Path, path: &[String]) -> PathBuf {
    let stem = file.file_stem().unwrap().to_string_lossy().to_string();
    let mut dir = file.parent().unwrap().to_path_buf();
    if !["lib", "main", "mod"].contains(&stem.as_str()) {
        dir.push(stem);
    }
    for p in &path[..path.len() - 1] {
        dir.push(p);
    }
    let name = path.last().unwrap();
    let flat = dir.join(format!("{name}.rs"));
    let nested = dir.join(name).join("mod.rs");
    if flat.exists() {
        flat
    } else if nested.exists() {
        nested
    } else {
        panic!("{}: module {path:?} has no file", file.display())
    }
}

/// The production (non-test) source files of a crate's `src/`: the module tree from `lib.rs`
/// (or `main.rs`) without the modules declared `#[cfg(test)]` (and everything below them).
/// A file under `src/` that the tree does not reach counts as production code, so nothing
/// escapes the checks by not being declared.
pub(crate) fn production_sources(krate_dir: &Path) -> Vec<PathBuf> {
    let src = krate_dir.join("src");
    let mut test_files = BTreeSet::new();
    let root = ["lib.rs", "main.rs"]
        .iter()
        .map(|r| src.join(r))
        .find(|p| p.exists());
    let mut stack: Vec<(PathBuf, bool)> = root.into_iter().map(|r| (r, false)).collect();
    while let Some((file, is_test)) = stack.pop() {
        if is_test {
            test_files.insert(file.clone());
        }
        let text = fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("#[path"),
            "{}: #[path] modules are not followed",
            file.display()
        );
        let toks = lex(&text).toks;
        let prod = mod_decls(&strip_cfg_test(&toks));
        for decl in mod_decls(&toks) {
            let child_test = is_test || !prod.contains(&decl);
            stack.push((module_file(&file, &decl), child_test));
        }
    }
    rs_files(&src)
        .into_iter()
        .filter(|p| !test_files.contains(p))
        .collect()
}

/// Every `.rs` file below `dir`, skipping build output (`target`) and hidden directories.
pub(crate) fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
