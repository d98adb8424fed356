//! Counts in words, for everything the CLI and the server print: one
//! helper, so that nothing says "1 nodes".
//!
//! ```
//! use jamjet::plural::{count, noun};
//! assert_eq!(count(1, "node", "nodes"), "1 node");
//! assert_eq!(count(10_000usize, "child", "children"), "10000 children");
//! assert_eq!(format!("all {} {} failed", 1, noun(1u32, "branch", "branches")), "all 1 branch failed");
//! ```

use std::fmt::Display;

/// An integer that counts something.
pub trait Count: Copy + Display {
    fn is_one(self) -> bool;
}

macro_rules! counts {
    ($($t:ty),*) => {$(
        impl Count for $t {
            fn is_one(self) -> bool {
                self == 1
            }
        }
    )*};
}
counts!(u8, u16, u32, u64, usize, i32, i64);

/// `n` and its noun: `1 node`, `0 nodes`, `2 nodes`.
pub fn count<N: Count>(n: N, one: &str, many: &str) -> String {
    format!("{n} {}", noun(n, one, many))
}

/// The noun for `n` alone (where the number is printed apart).
pub fn noun<'a, N: Count>(n: N, one: &'a str, many: &'a str) -> &'a str {
    if n.is_one() { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(0u64, "execution", "executions"), "0 executions");
        assert_eq!(count(1u64, "execution", "executions"), "1 execution");
        assert_eq!(count(2u32, "branch", "branches"), "2 branches");
        assert_eq!(count(-1i64, "day", "days"), "-1 days");
        assert_eq!(noun(1usize, "child", "children"), "child");
    }
}
