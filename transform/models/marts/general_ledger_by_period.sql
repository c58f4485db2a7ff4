-- Opening, movement and closing per division, G/L account, financial year and period, every
-- period of Exact's FinancialPeriods from the division's first to its last year with lines
-- (periods without movement included).
--
-- Balances follow Exact's year end (openingbalance endpoints; docs/fake-books.md): a
-- balance-sheet account (BalanceType B) carries its balance from year to year; a profit-and-
-- loss account (W) starts every year at zero; earlier years' results are carried to the
-- retained-earnings account. So every period's closing balances sum to zero per division.
-- Exact's year-end closing posts the same year end as entries (Types 320-328): they are left
-- out, so a closed year shows the figures it showed before it was closed.
with years_with_lines as (
    select division, min(financial_year) as first_year, max(financial_year) as last_year
    from {{ ref('stg_exactonline__transaction_lines') }}
    group by division
),

periods as (
    select periods.division, periods.financial_year, periods.financial_period,
        periods.period_start_date, periods.period_end_date
    from {{ ref('stg_exactonline__financial_periods') }} as periods
    inner join years_with_lines
        on years_with_lines.division = periods.division
        and periods.financial_year between years_with_lines.first_year and years_with_lines.last_year
),

movements as (
    select
        division, gl_account_id, financial_year, financial_period,
        sum(amount_dc) as movement_dc,
        sum(case when amount_dc > 0 then amount_dc else 0 end) as debit_dc,
        sum(case when amount_dc < 0 then -amount_dc else 0 end) as credit_dc,
        count(*) as line_count
    from {{ ref('stg_exactonline__transaction_lines') }}
    where not is_year_end_entry  -- a closed year's entries restate what the window sums give
    group by division, gl_account_id, financial_year, financial_period
),

spine as (
    select gl.*, periods.financial_year, periods.financial_period,
        periods.period_start_date, periods.period_end_date
    from {{ ref('int_exactonline__gl_accounts') }} as gl
    inner join periods on periods.division = gl.division
),

filled as (
    select
        spine.*,
        coalesce(movements.movement_dc, 0) as movement_dc,
        coalesce(movements.debit_dc, 0) as debit_dc,
        coalesce(movements.credit_dc, 0) as credit_dc,
        coalesce(movements.line_count, 0) as line_count
    from spine
    left join movements
        on movements.division = spine.division
        and movements.gl_account_id = spine.gl_account_id
        and movements.financial_year = spine.financial_year
        and movements.financial_period = spine.financial_period
),

-- The result of each year (all P&L lines) and of the years before it, per division.
results as (
    select
        division, financial_year,
        sum(sum(case when balance_type = 'W' then movement_dc else 0 end)) over (
            partition by division order by financial_year
            rows between unbounded preceding and 1 preceding
        ) as earlier_years_result_dc
    from filled
    group by division, financial_year
),

running as (
    select
        filled.*,
        sum(movement_dc) over (
            partition by filled.division, gl_account_id
            order by filled.financial_year, financial_period
            rows between unbounded preceding and current row
        ) as cumulative_dc,
        sum(movement_dc) over (
            partition by filled.division, gl_account_id, filled.financial_year
            order by financial_period
            rows between unbounded preceding and current row
        ) as year_to_date_dc,
        case when is_retained_earnings then coalesce(results.earlier_years_result_dc, 0) else 0 end
            as carried_result_dc
    from filled
    left join results
        on results.division = filled.division and results.financial_year = filled.financial_year
)

select
    division,
    gl_account_id,
    gl_account_code,
    gl_account_description,
    gl_account_type,
    balance_type,
    balance_side,
    is_retained_earnings,
    gl_classification_code,
    gl_classification_description,
    level_1_classification_code,
    level_1_classification_description,
    level_1_balance_side,
    root_classification_code,
    financial_year,
    financial_period,
    period_start_date,
    period_end_date,
    closing_balance_dc - movement_dc as opening_balance_dc,
    movement_dc,
    debit_dc,
    credit_dc,
    line_count,
    closing_balance_dc
from (
    select
        running.*,
        case
            when balance_type = 'W' then year_to_date_dc
            -- a balance-sheet account: every line so far, from every P&L line of earlier years
            -- the share that Exact's year end moves here.
            else cumulative_dc + carried_result_dc
        end as closing_balance_dc
    from running
) as balances
