//! The transport's own messages go where the core's do: to `tracing` with feature `tracing`,
//! else to `log`.

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        ::tracing::debug!($($arg)*);
        #[cfg(not(feature = "tracing"))]
        ::log::debug!($($arg)*);
    }};
}

macro_rules! warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        ::tracing::warn!($($arg)*);
        #[cfg(not(feature = "tracing"))]
        ::log::warn!($($arg)*);
    }};
}

macro_rules! error {
    ($($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        ::tracing::error!($($arg)*);
        #[cfg(not(feature = "tracing"))]
        ::log::error!($($arg)*);
    }};
}
