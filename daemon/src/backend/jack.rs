//! JACK backend (being written).
