//! Names of the agent kinds, derived from the wire enum (the one list of kinds on the wire).

use crate::v1::AgentKind;
use std::sync::LazyLock;

/// Every kind of the wire enum but `Unspecified`, in enum order, with its lowercase name.
static KINDS: LazyLock<Vec<(AgentKind, String)>> = LazyLock::new(|| {
    (1..)
        .map_while(|i| AgentKind::try_from(i).ok())
        .map(|k| (k, k.as_str_name().trim_start_matches("AGENT_KIND_").to_ascii_lowercase()))
        .collect()
});

/// Every kind of the wire enum but `Unspecified`, in enum order (assembly included).
pub fn all() -> impl Iterator<Item = AgentKind> {
    KINDS.iter().map(|(k, _)| *k)
}

/// The kinds whose steps are sent to workers: every kind but assembly, which the coordinator
/// does itself. Their queues, consumers and worker pools exist for each.
pub fn agents() -> impl Iterator<Item = AgentKind> {
    all().filter(|k| *k != AgentKind::Assembly)
}

/// The lowercase name of a kind, as used in subjects, config and the CLI (`unspecified` for
/// the enum's zero value, which no step has).
pub fn name(kind: AgentKind) -> &'static str {
    KINDS.iter().find(|(k, _)| *k == kind).map_or("unspecified", |(_, n)| n.as_str())
}

/// Parses a kind from its lowercase name.
pub fn parse(s: &str) -> Option<AgentKind> {
    KINDS.iter().find(|(_, n)| n == s).map(|(k, _)| *k)
}

/// Parses the name of a kind whose steps workers run (not assembly).
pub fn parse_agent(s: &str) -> Option<AgentKind> {
    parse(s).filter(|k| *k != AgentKind::Assembly)
}

/// The names of the worker kinds, comma-separated (for errors that list what is known).
pub fn agent_names() -> String {
    agents().map(name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_wire_enum_and_parse_back() {
        assert_eq!(name(AgentKind::Concept), "concept");
        assert_eq!(name(AgentKind::Assembly), "assembly");
        assert_eq!(name(AgentKind::Unspecified), "unspecified");
        for k in all() {
            assert_eq!(parse(name(k)), Some(k));
        }
        assert_eq!(parse("unspecified"), None);
        assert_eq!(parse("nosuch"), None);
        assert_eq!(parse_agent("assembly"), None);
        assert!(!agents().any(|k| k == AgentKind::Assembly));
        assert_eq!(agents().count(), 7);
        assert_eq!(agent_names(), "concept, outline, characters, world, chapter, review, edit");
    }
}
