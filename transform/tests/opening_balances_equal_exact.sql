{{ config(enabled=var('exactonline__using_opening_balances')) }}
-- Proves: general_ledger_by_period treats the year end as Exact does. Each balance-sheet
-- account's opening balance in period 1 (earlier lines, earlier years' results on the
-- retained-earnings account) equals Exact's openingbalance/{Current,Previous}Year/Processed.
-- A failure on the retained-earnings account alone usually means another account receives the
-- results: set var exactonline__retained_earnings_gl_account_code. On other accounts: lines of
-- earlier years missing (see the ReportingBalance test).
{% set differences %}
with ours as (
    select gl.division, gl.gl_account_id, gl.gl_account_code, gl.financial_year,
        gl.opening_balance_dc
    from {{ ref('general_ledger_by_period') }} as gl
    where gl.balance_type = 'B' and gl.financial_period = 1
        and gl.opening_balance_dc <> 0
        and exists (
            select 1 from {{ ref('stg_exactonline__opening_balances') }} as o
            where o.division = gl.division and o.reporting_year = gl.financial_year
        )
),

compared as (
    select
        coalesce(ours.division, exacts.division) as division,
        coalesce(ours.gl_account_code, exacts.gl_account_code) as gl_account_code,
        coalesce(ours.financial_year, exacts.reporting_year) as financial_year,
        coalesce(ours.opening_balance_dc, 0) as our_opening_dc,
        coalesce(exacts.opening_balance_dc, 0) as exact_opening_dc
    from ours
    full outer join {{ ref('stg_exactonline__opening_balances') }} as exacts
        on exacts.division = ours.division
        and exacts.gl_account_id = ours.gl_account_id
        and exacts.reporting_year = ours.financial_year
)

select
    compared.*,
    'division ' || {{ exactonline_text('division') }}
        || ', G/L account ' || {{ exactonline_text('gl_account_code') }}
        || ', opening of ' || {{ exactonline_text('financial_year') }}
        || ': ledger ' || {{ exactonline_money('our_opening_dc') }}
        || ', Exact''s opening balance ' || {{ exactonline_money('exact_opening_dc') }}
        || ' (difference ' || {{ exactonline_money('our_opening_dc - exact_opening_dc') }} || ')' as difference
from compared
where abs(our_opening_dc - exact_opening_dc) >= {{ var('exactonline__tolerance') }}
{% endset %}
{{ exactonline_reconciliation('opening balances vs Exact', differences) }}
