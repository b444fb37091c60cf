//! One-line descriptions of events and effects, for `SIM_TRACE=1` and
//! [`super::Federation::last_event`] (which tests match on).

use fedprof_protocol::Body;

use super::Event;
use crate::coordinator::Effect;

/// An event in brief.
pub(super) fn brief(event: &Event) -> String {
    match event {
        Event::ToCoordinator { conn, envelope } => match &envelope.body {
            Body::Refuse(r) => format!(
                "to coordinator on {conn}: {} refuse ({:?}: {})",
                envelope.header.job, r.reason, r.detail
            ),
            body => format!(
                "to coordinator on {conn}: {} {}",
                envelope.header.job,
                body.kind()
            ),
        },
        Event::ToPeer { conn, envelope } => {
            format!(
                "to peer on {conn}: {} {}",
                envelope.header.job,
                envelope.body.kind()
            )
        }
        Event::Computed { node, .. } => format!("node {node} computed"),
        other => format!("{other:?}"),
    }
}

/// A coordinator effect in brief.
pub(super) fn brief_effect(effect: &Effect) -> String {
    match effect {
        Effect::Send { conn, envelope } => {
            format!(
                "send on {conn}: {} {}",
                envelope.header.job,
                envelope.body.kind()
            )
        }
        Effect::Journaled(r) => format!("journal {r:?}"),
        Effect::Recorded { job, .. } => format!("recorded {job}"),
        other => format!("{other:?}"),
    }
}
