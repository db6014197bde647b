//! Re-sealing stored secrets under the keyring's current key.
//!
//! Each crate that stores sealed values lists its columns as
//! [`SealedColumn`]s; `perch keys rotate` hands all of them to [`rotate`].
//! Rows are re-sealed in batches, each batch in its own short transaction
//! with its rows locked (`FOR UPDATE SKIP LOCKED`), so rotation never blocks
//! traffic for long and several runs may overlap safely. While it runs the
//! server holds both the old and the new key, so every row reads throughout.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::keyring::{Keyring, KeyringError, Sealed};

/// One sealed column: where its ciphertext and key id live, and how to
/// rebuild the associated data it was sealed with from its row.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    /// The table.
    pub table: &'static str,
    /// The column holding the sealing key's id.
    pub key_id_column: &'static str,
    /// The column holding `nonce || ciphertext || tag` (bytea).
    pub ciphertext_column: &'static str,
    /// The columns [`SealedColumn::associated_data`] reads.
    pub row_columns: &'static [&'static str],
    /// Rebuilds the associated data from a row holding `row_columns`.
    pub associated_data: fn(&PgRow) -> Result<Vec<u8>, sqlx::Error>,
}

/// Why rotation stopped. Names the table and row, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The database failed.
    #[error("database error while rotating {table}: {source}")]
    Database {
        /// The table being rotated.
        table: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A stored value could not be opened (a missing key, or corruption).
    #[error("cannot open {table}.{column} at row {row}: {source}")]
    Open {
        /// The table.
        table: &'static str,
        /// The ciphertext column.
        column: &'static str,
        /// The row's physical id (ctid), for an operator to inspect.
        row: String,
        /// Why.
        source: KeyringError,
    },
    /// Sealing failed.
    #[error("cannot seal: {0}")]
    Seal(KeyringError),
}

/// How many rows of one column were re-sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// `table.column`.
    pub column: String,
    /// Rows re-sealed under the current key.
    pub resealed: u64,
}

/// Re-seals, in batches of `batch_size`, every value of every column that is
/// not sealed under the keyring's current key.
pub async fn rotate(
    pool: &PgPool,
    keyring: &Keyring,
    columns: &[SealedColumn],
    batch_size: u32,
) -> Result<Vec<RotationReport>, RotationError> {
    let mut reports = Vec::with_capacity(columns.len());
    for column in columns {
        let mut resealed = 0;
        loop {
            let done = rotate_batch(pool, keyring, column, batch_size).await?;
            resealed += done;
            if done == 0 {
                break;
            }
        }
        reports.push(RotationReport {
            column: format!("{}.{}", column.table, column.ciphertext_column),
            resealed,
        });
    }
    Ok(reports)
}

/// Re-seals at most `batch_size` stale rows of one column in one
/// transaction; returns how many it re-sealed (0 when none is left).
pub async fn rotate_batch(
    pool: &PgPool,
    keyring: &Keyring,
    column: &SealedColumn,
    batch_size: u32,
) -> Result<u64, RotationError> {
    let table = column.table;
    let db = |source| RotationError::Database { table, source };
    // Identifiers come from code (`SealedColumn` is 'static), never from input.
    let extra: String = column
        .row_columns
        .iter()
        .map(|c| format!(", {c}"))
        .collect();
    let select = format!(
        "SELECT ctid::text AS row_ctid, {key_id} AS sealed_key_id, {ct} AS sealed_ciphertext{extra} \
         FROM {table} WHERE {key_id} <> $1 \
         LIMIT $2 FOR UPDATE SKIP LOCKED",
        key_id = column.key_id_column,
        ct = column.ciphertext_column,
    );
    let update = format!(
        "UPDATE {table} SET {key_id} = $1, {ct} = $2 WHERE ctid = $3::tid",
        key_id = column.key_id_column,
        ct = column.ciphertext_column,
    );
    let mut tx = pool.begin().await.map_err(db)?;
    let rows = sqlx::query(&select)
        .bind(keyring.current_key_id())
        .bind(i64::from(batch_size.max(1)))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    let mut count = 0;
    for row in &rows {
        let ctid: String = row.try_get("row_ctid").map_err(db)?;
        let sealed = Sealed {
            key_id: row.try_get("sealed_key_id").map_err(db)?,
            ciphertext: row.try_get("sealed_ciphertext").map_err(db)?,
        };
        let aad = (column.associated_data)(row).map_err(db)?;
        let plaintext = keyring
            .open(&sealed, &aad)
            .map_err(|source| RotationError::Open {
                table,
                column: column.ciphertext_column,
                row: ctid.clone(),
                source,
            })?;
        let resealed = keyring
            .seal(&plaintext, &aad)
            .map_err(RotationError::Seal)?;
        sqlx::query(&update)
            .bind(&resealed.key_id)
            .bind(&resealed.ciphertext)
            .bind(&ctid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        count += 1;
    }
    tx.commit().await.map_err(db)?;
    Ok(count)
}
