-- The balance sheet at the end of every financial period, per division: each balance-sheet
-- account's closing balance, grouped by its class, plus one row for the result of the year
-- so far. The year is not closed until its end, so, as in Exact's balance sheet, the year's
-- result stands apart under equity while retained earnings (GLAccounts.Type 52) hold only the
-- results of earlier years (the openingbalance endpoints carry them there; docs/fake-books.md).
--
--   balance_dc: debit positive (Exact's sign); all rows of a period sum to zero.
--   amount: as the report shows it: assets debit positive, liabilities and equity credit
--   positive; the side is that of the class below the root (Activa / Passiva), else the
--   account's BalanceSide.
with accounts as (
    select
        division, financial_year, financial_period, period_end_date,
        coalesce(level_1_balance_side, balance_side) as report_side,
        level_1_classification_code, level_1_classification_description,
        gl_classification_code, gl_classification_description,
        gl_account_code, gl_account_description,
        'account' as row_type,
        closing_balance_dc as balance_dc
    from {{ ref('general_ledger_by_period') }}
    where balance_type = 'B'
),

year_results as (
    -- Shown with the class of the retained-earnings account (equity).
    select
        results.division, results.financial_year, results.financial_period, results.period_end_date,
        coalesce(retained.level_1_balance_side, 'C') as report_side,
        retained.level_1_classification_code, retained.level_1_classification_description,
        retained.gl_classification_code, retained.gl_classification_description,
        cast(null as {{ dbt.type_string() }}) as gl_account_code,
        'Result for the year' as gl_account_description,
        'result_for_the_year' as row_type,
        results.balance_dc
    from (
        select division, financial_year, financial_period, period_end_date,
            sum(closing_balance_dc) as balance_dc
        from {{ ref('general_ledger_by_period') }}
        where balance_type = 'W'
        group by division, financial_year, financial_period, period_end_date
    ) as results
    left join {{ ref('int_exactonline__gl_accounts') }} as retained
        on retained.division = results.division and retained.is_retained_earnings
)

select
    rows_.division,
    divisions.currency as division_currency,
    rows_.financial_year,
    rows_.financial_period,
    rows_.period_end_date,
    case when rows_.report_side = 'D' then 'assets' else 'liabilities_and_equity' end as section,
    rows_.level_1_classification_code,
    rows_.level_1_classification_description,
    rows_.gl_classification_code,
    rows_.gl_classification_description,
    rows_.gl_account_code,
    rows_.gl_account_description,
    rows_.row_type,
    rows_.balance_dc,
    case when rows_.report_side = 'D' then rows_.balance_dc else -rows_.balance_dc end as amount
from (
    select * from accounts
    union all
    select * from year_results
) as rows_
left join {{ ref('int_exactonline__divisions') }} as divisions
    on divisions.division = rows_.division
