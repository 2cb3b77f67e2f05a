//! Several denylists checked together (compact-denylist-format.md, "File extension, locations
//! and order").

use cid::Cid;

use crate::list::{Denial, Denylist, Entry, Verdict};

/// Denylists checked together, in order: "Denylist files are processed in alphabetical order
/// so that rules from later denylists override rules from earlier denylists on conflict".
///
/// A check asks the lists from the last to the first; the first list with a rule matching the
/// request decides (its latest matching rule, as in [`Denylist::check`]). So a later list can
/// deny what an earlier one allows and, with a negated rule, allow what an earlier one denies.
/// Cost: that of [`Denylist::check`] per list.
#[derive(Debug, Clone, Default)]
pub struct DenylistSet {
    lists: Vec<Denylist>,
}

impl DenylistSet {
    /// An empty set: everything is allowed.
    #[must_use]
    pub fn new() -> DenylistSet {
        DenylistSet::default()
    }

    /// A set of `lists` ordered by [`Denylist::name`] (byte order), as the spec orders
    /// `*.deny` files by name.
    #[must_use]
    pub fn sorted_by_name(mut lists: Vec<Denylist>) -> DenylistSet {
        lists.sort_by(|a, b| a.name().cmp(b.name()));
        DenylistSet { lists }
    }

    /// Adds `list` after the others: its rules override theirs on conflict.
    pub fn push(&mut self, list: Denylist) {
        self.lists.push(list);
    }

    /// The lists, in order (later overrides earlier).
    #[must_use]
    pub fn lists(&self) -> &[Denylist] {
        &self.lists
    }

    /// Mutable access to the lists, e.g. to [`Denylist::append`] new lines.
    pub fn lists_mut(&mut self) -> &mut [Denylist] {
        &mut self.lists
    }

    /// Checks `/ipfs/CID/PATH` against every list; see [`Denylist::check`]. A
    /// [`Verdict::Denied`] names the list and line that denied.
    #[must_use]
    pub fn check(&self, cid: &Cid, path: &str) -> Verdict {
        self.first(|list| list.decide_ipfs(cid, path))
    }

    /// Checks `/ipns/NAME/PATH` against every list; see [`Denylist::check_ipns`].
    #[must_use]
    pub fn check_ipns(&self, name: &str, path: &str) -> Verdict {
        self.first(|list| list.decide_ipns(name, path))
    }

    fn first(&self, decide: impl Fn(&Denylist) -> Option<Entry>) -> Verdict {
        for list in self.lists.iter().rev() {
            if let Some(entry) = decide(list) {
                if entry.allow {
                    return Verdict::Allowed;
                }
                return Verdict::Denied(Denial {
                    list: list.name_arc(),
                    line: entry.line,
                    status: entry.status,
                });
            }
        }
        Verdict::Allowed
    }
}
