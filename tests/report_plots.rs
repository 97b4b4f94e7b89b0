//! `moe report`: the four SVGs are valid XML, and the numbers they draw are
//! the numbers of `moe simulate --json` and of the trace itself: heatmap
//! cell labels equal the routing counts, and every line's points are an
//! affine image (the chart's axes) of the table values, within a pixel.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use moe_offload::trace::Outcome;
use moe_offload::Trace;

fn moe(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).args(args).output().expect("running moe");
    assert!(o.status.success(), "moe {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
}

/// The points of every `<polyline>` in `svg`, in document order.
fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
    let doc = roxmltree::Document::parse(svg).expect("valid SVG/XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| {
            n.attribute("points")
                .unwrap()
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

/// Asserts that `pixels[i] ≈ a + b·values[i]` for one (a, b) over all
/// series, within 1 pixel: the drawn line is the data on a linear axis.
fn assert_affine(what: &str, pixels: &[f64], values: &[f64]) {
    assert_eq!(pixels.len(), values.len(), "{what}: point count");
    let n = values.len() as f64;
    let (mv, mp) = (values.iter().sum::<f64>() / n, pixels.iter().sum::<f64>() / n);
    let cov: f64 = values.iter().zip(pixels).map(|(v, p)| (v - mv) * (p - mp)).sum();
    let var: f64 = values.iter().map(|v| (v - mv) * (v - mv)).sum();
    let b = cov / var;
    let a = mp - b * mv;
    for (i, (v, p)) in values.iter().zip(pixels).enumerate() {
        assert!((a + b * v - p).abs() <= 1.0, "{what}: point {i}: value {v} drawn at {p}, expected {}", a + b * v);
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const SIZES: &str = "10%,20%,40%,60%,80%,100%";
const POLICIES: [&str; 6] = ["lru", "lfu", "lrfu:16", "static-hot", "per-layer", "belady"];

#[test]
fn report_svgs_draw_the_simulated_numbers() {
    let model = fitted_smollm2();
    let dir = repo_root().join("target/test-models/report");
    std::fs::create_dir_all(&dir).unwrap();
    let p = |x: PathBuf| x.display().to_string();
    let trace = p(dir.join("t.trace"));
    let prompt = "The cat sat on the mat. In 1492, Columbus sailed west; def f(x): return x + 1.";
    moe(&["run", "-m", &p(model.clone()), "-p", prompt, "-n", "24", "--temp", "0", "--ignore-eos", "-b", "1", "--expert-cache", "40%", "--no-prefetch", "--trace", &trace]);
    let sim = p(dir.join("sim.json"));
    moe(&["simulate", &trace, "--sizes", SIZES, "--json", &sim]);
    let out = dir.join("svg");
    moe(&["report", &trace, "-o", &p(out.clone()), "--sizes", SIZES]);
    let sim = json(Path::new(&sim));
    let t = Trace::read(Path::new(&trace)).unwrap();
    let (n_layer, n_expert) = (t.header.n_layer, t.header.n_expert);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();

    // Heatmap: the last n_layer × n_expert texts are the cells, row by row.
    let svg = read("expert_use.svg");
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<String> = doc.descendants().filter(|n| n.has_tag_name("text")).map(|n| n.text().unwrap_or("").trim().to_string()).collect();
    let cells: Vec<u64> = texts[texts.len() - n_layer * n_expert..].iter().map(|s| s.parse().unwrap()).collect();
    let mut usage = vec![0u64; n_layer * n_expert];
    for pass in &t.passes {
        for r in &pass.routes {
            for &(e, _) in &r.chosen {
                usage[r.layer as usize * n_expert + e as usize] += 1;
            }
        }
    }
    assert_eq!(cells, usage);
    assert_eq!(usage.iter().sum::<u64>(), t.tokens() * 2 * n_layer as u64);
    let rects = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
    assert!(rects > n_layer * n_expert, "{rects} rects");

    // Hit rate vs size: one polyline per policy, with a point per size.
    let results = sim["results"].as_array().unwrap();
    let n_sizes = SIZES.split(',').count();
    let lines: Vec<Vec<(f64, f64)>> = polylines(&read("hit_rate_vs_size.svg")).into_iter().filter(|l| l.len() == n_sizes).collect();
    assert_eq!(lines.len(), POLICIES.len());
    let (mut px, mut py, mut vx, mut vy) = (vec![], vec![], vec![], vec![]);
    for (line, policy) in lines.iter().zip(POLICIES) {
        let rows: Vec<&serde_json::Value> = results.iter().filter(|r| r["policy"] == policy).collect();
        assert_eq!(rows.len(), n_sizes, "{policy}");
        for (pt, r) in line.iter().zip(rows) {
            px.push(pt.0);
            py.push(pt.1);
            vx.push(r["budget"].as_f64().unwrap() / sim["all_expert_bytes"].as_f64().unwrap());
            vy.push(r["hit_rate"].as_f64().unwrap());
        }
    }
    assert_affine("hit rate vs size, x", &px, &vx);
    assert_affine("hit rate vs size, y", &py, &vy);
    assert!(svg.contains("expert use"));
    let vs = read("hit_rate_vs_size.svg");
    for policy in POLICIES {
        assert!(vs.contains(policy), "legend lacks {policy}");
    }

    // Per layer: recorded (from the trace), then LRU and Belady at 40% (from simulate).
    let lines: Vec<Vec<(f64, f64)>> = polylines(&read("hit_rate_per_layer.svg")).into_iter().filter(|l| l.len() == n_layer).collect();
    assert_eq!(lines.len(), 3);
    let mut rec = vec![(0u64, 0u64); n_layer];
    for a in t.accesses() {
        assert_ne!(a.1, Outcome::Unknown);
        if a.1.is_hit() {
            rec[a.0.layer as usize].0 += 1;
        } else {
            rec[a.0.layer as usize].1 += 1;
        }
    }
    let at40 = |policy: &str| -> Vec<f64> {
        let r = results.iter().find(|r| r["policy"] == policy && (r["budget"].as_f64().unwrap() / sim["all_expert_bytes"].as_f64().unwrap() - 0.4).abs() < 1e-3).unwrap();
        r["layer_hit_rate"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let mut values: Vec<f64> = rec.iter().map(|&(h, m)| h as f64 / (h + m) as f64).collect();
    values.extend(at40("lru"));
    values.extend(at40("belady"));
    let pixels: Vec<f64> = lines.iter().flatten().map(|p| p.1).collect();
    assert_affine("hit rate per layer", &pixels, &values);

    // Bytes per token over time: recorded demand bytes per pass.
    let lines: Vec<Vec<(f64, f64)>> = polylines(&read("bytes_per_token.svg")).into_iter().filter(|l| l.len() == t.passes.len()).collect();
    assert_eq!(lines.len(), 3);
    let recorded: Vec<f64> = t.passes.iter().map(|p| p.accesses().map(|a| a.2).sum::<u64>() as f64 / p.n_tokens as f64).collect();
    assert_affine("bytes per token", &lines[0].iter().map(|p| p.1).collect::<Vec<_>>(), &recorded);
    assert!(recorded.iter().any(|&b| b > 0.0));

    // The tables written beside the plots are simulate's.
    let tables = read("tables.txt");
    assert!(tables.contains("hit rate, %") && tables.contains("per layer at"), "{tables}");
}

#[test]
fn report_png_and_bad_input() {
    let dir = repo_root().join("target/test-models/report-png");
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.trace");
    let model = fitted_smollm2();
    moe(&["run", "-m", &model.display().to_string(), "-p", "Hello there", "-n", "4", "--temp", "0", "--expert-cache", "30%", "--trace", &trace.display().to_string()]);
    moe(&["report", &trace.display().to_string(), "-o", &dir.display().to_string(), "--png"]);
    for name in ["expert_use", "hit_rate_per_layer", "hit_rate_vs_size", "bytes_per_token"] {
        let b = std::fs::read(dir.join(format!("{name}.png"))).unwrap();
        assert_eq!(&b[1..4], b"PNG", "{name}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).args(["report", "Cargo.toml", "-o"]).arg(&dir).current_dir(repo_root()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not a moe routing trace") && !err.contains("panicked"), "{err}");
}

#[test]
fn report_from_a_stats_file_draws_its_numbers() {
    let model = fitted_smollm2();
    let dir = repo_root().join("target/test-models/report-stats");
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.join("s.json");
    let p = |x: &Path| x.display().to_string();
    moe(&["run", "-m", &p(&model), "-p", "The cat sat on the mat.", "-n", "12", "--temp", "0", "-b", "1", "--expert-cache", "30%", "--stats-json", &p(&stats)]);
    let out = dir.join("svg");
    moe(&["report", &p(&stats), "-o", &p(&out)]);
    assert!(!out.join("hit_rate_vs_size.svg").exists(), "no replays without a trace");
    let j = json(&stats);
    let want: Vec<f64> = j["cache"]["layers"].as_array().unwrap().iter().map(|l| l["hit_rate"].as_f64().unwrap()).collect();
    let lines: Vec<Vec<(f64, f64)>> = polylines(&std::fs::read_to_string(out.join("hit_rate_per_layer.svg")).unwrap()).into_iter().filter(|l| l.len() == want.len()).collect();
    assert_eq!(lines.len(), 1);
    assert_affine("stats per layer", &lines[0].iter().map(|p| p.1).collect::<Vec<_>>(), &want);
    let svg = std::fs::read_to_string(out.join("expert_use.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<String> = doc.descendants().filter(|n| n.has_tag_name("text")).map(|n| n.text().unwrap_or("").trim().to_string()).collect();
    let usage: Vec<u64> = j["routing"]["layers"].as_array().unwrap().iter().flat_map(|l| l["usage"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap())).collect();
    let cells: Vec<u64> = texts[texts.len() - usage.len()..].iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(cells, usage);
}
