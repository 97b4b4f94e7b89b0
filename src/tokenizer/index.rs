//! Piece text → id lookup, over the vocab's own strings.
//!
//! Encoders look pieces up on every merge, and building the table is most of
//! the cost of loading a 262k-piece vocab; a `HashMap<String, u32>` copies
//! every piece (~120 ms on Gemma 3's vocab here), while this open-addressing
//! table of ids does not.
//!
//! The hash is std's keyed SipHash with a per-table random key: the pieces
//! come from the file, and with an unkeyed hash a crafted vocab can make
//! every piece want the same slot, which makes building the table quadratic
//! (262,144 such pieces took minutes).

use std::hash::{BuildHasher, RandomState};

pub(crate) struct PieceIndex {
    /// `id + 1` per slot; 0 is empty. The length is a power of two at least
    /// twice the number of pieces.
    slots: Vec<u32>,
    hasher: RandomState,
}

impl PieceIndex {
    /// Indexes `texts[id]` for every id. A text seen twice fails with the
    /// two ids.
    pub fn build(texts: &[String]) -> Result<PieceIndex, (u32, u32)> {
        let len = (texts.len() * 2).next_power_of_two().max(16);
        let mut index = PieceIndex {
            slots: vec![0; len],
            hasher: RandomState::new(),
        };
        let mask = len - 1;
        for (id, text) in texts.iter().enumerate() {
            let mut at = index.slot_of(text) & mask;
            loop {
                match index.slots[at] {
                    0 => {
                        index.slots[at] = id as u32 + 1;
                        break;
                    }
                    other if texts[other as usize - 1] == *text => {
                        return Err((other - 1, id as u32))
                    }
                    _ => at = (at + 1) & mask,
                }
            }
        }
        Ok(index)
    }

    /// The id of `key`, given the same `texts` the index was built from.
    pub fn get(&self, texts: &[String], key: &str) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut at = self.slot_of(key) & mask;
        loop {
            match self.slots[at] {
                0 => return None,
                slot if texts[slot as usize - 1] == key => return Some(slot - 1),
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn slot_of(&self, text: &str) -> usize {
        self.hasher.hash_one(text.as_bytes()) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_piece_and_nothing_else() {
        let texts: Vec<String> = (0..5000)
            .map(|i| format!("p{i}"))
            .chain(["".into(), "ab".into(), "abcdefghij".into()])
            .collect();
        let index = PieceIndex::build(&texts).unwrap();
        for (id, t) in texts.iter().enumerate() {
            assert_eq!(index.get(&texts, t), Some(id as u32));
        }
        assert_eq!(index.get(&texts, "p5000"), None);
        assert_eq!(index.get(&texts, "abcdefghi"), None);
        let dup = vec!["a".to_string(), "b".into(), "a".into()];
        assert_eq!(PieceIndex::build(&dup).err(), Some((0, 2)));
    }
}
