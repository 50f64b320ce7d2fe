//! The writer's fence across Redis failovers: a generation per sale, in MariaDB
//! (`sale_fences`) and in the sale's Redis keys (`{sale:ID}:gen`).
//!
//! A master cut off from its Cluster keeps taking writes for up to the node timeout; a
//! backend on its side of the cut reads those orders from its stream and sends them to
//! MariaDB, where the insert may land long after it was sent (TCP delivers it once the cut
//! heals). Meanwhile the majority promoted the replica, which never saw those orders, and a
//! recovery rebuilt the sale from MariaDB: a late insert would sell those units twice.
//! So a rebuild first [`raise`]s the sale's generation in MariaDB, then reads the orders, then
//! writes the new generation into the rebuilt Redis; a writer reads the generation just
//! before its entries and inserts them only while MariaDB's is not higher (one statement:
//! `writer::insert_batch`). Every insert lands before the rebuild read the orders (and is
//! counted) or is refused (its entries, gone with the old master, are not orders).

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Pool;

/// Raises the generation of each sale and returns the new ones (sale id -> generation).
/// Must come before the rebuild reads the sales' orders.
pub async fn raise(db: &Pool, sale_ids: &[u64]) -> Result<HashMap<u64, u64>, mysql_async::Error> {
    let mut out = HashMap::with_capacity(sale_ids.len());
    if sale_ids.is_empty() {
        return Ok(out);
    }
    let mut conn = db.get_conn().await?;
    for chunk in sale_ids.chunks(500) {
        let rows: Vec<String> = chunk.iter().map(|id| format!("({id},1)")).collect();
        let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
        conn.query_drop(format!(
            "INSERT INTO sale_fences (sale_id, gen) VALUES {} ON DUPLICATE KEY UPDATE gen = gen + 1",
            rows.join(",")
        ))
        .await?;
        let gens: Vec<(u64, u64)> = conn
            .query(format!(
                "SELECT sale_id, gen FROM sale_fences WHERE sale_id IN ({})",
                list.join(",")
            ))
            .await?;
        out.extend(gens);
    }
    Ok(out)
}

/// The sale's generation in MariaDB now (0: never rebuilt).
pub async fn current(db: &Pool, sale_id: u64) -> Result<u64, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let gen: Option<u64> = conn
        .exec_first("SELECT gen FROM sale_fences WHERE sale_id = ?", (sale_id,))
        .await?;
    Ok(gen.unwrap_or(0))
}

/// The condition a batch of `sale_id` read under generation `gen` is inserted with.
pub fn condition(sale_id: u64, gen: u64) -> String {
    format!("COALESCE((SELECT f.gen FROM sale_fences f WHERE f.sale_id = {sale_id}), 0) <= {gen}")
}
