//! Runnable examples of picokafka live in `examples/examples/` and the command-line tool in
//! `examples/src/bin/`.
