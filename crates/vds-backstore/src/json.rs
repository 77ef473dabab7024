//! A small JSON reader for what Ceph's monitor answers (`osd pool ls detail`, `df detail`,
//! `pg dump pgs_brief` in `format json`): serde lives only at the edge (ARCHITECTURE.md
//! "Serde lives at the edge"), and these answers need only values looked up by key. Numbers
//! keep their text, so a byte count is read exactly as an integer; nesting is bounded.

use std::io;

/// Deepest nesting taken (Ceph's answers nest four or five levels).
const MAX_DEPTH: usize = 64;

/// One JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Num(String),
    /// A string, unescaped.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, its members in order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole document (trailing whitespace allowed, nothing else).
    pub fn parse(text: &[u8]) -> io::Result<Json> {
        let mut p = Parser { s: text, at: 0 };
        let v = p.value(0)?;
        p.ws();
        if p.at != text.len() {
            return Err(p.err("trailing bytes after the value"));
        }
        Ok(v)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A non-negative integer (a number with no fraction or exponent that fits).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Num(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// An integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Num(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// A string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An array's items (empty for anything else).
    pub fn items(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            _ => &[],
        }
    }

    /// An object's members (empty for anything else).
    pub fn members(&self) -> &[(String, Json)] {
        match self {
            Json::Obj(m) => m,
            _ => &[],
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed JSON at byte {}: {what}", self.at),
        )
    }

    fn ws(&mut self) {
        while self
            .s
            .get(self.at)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, word: &[u8]) -> bool {
        if self.s[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> io::Result<Json> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.ws();
        match self.s.get(self.at) {
            None => Err(self.err("unexpected end")),
            Some(b'{') => self.object(depth),
            Some(b'[') => {
                self.at += 1;
                let mut v = Vec::new();
                self.ws();
                if self.eat(b"]") {
                    return Ok(Json::Arr(v));
                }
                loop {
                    v.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b"]") {
                        return Ok(Json::Arr(v));
                    }
                    if !self.eat(b",") {
                        return Err(self.err("expected , or ]"));
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') if self.eat(b"true") => Ok(Json::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Json::Bool(false)),
            Some(b'n') if self.eat(b"null") => Ok(Json::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.at;
                while self
                    .s
                    .get(self.at)
                    .is_some_and(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    self.at += 1;
                }
                let n = std::str::from_utf8(&self.s[start..self.at]).unwrap_or_default();
                if n.parse::<f64>().is_err() {
                    return Err(self.err("bad number"));
                }
                Ok(Json::Num(n.to_string()))
            }
            Some(_) => Err(self.err("unexpected byte")),
        }
    }

    fn object(&mut self, depth: usize) -> io::Result<Json> {
        self.at += 1;
        let mut m = Vec::new();
        self.ws();
        if self.eat(b"}") {
            return Ok(Json::Obj(m));
        }
        loop {
            self.ws();
            if self.s.get(self.at) != Some(&b'"') {
                return Err(self.err("expected a key"));
            }
            let k = self.string()?;
            self.ws();
            if !self.eat(b":") {
                return Err(self.err("expected :"));
            }
            m.push((k, self.value(depth + 1)?));
            self.ws();
            if self.eat(b"}") {
                return Ok(Json::Obj(m));
            }
            if !self.eat(b",") {
                return Err(self.err("expected , or }"));
            }
        }
    }

    fn hex4(&mut self) -> io::Result<u32> {
        let h = self
            .s
            .get(self.at..self.at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err("bad \\u escape"))?;
        self.at += 4;
        Ok(h)
    }

    fn string(&mut self) -> io::Result<String> {
        self.at += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.at) else {
                return Err(self.err("unterminated string"));
            };
            self.at += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.at += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut u = self.hex4()?;
                            if (0xd800..0xdc00).contains(&u) && self.eat(b"\\u") {
                                let lo = self.hex4()?;
                                u = 0x10000
                                    + ((u - 0xd800) << 10)
                                    + (lo.wrapping_sub(0xdc00) & 0x3ff);
                            }
                            char::from_u32(u).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    let mut b = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                }
                c if c < 0x20 => return Err(self.err("control byte in a string")),
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("a string that is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::Json;

    #[test]
    fn reads_ceph_shapes() {
        let j = Json::parse(
            br#"{"pools":[{"name":"rbd","id":1,"stats":{"max_avail":4080190208,"percent_used":6.6e-06}}],
                "x":[true,false,null,"a\"b\u00e9\n"], "e":{}, "a":[]}"#,
        )
        .unwrap();
        let p = &j.get("pools").unwrap().items()[0];
        assert_eq!(p.get("name").unwrap().as_str(), Some("rbd"));
        assert_eq!(p.get("id").unwrap().as_u64(), Some(1));
        let s = p.get("stats").unwrap();
        assert_eq!(s.get("max_avail").unwrap().as_u64(), Some(4_080_190_208));
        assert_eq!(s.get("percent_used").unwrap().as_u64(), None);
        assert_eq!(j.get("x").unwrap().items()[3].as_str(), Some("a\"bé\n"));
        assert_eq!(j.get("e").unwrap().members().len(), 0);
        assert_eq!(
            Json::parse(b"18446744073709551615").unwrap().as_u64(),
            Some(u64::MAX)
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            &b""[..],
            b"{",
            b"[1,]",
            b"{\"a\" 1}",
            b"{\"a\":1} x",
            b"\"abc",
            b"\"\x01\"",
            b"tru",
            b"-",
            b"\"\\q\"",
            b"{1:2}",
        ] {
            assert!(
                Json::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(Json::parse(deep.as_bytes()).is_err());
        let ok = "[".repeat(60) + &"]".repeat(60);
        assert!(Json::parse(ok.as_bytes()).is_ok());
    }
}
