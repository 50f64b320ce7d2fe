//! The hot path of a buy, below the HTTP handler: the sale it is for ([`sales`], cached by
//! [`cache`]), the waiting room that may meter it ([`queue`]), the batch it joins
//! ([`reserver`]), and the one Redis script call that reserves a unit and enqueues its order
//! atomically ([`stock`]). [`orders`] numbers orders and answers what a shopper polls.

pub mod cache;
pub mod orders;
pub mod queue;
pub mod reserver;
pub mod sales;
pub mod stock;
