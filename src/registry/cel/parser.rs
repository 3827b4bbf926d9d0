//! A recursive-descent parser for CEL's grammar (cel-spec `langdef.md`), with CEL's operator
//! precedence, negative literal folding, and the macros `has`, `all`, `exists`, `exists_one`,
//! `map` and `filter` expanded into [`Macro`] nodes. Nesting is bounded so hostile input cannot
//! exhaust the stack. Optional syntax (`?.`, `[?`) is refused: it is not supported.

use super::ast::{BinOp, Kind, Lit, Macro, MacroKind, Node};
use super::lexer::{is_reserved, lex, Tok};
use super::CompileError;

/// How deeply expressions may nest (cel-go's parser allows 250; Kubernetes rules are small).
const MAX_DEPTH: usize = 100;
/// How tall the syntax tree may grow (long operator chains make tall trees without nesting).
const MAX_HEIGHT: usize = 200;

pub fn parse(src: &str) -> Result<Node, CompileError> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        at: 0,
        depth: 0,
    };
    let e = p.expr()?;
    match p.peek() {
        Tok::Eof => Ok(e),
        t => Err(CompileError::syntax(
            p.pos(),
            &format!("extraneous input {}", show(t)),
        )),
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Punct(p) => format!("'{p}'"),
        Tok::Eof => "<EOF>".into(),
        Tok::Str(s) => format!("'\"{s}\"'"),
        other => format!("'{other:?}'"),
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].0
    }
    fn pos(&self) -> usize {
        self.toks[self.at].1
    }
    fn bump(&mut self) -> (Tok, usize) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }
    fn is(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }
    fn eat(&mut self, p: &str) -> bool {
        if self.is(p) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<(), CompileError> {
        if self.eat(p) {
            return Ok(());
        }
        Err(CompileError::syntax(
            self.pos(),
            &format!("mismatched input {} expecting '{p}'", show(self.peek())),
        ))
    }

    /// Builds a node, refusing trees taller than [`MAX_HEIGHT`].
    fn mk(&self, pos: usize, kind: Kind) -> Result<Node, CompileError> {
        let n = Node::new(pos, kind);
        if n.height > MAX_HEIGHT {
            return Err(CompileError::syntax(
                pos,
                &format!("expression recursion limit exceeded: {MAX_HEIGHT}"),
            ));
        }
        Ok(n)
    }

    fn enter(&mut self) -> Result<(), CompileError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CompileError::syntax(
                self.pos(),
                &format!("expression recursion limit exceeded: {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Node, CompileError> {
        self.enter()?;
        let cond = self.or()?;
        let r = if self.is("?") {
            let pos = self.bump().1;
            let a = self.or()?;
            self.expect(":")?;
            let b = self.expr()?;
            self.mk(pos, Kind::Cond(Box::new(cond), Box::new(a), Box::new(b)))
        } else {
            Ok(cond)
        };
        self.depth -= 1;
        r
    }

    fn or(&mut self) -> Result<Node, CompileError> {
        let mut l = self.and()?;
        while self.is("||") {
            let pos = self.bump().1;
            let r = self.and()?;
            l = self.mk(pos, Kind::Or(Box::new(l), Box::new(r)))?;
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Node, CompileError> {
        let mut l = self.relation()?;
        while self.is("&&") {
            let pos = self.bump().1;
            let r = self.relation()?;
            l = self.mk(pos, Kind::And(Box::new(l), Box::new(r)))?;
        }
        Ok(l)
    }

    fn relation(&mut self) -> Result<Node, CompileError> {
        let mut l = self.addition()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("<") => BinOp::Lt,
                Tok::Punct("<=") => BinOp::Le,
                Tok::Punct(">") => BinOp::Gt,
                Tok::Punct(">=") => BinOp::Ge,
                Tok::Punct("==") => BinOp::Eq,
                Tok::Punct("!=") => BinOp::Ne,
                Tok::Ident(w) if w == "in" => BinOp::In,
                _ => return Ok(l),
            };
            let pos = self.bump().1;
            let r = self.addition()?;
            l = self.mk(pos, Kind::Bin(op, Box::new(l), Box::new(r)))?;
        }
    }

    fn addition(&mut self) -> Result<Node, CompileError> {
        let mut l = self.multiplication()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("+") => BinOp::Add,
                Tok::Punct("-") => BinOp::Sub,
                _ => return Ok(l),
            };
            let pos = self.bump().1;
            let r = self.multiplication()?;
            l = self.mk(pos, Kind::Bin(op, Box::new(l), Box::new(r)))?;
        }
    }

    fn multiplication(&mut self) -> Result<Node, CompileError> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("*") => BinOp::Mul,
                Tok::Punct("/") => BinOp::Div,
                Tok::Punct("%") => BinOp::Rem,
                _ => return Ok(l),
            };
            let pos = self.bump().1;
            let r = self.unary()?;
            l = self.mk(pos, Kind::Bin(op, Box::new(l), Box::new(r)))?;
        }
    }

    fn unary(&mut self) -> Result<Node, CompileError> {
        self.enter()?;
        let r = if self.is("!") {
            let pos = self.bump().1;
            let e = self.unary()?;
            self.mk(pos, Kind::Not(Box::new(e)))
        } else if self.is("-") {
            let pos = self.bump().1;
            // Fold a negative numeric literal, so that the smallest int is expressible.
            match self.peek().clone() {
                Tok::IntMinMagnitude => {
                    self.bump();
                    self.member_tail(Node::new(pos, Kind::Lit(Lit::Int(i64::MIN))))
                }
                Tok::Int(v) => {
                    self.bump();
                    self.member_tail(Node::new(pos, Kind::Lit(Lit::Int(-v))))
                }
                Tok::Double(v) => {
                    self.bump();
                    self.member_tail(Node::new(pos, Kind::Lit(Lit::Double(-v))))
                }
                _ => {
                    let e = self.unary()?;
                    self.mk(pos, Kind::Neg(Box::new(e)))
                }
            }
        } else {
            let p = self.primary()?;
            self.member_tail(p)
        };
        self.depth -= 1;
        r
    }

    fn member_tail(&mut self, mut e: Node) -> Result<Node, CompileError> {
        loop {
            if self.is("?.") {
                return Err(CompileError::syntax(self.pos(), "unsupported syntax '?.'"));
            }
            if self.is(".") {
                let pos = self.bump().1;
                let name = self.ident()?;
                if self.is("(") {
                    self.bump();
                    let args = self.args(")")?;
                    e = self.member_call(pos, e, name, args)?;
                } else {
                    e = self.mk(pos, Kind::Select(Box::new(e), name))?;
                }
            } else if self.is("[") {
                let pos = self.bump().1;
                if self.is("?") {
                    return Err(CompileError::syntax(self.pos(), "unsupported syntax '[?'"));
                }
                let i = self.expr()?;
                self.expect("]")?;
                e = self.mk(pos, Kind::Index(Box::new(e), Box::new(i)))?;
            } else {
                return Ok(e);
            }
        }
    }

    fn ident(&mut self) -> Result<String, CompileError> {
        match self.peek().clone() {
            Tok::Ident(w) if !is_reserved(&w) => {
                self.bump();
                Ok(w)
            }
            t => Err(CompileError::syntax(
                self.pos(),
                &format!("no viable alternative at input {}", show(&t)),
            )),
        }
    }

    fn args(&mut self, close: &str) -> Result<Vec<Node>, CompileError> {
        let mut out = vec![];
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(self.expr()?);
            if self.eat(close) {
                return Ok(out);
            }
            self.expect(",")?;
            if close == "]" && self.eat(close) {
                return Ok(out);
            }
        }
    }

    fn member_call(
        &mut self,
        pos: usize,
        target: Node,
        name: String,
        mut args: Vec<Node>,
    ) -> Result<Node, CompileError> {
        let kind = match (name.as_str(), args.len()) {
            ("all", 2) => Some(MacroKind::All),
            ("exists", 2) => Some(MacroKind::Exists),
            ("exists_one", 2) => Some(MacroKind::ExistsOne),
            ("map", 2 | 3) => Some(MacroKind::Map),
            ("filter", 2) => Some(MacroKind::Filter),
            _ => None,
        };
        let Some(kind) = kind else {
            // A namespaced global function (`ip.isCanonical(s)`).
            if matches!(&target.kind, Kind::Ident(ns) if ns == "ip") && name == "isCanonical" {
                return self.mk(pos, Kind::Call(None, "ip.isCanonical".into(), args));
            }
            return self.mk(pos, Kind::Call(Some(Box::new(target)), name, args));
        };
        let var = match &args[0].kind {
            Kind::Ident(v) => v.clone(),
            _ => {
                return Err(CompileError::syntax(
                    args[0].pos,
                    "argument must be a simple name",
                ))
            }
        };
        let body = args.pop().expect("two or three arguments");
        let filter = if args.len() == 2 { args.pop() } else { None };
        self.mk(
            pos,
            Kind::Macro(Box::new(Macro {
                kind,
                range: target,
                var,
                filter,
                body,
            })),
        )
    }

    fn primary(&mut self) -> Result<Node, CompileError> {
        let (tok, pos) = self.bump();
        let lit = |l| Ok(Node::new(pos, Kind::Lit(l)));
        match tok {
            Tok::Int(v) => lit(Lit::Int(v)),
            Tok::Uint(v) => lit(Lit::Uint(v)),
            Tok::Double(v) => lit(Lit::Double(v)),
            Tok::Str(s) => lit(Lit::Str(s)),
            Tok::Bytes(b) => lit(Lit::Bytes(b)),
            Tok::IntMinMagnitude => Err(CompileError::syntax(pos, "invalid int literal")),
            Tok::Ident(w) if w == "true" => lit(Lit::Bool(true)),
            Tok::Ident(w) if w == "false" => lit(Lit::Bool(false)),
            Tok::Ident(w) if w == "null" => lit(Lit::Null),
            Tok::Ident(w) if !is_reserved(&w) => {
                if self.is("(") {
                    self.bump();
                    let args = self.args(")")?;
                    if w == "has" {
                        return match args.as_slice() {
                            [Node {
                                kind: Kind::Select(o, f),
                                ..
                            }] => self.mk(pos, Kind::Has(o.clone(), f.clone())),
                            _ => Err(CompileError::syntax(pos, "invalid argument to has() macro")),
                        };
                    }
                    return self.mk(pos, Kind::Call(None, w, args));
                }
                if self.is("{") {
                    return Err(CompileError::syntax(
                        self.pos(),
                        "message construction is not supported",
                    ));
                }
                Ok(Node::new(pos, Kind::Ident(w)))
            }
            Tok::Punct(".") => {
                let w = self.ident()?;
                Ok(Node::new(pos, Kind::Ident(w)))
            }
            Tok::Punct("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Punct("[") => {
                let items = self.args("]")?;
                self.mk(pos, Kind::List(items))
            }
            Tok::Punct("{") => {
                let mut entries = vec![];
                if !self.eat("}") {
                    loop {
                        let k = self.expr()?;
                        self.expect(":")?;
                        let v = self.expr()?;
                        entries.push((k, v));
                        if self.eat("}") {
                            break;
                        }
                        self.expect(",")?;
                        if self.eat("}") {
                            break;
                        }
                    }
                }
                self.mk(pos, Kind::Map(entries))
            }
            t => Err(CompileError::syntax(
                pos,
                &format!("mismatched input {} expecting expression", show(&t)),
            )),
        }
    }
}
