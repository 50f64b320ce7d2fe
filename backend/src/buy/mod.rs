//! The hot path of a buy, below the HTTP handler: the sale it is for ([`sales`], validated by
//! [`new_sale`], kept in MariaDB by [`sale_rows`], cached by [`cache`]), the waiting room that may meter it ([`queue`]), the batch it joins
//! ([`reserver`]), and the one Redis script call that reserves a unit and enqueues its order
//! atomically ([`stock`]). [`purchase`] is the buy itself, below the HTTP handler. [`orders`] numbers orders and answers what a shopper polls;
//! [`storefront`] is the list of published sales that home pages show.

pub mod cache;
pub mod new_sale;
pub mod orders;
pub mod purchase;
pub mod queue;
pub mod reserver;
pub mod sale_rows;
pub mod sale_stats;
pub mod sales;
pub mod stock;
pub mod storefront;
