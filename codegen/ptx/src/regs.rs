//! Register allocation and instruction text for the PTX writer: fresh virtual registers per
//! type, labels, and the `.reg` declarations they need.

use std::fmt::Write;

/// Register allocation and instruction text.
#[derive(Default)]
pub struct Regs {
    pub(crate) body: String,
    nf: u32,
    nrd: u32,
    np: u32,
    nr: u32,
    nh: u32,
    labels: u32,
}

impl Regs {
    /// A fresh `.f32` register.
    pub fn f(&mut self) -> String {
        self.nf += 1;
        format!("%f{}", self.nf)
    }
    /// A fresh `.u64` register.
    pub fn rd(&mut self) -> String {
        self.nrd += 1;
        format!("%rd{}", self.nrd)
    }
    /// A fresh predicate.
    pub fn p(&mut self) -> String {
        self.np += 1;
        format!("%p{}", self.np)
    }
    /// A fresh `.b32` register.
    pub fn r(&mut self) -> String {
        self.nr += 1;
        format!("%r{}", self.nr)
    }
    /// A fresh `.b16` register.
    pub fn h(&mut self) -> String {
        self.nh += 1;
        format!("%h{}", self.nh)
    }
    /// A fresh label.
    pub fn label(&mut self, what: &str) -> String {
        self.labels += 1;
        format!("$L_{what}_{}", self.labels)
    }
    /// `if a >= b goto to` (u64 operands).
    pub fn exit_if_ge(&mut self, a: &str, b: &str, to: &str) {
        let p = self.p();
        self.ins(format!("setp.ge.u64 {p}, {a}, {b}"));
        self.ins(format!("@{p} bra {to}"));
    }
    /// The head of a loop over `counter < bound`: returns the labels (head, done).
    pub fn loop_head(&mut self, what: &str, counter: &str, bound: &str) -> (String, String) {
        let (head, done) = (self.label(what), self.label(&format!("{what}_done")));
        self.put_label(&head);
        self.exit_if_ge(counter, bound, &done);
        (head, done)
    }
    /// One instruction.
    pub fn ins(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.body, "\t{};", s.as_ref());
    }
    /// A `{ ... }` scope of instructions (no `;` after the brace), for registers only they use.
    pub fn scoped(&mut self, lines: &[String]) {
        self.body.push_str("\t{\n");
        for l in lines {
            let _ = writeln!(self.body, "\t{l};");
        }
        self.body.push_str("\t}\n");
    }
    /// A label line.
    pub fn put_label(&mut self, l: &str) {
        let _ = writeln!(self.body, "{l}:");
    }
    pub(crate) fn decls(&self) -> String {
        let mut s = String::new();
        for (ty, prefix, n) in [(".f32", "%f", self.nf), (".u64", "%rd", self.nrd), (".pred", "%p", self.np), (".b32", "%r", self.nr), (".b16", "%h", self.nh)] {
            if n > 0 {
                let _ = writeln!(s, "\t.reg {ty} {prefix}<{}>;", n + 1);
            }
        }
        s
    }
}

