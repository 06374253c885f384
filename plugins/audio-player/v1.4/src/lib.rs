//! The AudioPlayer plugin library (to be written).
