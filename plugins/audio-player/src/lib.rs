//! AudioPlayer (to be written).
