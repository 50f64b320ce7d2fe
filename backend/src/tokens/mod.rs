//! Stateless HMAC tokens, shared byte for byte with the edge (`edge/lua/seckill/`): who the
//! shopper is ([`session`]), the signed purchase path ([`link`]), the captcha challenge the
//! edge checks ([`captcha`]), and the primitives under them ([`crypto`]). Nothing here
//! touches Redis or MariaDB.

pub mod captcha;
pub mod crypto;
pub mod link;
pub mod session;
