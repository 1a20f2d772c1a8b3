//! Empty library target: lets `monitor` declare this crate as a
//! build-dependency so cargo rebuilds the daemon when the programs change
//! (the programs themselves are the `monitor` binary target).
#![no_std]
