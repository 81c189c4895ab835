//! The Clover facade's reads on PostgreSQL's pool: the statements of `crate::clover_reads`,
//! bound and run by its `reads_on_pool!`.

crate::clover_reads::reads_on_pool!(sqlx::PgPool);
