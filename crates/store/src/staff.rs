//! The reads of staff members and their sessions, the same SQL on both backends (`sql.rs`):
//! bound and run on a backend's read pool by [`reads_on_pool!`], so that the binding is written
//! once. The writes are `WriteTx`'s, inside jobs.

/// The staff reads on a backend's read pool (`$pool`). Each backend invokes it once in a module
/// of its own and its `Store` implementation calls these.
macro_rules! reads_on_pool {
    ($pool:ty) => {
        pub(crate) async fn by_email(
            reads: &$pool,
            email: &str,
        ) -> $crate::StoreResult<Option<$crate::StaffRecord>> {
            let row = sqlx::query($crate::sql::STAFF_BY_EMAIL)
                .bind(email)
                .fetch_optional(reads)
                .await?;
            row.as_ref().map($crate::rows::staff).transpose()
        }

        pub(crate) async fn member(
            reads: &$pool,
            merchant: &giftd_domain::MerchantId,
            id: &giftd_domain::StaffId,
        ) -> $crate::StoreResult<Option<$crate::StaffRecord>> {
            let row = sqlx::query($crate::sql::STAFF_BY_ID)
                .bind(merchant.as_str())
                .bind(id.as_str())
                .fetch_optional(reads)
                .await?;
            row.as_ref().map($crate::rows::staff).transpose()
        }

        pub(crate) async fn members(
            reads: &$pool,
            merchant: &giftd_domain::MerchantId,
            limit: u32,
        ) -> $crate::StoreResult<Vec<$crate::StaffRecord>> {
            let rows = sqlx::query($crate::sql::STAFF_OF_MERCHANT)
                .bind(merchant.as_str())
                .bind(i64::from(limit))
                .fetch_all(reads)
                .await?;
            rows.iter().map($crate::rows::staff).collect()
        }

        pub(crate) async fn open_sessions(
            reads: &$pool,
            staff: &giftd_domain::StaffId,
            now: giftd_domain::Timestamp,
            limit: u32,
        ) -> $crate::StoreResult<Vec<$crate::StaffSessionRecord>> {
            let rows = sqlx::query($crate::sql::OPEN_STAFF_SESSIONS)
                .bind(staff.as_str())
                .bind(now.unix_millis())
                .bind(i64::from(limit))
                .fetch_all(reads)
                .await?;
            rows.iter().map($crate::rows::staff_session).collect()
        }

        pub(crate) async fn session_by_hash(
            reads: &$pool,
            token_hash: &[u8],
        ) -> $crate::StoreResult<Option<$crate::StaffSessionRecord>> {
            let row = sqlx::query($crate::sql::STAFF_SESSION_BY_HASH)
                .bind(token_hash)
                .fetch_optional(reads)
                .await?;
            row.as_ref().map($crate::rows::staff_session).transpose()
        }
    };
}

pub(crate) use reads_on_pool;
