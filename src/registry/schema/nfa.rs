//! Compilation of a parsed pattern to NFA instructions and its simulation (see `pattern.rs`).

use super::pattern::{is_word, parse, Class, Node};

const MAX_PROGRAM: usize = 20_000;
const MAX_WORK: usize = 50_000_000;

#[derive(Debug)]
enum Inst {
    Class(Class),
    Any,
    Start,
    End,
    WordBoundary(bool),
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// A compiled pattern.
#[derive(Debug)]
pub(crate) struct Regex {
    prog: Vec<Inst>,
}

fn emit(node: &Node, prog: &mut Vec<Inst>) -> Option<()> {
    if prog.len() > MAX_PROGRAM {
        return None;
    }
    match node {
        Node::Class(c) => prog.push(Inst::Class(c.clone())),
        Node::Any => prog.push(Inst::Any),
        Node::Start => prog.push(Inst::Start),
        Node::End => prog.push(Inst::End),
        Node::WordBoundary(b) => prog.push(Inst::WordBoundary(*b)),
        Node::Concat(seq) => {
            for n in seq {
                emit(n, prog)?;
            }
        }
        Node::Alt(branches) => {
            let mut jumps = Vec::new();
            let last = branches.len().saturating_sub(1);
            for (i, b) in branches.iter().enumerate() {
                if i < last {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(b, prog)?;
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    emit(b, prog)?;
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Node::Repeat(body, min, max) => {
            for _ in 0..*min {
                emit(body, prog)?;
            }
            match max {
                None => {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(body, prog)?;
                    prog.push(Inst::Jmp(split));
                    let end = prog.len();
                    prog[split] = Inst::Split(split + 1, end);
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(prog.len());
                        prog.push(Inst::Split(0, 0));
                        emit(body, prog)?;
                    }
                    let end = prog.len();
                    for s in splits {
                        prog[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
    if prog.len() > MAX_PROGRAM {
        return None;
    }
    Some(())
}

impl Regex {
    /// Compiles `pattern`, or `None` when it uses syntax outside the supported subset.
    pub(crate) fn new(pattern: &str) -> Option<Regex> {
        let ast = parse(pattern)?;
        let mut prog = Vec::new();
        emit(&ast, &mut prog)?;
        prog.push(Inst::Match);
        Some(Regex { prog })
    }

    /// Whether the pattern matches anywhere in `text`.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        let input: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        if (input.len() + 1).saturating_mul(n) > MAX_WORK {
            return true; // too costly to decide: not enforced
        }
        let mut marks = vec![0usize; n];
        let mut clist: Vec<usize> = Vec::new();
        let mut nlist: Vec<usize> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        for pos in 0..=input.len() {
            let generation = pos + 1;
            // Unanchored search: a thread may start at every position.
            if self.add(
                &mut clist, &mut marks, &mut stack, generation, 0, &input, pos,
            ) {
                return true;
            }
            nlist.clear();
            for &pc in &clist {
                let ok = match (&self.prog[pc], input.get(pos)) {
                    (Inst::Class(c), Some(&ch)) => c.matches(ch),
                    (Inst::Any, Some(&ch)) => ch != '\n',
                    _ => false,
                };
                if ok
                    && self.add(
                        &mut nlist,
                        &mut marks,
                        &mut stack,
                        generation + 1,
                        pc + 1,
                        &input,
                        pos + 1,
                    )
                {
                    return true;
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
        }
        false
    }

    /// Adds the epsilon closure of `pc` at `pos` to `list`; true when it reaches `Match`.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        list: &mut Vec<usize>,
        marks: &mut [usize],
        stack: &mut Vec<usize>,
        generation: usize,
        pc: usize,
        input: &[char],
        pos: usize,
    ) -> bool {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            let Some(mark) = marks.get_mut(pc) else {
                continue;
            };
            if *mark == generation {
                continue;
            }
            *mark = generation;
            match &self.prog[pc] {
                Inst::Jmp(a) => stack.push(*a),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Start => {
                    if pos == 0 {
                        stack.push(pc + 1);
                    }
                }
                Inst::End => {
                    if pos == input.len() {
                        stack.push(pc + 1);
                    }
                }
                Inst::WordBoundary(want) => {
                    let before = pos > 0 && input.get(pos - 1).is_some_and(|&c| is_word(c));
                    let after = input.get(pos).is_some_and(|&c| is_word(c));
                    if (before != after) == *want {
                        stack.push(pc + 1);
                    }
                }
                Inst::Match => return true,
                Inst::Class(_) | Inst::Any => list.push(pc),
            }
        }
        false
    }
}
