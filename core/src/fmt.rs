//! One logging shim: `trace!` .. `error!` go to `defmt`, to `log`, to `tracing`, or nowhere, by
//! feature. Features add up: with `log` and `defmt` both on (as `--all-features` builds), each
//! message goes to both; `tracing` takes the place of `log` when both are on, so that a
//! subscriber bridging `log` into `tracing` does not see every message twice.
#![allow(unused_macros)]

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(all(feature = "log", not(feature = "tracing")))]
        ::log::trace!($($arg)*);
        #[cfg(feature = "tracing")]
        ::tracing::trace!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::trace!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt", feature = "tracing")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(all(feature = "log", not(feature = "tracing")))]
        ::log::debug!($($arg)*);
        #[cfg(feature = "tracing")]
        ::tracing::debug!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt", feature = "tracing")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! info {
    ($($arg:tt)*) => {{
        #[cfg(all(feature = "log", not(feature = "tracing")))]
        ::log::info!($($arg)*);
        #[cfg(feature = "tracing")]
        ::tracing::info!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::info!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt", feature = "tracing")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! warn {
    ($($arg:tt)*) => {{
        #[cfg(all(feature = "log", not(feature = "tracing")))]
        ::log::warn!($($arg)*);
        #[cfg(feature = "tracing")]
        ::tracing::warn!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt", feature = "tracing")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! error {
    ($($arg:tt)*) => {{
        #[cfg(all(feature = "log", not(feature = "tracing")))]
        ::log::error!($($arg)*);
        #[cfg(feature = "tracing")]
        ::tracing::error!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::error!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt", feature = "tracing")))]
        { let _ = ($($arg)*); }
    }};
}
