-- Proves: in every division and period the trial balance's debit column equals its credit
-- column (opening and closing). Follows from entries_balance unless general_ledger_by_period
-- loses lines (a line whose account or period is not among gl_accounts / financial_periods).
{% set differences %}
select
    division, financial_year, financial_period,
    sum(opening_balance_dc) as opening_total_dc,
    sum(closing_balance_dc) as closing_total_dc,
    'division ' || {{ exactonline_text('division') }}
        || ', period ' || {{ exactonline_period_text('financial_year', 'financial_period') }}
        || ': trial balance off by ' || {{ exactonline_money('sum(closing_balance_dc)') }}
        || ' (opening off by ' || {{ exactonline_money('sum(opening_balance_dc)') }} || ')' as difference
from {{ ref('trial_balance') }}
group by division, financial_year, financial_period
having abs(sum(closing_balance_dc)) >= {{ var('exactonline__tolerance') }}
    or abs(sum(opening_balance_dc)) >= {{ var('exactonline__tolerance') }}
{% endset %}
{{ exactonline_reconciliation('trial balance', differences) }}
