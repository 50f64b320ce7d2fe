//! Sales in MariaDB, the system of record: creating them (many in one transaction), reading
//! them back, listing them for an operator, and the revisions that let the edges learn what
//! changed.
//!
//! **Revisions.** Every change to a sale gives it the next number of the one `revs` row,
//! taken under that row's lock inside the change's transaction: revisions are handed out in
//! commit order, so "every sale with `rev > N`" is exactly what changed after a reader saw
//! `N`. The row also names the database (`epoch`): a reader that saw another starts over.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Row, TxOpts};

use crate::buy::new_sale::NewSale;
use crate::buy::sales::{QueueMode, QueueRules, Sale};

const COLUMNS: &str = "id, title, price_cents, stock, per_user_limit, starts_ms, ends_ms, \
                       pay_window_s, queue, queue_grace_s, admit_multiple, admit_ttl_s, rev, \
                       paused, description, image_url, listed";

/// Rows per multi-row `INSERT` when creating many sales.
const INSERT_CHUNK: usize = 500;

/// One column of a row, converted; the error names the column.
fn col<T: mysql_async::prelude::FromValue>(
    row: &mut Row,
    i: usize,
) -> Result<T, mysql_async::Error> {
    match row.take_opt::<T, usize>(i) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(mysql_async::Error::Other(
            format!("sales row, column {i}: {e}").into(),
        )),
        None => Err(mysql_async::Error::Other(
            format!("sales row, column {i}: missing").into(),
        )),
    }
}

fn from_row(mut r: Row) -> Result<Sale, mysql_async::Error> {
    let mode: String = col(&mut r, 8)?;
    Ok(Sale {
        id: col(&mut r, 0)?,
        title: col(&mut r, 1)?,
        price_cents: col(&mut r, 2)?,
        stock: col(&mut r, 3)?,
        per_user_limit: col(&mut r, 4)?,
        starts_ms: col(&mut r, 5)?,
        ends_ms: col(&mut r, 6)?,
        pay_window_s: col(&mut r, 7)?,
        queue: QueueRules {
            mode: QueueMode::parse(&mode).unwrap_or(QueueMode::None),
            grace_s: col(&mut r, 9)?,
            admit_multiple: col(&mut r, 10)?,
            admit_ttl_s: col(&mut r, 11)?,
        },
        rev: col(&mut r, 12)?,
        paused: col::<u8>(&mut r, 13)? != 0,
        description: col(&mut r, 14)?,
        image_url: col(&mut r, 15)?,
        listed: col::<u8>(&mut r, 16)? != 0,
    })
}

fn rows_to_sales(rows: Vec<Row>) -> Result<Vec<Sale>, mysql_async::Error> {
    rows.into_iter().map(from_row).collect()
}

/// Takes `n` revisions in the caller's transaction (locks the `revs` row until it ends);
/// returns the first.
pub async fn take_revisions(
    tx: &mut mysql_async::Transaction<'_>,
    n: u64,
) -> Result<u64, mysql_async::Error> {
    let current: Option<u64> = tx
        .query_first("SELECT rev FROM revs WHERE id = 1 FOR UPDATE")
        .await?;
    let current = current.ok_or_else(|| {
        mysql_async::Error::Other("revs: the revision row is missing (migration 5)".into())
    })?;
    tx.exec_drop("UPDATE revs SET rev = ? WHERE id = 1", (current + n,))
        .await?;
    Ok(current + 1)
}

/// Creates the sales in one transaction (all or none) and returns them, in order, with their
/// ids and revisions.
pub async fn insert_many(
    db: &Pool,
    new: &[NewSale],
    now_ms: i64,
) -> Result<Vec<Sale>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    let first = take_revisions(&mut tx, new.len() as u64).await?;
    for (c, chunk) in new.chunks(INSERT_CHUNK).enumerate() {
        let mut sql = String::from(
            "INSERT INTO sales (title, price_cents, stock, per_user_limit, starts_ms, ends_ms,
               pay_window_s, created_ms, queue, queue_grace_s, admit_multiple, admit_ttl_s, rev,
               description, image_url, listed) VALUES ",
        );
        let mut params: Vec<mysql_async::Value> = Vec::with_capacity(chunk.len() * 16);
        for (i, s) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "" } else { "," });
            sql.push_str("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
            let rev = first + (c * INSERT_CHUNK + i) as u64;
            params.extend([
                s.title.clone().into(),
                s.price_cents.into(),
                s.stock.into(),
                s.per_user_limit.into(),
                s.starts_ms.into(),
                s.ends_ms.into(),
                s.pay_window_s.into(),
                now_ms.into(),
                s.queue.mode.as_str().into(),
                s.queue.grace_s.into(),
                s.queue.admit_multiple.into(),
                s.queue.admit_ttl_s.into(),
                rev.into(),
                s.description.clone().into(),
                s.image_url.clone().into(),
                u8::from(s.listed).into(),
            ]);
        }
        tx.exec_drop(sql, params).await?;
    }
    let last = first + new.len() as u64 - 1;
    let rows: Vec<Row> = tx
        .exec(
            format!("SELECT {COLUMNS} FROM sales WHERE rev BETWEEN ? AND ? ORDER BY rev"),
            (first, last),
        )
        .await?;
    tx.commit().await?;
    let sales = rows_to_sales(rows)?;
    if sales.len() != new.len() {
        return Err(mysql_async::Error::Other(
            format!("created {} sales, read back {}", new.len(), sales.len()).into(),
        ));
    }
    Ok(sales)
}

pub async fn load(db: &Pool, id: u64) -> Result<Option<Sale>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let row: Option<Row> = conn
        .exec_first(format!("SELECT {COLUMNS} FROM sales WHERE id = ?"), (id,))
        .await?;
    row.map(from_row).transpose()
}

/// Several sales by id (those that exist), in one query per thousand.
pub async fn load_many(db: &Pool, ids: &[u64]) -> Result<Vec<Sale>, mysql_async::Error> {
    let mut out = Vec::with_capacity(ids.len());
    let mut conn = db.get_conn().await?;
    for chunk in ids.chunks(1000) {
        let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
        let rows: Vec<Row> = conn
            .query(format!(
                "SELECT {COLUMNS} FROM sales WHERE id IN ({})",
                list.join(",")
            ))
            .await?;
        out.extend(rows_to_sales(rows)?);
    }
    Ok(out)
}

/// Sales that ended after `since_ms`: the ones whose streams may still hold orders.
pub async fn ending_after(db: &Pool, since_ms: i64) -> Result<Vec<Sale>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let rows: Vec<Row> = conn
        .exec(
            format!("SELECT {COLUMNS} FROM sales WHERE ends_ms > ? ORDER BY id"),
            (since_ms,),
        )
        .await?;
    rows_to_sales(rows)
}

/// A page of the sales that end after `since_ms`, by id after `after_id`: the full list an
/// edge reads when it starts.
pub async fn live_page(
    db: &Pool,
    since_ms: i64,
    after_id: u64,
    limit: usize,
) -> Result<Vec<Sale>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let rows: Vec<Row> = conn
        .exec(
            format!("SELECT {COLUMNS} FROM sales WHERE id > ? AND ends_ms > ? ORDER BY id LIMIT ?"),
            (after_id, since_ms, limit as u64),
        )
        .await?;
    rows_to_sales(rows)
}

/// The sales changed after revision `rev`, in revision order, at most `limit`.
pub async fn changed_since(
    db: &Pool,
    rev: u64,
    limit: usize,
) -> Result<Vec<Sale>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let rows: Vec<Row> = conn
        .exec(
            format!("SELECT {COLUMNS} FROM sales WHERE rev > ? ORDER BY rev LIMIT ?"),
            (rev, limit as u64),
        )
        .await?;
    rows_to_sales(rows)
}

/// The latest revision and the database's epoch.
pub async fn revision(db: &Pool) -> Result<(u64, String), mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let row: Option<(u64, String)> = conn
        .query_first("SELECT rev, epoch FROM revs WHERE id = 1")
        .await?;
    row.ok_or_else(|| mysql_async::Error::Other("revs: the revision row is missing".into()))
}

/// What an operator's list asks for (`GET /admin/sales`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    /// upcoming (not started), live (started, not ended), ended; None: all.
    pub when: Option<&'static str>,
    pub starts_from_ms: Option<i64>,
    pub starts_to_ms: Option<i64>,
    /// Words that must all appear in the title.
    pub title: Option<String>,
    /// Sales with an id below this (the next page of a list newest first).
    pub before_id: Option<u64>,
    pub limit: usize,
}

/// The sales matching `filter`, newest first (by id), and how many match in all.
pub async fn list(
    db: &Pool,
    filter: &Filter,
    now_ms: i64,
) -> Result<(Vec<Sale>, u64), mysql_async::Error> {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<mysql_async::Value> = Vec::new();
    match filter.when {
        Some("upcoming") => {
            conds.push("starts_ms > ?".into());
            params.push(now_ms.into());
        }
        Some("live") => {
            conds.push("starts_ms <= ? AND ends_ms > ?".into());
            params.extend([now_ms.into(), now_ms.into()]);
        }
        Some("ended") => {
            conds.push("ends_ms <= ?".into());
            params.push(now_ms.into());
        }
        _ => {}
    }
    if let Some(from) = filter.starts_from_ms {
        conds.push("starts_ms >= ?".into());
        params.push(from.into());
    }
    if let Some(to) = filter.starts_to_ms {
        conds.push("starts_ms < ?".into());
        params.push(to.into());
    }
    for word in filter.title.iter().flat_map(|t| t.split_whitespace()) {
        let escaped = word
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        conds.push("title LIKE ?".into());
        params.push(format!("%{escaped}%").into());
    }
    let where_ = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let mut conn: Conn = db.get_conn().await?;
    let total: Option<u64> = conn
        .exec_first(
            format!("SELECT COUNT(*) FROM sales {where_}"),
            params.clone(),
        )
        .await?;
    let page_cond = match filter.before_id {
        Some(id) if conds.is_empty() => format!("WHERE id < {id}"),
        Some(id) => format!("{where_} AND id < {id}"),
        None => where_,
    };
    let rows: Vec<Row> = conn
        .exec(
            format!(
                "SELECT {COLUMNS} FROM sales {page_cond} ORDER BY id DESC LIMIT {}",
                filter.limit
            ),
            params,
        )
        .await?;
    Ok((rows_to_sales(rows)?, total.unwrap_or(0)))
}

/// Changes one sale in a transaction: `change` gets the sale as it is now (its row locked)
/// and answers the sale as it shall be, or why not; the new version gets the next revision.
/// None when there is no such sale.
pub async fn update<E>(
    db: &Pool,
    id: u64,
    change: impl FnOnce(&Sale) -> Result<Sale, E>,
) -> Result<Option<Result<Sale, E>>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    let row: Option<Row> = tx
        .exec_first(
            format!("SELECT {COLUMNS} FROM sales WHERE id = ? FOR UPDATE"),
            (id,),
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let current = from_row(row)?;
    let mut new = match change(&current) {
        Ok(new) => new,
        Err(e) => return Ok(Some(Err(e))),
    };
    new.rev = take_revisions(&mut tx, 1).await?;
    tx.exec_drop(
        "UPDATE sales SET title = ?, price_cents = ?, stock = ?, per_user_limit = ?,
           starts_ms = ?, ends_ms = ?, pay_window_s = ?, queue = ?, queue_grace_s = ?,
           admit_multiple = ?, admit_ttl_s = ?, rev = ?, paused = ?, description = ?,
           image_url = ?, listed = ? WHERE id = ?",
        vec![
            mysql_async::Value::from(new.title.clone()),
            new.price_cents.into(),
            new.stock.into(),
            new.per_user_limit.into(),
            new.starts_ms.into(),
            new.ends_ms.into(),
            new.pay_window_s.into(),
            new.queue.mode.as_str().into(),
            new.queue.grace_s.into(),
            new.queue.admit_multiple.into(),
            new.queue.admit_ttl_s.into(),
            new.rev.into(),
            u8::from(new.paused).into(),
            new.description.clone().into(),
            new.image_url.clone().into(),
            u8::from(new.listed).into(),
            id.into(),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Ok(new)))
}

/// The sales changed after revision `rev` (ids and revisions only): what a backend's cache
/// must forget.
pub async fn revised_since(db: &Pool, rev: u64) -> Result<Vec<(u64, u64)>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    conn.exec(
        "SELECT id, rev FROM sales WHERE rev > ? ORDER BY rev LIMIT 10000",
        (rev,),
    )
    .await
}

/// The storefront's list: published sales that have not ended, soonest start first.
pub async fn storefront(
    db: &Pool,
    now_ms: i64,
    after: (i64, u64),
    limit: u64,
) -> Result<Vec<Sale>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let rows: Vec<Row> = conn
        .exec(
            format!(
                "SELECT {COLUMNS} FROM sales FORCE INDEX (by_end)
                  WHERE ends_ms > ? AND listed = 1
                    AND (starts_ms > ? OR (starts_ms = ? AND id > ?))
                  ORDER BY starts_ms, id LIMIT ?"
            ),
            (now_ms, after.0, after.0, after.1, limit),
        )
        .await?;
    rows_to_sales(rows)
}
