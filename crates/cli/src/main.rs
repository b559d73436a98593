//! pubhook binary
fn main() {}
