//! The results viewer (placeholder).
fn main() {}
