//! `scriptorium bench`: steps per second through coordinator and workers over real NATS,
//! beside raw JetStream round trips measured in the same run.
