//! One logging shim: `trace!` .. `error!` go to `defmt`, to `log`, or nowhere, by feature.
//! Features add up: with both on (as `--all-features` builds), each message goes to both.
#![allow(unused_macros)]

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::trace!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::trace!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::debug!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! info {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::info!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::info!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::warn!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($($arg)*); }
    }};
}

macro_rules! error {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::error!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::error!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($($arg)*); }
    }};
}
