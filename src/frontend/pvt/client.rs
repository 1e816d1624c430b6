//! The `dotgate pvt` user commands (being written).
