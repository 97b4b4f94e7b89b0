//! For every position of a text, the longest pattern that starts there; and
//! for every pattern, the longest shorter pattern that is a prefix of it.
//!
//! An Aho-Corasick automaton over the reversed patterns, run over the text
//! backwards: the state after reading `text[s..]` backwards is the longest
//! reversed-pattern prefix that ends the reading, and its output the longest
//! pattern starting at `s`. Following the output links from a pattern's own
//! node gives the shorter patterns that are prefixes of it, longest first.
//!
//! The trie is built level by level in breadth-first order, so a node's
//! children are consecutive and sorted by byte, and the nodes take 13 bytes
//! each, at most one per pattern byte. Building is linear in the pattern
//! bytes (a byte sort per trie node, counting sort for large nodes), and a
//! scan linear in the text: a crafted vocab of long or many special tokens
//! costs memory and time in proportion to its size.

/// No node or pattern.
const NONE: u32 = u32::MAX;
const ROOT: u32 = 0;

pub(crate) struct LongestMatch {
    /// The byte on the edge into each node.
    edge_byte: Vec<u8>,
    /// Node `v`'s children are `first_child[v]..first_child[v + 1]`.
    first_child: Vec<u32>,
    /// The node of the longest proper suffix of `v`'s string that is a node.
    fail: Vec<u32>,
    /// The longest pattern whose reversal is a suffix of `v`'s string.
    output: Vec<u32>,
    /// Where the root goes on each byte (the root itself when nowhere).
    root_next: Box<[u32; 256]>,
    /// Per pattern: the longest shorter pattern that is a prefix of it.
    shorter: Vec<u32>,
}

impl LongestMatch {
    /// Patterns are non-empty; of two equal patterns, the first is reported.
    pub fn new(patterns: &[&[u8]]) -> Result<LongestMatch, String> {
        let total: usize = patterns.iter().map(|p| p.len()).sum();
        if total >= NONE as usize - 1 || patterns.len() >= NONE as usize {
            return Err(format!(
                "{} special tokens of {total} bytes in all, more than 4 GiB",
                patterns.len()
            ));
        }
        let mut m = LongestMatch {
            edge_byte: vec![0],
            first_child: Vec::new(),
            fail: vec![ROOT],
            output: vec![NONE],
            root_next: Box::new([ROOT; 256]),
            shorter: Vec::new(),
        };
        let node_of = m.build_trie(patterns);
        for c in 0..=255u8 {
            if let Some(v) = m.child(ROOT, c) {
                m.root_next[c as usize] = v;
            }
        }
        m.link_failures();
        m.shorter = node_of
            .iter()
            .map(|&v| {
                if v == NONE {
                    NONE
                } else {
                    m.output[m.fail[v as usize] as usize]
                }
            })
            .collect();
        Ok(m)
    }

    /// Calls `found(start, pattern)` for every start of `text` that has a
    /// pattern, with its longest, from the last start to the first.
    pub fn for_each_longest(&self, text: &[u8], mut found: impl FnMut(usize, u32)) {
        let mut v = ROOT;
        for (start, &c) in text.iter().enumerate().rev() {
            v = self.next(v, c);
            let p = self.output[v as usize];
            if p != NONE {
                found(start, p);
            }
        }
    }

    /// The longest pattern that is a proper prefix of `pattern`.
    pub fn shorter(&self, pattern: u32) -> Option<u32> {
        Some(self.shorter[pattern as usize]).filter(|&p| p != NONE)
    }

    /// Builds the trie of the reversed patterns, breadth first; returns
    /// each pattern's node.
    fn build_trie(&mut self, patterns: &[&[u8]]) -> Vec<u32> {
        let mut node_of = vec![NONE; patterns.len()];
        // The patterns longer than `depth`, grouped by their node at `depth`,
        // nodes in order.
        let mut active: Vec<Descent> = (0..patterns.len() as u32)
            .filter(|&p| !patterns[p as usize].is_empty())
            .map(|p| Descent {
                node: ROOT,
                pattern: p,
                left: patterns[p as usize].len() as u32,
                ahead: 0,
            })
            .collect();
        let mut next_active = Vec::new();
        let mut scratch = Vec::new();
        let (mut level_start, mut level_end) = (0u32, 1u32);
        let mut depth = 0;
        while level_start < level_end {
            if depth % 8 == 0 {
                for e in &mut active {
                    e.ahead = next_bytes(patterns[e.pattern as usize], depth);
                }
            }
            sort_each_node_by_byte(&mut active, &mut scratch);
            let mut parent = level_start;
            let mut last_edge = None;
            for e in &active {
                while parent <= e.node {
                    self.first_child.push(self.edge_byte.len() as u32);
                    parent += 1;
                }
                let c = e.ahead as u8;
                if last_edge != Some((e.node, c)) {
                    last_edge = Some((e.node, c));
                    self.edge_byte.push(c);
                    self.fail.push(ROOT);
                    self.output.push(NONE);
                }
                let child = self.edge_byte.len() as u32 - 1;
                if e.left == 1 {
                    node_of[e.pattern as usize] = child;
                    if self.output[child as usize] == NONE {
                        self.output[child as usize] = e.pattern;
                    }
                } else {
                    next_active.push(Descent {
                        node: child,
                        pattern: e.pattern,
                        left: e.left - 1,
                        ahead: e.ahead >> 8,
                    });
                }
            }
            while parent < level_end {
                self.first_child.push(self.edge_byte.len() as u32);
                parent += 1;
            }
            (level_start, level_end) = (level_end, self.edge_byte.len() as u32);
            depth += 1;
            std::mem::swap(&mut active, &mut next_active);
            next_active.clear();
        }
        self.first_child.push(self.edge_byte.len() as u32);
        node_of
    }

    /// Failure links and outputs, parents before children. Following
    /// failure links while building costs at most one step per pattern
    /// byte in all, as in any Aho-Corasick build.
    fn link_failures(&mut self) {
        for u in 0..self.edge_byte.len() {
            for v in self.first_child[u] as usize..self.first_child[u + 1] as usize {
                let target = match u as u32 {
                    ROOT => ROOT,
                    _ => self.next(self.fail[u], self.edge_byte[v]),
                };
                self.fail[v] = target;
                if self.output[v] == NONE {
                    self.output[v] = self.output[target as usize];
                }
            }
        }
    }

    /// The state after `v` on byte `c`: its child, or its failure's, ...,
    /// or the root's.
    fn next(&self, mut v: u32, c: u8) -> u32 {
        loop {
            if v == ROOT {
                return self.root_next[c as usize];
            }
            if let Some(w) = self.child(v, c) {
                return w;
            }
            v = self.fail[v as usize];
        }
    }

    fn child(&self, v: u32, c: u8) -> Option<u32> {
        let (lo, hi) = (
            self.first_child[v as usize],
            self.first_child[v as usize + 1],
        );
        let bytes = &self.edge_byte[lo as usize..hi as usize];
        bytes.binary_search(&c).ok().map(|i| lo + i as u32)
    }
}

/// A pattern on its way down the trie being built.
#[derive(Clone, Copy, Default)]
struct Descent {
    node: u32,
    pattern: u32,
    /// Bytes of it still to place, this level's included.
    left: u32,
    /// Its next bytes (of the reversal), this level's lowest: read 8 at a
    /// time, as reading one byte of every pattern per level misses the cache.
    ahead: u64,
}

/// Up to 8 bytes of `pattern` reversed, from `depth` on, the first lowest.
fn next_bytes(pattern: &[u8], depth: usize) -> u64 {
    let end = pattern.len() - depth;
    let bytes = &pattern[end.saturating_sub(8)..end];
    bytes.iter().fold(0, |acc, &b| acc << 8 | b as u64)
}

/// Sorts each run of equal nodes in `active` by this level's byte, runs
/// staying in place: a comparison sort for small runs, a counting sort for
/// large ones, so each entry costs O(1) (at most log 64).
fn sort_each_node_by_byte(active: &mut [Descent], scratch: &mut Vec<Descent>) {
    let byte = |e: &Descent| e.ahead as u8 as usize;
    let mut start = 0;
    while start < active.len() {
        let node = active[start].node;
        let len = active[start..].iter().take_while(|e| e.node == node).count();
        let run = &mut active[start..start + len];
        if len <= 64 {
            run.sort_unstable_by_key(byte);
        } else {
            let mut at = [0usize; 257];
            for e in run.iter() {
                at[byte(e) + 1] += 1;
            }
            for b in 0..256 {
                at[b + 1] += at[b];
            }
            scratch.clear();
            scratch.resize(len, Descent::default());
            for e in run.iter() {
                scratch[at[byte(e)]] = *e;
                at[byte(e)] += 1;
            }
            run.copy_from_slice(scratch);
        }
        start += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest pattern at each start, by brute force.
    fn brute(patterns: &[&[u8]], text: &[u8]) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        for s in (0..text.len()).rev() {
            let best = (0..patterns.len() as u32)
                .filter(|&p| text[s..].starts_with(patterns[p as usize]))
                .max_by_key(|&p| (patterns[p as usize].len(), std::cmp::Reverse(p)));
            out.extend(best.map(|p| (s, p)));
        }
        out
    }

    #[test]
    fn longest_at_each_start_and_shorter_prefixes() {
        let patterns: Vec<&[u8]> = vec![
            b"a", b"ab", b"abc", b"bc", b"c", b"abcd", b"xyz", b"yz", b"zz", b"bcab", b"cabc",
        ];
        let m = LongestMatch::new(&patterns).unwrap();
        for text in [
            &b"abcabcdxyzzzyz"[..],
            b"",
            b"q",
            b"aaaa",
            b"bcabcab",
            b"zzzz",
        ] {
            let mut got = Vec::new();
            m.for_each_longest(text, |s, p| got.push((s, p)));
            assert_eq!(
                got,
                brute(&patterns, text),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        let name = |p: Option<u32>| p.map(|p| patterns[p as usize]);
        assert_eq!(name(m.shorter(5)), Some(&b"abc"[..]));
        assert_eq!(name(m.shorter(2)), Some(&b"ab"[..]));
        assert_eq!(name(m.shorter(0)), None);
        assert_eq!(name(m.shorter(9)), Some(&b"bc"[..]));
        assert_eq!(name(m.shorter(6)), None);
    }

    #[test]
    fn many_patterns_sharing_a_node() {
        // 300 patterns under the root and under one deeper node take the
        // counting sort.
        let owned: Vec<Vec<u8>> = (0..300u32)
            .map(|i| vec![b'a' + (i % 26) as u8, (i / 26) as u8 + b'0', b'!'])
            .chain((0..=255u8).map(|b| vec![b, b'#', b'#']))
            .collect();
        let patterns: Vec<&[u8]> = owned.iter().map(|p| &p[..]).collect();
        let m = LongestMatch::new(&patterns).unwrap();
        let text: Vec<u8> = owned.iter().rev().flatten().copied().collect();
        let mut got = Vec::new();
        m.for_each_longest(&text, |s, p| got.push((s, p)));
        assert_eq!(got, brute(&patterns, &text));
    }

    #[test]
    fn one_long_pattern_is_linear() {
        let long = vec![b'b'; 1 << 20];
        let patterns: Vec<&[u8]> = vec![&long, b"bb"];
        let m = LongestMatch::new(&patterns).unwrap();
        assert_eq!(m.edge_byte.len(), (1 << 20) + 1);
        let mut got = Vec::new();
        m.for_each_longest(&long[..10], |s, p| got.push((s, p)));
        assert_eq!(got, (0..9).rev().map(|s| (s, 1)).collect::<Vec<_>>());
        assert_eq!(m.shorter(0), Some(1));
    }
}
