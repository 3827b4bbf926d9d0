//! The syntax tree of a parsed CEL expression. Literals are plain data (no shared pointers), so a
//! compiled rule can be cached and shared between threads; macros are expanded by the parser
//! into [`Macro`] nodes.

#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl BinOp {
    /// The operator's name as CEL's overload errors spell it.
    pub fn name(self) -> &'static str {
        match self {
            BinOp::Add => "_+_",
            BinOp::Sub => "_-_",
            BinOp::Mul => "_*_",
            BinOp::Div => "_/_",
            BinOp::Rem => "_%_",
            BinOp::Eq => "_==_",
            BinOp::Ne => "_!=_",
            BinOp::Lt => "_<_",
            BinOp::Le => "_<=_",
            BinOp::Gt => "_>_",
            BinOp::Ge => "_>=_",
            BinOp::In => "@in",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacroKind {
    All,
    Exists,
    ExistsOne,
    Map,
    Filter,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Macro {
    pub kind: MacroKind,
    pub range: Node,
    pub var: String,
    /// The filter of the three-argument `map`.
    pub filter: Option<Node>,
    /// The predicate (`all`, `exists`, `exists_one`, `filter`) or the transform (`map`).
    pub body: Node,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Lit(Lit),
    Ident(String),
    Select(Box<Node>, String),
    /// `has(x.f)`.
    Has(Box<Node>, String),
    Index(Box<Node>, Box<Node>),
    /// A global call (`size(x)`) or a member call (`x.size()`).
    Call(Option<Box<Node>>, String, Vec<Node>),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Macro(Box<Macro>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Byte offset of the node in the source.
    pub pos: usize,
    /// The height of the tree below (and including) this node; the parser bounds it, so that
    /// checking, evaluating and dropping a tree never recurses deeply.
    pub height: usize,
    pub kind: Kind,
}

impl Node {
    pub fn new(pos: usize, kind: Kind) -> Node {
        let h = |n: &Node| n.height;
        let below = match &kind {
            Kind::Lit(_) | Kind::Ident(_) => 0,
            Kind::Select(o, _) | Kind::Has(o, _) | Kind::Not(o) | Kind::Neg(o) => h(o),
            Kind::Index(a, b) | Kind::Bin(_, a, b) | Kind::And(a, b) | Kind::Or(a, b) => {
                h(a).max(h(b))
            }
            Kind::Call(t, _, args) => args
                .iter()
                .map(h)
                .chain(t.iter().map(|t| h(t)))
                .max()
                .unwrap_or(0),
            Kind::List(items) => items.iter().map(h).max().unwrap_or(0),
            Kind::Map(entries) => entries
                .iter()
                .map(|(k, v)| h(k).max(h(v)))
                .max()
                .unwrap_or(0),
            Kind::Cond(a, b, c) => h(a).max(h(b)).max(h(c)),
            Kind::Macro(m) => h(&m.range)
                .max(h(&m.body))
                .max(m.filter.as_ref().map(h).unwrap_or(0)),
        };
        Node {
            pos,
            height: below + 1,
            kind,
        }
    }

    /// Whether the expression mentions the variable `name` outside a macro that rebinds it.
    pub fn references(&self, name: &str) -> bool {
        let any = |ns: &[Node]| ns.iter().any(|n| n.references(name));
        match &self.kind {
            Kind::Lit(_) => false,
            Kind::Ident(n) => n == name,
            Kind::Select(o, _) | Kind::Has(o, _) | Kind::Not(o) | Kind::Neg(o) => {
                o.references(name)
            }
            Kind::Index(a, b) | Kind::Bin(_, a, b) | Kind::And(a, b) | Kind::Or(a, b) => {
                a.references(name) || b.references(name)
            }
            Kind::Call(t, _, args) => t.as_ref().is_some_and(|t| t.references(name)) || any(args),
            Kind::List(items) => any(items),
            Kind::Map(entries) => entries
                .iter()
                .any(|(k, v)| k.references(name) || v.references(name)),
            Kind::Cond(a, b, c) => a.references(name) || b.references(name) || c.references(name),
            Kind::Macro(m) => {
                m.range.references(name)
                    || (m.var != name
                        && (m.body.references(name)
                            || m.filter.as_ref().is_some_and(|f| f.references(name))))
            }
        }
    }
}
