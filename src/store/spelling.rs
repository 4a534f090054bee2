//! How domain values are spelled in the database. The schema's CHECK constraints admit only
//! these spellings, so a stored value always reads back.

use crate::domain::execution::{ExecutionState, Trigger};
use crate::domain::job::{ConcurrencyPolicy, Delivery, HttpMethod, MisfirePolicy};

/// A value with one stored spelling per variant.
pub(crate) trait Stored: Sized + Copy + PartialEq + 'static {
    /// Every variant with its spelling.
    const SPELLINGS: &'static [(Self, &'static str)];
    /// The variant a row without a readable spelling falls back to.
    const FALLBACK: Self;

    /// The stored spelling.
    fn stored(self) -> &'static str {
        Self::SPELLINGS
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("", |(_, s)| s)
    }

    /// The variant spelled `s`, or [`Self::FALLBACK`].
    fn read(s: &str) -> Self {
        Self::SPELLINGS
            .iter()
            .find(|(_, spelled)| *spelled == s)
            .map_or(Self::FALLBACK, |(v, _)| *v)
    }
}

impl Stored for Delivery {
    const SPELLINGS: &'static [(Self, &'static str)] = &[
        (Delivery::AtLeastOnce, "ATLEAST_ONCE"),
        (Delivery::AtMostOnce, "ATMOST_ONCE"),
    ];
    const FALLBACK: Self = Delivery::AtLeastOnce;
}

impl Stored for MisfirePolicy {
    const SPELLINGS: &'static [(Self, &'static str)] = &[
        (MisfirePolicy::One, "one"),
        (MisfirePolicy::All, "all"),
        (MisfirePolicy::None, "none"),
    ];
    const FALLBACK: Self = MisfirePolicy::One;
}

impl Stored for HttpMethod {
    const SPELLINGS: &'static [(Self, &'static str)] = &[
        (HttpMethod::Get, "GET"),
        (HttpMethod::Post, "POST"),
        (HttpMethod::Put, "PUT"),
        (HttpMethod::Patch, "PATCH"),
        (HttpMethod::Delete, "DELETE"),
    ];
    const FALLBACK: Self = HttpMethod::Post;
}

impl Stored for ConcurrencyPolicy {
    const SPELLINGS: &'static [(Self, &'static str)] = &[
        (ConcurrencyPolicy::Allow, "allow"),
        (ConcurrencyPolicy::Forbid, "forbid"),
    ];
    const FALLBACK: Self = ConcurrencyPolicy::Allow;
}

impl Stored for ExecutionState {
    const SPELLINGS: &'static [(Self, &'static str)] = &[
        (ExecutionState::Claimed, "claimed"),
        (ExecutionState::Started, "started"),
        (ExecutionState::Succeeded, "succeeded"),
        (ExecutionState::Failed, "failed"),
        (ExecutionState::Unknown, "unknown"),
        (ExecutionState::Skipped, "skipped"),
    ];
    const FALLBACK: Self = ExecutionState::Failed;
}

impl Stored for Trigger {
    const SPELLINGS: &'static [(Self, &'static str)] =
        &[(Trigger::Schedule, "schedule"), (Trigger::Manual, "manual")];
    const FALLBACK: Self = Trigger::Schedule;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Stored + std::fmt::Debug>() {
        for (v, s) in T::SPELLINGS {
            assert_eq!(v.stored(), *s);
            assert_eq!(T::read(s), *v);
        }
        let distinct: std::collections::HashSet<&str> =
            T::SPELLINGS.iter().map(|(_, s)| *s).collect();
        assert_eq!(distinct.len(), T::SPELLINGS.len());
    }

    #[test]
    fn every_spelling_round_trips() {
        round_trips::<Delivery>();
        round_trips::<MisfirePolicy>();
        round_trips::<HttpMethod>();
        round_trips::<ConcurrencyPolicy>();
        round_trips::<ExecutionState>();
        round_trips::<Trigger>();
        assert_eq!(
            HttpMethod::read("get"),
            HttpMethod::Post,
            "spellings are exact"
        );
    }
}
