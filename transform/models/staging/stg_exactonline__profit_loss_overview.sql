{{ config(enabled=var('exactonline__using_profit_loss_overview')) }}
-- read/financial/ProfitLossOverview: revenue and costs (both positive) and result = revenue -
-- costs for the current year and period and the previous year (docs/fake-books.md).
-- One row per division; read in full: latest read only.
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_int('current_year') }} as current_year,
    {{ exactonline_int('current_period') }} as current_period,
    {{ exactonline_int('previous_year') }} as previous_year,
    {{ exactonline_int('previous_year_period') }} as previous_year_period,
    {{ exactonline_code('currency_code') }} as currency,
    {{ exactonline_amount('revenue_current_year') }} as revenue_current_year,
    {{ exactonline_amount('costs_current_year') }} as costs_current_year,
    {{ exactonline_amount('result_current_year') }} as result_current_year,
    {{ exactonline_amount('revenue_current_period') }} as revenue_current_period,
    {{ exactonline_amount('costs_current_period') }} as costs_current_period,
    {{ exactonline_amount('result_current_period') }} as result_current_period,
    {{ exactonline_amount('revenue_previous_year') }} as revenue_previous_year,
    {{ exactonline_amount('costs_previous_year') }} as costs_previous_year,
    {{ exactonline_amount('result_previous_year') }} as result_previous_year,
    {{ exactonline_amount('revenue_previous_year_period') }} as revenue_previous_year_period,
    {{ exactonline_amount('costs_previous_year_period') }} as costs_previous_year_period,
    {{ exactonline_amount('result_previous_year_period') }} as result_previous_year_period,
    _sdc_extracted_at
from {{ exactonline_latest_read('profit_loss_overview') }} as overview
