select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as financial_period_id,
    {{ exactonline_int('fin_year') }} as financial_year,
    {{ exactonline_int('fin_period') }} as financial_period,
    {{ exactonline_date('start_date') }} as period_start_date,
    {{ exactonline_date('end_date') }} as period_end_date
from {{ exactonline_live('financial_periods') }} as periods
