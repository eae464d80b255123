//! How a flame graph's frames are coloured, and what the colours mean.
//!
//! Colouring by [`Origin`] (own code, dependencies, runtime) needs names that say where they come
//! from, which Rust's paths and Go's packages do. Other languages' stacks get the inferno palette
//! made for them (java, js, perl, python...), whose colours mean what inferno's documentation
//! says; with no language recognised, inferno's default `hot` palette, whose shades only tell
//! neighbouring frames apart.

use std::hash::{Hash, Hasher};
use std::str::FromStr;

use inferno::flamegraph::color::{BasicPalette, Color, MultiPalette, Palette, PaletteMap};

use crate::profile::folded;
use crate::profile::origin::{Origin, OriginRules};
use crate::profile::Profile;

/// The legend of the origin colours, for subtitles.
pub const ORIGIN_LEGEND: &str =
    "orange: own code, green: dependencies, blue: runtime (std, core, alloc, tokio; Go's std)";

/// How to colour frames, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colors {
    /// By origin where the names are Rust or Go, else the palette of the language they look like.
    #[default]
    Auto,
    /// By origin, whatever the names.
    Origin,
    /// One of inferno's palettes.
    Inferno(Palette),
}

impl FromStr for Colors {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Colors::Auto),
            "origin" => Ok(Colors::Origin),
            other => Palette::from_str(other).map(Colors::Inferno).map_err(|_| {
                format!(
                    "unknown colour scheme {other:?}; expected auto, origin, or one of \
                     inferno's palettes: {}",
                    Palette::VARIANTS.join(", ")
                )
            }),
        }
    }
}

/// The colouring a graph gets once the names are looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Origin,
    Inferno(Palette),
}

impl Colors {
    /// Picks the scheme for a profile: `Auto` looks at the function names.
    pub fn resolve(self, profile: &Profile) -> Scheme {
        match self {
            Colors::Auto => detect(profile),
            Colors::Origin => Scheme::Origin,
            Colors::Inferno(palette) => Scheme::Inferno(palette),
        }
    }
}

impl Scheme {
    /// What the colours mean, for the subtitle.
    pub fn legend(self) -> &'static str {
        match self {
            Scheme::Origin => ORIGIN_LEGEND,
            Scheme::Inferno(Palette::Multi(multi)) => match multi {
                MultiPalette::Java => {
                    "java palette: green: Java, aqua: inlined, yellow: C++, orange: kernel, \
                     red: other native"
                }
                MultiPalette::Js => {
                    "js palette: green: JavaScript, purple: node_modules, aqua: built-ins, \
                     yellow: C++, orange: kernel, red: other native"
                }
                MultiPalette::Perl => {
                    "perl palette: green: Perl, yellow: modules (::), orange: kernel, red: native"
                }
                MultiPalette::Python => {
                    "python palette: red: the program, aqua: site-packages, yellow: standard \
                     library and built-ins"
                }
                MultiPalette::Rust => {
                    "rust palette: orange: std/core/alloc, aqua: other crates, yellow: other"
                }
                MultiPalette::Wakeup => "wakeup palette: aqua",
            },
            Scheme::Inferno(Palette::Basic(BasicPalette::Hot)) => {
                "hot palette: colours only tell frames apart"
            }
            Scheme::Inferno(Palette::Basic(BasicPalette::Mem)) => {
                "mem palette: colours only tell frames apart"
            }
            Scheme::Inferno(Palette::Basic(BasicPalette::Io)) => {
                "io palette: colours only tell frames apart"
            }
            Scheme::Inferno(Palette::Basic(_)) => "one hue: colours only tell frames apart",
        }
    }
}

/// The language the names look like. Rust and Go are told by their runtime's names, which every
/// stack of theirs passes through; the others by the marks their collapsers leave.
fn detect(profile: &Profile) -> Scheme {
    let mut votes = [0usize; 6];
    const ORIGIN: usize = 0;
    const JAVA: usize = 1;
    const JS: usize = 2;
    const PYTHON: usize = 3;
    const PERL: usize = 4;
    for function in &profile.functions {
        let name = function.name.as_str();
        let file = function.filename.as_str();
        let vote = if file.ends_with(".rs")
            || file.ends_with(".go")
            || name.contains("{{closure}}")
            || ["std::", "core::", "alloc::", "tokio::"]
                .iter()
                .any(|c| name.starts_with(c) || name.contains(&format!("<{c}")))
            || name.starts_with("runtime.")
            || name.starts_with("main.")
        {
            ORIGIN
        } else if is_python(name) || file.ends_with(".py") {
            PYTHON
        } else if name.contains(".js") || file.ends_with(".js") {
            JS
        } else if name.ends_with("_[j]")
            || name.ends_with("_[i]")
            || name.starts_with("java/")
            || name.starts_with("Ljava/")
        {
            JAVA
        } else if name.starts_with("Perl_") || name.contains(".pl:") || name.contains(".pm:") {
            PERL
        } else {
            5
        };
        votes[vote] += 1;
    }
    let (best, count) = votes[..5]
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
        .expect("five languages");
    if *count == 0 {
        return Scheme::Inferno(Palette::Basic(BasicPalette::Hot));
    }
    match best {
        ORIGIN => Scheme::Origin,
        JAVA => Scheme::Inferno(Palette::Multi(MultiPalette::Java)),
        JS => Scheme::Inferno(Palette::Multi(MultiPalette::Js)),
        PYTHON => Scheme::Inferno(Palette::Multi(MultiPalette::Python)),
        _ => Scheme::Inferno(Palette::Multi(MultiPalette::Perl)),
    }
}

/// py-spy writes `function (file.py:12)`, austin `file.py:function:12`.
fn is_python(name: &str) -> bool {
    name.contains(".py:") || name.contains(".py)")
}

/// One colour per function name, by origin, varied within the origin's hue by a hash of the name
/// so neighbouring frames stay distinguishable.
pub(super) fn origin_palette(profile: &Profile, app_crates: &[String]) -> PaletteMap {
    let rules = OriginRules::for_profile(profile, app_crates);
    let mut palette = PaletteMap::default();
    for function in &profile.functions {
        let name = folded::sanitize(&function.name);
        if palette.get(&name).is_some() {
            continue;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut hasher);
        let v = (hasher.finish() % 1000) as f64 / 1000.0;
        let shade = |lo: f64, hi: f64| (lo + (hi - lo) * v) as u8;
        let color = match rules.classify(function) {
            Origin::App => Color {
                r: 240,
                g: shade(100.0, 170.0),
                b: shade(30.0, 70.0),
            },
            Origin::Dependency => Color {
                r: shade(90.0, 150.0),
                g: 200,
                b: shade(70.0, 120.0),
            },
            Origin::Runtime => Color {
                r: shade(80.0, 140.0),
                g: shade(150.0, 190.0),
                b: 235,
            },
        };
        palette.insert(name, color);
    }
    palette
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme_of(text: &str) -> Scheme {
        detect(&folded::parse(text.as_bytes()).unwrap())
    }

    #[test]
    fn languages_are_told_from_their_names() {
        let rust = "main;std::rt::lang_start;shop::main;<alloc::vec::Vec<T> as Drop>::drop 3\n";
        assert_eq!(scheme_of(rust), Scheme::Origin);
        assert_eq!(
            scheme_of("runtime.main;main.main;net/http.Serve 2\n"),
            Scheme::Origin
        );
        let java = "java;start_thread;Interpreter_[j];io/vertx/core/Foo.bar_[j] 4\n";
        assert_eq!(
            scheme_of(java),
            Scheme::Inferno(Palette::Multi(MultiPalette::Java))
        );
        let python = "<module> (app.py:10);work (app.py:4);<built-in method sum> 5\n";
        assert_eq!(
            scheme_of(python),
            Scheme::Inferno(Palette::Multi(MultiPalette::Python))
        );
        let perl = "perl;Perl_runops_standard;Perl_pp_entersub 2\n";
        assert_eq!(
            scheme_of(perl),
            Scheme::Inferno(Palette::Multi(MultiPalette::Perl))
        );
        assert_eq!(
            scheme_of("dd;write;vfs_write_[k] 1\n"),
            Scheme::Inferno(Palette::Basic(BasicPalette::Hot))
        );
    }

    #[test]
    fn schemes_parse_and_unknown_ones_are_refused() {
        assert_eq!("auto".parse::<Colors>(), Ok(Colors::Auto));
        assert_eq!(
            "java".parse::<Colors>(),
            Ok(Colors::Inferno(Palette::Multi(MultiPalette::Java)))
        );
        let err = "plaid".parse::<Colors>().unwrap_err();
        assert!(err.contains("\"plaid\"") && err.contains("python"), "{err}");
    }
}
