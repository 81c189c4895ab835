//! Reports for finance and operations: outstanding liability as of a date, daily activity,
//! and dormant cards (breakage and escheatment candidates). Every figure comes from the
//! ledger through the store's report queries; the service only turns calendar dates into the
//! instants the queries take and enforces the reports' limits. No SQL, no HTTP, no CSV here.

use giftd_domain::{Date, MerchantId, Timestamp};
use giftd_store::{ActivityLine, ChannelLine, DormantCard, LiabilityLine, Page};

use crate::{Service, ServiceError};

/// Longest activity report, in days: one request, one bounded scan.
pub const MAX_ACTIVITY_DAYS: i64 = 366;
/// Longest dormancy period a report may ask for, in months (50 years).
pub const MAX_DORMANT_MONTHS: u32 = 600;

impl Service {
    /// Outstanding value per program and currency at the end of `as_of` (UTC): every card
    /// posting made on or before that day. `merchant` None: every merchant (the CLI's view).
    pub async fn liability_report(
        &self,
        merchant: Option<&MerchantId>,
        as_of: Date,
    ) -> Result<Vec<LiabilityLine>, ServiceError> {
        Ok(self.inner.store.liability(merchant, as_of.end()).await?)
    }

    /// Transactions per UTC day, program, currency and type, from the start of `from` to the
    /// end of `to`, both included.
    pub async fn activity_report(
        &self,
        merchant: Option<&MerchantId>,
        from: Date,
        to: Date,
    ) -> Result<Vec<ActivityLine>, ServiceError> {
        let until = activity_until(from, to)?;
        Ok(self.inner.store.activity(merchant, from.start(), until).await?)
    }

    /// Transactions per program, currency, type and the channel they came through (native,
    /// wallet, Clover, Adyen, Gr4vy, or giftd itself), from the start of `from` to the end of
    /// `to`, both included; the same span as the activity report allows.
    pub async fn channel_report(
        &self,
        merchant: Option<&MerchantId>,
        from: Date,
        to: Date,
    ) -> Result<Vec<ChannelLine>, ServiceError> {
        let until = activity_until(from, to)?;
        Ok(self
            .inner
            .store
            .channel_activity(merchant, from.start(), until)
            .await?)
    }

    /// Cards with value at the end of `as_of` and no transaction in the `months` calendar
    /// months before it, in card creation order, a page at a time.
    pub async fn dormant_report(
        &self,
        merchant: Option<&MerchantId>,
        months: u32,
        as_of: Date,
        page: &Page,
    ) -> Result<Vec<DormantCard>, ServiceError> {
        if !(1..=MAX_DORMANT_MONTHS).contains(&months) {
            return Err(ServiceError::Invalid {
                param: "months",
                message: format!("`months` must be from 1 to {MAX_DORMANT_MONTHS}"),
            });
        }
        let as_of = as_of.end();
        let quiet_since = as_of.minus_months(months);
        Ok(self
            .inner
            .store
            .dormant_cards(merchant, quiet_since, as_of, page)
            .await?)
    }
}

/// The instant just after `to` ends, once the span from `from` to `to` is known to be one an
/// activity report may cover.
fn activity_until(from: Date, to: Date) -> Result<Timestamp, ServiceError> {
    if to < from {
        return Err(ServiceError::Invalid {
            param: "to",
            message: "`to` must not be before `from`".into(),
        });
    }
    if to.days() - from.days() + 1 > MAX_ACTIVITY_DAYS {
        return Err(ServiceError::Invalid {
            param: "to",
            message: format!("an activity report covers at most {MAX_ACTIVITY_DAYS} days"),
        });
    }
    Ok(Timestamp::from_unix_millis(to.end().unix_millis() + 1))
}
