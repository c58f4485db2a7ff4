-- Exact's ledger totals: per G/L account, year, period, entry type and status (and cost
-- center/unit), the sum, debit, credit and number of lines. Read in full: latest read only.
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_bigint('id') }} as reporting_balance_id,
    {{ exactonline_id('gl_account') }} as gl_account_id,
    {{ exactonline_code('gl_account_code') }} as gl_account_code,
    {{ exactonline_int('reporting_year') }} as reporting_year,
    {{ exactonline_int('reporting_period') }} as reporting_period,
    {{ exactonline_int('type') }} as entry_type,
    {{ exactonline_is_year_end_entry('type') }} as is_year_end_entry,
    {{ exactonline_int('status') }} as status,
    upper(balance_type) as balance_type,
    {{ exactonline_amount('amount') }} as amount,
    {{ exactonline_amount('amount_debit') }} as amount_debit,
    {{ exactonline_amount('amount_credit') }} as amount_credit,
    {{ exactonline_bigint('"count"') }} as line_count,
    _sdc_extracted_at
from {{ exactonline_latest_read('reporting_balance') }} as balances
