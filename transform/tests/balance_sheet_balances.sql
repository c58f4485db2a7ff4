-- Proves: assets equal liabilities and equity (with the year's result) at the end of every
-- period in every division.
{% set differences %}
select
    division, financial_year, financial_period,
    sum(case when section = 'assets' then amount else 0 end) as assets,
    sum(case when section = 'assets' then 0 else amount end) as liabilities_and_equity,
    'division ' || {{ exactonline_text('division') }}
        || ', period ' || {{ exactonline_period_text('financial_year', 'financial_period') }}
        || ': assets ' || {{ exactonline_money("sum(case when section = 'assets' then amount else 0 end)") }}
        || ', liabilities and equity ' || {{ exactonline_money("sum(case when section = 'assets' then 0 else amount end)") }} as difference
from {{ ref('balance_sheet') }}
group by division, financial_year, financial_period
having abs(sum(balance_dc)) >= {{ var('exactonline__tolerance') }}
{% endset %}
{{ exactonline_reconciliation('balance sheet', differences) }}
