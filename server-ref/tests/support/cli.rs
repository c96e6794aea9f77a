//! Running the `licensing-server` command line on a server's database, and SQL straight on
//! that database: shared by the integration tests of the commands that work on the database
//! directly (`cli_store.rs`, `gdpr_cli.rs`).

use std::path::Path;
use std::process::{Command, Output};

use super::backend::Backend;

/// `licensing-server ARGS`, with none of the settings the environment could add.
pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_licensing-server"))
        .args(args)
        .env_remove("LICENSING_DATA_DIR")
        .env_remove("LICENSING_DATABASE_URL")
        .env_remove("LICENSING_CONFIG")
        .output()
        .unwrap()
}

/// A command's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// SQL straight on the database (the state a crash, another version or a test's setup leaves).
pub fn sql(url: &str, statements: &[&str]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .unwrap();
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    });
}

/// The URL of the database a server with data directory `data` uses on `backend`.
pub fn database_url(data: &Path, backend: &Backend) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", data.join("licensing.db").display()),
        Backend::Postgres(url) => url.clone(),
    }
}
