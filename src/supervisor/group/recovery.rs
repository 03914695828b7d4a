//! What a group does when one of its resources or checks ends: carries out the
//! [`Verdict`](super::super::checks::Verdict) (a recovery here under the restart policy, a
//! failure that relocates the group, a stop that failed), restarts the group at its level,
//! and clears its failures on an operator's cleanup.

use std::time::Instant;

use tracing::{info, warn};

use super::super::checks::{self, Verdict};
use super::super::slot::Run;
use super::super::{Options, Os};
use super::{Failure, Group, GroupState};

impl Group {
    /// Restarts the group at its level here: every entry of the level is stopped (resources
    /// by their agents, last first) and started again in file order (a failed check's
    /// recovery).
    pub fn recover(&mut self, opts: &Options, now: Instant, os: &mut dyn Os) {
        let name = self.name.clone();
        for s in &mut self.slots {
            checks::leave(&name, opts, now, os, s);
            if matches!(
                s.run,
                Run::Done | Run::Passed | Run::Failed(_) | Run::Backoff { .. }
            ) {
                s.run = Run::Idle;
            }
        }
        self.state = GroupState::Stopping;
        self.advance(opts, now, os);
    }

    /// Forgets why the group failed and its restarts, and tries a failed stop again (an
    /// operator's cleanup: the resource was stopped by hand, say).
    pub fn clear_failures(&mut self, opts: &Options, now: Instant, os: &mut dyn Os) {
        self.restarts.clear();
        self.failure = None;
        for s in &mut self.slots {
            s.fails = 0;
            if let Run::StopFailed(_) = s.run {
                s.run = Run::Idle;
                s.stop_pending = true;
            }
        }
        if self.state == GroupState::StopFailed {
            info!(group = %self.name, "cleanup: trying the failed stop again");
            self.state = GroupState::Stopping;
            self.advance(opts, now, os);
        }
    }

    /// Carries out what a finished action or check of slot `i` means for the group.
    pub(super) fn take(
        &mut self,
        opts: &Options,
        now: Instant,
        os: &mut dyn Os,
        i: usize,
        verdict: Verdict,
    ) {
        let slot = &mut self.slots[i];
        let failure = |why: &str| Failure {
            tag: slot.entry.tag.clone(),
            mode: slot.entry.mode.as_str(),
            why: why.to_string(),
            pid: slot.last_pgid,
        };
        match verdict {
            Verdict::Fine => {}
            Verdict::StopFailed(why) => {
                self.failure = Some(failure(&why));
                self.state = GroupState::StopFailed;
            }
            Verdict::Failed(why) => {
                self.failure = Some(failure(&why));
                if self.state.settled() {
                    self.state = if slot.fatal {
                        GroupState::Fatal
                    } else {
                        GroupState::Failed
                    };
                }
            }
            Verdict::Recover(why) if self.restarts.exit(&self.policy, now) => {
                warn!(group = %self.name, tag = %slot.entry.tag, "{why}: restarting the group here");
                self.recover(opts, now, os);
            }
            Verdict::Recover(why) => {
                let why = format!(
                    "{why}; restarted {} time(s) within {}: giving up here",
                    self.policy.max.unwrap_or(0),
                    crate::hastat::duration_words(self.policy.window.as_secs())
                );
                warn!(group = %self.name, tag = %slot.entry.tag, "{why}: the group fails here and goes to another node");
                self.failure = Some(failure(&why));
                slot.run = Run::Failed(why);
                self.state = GroupState::Failed;
            }
        }
    }
}
