//! The deliberate mistakes the simulated model makes on request (`[models.sim] mistakes`), each
//! one a defect validation must catch: named here, outside the `sim` feature, so configuration
//! can check the names without linking the simulated model.

use serde::{Deserialize, Serialize};

/// One kind of mistake a simulated chapter makes on its first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mistake {
    /// A character called by a name the cast does not know (two cast names mixed, or a stranger).
    Rename,
    /// A character the ledger marks dead speaks again. To have someone dead, chapter 1 kills a
    /// member of its cast (reported in its continuity) whenever this mistake is enabled.
    Resurrect,
    /// A paragraph repeated: the previous chapter's closing lines, or one of its own.
    Repeat,
    /// Model meta text left in the prose ("Here is the chapter:").
    Meta,
    /// A chapter of about a third of its target length.
    Short,
}

impl Mistake {
    /// Every mistake, in order.
    pub const ALL: [Mistake; 5] =
        [Mistake::Rename, Mistake::Resurrect, Mistake::Repeat, Mistake::Meta, Mistake::Short];

    /// The mistake's configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Mistake::Rename => "rename",
            Mistake::Resurrect => "resurrect",
            Mistake::Repeat => "repeat",
            Mistake::Meta => "meta",
            Mistake::Short => "short",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Mistake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mistake {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mistake::ALL.into_iter().find(|m| m.name() == s.trim().to_ascii_lowercase()).ok_or_else(
            || {
                let names: Vec<&str> = Mistake::ALL.iter().map(|m| m.name()).collect();
                format!("unknown mistake {s:?} (known: {})", names.join(", "))
            },
        )
    }
}

/// The mistakes enabled and the share of first attempts that make one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mistakes {
    set: u8,
    /// Share (0..1) of chapters whose first attempt makes one of the mistakes.
    pub rate: f64,
}

impl Mistakes {
    /// `list` enabled at `rate`.
    pub fn new(list: &[Mistake], rate: f64) -> Self {
        Mistakes { set: list.iter().fold(0, |s, m| s | m.bit()), rate: rate.clamp(0.0, 1.0) }
    }

    /// Whether `m` is enabled.
    pub fn has(&self, m: Mistake) -> bool {
        self.set & m.bit() != 0
    }

    /// The enabled mistakes, in order.
    pub fn list(&self) -> Vec<Mistake> {
        Mistake::ALL.into_iter().filter(|m| self.has(*m)).collect()
    }

    /// Whether no mistake is made.
    pub fn is_none(&self) -> bool {
        self.set == 0 || self.rate <= 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        for m in Mistake::ALL {
            assert_eq!(m.name().parse::<Mistake>(), Ok(m));
        }
        let e = "typo".parse::<Mistake>().unwrap_err();
        assert!(e.contains("\"typo\"") && e.contains("rename, resurrect"), "{e}");
        let set = Mistakes::new(&[Mistake::Meta, Mistake::Short], 0.5);
        assert_eq!(set.list(), [Mistake::Meta, Mistake::Short]);
        assert!(!set.has(Mistake::Rename) && !set.is_none());
        assert!(Mistakes::new(&[Mistake::Meta], 0.0).is_none());
    }
}
