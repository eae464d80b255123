//! `--focus RE`, `--ignore RE` and `--hide RE`, with go tool pprof's meaning: focus keeps only
//! the samples whose stack passes through a function matching RE; ignore drops those samples;
//! hide removes matching functions from every stack (their time goes to their callers' self),
//! and drops samples left with no frame.

use regex::Regex;

use pyrometer::profile::Profile;

use crate::error::Error;
use crate::input::Loaded;

/// Regular expressions over function names; `None` means no filtering of that kind.
#[derive(Debug, Clone, Default)]
pub struct FrameFilter {
    pub focus: Option<Regex>,
    pub ignore: Option<Regex>,
    pub hide: Option<Regex>,
}

impl FrameFilter {
    /// Compiles the expressions, naming the option whose expression is invalid.
    pub fn new(
        focus: Option<&str>,
        ignore: Option<&str>,
        hide: Option<&str>,
    ) -> Result<Self, Error> {
        let compile = |option: &str, re: Option<&str>| {
            re.map(|re| {
                Regex::new(re)
                    .map_err(|e| Error::new(option, format!("invalid regular expression: {e}")))
            })
            .transpose()
        };
        Ok(FrameFilter {
            focus: compile("--focus", focus)?,
            ignore: compile("--ignore", ignore)?,
            hide: compile("--hide", hide)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.focus.is_none() && self.ignore.is_none() && self.hide.is_none()
    }

    /// Filters a loaded profile, keeping its name and format.
    pub fn apply_loaded(&self, loaded: Loaded) -> Loaded {
        if self.is_empty() {
            return loaded;
        }
        Loaded {
            profile: self.apply(loaded.profile),
            ..loaded
        }
    }

    pub fn apply(&self, mut profile: Profile) -> Profile {
        if let Some(focus) = &self.focus {
            let through = locations_matching(&profile, focus);
            profile
                .samples
                .retain(|s| s.locations.iter().any(|&l| through[l]));
        }
        if let Some(ignore) = &self.ignore {
            let through = locations_matching(&profile, ignore);
            profile
                .samples
                .retain(|s| !s.locations.iter().any(|&l| through[l]));
        }
        if let Some(hide) = &self.hide {
            let hidden: Vec<bool> = profile
                .functions
                .iter()
                .map(|f| hide.is_match(&f.name))
                .collect();
            for location in &mut profile.locations {
                location.lines.retain(|line| !hidden[line.function]);
            }
            let locations = &profile.locations;
            for sample in &mut profile.samples {
                sample.locations.retain(|&l| !locations[l].lines.is_empty());
            }
            profile.samples.retain(|s| !s.locations.is_empty());
        }
        profile
    }
}

/// For each location, whether one of its functions (inlined ones included) matches.
fn locations_matching(profile: &Profile, re: &Regex) -> Vec<bool> {
    let matches: Vec<bool> = profile
        .functions
        .iter()
        .map(|f| re.is_match(&f.name))
        .collect();
    profile
        .locations
        .iter()
        .map(|l| l.lines.iter().any(|line| matches[line.function]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrometer::profile::folded;

    #[test]
    fn focus_keeps_stacks_through_a_frame_and_hide_drops_frames() {
        let p = folded::parse(b"main;db::query;send 5\nmain;render 3\nmain;db::query 1\n").unwrap();
        let focused = FrameFilter::new(Some("^db::"), None, None)
            .unwrap()
            .apply(p.clone());
        assert_eq!(
            folded::write(&focused, 0),
            "main;db::query 1\nmain;db::query;send 5\n"
        );
        let ignored = FrameFilter::new(None, Some("^db::"), None)
            .unwrap()
            .apply(p.clone());
        assert_eq!(folded::write(&ignored, 0), "main;render 3\n");
        let hidden = FrameFilter::new(None, None, Some("query"))
            .unwrap()
            .apply(p);
        assert_eq!(
            folded::write(&hidden, 0),
            "main 1\nmain;render 3\nmain;send 5\n"
        );
    }

    #[test]
    fn invalid_expressions_name_the_option() {
        let err = FrameFilter::new(None, None, Some("(")).unwrap_err();
        assert_eq!(err.subject, "--hide");
    }
}
