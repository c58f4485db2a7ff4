-- Proves: every ledger line's G/L account and financial period are rows of gl_accounts and
-- financial_periods in its division, so general_ledger_by_period and the reports lose no line.
-- A failure usually means gl_accounts or financial_periods not selected, or read before the
-- account or year was added: run the tap again.
-- (On general_ledger, whose joins leave balance_type / period_start_date empty for such lines,
-- so that a failure here does not stop the other models in `dbt build`.)
{% set differences %}
select
    division, financial_year, financial_period, gl_account_code,
    count(*) as line_count,
    'division ' || {{ exactonline_text('division') }}
        || ', G/L account ' || {{ exactonline_text('gl_account_code') }}
        || ', period ' || {{ exactonline_period_text('financial_year', 'financial_period') }}
        || ': ' || {{ exactonline_text('count(*)') }} || ' lines with '
        || case when max(balance_type) is null then 'a G/L account not in gl_accounts'
            else 'a period not in financial_periods' end as difference
from {{ ref('general_ledger') }}
where balance_type is null or period_start_date is null
group by division, financial_year, financial_period, gl_account_code
{% endset %}
{{ exactonline_reconciliation('lines without account or period', differences) }}
