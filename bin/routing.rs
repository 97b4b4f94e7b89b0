//! The routing diversity part of `--stats` / `--stats-json`.

use std::io::{self, Write};

use moe::routing::LayerDiversity;

fn mean(r: &[LayerDiversity], f: impl Fn(&LayerDiversity) -> f64) -> f64 {
    if r.is_empty() {
        return 0.0;
    }
    r.iter().map(f).sum::<f64>() / r.len() as f64
}

/// One line per layer, then the means.
pub fn write_table(w: &mut dyn Write, r: &[LayerDiversity]) -> io::Result<()> {
    let Some(first) = r.first() else { return Ok(()) };
    let k = first.usage.iter().sum::<u64>() as f64 / first.tokens.max(1) as f64;
    let n = first.usage.len() as f64;
    writeln!(
        w,
        "moe: routing diversity over {} tokens (uniform random top-{k:.0} of {n:.0}: evenness 1, max share {:.3}, set change {:.3}, reuse {:.3}):",
        first.tokens,
        1.0 / n,
        1.0 - 1.0 / first.possible_sets.max(1) as f64,
        k / n
    )?;
    writeln!(w, "{:>5} {:>8} {:>9} {:>10} {:>7} {:>9}  usage per expert", "layer", "evenness", "max share", "set change", "reuse", "sets")?;
    for (l, d) in r.iter().enumerate() {
        let usage: Vec<String> = d.usage.iter().map(|u| u.to_string()).collect();
        writeln!(
            w,
            "{l:>5} {:>8.3} {:>9.3} {:>10.3} {:>7.3} {:>4}/{:<4}  {}",
            d.usage_evenness,
            d.max_share,
            d.set_change_rate,
            d.reuse_rate,
            d.distinct_sets,
            d.possible_sets,
            usage.join(" ")
        )?;
    }
    writeln!(
        w,
        " mean {:>8.3} {:>9.3} {:>10.3} {:>7.3} {:>9.1}",
        mean(r, |d| d.usage_evenness),
        mean(r, |d| d.max_share),
        mean(r, |d| d.set_change_rate),
        mean(r, |d| d.reuse_rate),
        mean(r, |d| d.distinct_sets as f64),
    )
}

pub fn write_json(w: &mut dyn Write, r: &[LayerDiversity]) -> io::Result<()> {
    write!(
        w,
        "{{\"mean_usage_evenness\":{},\"mean_max_share\":{},\"mean_set_change_rate\":{},\"mean_reuse_rate\":{},\"layers\":[",
        mean(r, |d| d.usage_evenness),
        mean(r, |d| d.max_share),
        mean(r, |d| d.set_change_rate),
        mean(r, |d| d.reuse_rate)
    )?;
    for (l, d) in r.iter().enumerate() {
        let usage: Vec<String> = d.usage.iter().map(|u| u.to_string()).collect();
        write!(
            w,
            "{}{{\"layer\":{l},\"tokens\":{},\"usage\":[{}],\"usage_evenness\":{},\"max_share\":{},\"set_change_rate\":{},\"reuse_rate\":{},\"distinct_sets\":{},\"possible_sets\":{}}}",
            if l > 0 { "," } else { "" },
            d.tokens,
            usage.join(","),
            d.usage_evenness,
            d.max_share,
            d.set_change_rate,
            d.reuse_rate,
            d.distinct_sets,
            d.possible_sets
        )?;
    }
    write!(w, "]}}")
}
