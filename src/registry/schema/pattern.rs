//! `pattern` matching: the regex subset CRDs commonly use, with upstream's (RE2) semantics of an
//! unanchored search where `^`/`$` anchor the whole text and `.` excludes `\n`.
//!
//! Patterns are parsed into a small syntax tree and compiled to an instruction list that is run
//! as a Thompson-NFA simulation: linear in the input, no backtracking blow-up, no recursion over
//! the input. Syntax outside the subset (look-around, back-references, flags, Unicode classes, ...)
//! makes [`Regex::new`] return `None`, which callers treat as "pattern not enforced".
//!
//! This file holds the parser; `nfa.rs` compiles and runs the result.

pub(crate) use super::nfa::Regex;

/// Limits keeping hostile patterns cheap.
const MAX_NESTING: usize = 64;
const MAX_REPEAT: u32 = 1_000;

#[derive(Clone, Debug)]
pub(super) enum Item {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

#[derive(Clone, Debug)]
pub(super) struct Class {
    pub(super) items: Vec<Item>,
    pub(super) negated: bool,
}

pub(super) fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

impl Class {
    pub(super) fn matches(&self, c: char) -> bool {
        let hit = self.items.iter().any(|it| match *it {
            Item::Range(a, b) => a <= c && c <= b,
            Item::Digit(neg) => c.is_ascii_digit() != neg,
            Item::Word(neg) => is_word(c) != neg,
            Item::Space(neg) => is_space(c) != neg,
        });
        hit != self.negated
    }

    fn single(item: Item) -> Self {
        Class {
            items: vec![item],
            negated: false,
        }
    }
}

#[derive(Debug)]
pub(super) enum Node {
    Class(Class),
    Any,
    Start,
    End,
    WordBoundary(bool),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    fn alternation(&mut self, depth: usize) -> Option<Node> {
        if depth > MAX_NESTING {
            return None;
        }
        let mut branches = vec![self.concat(depth)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concat(depth)?);
        }
        Some(if branches.len() == 1 {
            branches.pop()?
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self, depth: usize) -> Option<Node> {
        let mut seq = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom(depth)?;
            let atom = self.quantified(atom)?;
            seq.push(atom);
        }
        Some(Node::Concat(seq))
    }

    fn atom(&mut self, depth: usize) -> Option<Node> {
        let c = self.next()?;
        Some(match c {
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                if self.peek() == Some('?') {
                    self.pos += 1;
                    match self.next()? {
                        ':' => {}
                        'P' if self.peek() == Some('<') => self.skip_group_name()?,
                        '<' if self.peek() != Some('=') && self.peek() != Some('!') => {
                            self.pos -= 1;
                            self.skip_group_name()?
                        }
                        _ => return None,
                    }
                }
                let inner = self.alternation(depth + 1)?;
                if self.next()? != ')' {
                    return None;
                }
                inner
            }
            '[' => Node::Class(self.class()?),
            '\\' => self.escape(false)?,
            '*' | '+' | '?' | ')' => return None,
            c => Node::Class(Class::single(Item::Range(c, c))),
        })
    }

    fn skip_group_name(&mut self) -> Option<()> {
        if self.next()? != '<' {
            return None;
        }
        loop {
            let c = self.next()?;
            if c == '>' {
                return Some(());
            }
            if !is_word(c) {
                return None;
            }
        }
    }

    /// An escape after `\`; inside a class only character-like escapes are allowed.
    fn escape(&mut self, in_class: bool) -> Option<Node> {
        let c = self.next()?;
        let item = match c {
            'd' => Item::Digit(false),
            'D' => Item::Digit(true),
            'w' => Item::Word(false),
            'W' => Item::Word(true),
            's' => Item::Space(false),
            'S' => Item::Space(true),
            'b' if !in_class => return Some(Node::WordBoundary(true)),
            'B' if !in_class => return Some(Node::WordBoundary(false)),
            't' => Item::Range('\t', '\t'),
            'n' => Item::Range('\n', '\n'),
            'r' => Item::Range('\r', '\r'),
            'f' => Item::Range('\x0c', '\x0c'),
            'v' => Item::Range('\x0b', '\x0b'),
            c if c.is_ascii_punctuation() => Item::Range(c, c),
            _ => return None,
        };
        Some(Node::Class(Class::single(item)))
    }

    fn class(&mut self) -> Option<Class> {
        let mut class = Class {
            items: Vec::new(),
            negated: false,
        };
        if self.peek() == Some('^') {
            self.pos += 1;
            class.negated = true;
        }
        let mut first = true;
        loop {
            let c = self.next()?;
            if c == ']' && !first {
                return Some(class);
            }
            first = false;
            if c == '[' && self.peek() == Some(':') {
                return None; // POSIX classes are not supported
            }
            let lo = if c == '\\' {
                match self.escape(true)? {
                    Node::Class(Class { mut items, .. }) => match items.pop()? {
                        Item::Range(a, _) => a,
                        other => {
                            class.items.push(other);
                            continue;
                        }
                    },
                    _ => return None,
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                self.pos += 1;
                let hc = self.next()?;
                let hi = if hc == '\\' {
                    match self.escape(true)? {
                        Node::Class(Class { mut items, .. }) => match items.pop()? {
                            Item::Range(a, _) => a,
                            _ => return None,
                        },
                        _ => return None,
                    }
                } else {
                    hc
                };
                if hi < lo {
                    return None;
                }
                class.items.push(Item::Range(lo, hi));
            } else {
                class.items.push(Item::Range(lo, lo));
            }
        }
    }

    fn quantified(&mut self, atom: Node) -> Option<Node> {
        let mut atom = atom;
        loop {
            let (min, max) = match self.peek() {
                Some('*') => {
                    self.pos += 1;
                    (0, None)
                }
                Some('+') => {
                    self.pos += 1;
                    (1, None)
                }
                Some('?') => {
                    self.pos += 1;
                    (0, Some(1))
                }
                Some('{') => match self.braces() {
                    Some(b) => b,
                    None => return Some(atom), // a literal '{' follows
                },
                _ => return Some(atom),
            };
            if matches!(atom, Node::Start | Node::End | Node::WordBoundary(_)) {
                return None;
            }
            // Laziness does not change whether a match exists.
            if self.peek() == Some('?') {
                self.pos += 1;
            }
            atom = Node::Repeat(Box::new(atom), min, max);
        }
    }

    /// `{n}`, `{n,}`, `{n,m}` at the cursor; on anything else leaves the cursor alone.
    fn braces(&mut self) -> Option<(u32, Option<u32>)> {
        let start = self.pos;
        let mut text = String::new();
        self.pos += 1;
        loop {
            match self.next() {
                Some('}') => break,
                Some(c) if c.is_ascii_digit() || c == ',' => text.push(c),
                _ => {
                    self.pos = start;
                    return None;
                }
            }
        }
        let parsed = match text.split_once(',') {
            None => text.parse().ok().map(|n| (n, Some(n))),
            Some((a, "")) => a.parse().ok().map(|n| (n, None)),
            Some((a, b)) => match (a.parse().ok(), b.parse().ok()) {
                (Some(a), Some(b)) if a <= b => Some((a, Some(b))),
                _ => None,
            },
        };
        match parsed {
            Some((min, max)) if min <= MAX_REPEAT && max.is_none_or(|m| m <= MAX_REPEAT) => {
                Some((min, max))
            }
            _ => {
                self.pos = start;
                None
            }
        }
    }
}

/// Parses `pattern`, or `None` when it uses syntax outside the supported subset.
pub(super) fn parse(pattern: &str) -> Option<Node> {
    let mut p = Parser {
        chars: pattern.chars().collect(),
        pos: 0,
    };
    let ast = p.alternation(0)?;
    if p.pos != p.chars.len() {
        return None; // an unbalanced ')'
    }
    Some(ast)
}
