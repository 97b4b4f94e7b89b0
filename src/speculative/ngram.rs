//! Prompt-lookup drafting: the tokens that followed the last time the
//! context's most recent n tokens appeared. Costs no model evaluation, and
//! is right where text repeats: summaries and edits of a given passage,
//! code that reuses its identifiers, lists, quoted input.

/// Proposes up to `k` tokens by matching the context's last `max..=min`
/// tokens (longest first) against its earlier text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgramDrafter {
    pub min: usize,
    pub max: usize,
}

impl Default for NgramDrafter {
    fn default() -> Self {
        NgramDrafter { min: 2, max: 4 }
    }
}

impl NgramDrafter {
    /// The tokens that followed the most recent earlier occurrence of the
    /// longest suffix of `context` (between `max` and `min` tokens long)
    /// that occurred before, at most `k` of them (the most recent
    /// occurrence followed by k tokens, if any); empty if none matches.
    pub fn propose(&self, context: &[u32], k: usize) -> Vec<u32> {
        let len = context.len();
        if k == 0 {
            return Vec::new();
        }
        for n in (self.min.max(1)..=self.max).rev() {
            if len <= n {
                continue;
            }
            let suffix = &context[len - n..];
            // Most recent first (`len - n` itself is the suffix); a match
            // too close to the end to give k tokens yields to an earlier one
            // that does, else the one with the most wins.
            let mut best: &[u32] = &[];
            for start in (0..len - n).rev() {
                if &context[start..start + n] == suffix {
                    let follow = &context[start + n..(start + n + k).min(len)];
                    if follow.len() == k {
                        return follow.to_vec();
                    }
                    if follow.len() > best.len() {
                        best = follow;
                    }
                }
            }
            if !best.is_empty() {
                return best.to_vec();
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposes_what_followed_the_longest_most_recent_match() {
        let d = NgramDrafter { min: 1, max: 3 };
        // "1 2 3 4 ... 1 2 3" -> the 3-gram "1 2 3" matched at 0: propose 4 5 6.
        assert_eq!(d.propose(&[1, 2, 3, 4, 5, 6, 9, 1, 2, 3], 3), vec![4, 5, 6]);
        // Only as many tokens as followed.
        assert_eq!(d.propose(&[7, 8, 7], 5), vec![8, 7]);
        // The most recent occurrence wins: "5 1" appears twice, last followed by 3.
        assert_eq!(d.propose(&[5, 1, 2, 5, 1, 3, 5, 1], 1), vec![3]);
        // A longer match beats a more recent shorter one: "2 3" (at 1) over "3" (at 5).
        assert_eq!(d.propose(&[1, 2, 3, 8, 0, 3, 9, 2, 3], 2), vec![8, 0]);
        // No match, k = 0, empty context.
        assert!(d.propose(&[1, 2, 3, 4], 4).is_empty());
        assert!(d.propose(&[1, 1, 1], 0).is_empty());
        assert!(d.propose(&[], 4).is_empty());
        // min = 2: a single repeated token is not enough.
        assert!(NgramDrafter { min: 2, max: 3 }.propose(&[4, 9, 4], 2).is_empty());
        // Overlapping repetition: "a a a a" -> the occurrence with the most after it.
        assert_eq!(NgramDrafter { min: 2, max: 2 }.propose(&[6, 6, 6, 6], 3), vec![6, 6]);
        // A recent match with too little after it yields to one with k.
        assert_eq!(NgramDrafter { min: 2, max: 2 }.propose(&[1, 2, 7, 8, 9, 3, 1, 2, 1, 2], 3), vec![7, 8, 9]);
    }
}
