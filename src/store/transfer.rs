//! Moving an SQLite deployment to PostgreSQL (`bbb-gateway migrate-store --from FILE --to
//! postgres://...`): both databases are brought to the newest schema, then every table of the
//! SQLite file is copied, in creation order (parents before children), into the empty
//! PostgreSQL database in one transaction. Column types follow PostgreSQL's side; sequences
//! are moved past the copied ids. The target must hold no data: nothing is merged.

use std::path::Path;

use rusqlite::types::Value as SqlValue;
use tokio_postgres::types::{ToSql, Type};

use super::postgres::PgStore;
use super::StoreError;

/// One copied table and its row count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    pub table: String,
    pub rows: usize,
}

/// SQLite tables that hold nothing to move (the readiness probe's scratch row).
const NOT_MOVED: &[&str] = &["health_probe"];

struct Table {
    name: String,
    columns: Vec<String>,
    rows: Vec<Vec<SqlValue>>,
}

fn read_sqlite(path: &Path) -> Result<Vec<Table>, StoreError> {
    if !path.exists() {
        return Err(StoreError(format!("{} does not exist", path.display())));
    }
    let conn = super::sqlite::open(path)?;
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tables = Vec::new();
    for name in names.into_iter().filter(|n| !NOT_MOVED.contains(&n.as_str())) {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{name}\""))?;
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let n = columns.len();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, SqlValue>(i)).collect())?
            .collect::<rusqlite::Result<Vec<Vec<SqlValue>>>>()?;
        tables.push(Table { name, columns, rows });
    }
    Ok(tables)
}

/// One SQLite value as the PostgreSQL parameter type `ty` wants it.
fn convert(
    value: &SqlValue,
    ty: &Type,
    table: &str,
    column: &str,
) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    let bad = || StoreError(format!("{table}.{column}: cannot convert {value:?} to {ty}"));
    Ok(match (value, ty) {
        (SqlValue::Null, &Type::BOOL) => Box::new(None::<bool>),
        (SqlValue::Null, &Type::INT8) => Box::new(None::<i64>),
        (SqlValue::Null, &Type::INT4) => Box::new(None::<i32>),
        (SqlValue::Null, &Type::FLOAT8) => Box::new(None::<f64>),
        (SqlValue::Null, _) => Box::new(None::<String>),
        (SqlValue::Integer(i), &Type::BOOL) => Box::new(*i != 0),
        (SqlValue::Integer(i), &Type::INT8) => Box::new(*i),
        (SqlValue::Integer(i), &Type::INT4) => Box::new(i32::try_from(*i).map_err(|_| bad())?),
        (SqlValue::Integer(i), &Type::FLOAT8) => Box::new(*i as f64),
        (SqlValue::Integer(i), &Type::TEXT) => Box::new(i.to_string()),
        (SqlValue::Real(f), &Type::FLOAT8) => Box::new(*f),
        (SqlValue::Text(s), &Type::TEXT | &Type::VARCHAR) => Box::new(s.clone()),
        (SqlValue::Text(s), &Type::INT8) => Box::new(s.parse::<i64>().map_err(|_| bad())?),
        (SqlValue::Text(s), &Type::BOOL) => Box::new(matches!(s.as_str(), "1" | "true" | "t")),
        _ => return Err(bad()),
    })
}

/// Copies every table of the SQLite file at `from` into the PostgreSQL database at `to`.
pub async fn sqlite_to_postgres(from: &Path, to: &str) -> Result<Vec<Copied>, StoreError> {
    let path = from.to_path_buf();
    let tables = tokio::task::spawn_blocking(move || read_sqlite(&path))
        .await
        .map_err(|e| StoreError(format!("reading the SQLite file failed: {e}")))??;
    let pg = PgStore::open(to)
        .await
        .map_err(|e| StoreError(format!("PostgreSQL: {e}")))?;
    let pool = pg.pool().clone();
    pg.runtime()
        .spawn(async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let mut copied = Vec::new();
            for table in &tables {
                let exists: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                         WHERE table_schema = current_schema() AND table_name = $1)",
                        &[&table.name],
                    )
                    .await?
                    .get(0);
                if !exists {
                    return Err(StoreError(format!(
                        "table {} has no PostgreSQL counterpart",
                        table.name
                    )));
                }
                let count: i64 = tx
                    .query_one(&format!("SELECT count(*) FROM \"{}\"", table.name), &[])
                    .await?
                    .get(0);
                if count > 0 {
                    return Err(StoreError(format!(
                        "the PostgreSQL database already holds data (table {}): import only into an empty database",
                        table.name
                    )));
                }
                let columns = table
                    .columns
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                let params = (1..=table.columns.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let stmt = tx
                    .prepare(&format!(
                        "INSERT INTO \"{}\" ({columns}) VALUES ({params})",
                        table.name
                    ))
                    .await?;
                let types = stmt.params().to_vec();
                for row in &table.rows {
                    let mut values = Vec::with_capacity(row.len());
                    for ((value, ty), column) in row.iter().zip(&types).zip(&table.columns) {
                        values.push(convert(value, ty, &table.name, column)?);
                    }
                    let refs: Vec<&(dyn ToSql + Sync)> =
                        values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect();
                    tx.execute(&stmt, &refs).await?;
                }
                for column in &table.columns {
                    let sequence: Option<String> = tx
                        .query_one(
                            "SELECT pg_get_serial_sequence($1, $2)",
                            &[&table.name, column],
                        )
                        .await?
                        .get(0);
                    if let Some(sequence) = sequence {
                        tx.execute(
                            &format!(
                                "SELECT setval($1, COALESCE((SELECT max(\"{column}\") FROM \"{}\"), 0) + 1, false)",
                                table.name
                            ),
                            &[&sequence],
                        )
                        .await?;
                    }
                }
                copied.push(Copied {
                    table: table.name.clone(),
                    rows: table.rows.len(),
                });
            }
            tx.commit().await?;
            Ok(copied)
        })
        .await
}
