//! Quantized copies of one activation vector, made once per activation type
//! and reused by every matrix that reads the same vector (Q, K and V; gate
//! and up; all experts of a layer).

use moe_quant::QType;

#[derive(Default)]
pub struct ActCache {
    /// (activation type, quantized bytes, valid for the current vector).
    bufs: Vec<(QType, Vec<u8>, bool)>,
}

impl ActCache {
    /// Forget the current vector; the next `get` re-quantizes.
    pub fn invalidate(&mut self) {
        for b in &mut self.bufs {
            b.2 = false;
        }
    }

    /// `x` quantized to `act_type`, quantizing only if this type has not
    /// been made since the last `invalidate`.
    pub fn get(&mut self, act_type: QType, x: &[f32]) -> &[u8] {
        let i = match self.bufs.iter().position(|b| b.0 == act_type) {
            Some(i) => i,
            None => {
                self.bufs.push((act_type, Vec::new(), false));
                self.bufs.len() - 1
            }
        };
        let (_, bytes, valid) = &mut self.bufs[i];
        if !*valid {
            let n = act_type.row_bytes(x.len() as u64).expect("activation length is a whole number of blocks") as usize;
            bytes.resize(n, 0);
            moe_quant::quantize_activations(act_type, x, bytes);
            *valid = true;
        }
        &self.bufs[i].1
    }
}
