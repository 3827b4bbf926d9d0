//! Links the `k1s` binary as a position-dependent executable. Every pod's `k1s shim` is this
//! binary re-executed; in a PIE, the dynamic loader relocates the binary's read-only data
//! tables (`.data.rel.ro`, about 0.8 MB of vtables and string tables) in each process, a
//! private copy per shim. Linked at a fixed address they need no relocation and stay shared
//! file pages. Go-built k3s binaries are position-dependent too; shared libraries, the heap
//! and stacks are still randomized.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
