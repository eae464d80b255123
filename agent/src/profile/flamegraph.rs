//! SVG flame graphs of a [`Profile`], drawn by inferno from the profile's folded stacks.
//!
//! Frames of Rust and Go are coloured by origin: warm for the service's own code, green for
//! dependencies, blue for the runtime (std, core, alloc, tokio), so the eye finds "my code" first;
//! other languages get inferno's palette for them (see [`colors`]). A
//! differential graph compares two profiles: widths come from the new one, and each frame is red
//! where its own value grew and blue where it shrank, as in Brendan Gregg's differential flame
//! graphs (inferno draws those from two-column folded lines).

mod colors;

use std::collections::{BTreeMap, HashMap};
use std::io;

use inferno::flamegraph::color::PaletteMap;
use inferno::flamegraph::{self, color::MultiPalette, Palette};

use super::folded;
use super::{Profile, Sample};

pub use colors::{Colors, Scheme, ORIGIN_LEGEND};

/// What to draw and how to label it.
#[derive(Debug, Clone)]
pub struct FlamegraphOptions {
    pub title: String,
    pub subtitle: Option<String>,
    /// Which entry of [`Profile::sample_types`] gives the widths.
    pub sample_index: usize,
    /// Draw the root at the top (an icicle graph).
    pub inverted: bool,
    /// Frames narrower than this percentage of the width are left out.
    pub min_width: f64,
    /// The crates that are the service's own code; empty means inferred (see
    /// [`super::origin::OriginRules`]).
    pub app_crates: Vec<String>,
    pub colors: Colors,
}

impl FlamegraphOptions {
    pub fn new(title: impl Into<String>, sample_index: usize) -> Self {
        FlamegraphOptions {
            title: title.into(),
            subtitle: None,
            sample_index,
            inverted: false,
            min_width: DEFAULT_MIN_WIDTH,
            app_crates: Vec::new(),
            colors: Colors::Auto,
        }
    }
}

/// inferno's default `--minwidth`, in percent of the width: frames narrower than this are left out.
pub const DEFAULT_MIN_WIDTH: f64 = 0.01;

/// The legend of a graph of a profile with negative values (see [`render`]), which [`render`]
/// adds to the subtitle itself.
pub const SIGNED_LEGEND: &str =
    "widths: growth + shrinkage (go tool pprof's total); red: grew, blue: shrank";

/// Renders the profile as an interactive SVG (click to zoom, Ctrl-F to search).
///
/// A profile with nothing to draw still yields a valid SVG that says so, because an on-call
/// engineer who asked for a graph of an idle process should see why it is empty, not an error.
///
/// A profile with negative values (a delta between two windows, where memory was freed) is drawn
/// as a differential graph, since neither part alone is the profile: widths are what grew plus
/// what shrank, so the root is go tool pprof's total, and a frame is red where its own value grew
/// and blue where it shrank. Its subtitle ends with [`SIGNED_LEGEND`].
pub fn render(profile: &Profile, options: &FlamegraphOptions) -> io::Result<Vec<u8>> {
    if folded::has_negative(profile, options.sample_index) {
        return render_signed(profile, options);
    }
    let (lines, scale) = pruned_stacks(profile, options.sample_index, options.min_width);
    let (colors, mut palette) = match options.colors.resolve(profile) {
        Scheme::Origin => (
            Palette::Multi(MultiPalette::Rust),
            Some(colors::origin_palette(profile, &options.app_crates)),
        ),
        Scheme::Inferno(palette) => (palette, None),
    };
    let mut options = options.clone();
    if scale < 1.0 {
        let note = format!("values scaled by {scale:.3e}: their sum exceeds 64 bits");
        options.subtitle = Some(match options.subtitle.take() {
            Some(s) => format!("{s} · {note}"),
            None => note,
        });
    }
    draw(
        profile,
        &options,
        lines.iter().map(String::as_str),
        true,
        colors,
        palette.as_mut(),
    )
}

fn render_signed(profile: &Profile, options: &FlamegraphOptions) -> io::Result<Vec<u8>> {
    let changes = folded::changes(profile, options.sample_index);
    let sum: f64 = changes
        .values()
        .map(|c| c.grew as f64 + 2.0 * c.shrank as f64)
        .sum();
    let fit = fit_for_inferno(sum);
    let scaled = |v: i64| (v as f64 * fit).round() as i64;
    // inferno's two columns are BEFORE AFTER, AFTER the width and AFTER − BEFORE the change.
    let lines: Vec<String> = changes
        .into_iter()
        .map(|(stack, c)| {
            let (grew, shrank) = (scaled(c.grew), scaled(c.shrank));
            format!("{stack} {} {}", 2 * shrank, grew + shrank)
        })
        .collect();
    let mut options = options.clone();
    options.subtitle = Some(match options.subtitle.take() {
        Some(s) => format!("{s} · {SIGNED_LEGEND}"),
        None => SIGNED_LEGEND.to_string(),
    });
    // Two-column lines are coloured by their change, whatever the palette.
    let colors = Palette::default();
    draw(
        profile,
        &options,
        lines.iter().map(String::as_str),
        false,
        colors,
        None,
    )
}

/// Renders a differential flame graph: widths from `new` (sample value `options.sample_index`),
/// colours from the change of each frame's own value against `base` (sample value `base_index`).
/// With `normalize`, base values are scaled so both profiles have the same total, which compares
/// shapes when the two windows differ in length or load.
pub fn render_diff(
    base: &Profile,
    base_index: usize,
    new: &Profile,
    options: &FlamegraphOptions,
    normalize: bool,
) -> io::Result<Vec<u8>> {
    let before = folded::stacks(base, base_index);
    let after = folded::stacks(new, options.sample_index);
    let scale = if normalize {
        let (b, a) = (positive_sum(&before), positive_sum(&after));
        if b > 0.0 {
            a / b
        } else {
            1.0
        }
    } else {
        1.0
    };
    let fit =
        fit_for_inferno(positive_sum(&before) * scale).min(fit_for_inferno(positive_sum(&after)));
    let mut pairs: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (stack, count) in before {
        pairs.entry(stack).or_default().0 = (count.max(0) as f64 * scale * fit).round() as i64;
    }
    for (stack, count) in after {
        pairs.entry(stack).or_default().1 = (count.max(0) as f64 * fit).round() as i64;
    }
    let lines: Vec<String> = pairs
        .into_iter()
        .filter(|(_, (b, a))| *b > 0 || *a > 0)
        .map(|(stack, (b, a))| format!("{stack} {b} {a}"))
        .collect();
    let colors = Palette::default();
    draw(
        new,
        options,
        lines.iter().map(String::as_str),
        false,
        colors,
        None,
    )
}

/// The profile's call tree as sorted folded lines, with every frame narrower than `min_width`
/// percent of the total cut off below its first narrow frame.
///
/// inferno leaves such frames out of the SVG anyway (the same test, on the same total), so the
/// graph is the one inferno would draw from every stack; but inferno then only parses the frames
/// it draws, which keeps a profile of hundreds of thousands of deep stacks fast to render.
///
/// Returns the lines and the factor their values were scaled by (see [`fit_for_inferno`]).
fn pruned_stacks(profile: &Profile, index: usize, min_width: f64) -> (Vec<String>, f64) {
    // Functions of one name are one frame to inferno.
    let mut name_ids: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let function_name: Vec<u32> = profile
        .functions
        .iter()
        .map(|f| {
            *name_ids
                .entry(folded::sanitize(&f.name))
                .or_insert_with_key(|name| {
                    names.push(name.clone());
                    names.len() as u32 - 1
                })
        })
        .collect();
    let no_stack = names.len() as u32;
    names.push(folded::NO_STACK.to_string());
    let location_names: Vec<Vec<u32>> = profile
        .locations
        .iter()
        .map(|l| {
            l.lines
                .iter()
                .rev()
                .map(|line| function_name[line.function])
                .collect()
        })
        .collect();

    // The stacks as name ids, root first, sorted: then every frame's stacks are neighbours and
    // the call tree grows from one walk, comparing each stack with the previous one.
    let value_of = |sample: &Sample| sample.values.get(index).copied().unwrap_or(0);
    let sum: f64 = profile
        .samples
        .iter()
        .map(|s| value_of(s).max(0) as f64)
        .sum();
    let fit = fit_for_inferno(sum);
    let mut stacks: Vec<(Vec<u32>, i64)> = profile
        .samples
        .iter()
        .filter_map(|sample| {
            let value = value_of(sample);
            let value = if fit < 1.0 {
                (value as f64 * fit) as i64
            } else {
                value
            };
            (value > 0).then(|| {
                let mut ids: Vec<u32> = sample
                    .locations
                    .iter()
                    .rev()
                    .flat_map(|&loc| location_names[loc].iter().copied())
                    .collect();
                if ids.is_empty() {
                    ids.push(no_stack);
                }
                (ids, value)
            })
        })
        .collect();
    stacks.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    // Node 0 is the root; a node is (parent, name) with the value of every stack through it.
    let mut parent: Vec<u32> = vec![0];
    let mut name: Vec<u32> = vec![u32::MAX];
    let mut total: Vec<i64> = vec![0];
    let mut open: Vec<u32> = Vec::new();
    let mut previous: &[u32] = &[];
    for (ids, value) in &stacks {
        let common = ids.iter().zip(previous).take_while(|(a, b)| a == b).count();
        open.truncate(common);
        for &n in &ids[common..] {
            parent.push(open.last().copied().unwrap_or(0));
            name.push(n);
            total.push(0);
            open.push(total.len() as u32 - 1);
        }
        total[0] = total[0].saturating_add(*value);
        for &node in &open {
            let t = &mut total[node as usize];
            *t = t.saturating_add(*value);
        }
        previous = ids;
    }

    // inferno's test, on inferno's total: keep a frame when its width is at least min_width.
    let min_time = min_width / (100.0 / total[0] as f64);
    let kept = |node: usize| node == 0 || total[node] as f64 >= min_time;
    let mut self_value = total.clone();
    for node in 1..total.len() {
        let p = parent[node] as usize;
        self_value[p] = self_value[p].saturating_sub(total[node]);
    }
    // A kept frame's own value, and each cut-off child as one line of its whole value. The
    // lines then end where the full stacks' lines do, so that, sorted, they group into frames
    // exactly as the full stacks would (sorting splits `f` around a sibling `f2` when `f` has
    // a line of its own: `f 1` < `f2;..` < `f;..`).
    let mut lines = Vec::new();
    let mut path: Vec<&str> = Vec::new();
    for node in 1..total.len() {
        let value = match (kept(node), kept(parent[node] as usize)) {
            (true, _) => self_value[node],
            (false, true) => total[node],
            (false, false) => continue,
        };
        if value <= 0 {
            continue;
        }
        path.clear();
        let mut at = node;
        while at != 0 {
            path.push(&names[name[at] as usize]);
            at = parent[at] as usize;
        }
        path.reverse();
        lines.push(format!("{} {value}", path.join(";")));
    }
    lines.sort_unstable();
    (lines, fit)
}

/// inferno adds counts in `usize` and takes differences in `isize`: a factor that brings a sum
/// of counts safely within that (1 for any real profile).
fn fit_for_inferno(sum: f64) -> f64 {
    let limit = (i64::MAX / 4) as f64;
    if sum > limit {
        limit / sum
    } else {
        1.0
    }
}

fn positive_sum(stacks: &BTreeMap<String, i64>) -> f64 {
    stacks.values().filter(|v| **v > 0).map(|v| *v as f64).sum()
}

/// Hands sorted folded lines to inferno.
fn draw<'a>(
    profile: &Profile,
    options: &FlamegraphOptions,
    lines: impl Iterator<Item = &'a str>,
    sorted: bool,
    colors: Palette,
    palette: Option<&mut PaletteMap>,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut lines = lines.peekable();
    if lines.peek().is_none() {
        write_empty(&mut out, &options.title)?;
        return Ok(out);
    }
    let unit = profile
        .sample_types
        .get(options.sample_index)
        .map_or("samples", |t| t.unit.as_str());
    let mut opts = flamegraph::Options::default();
    opts.title = options.title.clone();
    opts.subtitle = options.subtitle.clone();
    opts.count_name = match unit {
        "count" | "" => "samples".to_string(),
        other => other.to_string(),
    };
    opts.colors = colors;
    opts.direction = if options.inverted {
        flamegraph::Direction::Inverted
    } else {
        flamegraph::Direction::Straight
    };
    opts.min_width = options.min_width;
    opts.no_sort = sorted;
    opts.palette_map = palette;
    flamegraph::from_lines(&mut opts, lines, &mut out)?;
    Ok(out)
}

fn write_empty(out: &mut Vec<u8>, title: &str) -> io::Result<()> {
    use std::io::Write;
    let title = xml_escape(title);
    write!(
        out,
        r#"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="1200" height="90" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="100%" height="100%" fill="rgb(238,238,238)"/>
<text x="600" y="30" font-size="17" text-anchor="middle" font-family="Verdana">{title}</text>
<text x="600" y="60" font-size="13" text-anchor="middle" font-family="Verdana">No samples in this profile: nothing ran in the window, or the sample type is all zero.</text>
</svg>
"#
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ProfileBuilder, ValueType};

    #[test]
    fn draws_every_function() {
        let mut b = ProfileBuilder::new(vec![ValueType::new("samples", "count")]);
        let main = b.named_location("main", "", 0);
        let hot = b.named_location("very_hot_function", "", 0);
        b.sample(vec![hot, main], vec![10]);
        let svg = render(&b.build(), &FlamegraphOptions::new("My <title>", 0)).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("very_hot_function"));
        assert!(svg.contains("My &lt;title&gt;"));
    }

    #[test]
    fn empty_profile_is_a_valid_svg_that_says_so() {
        let p = ProfileBuilder::new(vec![ValueType::new("samples", "count")]).build();
        let svg = String::from_utf8(render(&p, &FlamegraphOptions::new("t", 0)).unwrap()).unwrap();
        assert!(svg.contains("No samples"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    /// The fill of the first rectangle drawn for `name`.
    fn fill_of(svg: &str, name: &str) -> String {
        let at = svg.find(&format!("<title>{name} (")).expect(name);
        let rest = &svg[at..];
        let fill = rest.find("fill=\"").unwrap() + 6;
        rest[fill..fill + rest[fill..].find('"').unwrap()].to_string()
    }

    fn rgb(fill: &str) -> (u8, u8, u8) {
        let v: Vec<u8> = fill
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .map(|c| c.trim().parse().unwrap())
            .collect();
        (v[0], v[1], v[2])
    }

    #[test]
    fn colours_tell_app_dependencies_and_runtime_apart() {
        let mut b = ProfileBuilder::new(vec![ValueType::new("samples", "count")]);
        let main = b.named_location("shop::main", "", 0);
        let dep = b.named_location("serde_json::to_vec", "", 0);
        let rt = b.named_location("alloc::raw_vec::finish_grow", "", 0);
        b.sample(vec![rt, dep, main], vec![10]);
        let svg = String::from_utf8(render(&b.build(), &FlamegraphOptions::new("t", 0)).unwrap())
            .unwrap();
        let (app, dep, rt) = (
            rgb(&fill_of(&svg, "shop::main")),
            rgb(&fill_of(&svg, "serde_json::to_vec")),
            rgb(&fill_of(&svg, "alloc::raw_vec::finish_grow")),
        );
        assert_eq!(app.0, 240, "app is warm: {app:?}");
        assert_eq!(dep.1, 200, "dependencies are green: {dep:?}");
        assert_eq!(rt.2, 235, "runtime is blue: {rt:?}");
    }

    #[test]
    fn differential_graph_is_red_where_a_frame_grew() {
        let base = folded::parse(b"main;grows 10\nmain;shrinks 10\n").unwrap();
        let new = folded::parse(b"main;grows 30\nmain;shrinks 2\n").unwrap();
        let svg = render_diff(&base, 0, &new, &FlamegraphOptions::new("diff", 0), false).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        let grew = rgb(&fill_of(&svg, "grows"));
        let shrank = rgb(&fill_of(&svg, "shrinks"));
        assert!(grew.0 > grew.2, "grew is red: {grew:?}");
        assert!(shrank.2 > shrank.0, "shrank is blue: {shrank:?}");
        // Widths come from the new profile: 32 samples in all.
        assert!(
            svg.contains("32 samples"),
            "{}",
            &svg[..2000.min(svg.len())]
        );
    }

    /// The `<title>`s of the frames drawn, which say each frame's name and width.
    fn titles(svg: &[u8]) -> Vec<String> {
        let svg = String::from_utf8_lossy(svg);
        let mut titles: Vec<String> = svg
            .split("<title>")
            .skip(1)
            .map(|t| t[..t.find("</title>").unwrap()].to_string())
            .collect();
        titles.sort();
        titles
    }

    #[test]
    fn pruning_draws_what_inferno_draws_from_every_stack() {
        let mut text = String::new();
        for i in 0..400u32 {
            // A wide trunk, branches of every width, and a long tail of narrow leaves.
            text.push_str(&format!(
                "main;serve;route{};handler{};leaf{} {}\n",
                i % 7,
                i % 23,
                i,
                1 + i % 5
            ));
        }
        text.push_str("main;serve 300\nmain;idle 2\n");
        let profile = folded::parse(text.as_bytes()).unwrap();
        for min_width in [0.0, 0.1, 0.5, 2.0] {
            let mut options = FlamegraphOptions::new("t", 0);
            options.min_width = min_width;
            let ours = render(&profile, &options).unwrap();
            let mut opts = flamegraph::Options::default();
            opts.title = "t".into();
            opts.min_width = min_width;
            let mut theirs = Vec::new();
            flamegraph::from_lines(&mut opts, text.lines(), &mut theirs).unwrap();
            let (ours, theirs) = (titles(&ours), titles(&theirs));
            assert!(
                ours == theirs,
                "min_width {min_width}: {} frames drawn, inferno {}",
                ours.len(),
                theirs.len()
            );
            assert!(ours.len() > 3);
        }
    }

    #[test]
    fn totals_beyond_64_bits_saturate_instead_of_overflowing() {
        let big = i64::MAX.to_string();
        // main's self is its total less three children's: far below i64::MIN unless saturated.
        let text = format!("main;a {big}\nmain;b {big}\nmain;c {big}\n");
        let profile = folded::parse(text.as_bytes()).unwrap();
        let svg = render(&profile, &FlamegraphOptions::new("t", 0)).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("<title>main (") && svg.contains("their sum exceeds 64 bits"));
        let svg =
            render_diff(&profile, 0, &profile, &FlamegraphOptions::new("t", 0), true).unwrap();
        assert!(String::from_utf8(svg).unwrap().contains("<title>main ("));
    }

    #[test]
    fn icicle_puts_the_root_at_the_top() {
        let p = folded::parse(b"root;leaf 5\n").unwrap();
        let mut options = FlamegraphOptions::new("t", 0);
        let y_of = |svg: &[u8], name: &str| -> f64 {
            let svg = String::from_utf8_lossy(svg);
            let at = svg.find(&format!("<title>{name} (")).unwrap();
            let rest = &svg[at..];
            let y = rest.find(" y=\"").unwrap() + 4;
            rest[y..y + rest[y..].find('"').unwrap()].parse().unwrap()
        };
        let straight = render(&p, &options).unwrap();
        assert!(y_of(&straight, "root") > y_of(&straight, "leaf"));
        options.inverted = true;
        let icicle = render(&p, &options).unwrap();
        assert!(y_of(&icicle, "root") < y_of(&icicle, "leaf"));
    }
}
