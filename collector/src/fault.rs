//! Store failures on demand, for the fault tests: a full disk (or any write error) at the next
//! commits or openings of one store, as DuckDB reports it. Nothing is injected unless a caller
//! of [`fail_commits`] or [`fail_opens`] asks for it (the collector itself never does), and a
//! failure is keyed by the store's path, so tests running side by side do not see each other's.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// A batch's transaction, after its rows are written and before `COMMIT` (rolled back).
    Commit,
    /// [`crate::store::Store::open`], where the schema statements write the WAL.
    Open,
}

/// The message an injected failure carries: what DuckDB says when the disk is full.
pub const NO_SPACE: &str = "IO Error: Could not write file: No space left on device (injected)";

static ARMED: AtomicBool = AtomicBool::new(false);
static PLANS: Mutex<Vec<(PathBuf, Point, u32)>> = Mutex::new(Vec::new());

/// The next `n` commits to the store at `store` fail as on a full disk.
pub fn fail_commits(store: &Path, n: u32) {
    arm(store, Point::Commit, n);
}

/// The next `n` openings of the store at `store` fail as on a full disk.
pub fn fail_opens(store: &Path, n: u32) {
    arm(store, Point::Open, n);
}

fn arm(store: &Path, point: Point, n: u32) {
    let mut plans = PLANS.lock().unwrap_or_else(|e| e.into_inner());
    plans.retain(|(p, at, _)| !(p == store && *at == point));
    if n > 0 {
        plans.push((store.to_path_buf(), point, n));
    }
    ARMED.store(!plans.is_empty(), Ordering::Release);
}

/// True (and one failure used up) when the store at `store` is to fail at `point` now.
pub(crate) fn strikes(store: &Path, point: Point) -> bool {
    if !ARMED.load(Ordering::Acquire) {
        return false;
    }
    let mut plans = PLANS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(i) = plans
        .iter()
        .position(|(p, at, _)| p == store && *at == point)
    else {
        return false;
    };
    plans[i].2 -= 1;
    if plans[i].2 == 0 {
        plans.swap_remove(i);
    }
    ARMED.store(!plans.is_empty(), Ordering::Release);
    true
}
