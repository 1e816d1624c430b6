//! dotgate
