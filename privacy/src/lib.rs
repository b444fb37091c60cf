//! privacy (work in progress)
