//! SVG flame graphs of a [`Profile`], drawn by inferno from the profile's folded stacks.

use std::io;

use inferno::flamegraph::{self, color::MultiPalette, Palette};

use super::{folded, Profile};

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
}

impl FlamegraphOptions {
    pub fn new(title: impl Into<String>, sample_index: usize) -> Self {
        FlamegraphOptions {
            title: title.into(),
            subtitle: None,
            sample_index,
            inverted: false,
            min_width: 0.1,
        }
    }
}

/// Renders the profile as an interactive SVG (click to zoom, Ctrl-F to search).
///
/// A profile with nothing to draw still yields a valid SVG that says so, because an on-call
/// engineer who asked for a graph of an idle process should see why it is empty, not an error.
pub fn render(profile: &Profile, options: &FlamegraphOptions) -> io::Result<Vec<u8>> {
    let stacks = folded::write(profile, options.sample_index);
    let mut out = Vec::new();
    if stacks.is_empty() {
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
        "count" => "samples".to_string(),
        other => other.to_string(),
    };
    opts.colors = Palette::Multi(MultiPalette::Rust);
    opts.direction = if options.inverted {
        flamegraph::Direction::Inverted
    } else {
        flamegraph::Direction::Straight
    };
    opts.min_width = options.min_width;
    flamegraph::from_lines(&mut opts, stacks.lines(), &mut out)?;
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
}
