//! Quantized copies of a batch of activation rows, made once per activation
//! type and reused by every matrix that reads the same rows (Q, K and V;
//! gate and up; all experts of a layer).

use moe_quant::QType;

#[derive(Default)]
pub struct ActCache {
    /// (activation type, quantized rows back to back, valid for the current rows).
    bufs: Vec<(QType, Vec<u8>, bool)>,
}

impl ActCache {
    /// Forget the current rows; the next `get` re-quantizes.
    pub fn invalidate(&mut self) {
        for b in &mut self.bufs {
            b.2 = false;
        }
    }

    /// The rows of `x` (each `cols` wide) quantized to `act_type`, back to
    /// back; quantizes only if this type has not been made since the last
    /// `invalidate`.
    pub fn get(&mut self, act_type: QType, x: &[f32], cols: usize) -> &[u8] {
        let i = match self.bufs.iter().position(|b| b.0 == act_type) {
            Some(i) => i,
            None => {
                self.bufs.push((act_type, Vec::new(), false));
                self.bufs.len() - 1
            }
        };
        let (_, bytes, valid) = &mut self.bufs[i];
        if !*valid {
            quantize_rows(act_type, x, cols, bytes);
            *valid = true;
        }
        &self.bufs[i].1
    }
}

/// Quantizes the rows of `x` (each `cols` wide) to `act_type` into `out`,
/// resized to fit.
pub fn quantize_rows(act_type: QType, x: &[f32], cols: usize, out: &mut Vec<u8>) {
    let rb = act_type.row_bytes_usize(cols).expect("activation rows are a whole number of blocks");
    let n = x.len() / cols;
    out.resize(n * rb, 0);
    let quantize = |j: usize, q: &mut [u8]| moe_quant::quantize_activations(act_type, &x[j * cols..(j + 1) * cols], q);
    // A prompt batch's rows are independent: spread them over the pool.
    moe_quant::pool::for_work(n >= 8).for_each_slice_mut(out, rb, &quantize);
}
