//! The smallest set of rule deletions and insertions that turns a chain into another.
//!
//! Receives the rules a chain has (in kernel order) and the rules it must have; emits which to
//! delete and where to insert the missing ones, keeping a longest common subsequence in place —
//! so adding a rule at the end is one insertion, deleting one is one deletion, and the rules
//! around them keep their handles and counters. Pure; knows nothing about nftables.

/// Where a missing rule goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Just before the kept rule at this index of `have`.
    Before(usize),
    /// After every kept rule.
    Append,
}

/// The edit that turns `have` into `want`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edit {
    /// Indexes into `have`.
    pub delete: Vec<usize>,
    /// Indexes into `want`, in order, with their place.
    pub insert: Vec<(usize, Insert)>,
}

/// Above this many cells, the middle part (after the common head and tail are set aside) is
/// replaced whole instead of searched for a common subsequence.
const MAX_CELLS: usize = 4_000_000;

pub fn diff<T: PartialEq>(have: &[T], want: &[T]) -> Edit {
    let head = have.iter().zip(want).take_while(|(a, b)| a == b).count();
    let tail = have[head..]
        .iter()
        .rev()
        .zip(want[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (h, w) = (
        &have[head..have.len() - tail],
        &want[head..want.len() - tail],
    );
    // Pairs (index in have, index in want) kept in place, in order.
    let mut kept: Vec<(usize, usize)> = (0..head).map(|i| (i, i)).collect();
    if h.len().saturating_mul(w.len()) <= MAX_CELLS {
        kept.extend(common(h, w).into_iter().map(|(i, j)| (head + i, head + j)));
    }
    kept.extend((0..tail).map(|k| (have.len() - tail + k, want.len() - tail + k)));

    let mut keep_have = vec![false; have.len()];
    let mut keep_want = vec![false; want.len()];
    for &(i, j) in &kept {
        keep_have[i] = true;
        keep_want[j] = true;
    }
    let delete = (0..have.len()).filter(|&i| !keep_have[i]).collect();
    let mut insert = Vec::new();
    let mut next = 0; // index into `kept` of the first pair after the current want index
    for (j, kept_in_place) in keep_want.iter().enumerate() {
        while next < kept.len() && kept[next].1 < j {
            next += 1;
        }
        if !kept_in_place {
            let place = kept
                .get(next)
                .map_or(Insert::Append, |&(i, _)| Insert::Before(i));
            insert.push((j, place));
        }
    }
    Edit { delete, insert }
}

/// A longest common subsequence of `a` and `b`, as index pairs.
fn common<T: PartialEq>(a: &[T], b: &[T]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    // lengths[i][j]: LCS length of a[i..] and b[j..].
    let mut lengths = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lengths[at(i, j)] = if a[i] == b[j] {
                lengths[at(i + 1, j + 1)] + 1
            } else {
                lengths[at(i + 1, j)].max(lengths[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j, mut pairs) = (0, 0, Vec::new());
    while i < n && j < m {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if lengths[at(i + 1, j)] >= lengths[at(i, j + 1)] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies an edit the way the kernel does (deletes by position, inserts before a kept
    /// rule or at the end), to check that it gives `want`.
    fn apply(have: &[char], want: &[char], edit: &Edit) -> Vec<char> {
        // Each element remembers its index in `have` (None: inserted).
        let mut chain: Vec<(Option<usize>, char)> = have
            .iter()
            .enumerate()
            .filter(|(i, _)| !edit.delete.contains(i))
            .map(|(i, c)| (Some(i), *c))
            .collect();
        for &(j, place) in &edit.insert {
            let at = match place {
                Insert::Before(i) => chain.iter().position(|(k, _)| *k == Some(i)).unwrap(),
                Insert::Append => chain.len(),
            };
            chain.insert(at, (None, want[j]));
        }
        chain.into_iter().map(|(_, c)| c).collect()
    }

    #[test]
    fn edits_keep_what_they_can_and_give_the_wanted_order() {
        let cases = [
            ("abc", "abc", 0, 0),
            ("abc", "abcd", 0, 1),
            ("abc", "ac", 1, 0),
            ("abcd", "xabcd", 0, 1),
            ("abcd", "abxcd", 0, 1),
            ("abcd", "dcba", 3, 3),
            ("", "abc", 0, 3),
            ("abc", "", 3, 0),
            ("abcabc", "acbbca", 2, 2),
            ("hhhXYttt", "hhhYXttt", 1, 1),
        ];
        for (have, want, deletes, inserts) in cases {
            let (have, want): (Vec<char>, Vec<char>) =
                (have.chars().collect(), want.chars().collect());
            let edit = diff(&have, &want);
            assert_eq!(
                apply(&have, &want, &edit),
                want,
                "{have:?} -> {want:?}: {edit:?}"
            );
            assert_eq!(
                (edit.delete.len(), edit.insert.len()),
                (deletes, inserts),
                "{have:?} -> {want:?}"
            );
            assert_eq!(edit == Edit::default(), have == want);
        }
    }

    #[test]
    fn a_huge_middle_is_replaced_whole_and_still_right() {
        let have: Vec<u32> = (0..3000).collect();
        let want: Vec<u32> = (0..3000).rev().collect();
        let edit = diff(&have, &want);
        assert_eq!((edit.delete.len(), edit.insert.len()), (3000, 3000));
        assert!(edit.insert.iter().all(|(_, p)| *p == Insert::Append));
    }
}
